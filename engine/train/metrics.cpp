#include "engine/train/metrics.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace tl::train {

Accumulator::Accumulator(std::int64_t classes)
    : classes_(classes),
      confusion_(static_cast<std::size_t>(classes),
                 std::vector<std::int64_t>(static_cast<std::size_t>(classes), 0)) {}

void Accumulator::add(const Tensor& logits, const Tensor& labels, double mean_loss) {
  const std::int64_t rows = logits.size(0);
  const std::vector<float> z = logits.to_vector<float>();
  const std::vector<std::int64_t> y = labels.to_vector<std::int64_t>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = z.data() + r * classes_;
    const std::int64_t truth = y[static_cast<std::size_t>(r)];
    const std::int64_t predicted = std::max_element(row, row + classes_) - row;
    // Rank of the true class: how many classes score strictly higher.
    std::int64_t higher = 0;
    for (std::int64_t c = 0; c < classes_; ++c) higher += row[c] > row[truth];
    top1_ += predicted == truth;
    top5_ += higher < 5;
    ++confusion_[static_cast<std::size_t>(truth)][static_cast<std::size_t>(predicted)];
  }
  loss_sum_ += mean_loss * static_cast<double>(rows);
  count_ += rows;
}

std::string to_json(const EpochRecord& r) {
  nlohmann::ordered_json lrs = nlohmann::ordered_json::object();
  for (const auto& [group, lr] : r.learning_rates) lrs[group] = lr;
  nlohmann::ordered_json j = {{"epoch", r.epoch},
                              {"train_loss", r.train_loss},
                              {"train_accuracy", r.train_accuracy},
                              {"val_loss", r.val_loss},
                              {"val_accuracy", r.val_accuracy},
                              {"learning_rates", lrs},
                              {"images_per_second", r.images_per_second},
                              {"seconds", r.seconds},
                              {"train_images", r.train_images}};
  if (r.val_top5 >= 0) j["val_top5"] = r.val_top5;
  return j.dump();
}

EpochRecord record_from_json(const std::string& text) {
  try {
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
    EpochRecord r;
    r.epoch = j.at("epoch");
    r.train_loss = j.at("train_loss");
    r.train_accuracy = j.at("train_accuracy");
    r.val_loss = j.at("val_loss");
    r.val_accuracy = j.at("val_accuracy");
    r.val_top5 = j.value("val_top5", -1.0);
    for (const auto& [group, lr] : j.at("learning_rates").items()) r.learning_rates.emplace_back(group, lr);
    r.images_per_second = j.at("images_per_second");
    r.seconds = j.at("seconds");
    r.train_images = j.at("train_images");
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("a damaged epoch record in the checkpoint: ", e.what()));
  }
}

}  // namespace tl::train
