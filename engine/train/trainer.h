// The fine-tuning loop: data, model, strategy, optimizer and schedule from a TrainConfig; per epoch a
// training pass and an evaluation pass (eval mode, no grad), metrics, best.h5 and last.h5 in the run folder.
// A NaN or infinite loss stops the run naming the epoch and step; the checkpoints already written stay as
// they were.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/loader.h"
#include "engine/train/config.h"
#include "engine/train/metrics.h"

namespace tl::train {

struct TrainResult {
  std::string out;  // the run folder
  std::vector<EpochRecord> history;
  std::int64_t best_epoch = 0;  // 1-based
  double best_val_accuracy = 0;
  std::string strategy;                      // as resolved
  std::vector<data::BadSample> bad_samples;  // skipped images
  bool interrupted = false;                  // stopped by a signal after saving last.h5
};

// Thrown when the loss stops being a number.
class DivergedError : public Error {
 public:
  using Error::Error;
};

struct RunOptions {
  // Set (e.g. by a SIGINT handler) to stop after the current step; the last finished epoch's last.h5 stays.
  const std::atomic<bool>* stop = nullptr;
  bool quiet = false;  // no progress lines (tests)
  // Where the model trains: cpu or cuda:N. Not part of the recipe: a run may resume on another device.
  Device device = Device::cpu();
};

// Trains `config` from the start into config.out (created if needed).
TrainResult train(const TrainConfig& config, const RunOptions& options = {});

// Continues the run in `run_folder` from its last.h5: the same recipe, the state after its last finished
// epoch. `epochs` > 0 changes the total number of epochs (to extend a finished run).
TrainResult resume(const std::string& run_folder, std::int64_t epochs = 0, const RunOptions& options = {});

}  // namespace tl::train
