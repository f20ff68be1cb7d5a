// tl_train: fine-tunes a pre-trained model on a folder of labelled images (or Fashion-MNIST), with the
// strategies feature extraction / partial / full fine-tuning, per-group learning rates, schedules and gradual
// unfreezing; keeps best.h5 and last.h5 in the run folder and continues an interrupted run with --resume.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "engine/train/report.h"
#include "engine/train/trainer.h"
#include "kernels/policy.h"
#include "tools/cli_common.h"
#include "weights/weights_file.h"

namespace {

using namespace tl;

std::atomic<bool> stop_requested{false};

void on_signal(int) {
  stop_requested = true;
}

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

void print_comparison(const train::TrainResult& pretrained, const train::TrainResult& scratch) {
  const auto row = [](const char* label, const train::TrainResult& r) {
    double seconds = 0;
    for (const auto& e : r.history) seconds += e.seconds;
    std::printf("  %-22s best validation accuracy %5.1f%% (epoch %lld), final %5.1f%%, %s\n", label,
                100 * r.best_val_accuracy, static_cast<long long>(r.best_epoch),
                r.history.empty() ? 0.0 : 100 * r.history.back().val_accuracy,
                train::format_duration(seconds).c_str());
  };
  std::printf("tl_train: the same recipe from pre-trained and from random weights:\n");
  row(("pre-trained (" + pretrained.strategy + ")").c_str(), pretrained);
  row("from scratch (full)", scratch);
}

int run(train::TrainConfig config, const std::string& resume, bool compare_scratch,
        std::int64_t resume_epochs) {
  train::RunOptions options;
  options.stop = &stop_requested;
  if (!resume.empty()) {
    const train::TrainResult r = train::resume(resume, resume_epochs, options);
    return r.interrupted ? 130 : 0;
  }
  const train::TrainResult main = train::train(config, options);
  if (main.interrupted) return 130;
  if (!compare_scratch) return 0;
  train::TrainConfig scratch = config;
  TL_CHECK(
      !config.weights.empty() && config.weights != "none", ValueError,
      "--compare-scratch compares with pre-trained --weights; this run already starts from random weights");
  // The same model at the same input size as the pre-trained run (not the architecture's default 224).
  const weights::Metadata pretrained = weights::load_weights(config.weights).metadata;
  if (scratch.model.empty()) scratch.model = pretrained.architecture;
  if (scratch.image_size == 0) scratch.image_size = pretrained.preprocessing.input_size;
  scratch.weights = "none";
  scratch.reset_head = false;
  scratch.strategy = "full";
  scratch.unfreeze_schedule.clear();
  scratch.cache_features = "off";
  scratch.out = config.out + "-scratch";
  std::printf("tl_train: now the same recipe from random weights, into %s\n", scratch.out.c_str());
  const train::TrainResult from_scratch = train::train(scratch, options);
  if (from_scratch.interrupted) return 130;
  print_comparison(main, from_scratch);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tl_train: fine-tune a pre-trained model on your images"};
  app.set_config("--config", "", "read these options from a TOML/INI file (key = value, one per line)");
  train::TrainConfig c;
  std::vector<std::string> group_lrs;
  std::string resume, kernels;
  bool compare_scratch = false, no_augment = false;
  std::int64_t resume_epochs = 0;

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
  app.add_option("--group-lr", group_lrs, "PATTERN=LR for a block or glob, e.g. layer4=1e-4 (repeatable)");
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
  app.add_flag("--no-augment", no_augment, "no RandomResizedCrop / flip on training images");
  app.add_flag("--strict-data", c.strict_data, "stop at the first unreadable image instead of skipping it");
  app.add_option("--cache-features", c.cache_features,
                 "auto, on or off: feature extraction on cached features");
  app.add_option("--seed", c.seed, "seed of shuffling, augmentation, dropout and new heads (default 0)");
  app.add_option("--out", c.out, "run folder for checkpoints and metrics (default runs/run)");
  app.add_option("--resume", resume, "continue the run in this folder from its last.h5");
  app.add_option("--resume-epochs", resume_epochs, "with --resume: change the total number of epochs");
  app.add_flag("--compare-scratch", compare_scratch,
               "also train the same recipe from random weights and compare");
  app.add_option("--kernels", kernels, "kernel policy: auto, native, vendor or reference (as TL_KERNELS)");
  CLI11_PARSE(app, argc, argv);

  return tools::run_reporting_errors("tl_train", [&] {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::unique_ptr<kernels::PolicyGuard> policy;
    if (!kernels.empty())
      policy = std::make_unique<kernels::PolicyGuard>(kernels::parse_policy(kernels, "--kernels"));
    c.augment = !no_augment;
    for (const std::string& g : group_lrs) c.group_lrs.push_back(parse_group_lr(g));
    if (!c.model.empty()) tools::check_architecture(c.model, "--model");
    if (resume.empty()) train::validate(c);
    return run(c, resume, compare_scratch, resume_epochs);
  });
}
