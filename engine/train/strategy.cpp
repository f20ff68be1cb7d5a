#include "engine/train/strategy.h"

#include <sstream>

#include "engine/error.h"

namespace tl::train {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// Throws ValueError naming `flag` unless `pattern` names some parameter of the model (as Module::unfreeze
// matches: a glob over full names, or a module path), so that a misspelt block fails before training rather
// than at the epoch that reaches it, or never.
void check_block(const models::Model& model, const std::string& pattern, const std::string& flag) {
  const auto parameters = model.named_parameters();
  for (const auto& [name, _] : parameters)
    if (glob_match(pattern, name) || glob_match(pattern + ".*", name)) return;
  throw ValueError(str(flag, ": '", pattern, "' matches no parameter of ", model.architecture(),
                       " (names look like '", parameters.empty() ? std::string() : parameters.front().first,
                       "'; blocks are module paths such as '", last_stage(model).front(), "')"));
}

}  // namespace

std::vector<std::string> last_stage(const models::Model& model) {
  const std::string& arch = model.architecture();
  if (starts_with(arch, "resnet")) return {"layer4"};
  if (starts_with(arch, "mobilenet_v2")) return {"features.17", "features.18"};
  if (arch == "mobilenet_v3_large") return {"features.15", "features.16", "classifier.0"};
  if (arch == "mobilenet_v3_small") return {"features.11", "features.12", "classifier.0"};
  if (starts_with(arch, "mobilenet_v1"))
    return {"conv_dw_13", "conv_dw_13_bn", "conv_pw_13", "conv_pw_13_bn"};
  throw ValueError(str("no default last stage for ", arch, "; name the blocks with --unfreeze"));
}

StrategyPlan plan_strategy(const TrainConfig& config, const models::Model& model, std::int64_t train_images,
                           bool pretrained) {
  StrategyPlan plan;
  plan.strategy = config.strategy;
  if (!pretrained) {
    TL_CHECK(
        config.strategy == "auto" || config.strategy == "full", ValueError, "--strategy ", config.strategy,
        ": without pre-trained --weights there is nothing worth freezing; use --strategy full (or auto)");
    plan.strategy = "full";
    plan.reason = "random initial weights: every layer trains";
  } else if (config.strategy == "auto") {
    plan.strategy = train_images < 1000 ? "feature-extract" : train_images <= 10000 ? "finetune" : "full";
    plan.reason = str(train_images, " training images: ",
                      plan.strategy == "feature-extract" ? "under 1000, so only the head trains"
                      : plan.strategy == "finetune" ? "1000 to 10000, so the head and the last stage train"
                                                    : "over 10000, so every layer trains");
  } else {
    plan.reason = "as asked (--strategy " + config.strategy + ")";
  }

  TL_CHECK(config.unfreeze.empty() || plan.strategy == "finetune", ValueError,
           "--unfreeze names the blocks that train with --strategy finetune, but this run's strategy is ",
           plan.strategy, ": ", plan.reason, "; ask for --strategy finetune");
  if (plan.strategy == "full") {
    plan.trainable = {"*"};
  } else {
    plan.trainable = {model.head_path()};
    if (plan.strategy == "finetune") {
      const std::vector<std::string> blocks = config.unfreeze.empty() ? last_stage(model) : config.unfreeze;
      for (const std::string& b : config.unfreeze) check_block(model, b, "--unfreeze");
      plan.trainable.insert(plan.trainable.end(), blocks.begin(), blocks.end());
    }
  }
  return plan;
}

void apply_freezing(models::Model& model, const StrategyPlan& plan) {
  model.freeze("*");
  for (const std::string& pattern : plan.trainable) model.unfreeze(pattern);
}

std::vector<UnfreezeStep> parse_unfreeze_schedule(const std::string& text, const models::Model& model) {
  std::vector<UnfreezeStep> steps;
  std::stringstream entries(text);
  for (std::string entry; std::getline(entries, entry, ',');) {
    const std::size_t colon = entry.find(':');
    TL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < entry.size(), ValueError,
             "--unfreeze-schedule '", text, "': '", entry, "' is not EPOCH:BLOCK");
    UnfreezeStep step;
    try {
      std::size_t used = 0;
      step.epoch = std::stoll(entry.substr(0, colon), &used);
      TL_CHECK(used == colon, ValueError, "");
    } catch (const std::exception&) {
      throw ValueError(
          str("--unfreeze-schedule '", text, "': '", entry.substr(0, colon), "' is not an epoch"));
    }
    TL_CHECK(step.epoch >= 0, ValueError, "--unfreeze-schedule '", text, "': epochs start at 0");
    TL_CHECK(steps.empty() || step.epoch >= steps.back().epoch, ValueError, "--unfreeze-schedule '", text,
             "': epochs must not decrease");
    const std::string block = entry.substr(colon + 1);
    step.pattern = block == "all" ? "*" : block == "head" ? model.head_path() : block;
    check_block(model, step.pattern, str("--unfreeze-schedule '", text, "'"));
    steps.push_back(step);
  }
  TL_CHECK(!steps.empty(), ValueError, "--unfreeze-schedule: empty schedule");
  return steps;
}

}  // namespace tl::train
