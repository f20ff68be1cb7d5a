#include "engine/train/config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <tuple>
#include <vector>

#include "engine/error.h"

namespace tl::train {

void validate(const TrainConfig& c) {
  TL_CHECK(!c.data.empty(), ValueError, "--data: no training data given");
  TL_CHECK(!c.model.empty() || (!c.weights.empty() && c.weights != "none"), ValueError,
           "--model: name the architecture (tl_models lists them), or give --weights, which names it");
  TL_CHECK(c.epochs >= 1, ValueError, "--epochs must be at least 1, got ", c.epochs);
  TL_CHECK(c.batch_size >= 1, ValueError, "--batch-size must be at least 1, got ", c.batch_size);
  // Every real-valued flag must be finite: NaN fails each comparison below, and an infinite rate or decay
  // would pass them and only fail (naming no flag) once the optimizer is built.
  TL_CHECK(c.lr > 0 && std::isfinite(c.lr), ValueError, "--lr must be positive and finite, got ", c.lr);
  TL_CHECK(c.base_lr >= 0 && std::isfinite(c.base_lr), ValueError,
           "--base-lr must be positive and finite (or 0 for lr / 10), got ", c.base_lr);
  for (const GroupLr& g : c.group_lrs)
    TL_CHECK(g.lr > 0 && std::isfinite(g.lr), ValueError, "--group-lr ", g.pattern, "=", g.lr,
             ": the learning rate must be positive and finite");
  TL_CHECK(c.workers >= 0 && c.workers <= 64, ValueError, "--workers must be between 0 and 64, got ",
           c.workers);
  TL_CHECK(c.image_size == 0 || (c.image_size >= 16 && c.image_size <= 4096), ValueError,
           "--image-size must be between 16 and 4096 pixels, got ", c.image_size);
  TL_CHECK(c.val_fraction > 0 && c.val_fraction < 1, ValueError, "--val-fraction must be in (0, 1), got ",
           c.val_fraction);
  TL_CHECK(c.momentum >= 0 && c.momentum < 1, ValueError, "--momentum must be in [0, 1), got ", c.momentum);
  TL_CHECK(c.weight_decay >= 0 && std::isfinite(c.weight_decay), ValueError,
           "--weight-decay must be finite and not negative, got ", c.weight_decay);
  TL_CHECK(c.label_smoothing >= 0 && c.label_smoothing < 1, ValueError,
           "--label-smoothing must be in [0, 1), got ", c.label_smoothing);
  for (const auto& [flag, value, allowed] :
       {std::tuple<const char*, std::string, std::vector<std::string>>{
            "--strategy", c.strategy, {"auto", "feature-extract", "finetune", "full"}},
        {"--optimizer", c.optimizer, {"sgd", "adam", "adamw"}},
        {"--cache-features", c.cache_features, {"auto", "on", "off"}}}) {
    bool ok = false;
    std::string list;
    for (const auto& a : allowed) {
      ok = ok || value == a;
      list += (list.empty() ? "" : ", ") + a;
    }
    TL_CHECK(ok, ValueError, flag, ": unknown value '", value, "' (expected ", list, ")");
  }
}

std::string to_json(const TrainConfig& c) {
  nlohmann::json groups = nlohmann::json::array();
  for (const GroupLr& g : c.group_lrs) groups.push_back({{"pattern", g.pattern}, {"lr", g.lr}});
  const nlohmann::json j = {
      {"data", c.data},
      {"val_data", c.val_data},
      {"val_fraction", c.val_fraction},
      {"augment", c.augment},
      {"strict_data", c.strict_data},
      {"image_size", c.image_size},
      {"model", c.model},
      {"weights", c.weights},
      {"reset_head", c.reset_head},
      {"head", c.head},
      {"strategy", c.strategy},
      {"unfreeze", c.unfreeze},
      {"unfreeze_schedule", c.unfreeze_schedule},
      {"train_frozen_bn", c.train_frozen_bn},
      {"cache_features", c.cache_features},
      {"optimizer", c.optimizer},
      {"lr", c.lr},
      {"base_lr", c.base_lr},
      {"group_lrs", groups},
      {"momentum", c.momentum},
      {"nesterov", c.nesterov},
      {"weight_decay", c.weight_decay},
      {"decay_norm_and_bias", c.decay_norm_and_bias},
      {"label_smoothing", c.label_smoothing},
      {"scheduler", c.scheduler},
      {"epochs", c.epochs},
      {"batch_size", c.batch_size},
      {"workers", c.workers},
      {"seed", c.seed},
      {"out", c.out},
  };
  return j.dump();
}

TrainConfig config_from_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    TrainConfig c;
    c.data = j.at("data");
    c.val_data = j.at("val_data");
    c.val_fraction = j.at("val_fraction");
    c.augment = j.at("augment");
    c.strict_data = j.at("strict_data");
    c.image_size = j.at("image_size");
    c.model = j.at("model");
    c.weights = j.at("weights");
    c.reset_head = j.at("reset_head");
    c.head = j.at("head");
    c.strategy = j.at("strategy");
    c.unfreeze = j.at("unfreeze").get<std::vector<std::string>>();
    c.unfreeze_schedule = j.at("unfreeze_schedule");
    c.train_frozen_bn = j.at("train_frozen_bn");
    c.cache_features = j.at("cache_features");
    c.optimizer = j.at("optimizer");
    c.lr = j.at("lr");
    c.base_lr = j.at("base_lr");
    for (const auto& g : j.at("group_lrs")) c.group_lrs.push_back({g.at("pattern"), g.at("lr")});
    c.momentum = j.at("momentum");
    c.nesterov = j.at("nesterov");
    c.weight_decay = j.at("weight_decay");
    c.decay_norm_and_bias = j.at("decay_norm_and_bias");
    c.label_smoothing = j.at("label_smoothing");
    c.scheduler = j.at("scheduler");
    c.epochs = j.at("epochs");
    c.batch_size = j.at("batch_size");
    c.workers = j.at("workers");
    c.seed = j.at("seed");
    c.out = j.at("out");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("the checkpoint's recipe is damaged: ", e.what()));
  }
}

}  // namespace tl::train
