// tl_train's command line: every option and flag, registered on a CLI::App, so that tl_train and the fuzz
// target of its config-file reader (tests/fuzz/) parse exactly the same options.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/config.h"

namespace tl::tools {

// What the command line fills in; `config` is complete only after finish_train_options.
struct TrainOptions {
  train::TrainConfig config;
  std::vector<std::string> group_lrs;  // --group-lr PATTERN=LR, parsed by finish_train_options
  std::string resume, kernels, device = "cpu";
  bool compare_scratch = false, no_augment = false, allow_tf32 = false;
  std::int64_t resume_epochs = 0;
};

// Registers --config (a TOML/INI file of the same options) and every tl_train option on `app`, bound to
// `options`, which must outlive `app`'s parsing.
void add_train_options(CLI::App& app, TrainOptions& options);

// The checks and conversions that follow parsing: --no-augment, --group-lr, --model's name, and (without
// --resume) train::validate. Throws ValueError naming the flag at fault.
void finish_train_options(TrainOptions& options);

// "layer4=1e-4" -> {"layer4", 1e-4}; throws ValueError naming --group-lr.
train::GroupLr parse_group_lr(const std::string& text);

}  // namespace tl::tools
