// A fine-tuning recipe: everything tl_train's flags (or config file) say, in one value that is also stored in
// every checkpoint, so a resumed run continues with exactly the recipe it started with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tl::train {

struct GroupLr {
  std::string pattern;  // a module path ("layer4") or a glob over parameter names ("*.bn*")
  double lr = 0;
};

struct TrainConfig {
  // ---- data -----------------------------------------------------------------------------------------------
  // A folder (root/train + root/val, or class folders split by val_fraction), or
  // "fashion-mnist[:C,C,...[:N]]" (Debian's Fashion-MNIST: a class subset and at most N training images per
  // class).
  std::string data;
  std::string val_data;  // a separate validation folder
  double val_fraction = 0.2;
  bool augment = true;          // RandomResizedCrop + horizontal flip on training images
  bool strict_data = false;     // stop at the first unreadable image instead of skipping it
  std::int64_t image_size = 0;  // 0: the model's pretrained input size

  // ---- model
  // ------------------------------------------------------------------------------------------------
  std::string model;        // an architecture; empty: the one the weights file names
  std::string weights;      // tl weight file; empty or "none": random initialisation
  bool reset_head = false;  // the weights' head has another shape: keep the backbone, start a new head
  std::string head;  // linear | mlp:HIDDEN:DROPOUT; empty: keep the weights' head when it fits, else linear

  // ---- what trains
  // ------------------------------------------------------------------------------------------
  std::string strategy = "auto";        // auto | feature-extract | finetune | full
  std::vector<std::string> unfreeze;    // finetune: what trains besides the head (default: the last stage)
  std::string unfreeze_schedule;        // gradual unfreezing, "0:fc,3:layer4,6:layer3,9:all"
  bool train_frozen_bn = false;         // let frozen BatchNorm layers use (and update) batch statistics
  std::string cache_features = "auto";  // feature extraction without augmentation: run the backbone once

  // ---- optimisation
  // ---------------------------------------------------------------------------------------------
  std::string optimizer = "adam";  // sgd | adam | adamw
  double lr = 1e-3;                // the head's learning rate (and every group's unless set)
  double base_lr = 0;  // everything else that trains; 0: lr / 10 (pre-trained), lr (random weights)
  std::vector<GroupLr> group_lrs;  // per-pattern learning rates, first match wins
  double momentum = 0.9;           // sgd
  bool nesterov = false;           // sgd
  double weight_decay = 0;
  bool decay_norm_and_bias = false;  // apply weight decay to BatchNorm parameters and biases too
  double label_smoothing = 0;
  std::string scheduler = "none";  // none | step:S:G | multistep:M1,M2:G | cosine[:MIN] | warmup:E[:F]+...
  std::int64_t epochs = 10;
  std::int64_t batch_size = 32;

  // ---- run
  // ------------------------------------------------------------------------------------------------------
  int workers = 4;
  std::uint64_t seed = 0;
  std::string out = "runs/run";
  bool overwrite = false;  // start afresh in a run folder that already holds a run's checkpoints
};

// Throws ValueError naming the flag for any value that cannot work (epochs < 1, batch size 0, lr <= 0, ...).
void validate(const TrainConfig& config);

// The recipe as JSON (stored in checkpoints) and back.
std::string to_json(const TrainConfig& config);
TrainConfig config_from_json(const std::string& json);

}  // namespace tl::train
