#include "models/registry.h"

#include "engine/error.h"
#include "models/architectures.h"

namespace tl::models {

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> list = [] {
    std::vector<Architecture> out;
    for (int depth : {18, 34, 50, 101, 152}) {
      out.push_back({"resnet" + std::to_string(depth),
                     "ResNet-" + std::to_string(depth) + " (torchvision, " +
                         (depth < 50 ? "basic blocks)" : "bottleneck blocks, v1.5)"),
                     [depth](std::int64_t classes, Generator& g) { return resnet(depth, classes, g); }});
    }
    out.push_back({"mobilenet_v2", "MobileNetV2 1.0 (torchvision)",
                   [](std::int64_t classes, Generator& g) { return mobilenet_v2(classes, g); }});
    out.push_back({"mobilenet_v2_keras",
                   "MobileNetV2 1.0, keras.applications padding and epsilon, torchvision names",
                   [](std::int64_t classes, Generator& g) { return mobilenet_v2(classes, g, 1.0, true); }});
    out.push_back({"mobilenet_v3_small", "MobileNetV3-Small (torchvision)",
                   [](std::int64_t classes, Generator& g) { return mobilenet_v3(false, classes, g); }});
    out.push_back({"mobilenet_v3_large", "MobileNetV3-Large (torchvision)",
                   [](std::int64_t classes, Generator& g) { return mobilenet_v3(true, classes, g); }});
    for (const auto& [suffix, alpha] : std::vector<std::pair<std::string, double>>{
             {"", 1.0}, {"_0.75", 0.75}, {"_0.5", 0.5}, {"_0.25", 0.25}}) {
      out.push_back(
          {"mobilenet_v1" + suffix,
           "MobileNetV1 alpha " + std::to_string(alpha).substr(0, 4) + " (keras.applications layout)",
           [alpha = alpha](std::int64_t classes, Generator& g) { return mobilenet_v1(alpha, classes, g); }});
    }
    return out;
  }();
  return list;
}

std::vector<std::string> architecture_names(const std::string& pattern) {
  std::vector<std::string> names;
  for (const Architecture& a : architectures())
    if (glob_match(pattern, a.name)) names.push_back(a.name);
  return names;
}

std::shared_ptr<Model> create_model(const std::string& name, std::int64_t num_classes, std::uint64_t seed) {
  TL_CHECK(num_classes >= 0, ValueError, "create_model: num_classes must not be negative, got ", num_classes);
  for (const Architecture& a : architectures()) {
    if (a.name != name) continue;
    Generator generator(seed);
    return a.build(num_classes, generator);
  }
  std::string known;
  for (const Architecture& a : architectures()) known += (known.empty() ? "" : ", ") + a.name;
  throw ValueError(str("unknown architecture '", name, "' (known: ", known, ")"));
}

}  // namespace tl::models
