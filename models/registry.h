// The model registry: every architecture tl builds, by name, with a one-line summary (timm's list_models /
// create_model).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace tl::models {

struct Architecture {
  std::string name;     // "resnet50"
  std::string summary;  // "ResNet-50 (torchvision v1.5, bottleneck blocks)"
  std::function<std::shared_ptr<Model>(std::int64_t num_classes, Generator& generator)> build;
};

const std::vector<Architecture>& architectures();

// Names matching a glob ("resnet*", "*"), in registry order.
std::vector<std::string> architecture_names(const std::string& pattern = "*");

// A freshly initialised model; num_classes == 0 gives the pooled-feature extractor. Throws ValueError listing
// the known names for an unknown one.
std::shared_ptr<Model> create_model(const std::string& name, std::int64_t num_classes = 1000,
                                    std::uint64_t seed = 0);

}  // namespace tl::models
