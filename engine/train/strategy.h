// Which parameters train: the fine-tuning strategies and gradual unfreezing.
//   feature-extract  everything frozen but the head
//   finetune         the head and named blocks (default: the architecture's last stage, e.g. layer4)
//   full             everything (the pre-trained part at a smaller learning rate, see TrainConfig::base_lr)
//   auto             by training-set size, as the seed's table: under 1000 images feature extraction,
//                    1000-10000 finetune, above that full; from random weights always full
#pragma once

#include <string>
#include <vector>

#include "engine/train/config.h"
#include "models/model.h"

namespace tl::train {

struct StrategyPlan {
  std::string strategy;                // never "auto"
  std::string reason;                  // one line for the user
  std::vector<std::string> trainable;  // what is unfrozen at the start ({"*"} for full)
};

StrategyPlan plan_strategy(const TrainConfig& config, const models::Model& model, std::int64_t train_images,
                           bool pretrained);

// Freezes everything, then unfreezes plan.trainable.
void apply_freezing(models::Model& model, const StrategyPlan& plan);

// The last stage of an architecture, what "finetune" trains besides the head by default.
std::vector<std::string> last_stage(const models::Model& model);

struct UnfreezeStep {
  std::int64_t epoch = 0;
  std::string pattern;  // a module path or glob; "all" and "head" are resolved
};

// "0:fc,3:layer4,6:layer3,9:all" (epochs ascending). "all" means every parameter and "head" the model's head
// (for a ResNet that is "fc"). Throws ValueError naming the text for bad syntax or descending epochs.
std::vector<UnfreezeStep> parse_unfreeze_schedule(const std::string& text, const models::Model& model);

}  // namespace tl::train
