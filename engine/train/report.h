// What a run shows and leaves behind besides checkpoints: the live progress line, metrics.csv and
// metrics.jsonl, the loss/accuracy curves as SVG, and the validation confusion matrix.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/metrics.h"

namespace tl::train {

// One line per phase, redrawn in place on a terminal ("\r"), printed every 10% otherwise (logs, CI):
//   epoch 3/10 train  45/123  loss 0.3412  acc 87.5%  215 img/s  elapsed 0:21  eta 0:42
class Progress {
 public:
  // show_metrics false: a phase without loss and accuracy (feature caching).
  Progress(std::string label, std::int64_t total_batches, bool show_metrics = true);
  void update(std::int64_t done_batches, double loss, double accuracy, std::int64_t images);
  void finish(const std::string& summary);

 private:
  std::string label_;
  std::int64_t total_;
  std::int64_t last_printed_ = -1;
  bool terminal_, show_metrics_;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "1:02:03", "4:05"

// Rewrites OUT/metrics.csv and OUT/metrics.jsonl from the whole history (atomically, so a kill never leaves
// them half-written).
void write_metrics(const std::string& out_dir, const std::vector<EpochRecord>& history);
// OUT/curves.svg: loss and accuracy per epoch, training and validation.
void write_curves(const std::string& path, const std::vector<EpochRecord>& history);
// A text table of confusion[true][predicted] with class names, and the same as CSV.
std::string confusion_table(const std::vector<std::string>& classes,
                            const std::vector<std::vector<std::int64_t>>& confusion);
void write_confusion_csv(const std::string& path, const std::vector<std::string>& classes,
                         const std::vector<std::vector<std::int64_t>>& confusion);

// Writes `text` to `path` atomically.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace tl::train
