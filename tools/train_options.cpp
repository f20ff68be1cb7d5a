#include "tools/train_options.h"

#include "tools/cli_common.h"

namespace tl::tools {

train::GroupLr parse_group_lr(const std::string& text) {
  const std::size_t eq = text.find('=');
  TL_CHECK(eq != std::string::npos && eq > 0, ValueError, "--group-lr '", text,
           "': expected PATTERN=LR (e.g. layer4=1e-4)");
  try {
    std::size_t used = 0;
    const double lr = std::stod(text.substr(eq + 1), &used);
    TL_CHECK(used == text.size() - eq - 1, ValueError, "");
    return {text.substr(0, eq), lr};
  } catch (const std::exception&) {
    throw ValueError(str("--group-lr '", text, "': '", text.substr(eq + 1), "' is not a learning rate"));
  }
}

void add_train_options(CLI::App& app, TrainOptions& o) {
  train::TrainConfig& c = o.config;
  app.set_config("--config", "", "read these options from a TOML/INI file (key = value, one per line)");
  app.add_option("--data", c.data,
                 "image folder (train/ + val/, or class folders) or fashion-mnist[:C,C,..[:N]]");
  app.add_option("--val-data", c.val_data, "a separate validation folder");
  app.add_option("--val-fraction", c.val_fraction,
                 "validation share when there is no val/ folder (default 0.2)");
  app.add_option("--model", c.model, "architecture (tl_models lists them); default: what --weights names");
  app.add_option("--weights", c.weights,
                 "tl weight file (tl_convert, or a tl_train best.h5); 'none': random");
  app.add_flag("--reset-head", c.reset_head,
               "start a new head when the weights' head has another class count");
  app.add_option("--head", c.head, "new head: linear, or mlp:HIDDEN:DROPOUT (Linear-ReLU-Dropout-Linear)");
  app.add_option("--strategy", c.strategy, "auto, feature-extract, finetune or full (default auto)");
  app.add_option("--unfreeze", c.unfreeze,
                 "finetune: blocks that train besides the head (default: the last stage)")
      ->delimiter(',');
  app.add_option("--unfreeze-schedule", c.unfreeze_schedule,
                 "gradual unfreezing, e.g. 0:fc,3:layer4,6:layer3,9:all");
  app.add_flag("--train-frozen-bn", c.train_frozen_bn,
               "let frozen BatchNorm layers use and update batch statistics");
  app.add_option("--optimizer", c.optimizer, "sgd, adam or adamw (default adam)");
  app.add_option("--lr", c.lr, "learning rate of the head (default 1e-3)");
  app.add_option("--base-lr", c.base_lr, "learning rate of everything else that trains (default lr / 10)");
  app.add_option("--group-lr", o.group_lrs, "PATTERN=LR for a block or glob, e.g. layer4=1e-4 (repeatable)");
  app.add_option("--momentum", c.momentum, "SGD momentum (default 0.9)");
  app.add_flag("--nesterov", c.nesterov, "Nesterov momentum for SGD");
  app.add_option("--weight-decay", c.weight_decay, "weight decay (default 0; never on BatchNorm and biases)");
  app.add_flag("--decay-norm-and-bias", c.decay_norm_and_bias,
               "apply weight decay to BatchNorm and biases too");
  app.add_option("--label-smoothing", c.label_smoothing, "cross-entropy label smoothing (default 0)");
  app.add_option("--scheduler", c.scheduler,
                 "none, step:S:G, multistep:M1,M2:G, cosine[:MIN], warmup:E[:F]+...");
  app.add_option("--epochs", c.epochs, "epochs (default 10)");
  app.add_option("--batch-size", c.batch_size, "images per step (default 32)");
  app.add_option("--workers", c.workers, "image-loading threads (default 4)");
  app.add_option("--image-size", c.image_size, "input side in pixels (default: the weights' / model's)");
  app.add_flag("--no-augment", o.no_augment, "no RandomResizedCrop / flip on training images");
  app.add_flag("--strict-data", c.strict_data, "stop at the first unreadable image instead of skipping it");
  app.add_option("--cache-features", c.cache_features,
                 "auto, on or off: feature extraction on cached features");
  app.add_option("--seed", c.seed, "seed of shuffling, augmentation, dropout and new heads (default 0)");
  app.add_option("--out", c.out, "run folder for checkpoints and metrics (default runs/run)");
  app.add_flag("--overwrite", c.overwrite, "start afresh in a run folder that already holds a run");
  app.add_option("--resume", o.resume, "continue the run in this folder from its last.h5");
  app.add_option("--resume-epochs", o.resume_epochs, "with --resume: change the total number of epochs");
  app.add_flag("--compare-scratch", o.compare_scratch,
               "also train the same recipe from random weights and compare");
  app.add_option("--kernels", o.kernels, "kernel policy: auto, native, vendor or reference (as TL_KERNELS)");
  app.add_option("--device", o.device, "cpu (default), cuda or cuda:N: where the model trains");
  app.add_flag("--allow-tf32", o.allow_tf32,
               "on a GPU, let cuDNN/cuBLAS use TF32 tensor cores (faster, ~1e-3 relative error)");
}

void finish_train_options(TrainOptions& o) {
  train::TrainConfig& c = o.config;
  c.augment = !o.no_augment;
  for (const std::string& g : o.group_lrs) c.group_lrs.push_back(parse_group_lr(g));
  if (!c.model.empty()) check_architecture(c.model, "--model");
  if (o.resume.empty()) train::validate(c);
}

}  // namespace tl::tools
