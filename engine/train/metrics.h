// Per-epoch measurements: loss, top-1 and top-5 accuracy, the confusion matrix, and the record kept per
// epoch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace tl::train {

// Sums over the batches of one phase.
class Accumulator {
 public:
  explicit Accumulator(std::int64_t classes);
  // logits [B, classes], labels [B] int64, the batch's mean loss.
  void add(const Tensor& logits, const Tensor& labels, double mean_loss);

  std::int64_t count() const { return count_; }
  double loss() const { return count_ ? loss_sum_ / static_cast<double>(count_) : 0.0; }
  double accuracy() const { return count_ ? static_cast<double>(top1_) / static_cast<double>(count_) : 0.0; }
  double top5() const { return count_ ? static_cast<double>(top5_) / static_cast<double>(count_) : 0.0; }
  // confusion()[true][predicted].
  const std::vector<std::vector<std::int64_t>>& confusion() const { return confusion_; }

 private:
  std::int64_t classes_, count_ = 0, top1_ = 0, top5_ = 0;
  double loss_sum_ = 0;
  std::vector<std::vector<std::int64_t>> confusion_;
};

struct EpochRecord {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double val_loss = 0, val_accuracy = 0, val_top5 = -1;        // top5 < 0: fewer than 6 classes
  std::vector<std::pair<std::string, double>> learning_rates;  // per optimizer group
  double images_per_second = 0, seconds = 0;
  std::int64_t train_images = 0;
};

std::string to_json(const EpochRecord& record);
EpochRecord record_from_json(const std::string& json);

}  // namespace tl::train
