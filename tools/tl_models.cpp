// tl_models: lists the architectures tl builds, with parameter counts and pretrained preprocessing (like
// timm.list_models). A glob narrows the list: tl_models 'resnet*'.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "models/registry.h"
#include "tools/cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"tl_models: list the architectures tl builds"};
  std::string pattern = "*";
  bool names_only = false;
  app.add_option("pattern", pattern, "glob over architecture names (default: all)");
  app.add_flag("--names", names_only, "print only the names, one per line");
  CLI11_PARSE(app, argc, argv);
  return tl::tools::run_reporting_errors("tl_models", [&] {
    const auto names = tl::models::architecture_names(pattern);
    if (names.empty()) throw tl::ValueError(tl::str("no architecture matches '", pattern, "'"));
    if (!names_only)
      std::printf("%-20s %12s %8s  %-5s %-22s %-22s %s\n", "architecture", "parameters", "features", "input",
                  "mean", "std", "summary");
    for (const auto& a : tl::models::architectures()) {
      if (std::find(names.begin(), names.end(), a.name) == names.end()) continue;
      if (names_only) {
        std::printf("%s\n", a.name.c_str());
        continue;
      }
      tl::Generator generator(0);
      const auto model = a.build(1000, generator);
      const tl::Preprocessing& p = model->preprocessing();
      std::printf("%-20s %12s %8lld  %-5lld (%.3f, %.3f, %.3f)  (%.3f, %.3f, %.3f)  %s\n", a.name.c_str(),
                  tl::tools::thousands(model->parameter_count()).c_str(),
                  static_cast<long long>(model->num_features()), static_cast<long long>(p.input_size),
                  p.mean[0], p.mean[1], p.mean[2], p.std[0], p.std[1], p.std[2], a.summary.c_str());
    }
    return 0;
  });
}
