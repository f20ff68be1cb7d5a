// tl_train: fine-tunes a pre-trained model on a folder of labelled images (or Fashion-MNIST), with the
// strategies feature extraction / partial / full fine-tuning, per-group learning rates, schedules and gradual
// unfreezing; keeps best.h5 and last.h5 in the run folder and continues an interrupted run with --resume.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "engine/train/report.h"
#include "engine/train/trainer.h"
#include "kernels/cuda/device.h"
#include "kernels/policy.h"
#include "tools/cli_common.h"
#include "tools/train_options.h"
#include "weights/weights_file.h"

namespace {

using namespace tl;

std::atomic<bool> stop_requested{false};

void on_signal(int) {
  stop_requested = true;
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
        std::int64_t resume_epochs, Device device) {
  train::RunOptions options;
  options.stop = &stop_requested;
  options.device = device;
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
  tools::TrainOptions o;
  tools::add_train_options(app, o);
  CLI11_PARSE(app, argc, argv);

  return tools::run_reporting_errors("tl_train", [&] {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::unique_ptr<kernels::PolicyGuard> policy;
    if (!o.kernels.empty())
      policy = std::make_unique<kernels::PolicyGuard>(kernels::parse_policy(o.kernels, "--kernels"));
    tools::finish_train_options(o);
    const Device device = tools::parse_device_flag(o.device, "--device");
    if (o.allow_tf32) {
      TL_CHECK(device.is_cuda(), ValueError, "--allow-tf32 applies to --device cuda only");
      cuda::set_tf32_allowed(true);
    }
    return run(o.config, o.resume, o.compare_scratch, o.resume_epochs, device);
  });
}
