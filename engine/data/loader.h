// Batches from a Dataset, decoded and transformed by worker threads ahead of the consumer. The order of an
// epoch is a permutation seeded by (seed, epoch); sample i's randomness is a generator seeded by (seed,
// epoch, i). So the batches of an epoch are the same for any number of workers, and an interrupted run
// resumes exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/tensor.h"

namespace tl::data {

struct Batch {
  Tensor images;                      // [B, 3, H, W] float32
  Tensor labels;                      // [B] int64
  std::vector<std::int64_t> indices;  // dataset indices of the rows
};

// The seeds behind an epoch's order and a sample's augmentation (exposed so that a test or a tool can
// reproduce one sample exactly): the order is seeded_permutation(n, epoch_order_seed(seed, epoch)), and
// sample `index` is drawn with Generator(sample_seed(seed, epoch, index)), whatever its position or the
// worker that loads it.
std::uint64_t epoch_order_seed(std::uint64_t seed, std::int64_t epoch);
std::uint64_t sample_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t index);

// A sample that could not be loaded, and why.
struct BadSample {
  std::string name;    // Dataset::describe
  std::string reason;  // the ImageError's message
};

class DataLoader {
 public:
  struct Options {
    std::int64_t batch_size = 32;
    bool shuffle = true;
    bool drop_last = false;
    int workers = 4;           // 0: load on the calling thread
    int prefetch_batches = 2;  // batches prepared ahead, per worker
    std::uint64_t seed = 0;
    // A sample that fails to decode: false skips it (its batch is one row shorter; it is recorded once in
    // bad_samples()); true throws ImageError naming it.
    bool strict = false;
    // Batch images in page-locked host memory, which uploads to a GPU faster (the trainer sets it for
    // --device cuda); needs the CUDA backend.
    bool pinned = false;
  };

  // Throws ValueError for a batch size below 1, a negative worker count, prefetch_batches below 1, an empty
  // dataset, or drop_last with fewer samples than one batch (an epoch would be empty).
  // Worker threads run the dataset single-threaded (OpenMP regions inside them get one thread), so that they
  // do not compete with the training thread's OpenMP kernels for the cores.
  DataLoader(std::shared_ptr<const Dataset> dataset, Options options);
  ~DataLoader();  // stops and joins the workers
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts epoch `epoch` (any previous one is abandoned), from batch `first_batch` (resuming mid-epoch).
  // ValueError for a negative epoch or a first batch outside [0, batches_per_epoch()].
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0);
  // The next batch of the current epoch, in order; nullopt at its end (and until the next start_epoch).
  // Before any start_epoch it starts epoch 0. A batch whose every sample failed is skipped over. Errors of a
  // worker (strict mode's ImageError, a transform's exception) are thrown here, when their batch is due.
  std::optional<Batch> next();

  std::int64_t batches_per_epoch() const;
  std::int64_t samples_per_epoch() const;  // after drop_last (samples that fail to load still count)
  // Every sample skipped so far (each once, however many epochs saw it).
  std::vector<BadSample> bad_samples() const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  struct State;
  std::shared_ptr<const Dataset> dataset_;
  Options options_;
  std::unique_ptr<State> state_;
};

}  // namespace tl::data
