#include "models/detect.h"

#include <array>
#include <map>

#include "engine/error.h"

namespace tl::models {
namespace {

// Number of blocks of ResNet stage `layer`: one more than the largest index in "layerN.<index>.".
int blocks_in(const StateDict& state, int layer) {
  const std::string prefix = "layer" + std::to_string(layer) + ".";
  int count = 0;
  for (const auto& [name, _] : state) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::size_t end = name.find('.', prefix.size());
    try {
      count = std::max(count, std::stoi(name.substr(prefix.size(), end - prefix.size())) + 1);
    } catch (const std::exception&) {
    }
  }
  return count;
}

// The head's output count: rows of its last Linear weight (a plain head "fc.weight", an MLP head
// "fc.3.weight").
std::int64_t classes_of(const StateDict& state, const std::string& head) {
  if (const Tensor* w = state.find(head + ".weight")) return w->size(0);
  std::int64_t classes = 0;
  int last = -1;
  for (const auto& [name, t] : state) {
    if (name.rfind(head + ".", 0) != 0 || name.size() < 7 || name.substr(name.size() - 7) != ".weight")
      continue;
    const std::string middle = name.substr(head.size() + 1, name.size() - head.size() - 8);
    try {
      const int index = std::stoi(middle);
      if (index > last && t.dim() == 2) {
        last = index;
        classes = t.size(0);
      }
    } catch (const std::exception&) {
    }
  }
  return classes;
}

bool has(const StateDict& state, const std::string& name) {
  return state.contains(name);
}

}  // namespace

Detection detect_architecture(const StateDict& state) {
  Detection d;
  if (has(state, "conv1.weight") && has(state, "layer4.0.conv1.weight")) {
    const std::array<int, 4> blocks{blocks_in(state, 1), blocks_in(state, 2), blocks_in(state, 3),
                                    blocks_in(state, 4)};
    const bool bottleneck = has(state, "layer1.0.conv3.weight");
    const std::map<std::array<int, 4>, int> depths =
        bottleneck ? std::map<std::array<int, 4>, int>{{{3, 4, 6, 3}, 50},
                                                       {{3, 4, 23, 3}, 101},
                                                       {{3, 8, 36, 3}, 152}}
                   : std::map<std::array<int, 4>, int>{{{2, 2, 2, 2}, 18}, {{3, 4, 6, 3}, 34}};
    const auto it = depths.find(blocks);
    d.reason = str(bottleneck ? "bottleneck" : "basic", " blocks ", blocks[0], "-", blocks[1], "-", blocks[2],
                   "-", blocks[3]);
    if (it == depths.end()) return Detection{"", 0, "a ResNet with unknown " + d.reason};
    d.architecture = "resnet" + std::to_string(it->second);
    d.num_classes = classes_of(state, "fc");
  } else if (has(state, "features.1.conv.0.0.weight") && has(state, "features.18.0.weight")) {
    d.architecture = "mobilenet_v2";
    d.reason = "inverted residuals features.1-17 and the 1280-wide features.18";
    d.num_classes = classes_of(state, "classifier.1");
  } else if (has(state, "features.1.block.0.0.weight")) {
    const bool large = has(state, "features.16.0.weight");
    d.architecture = large ? "mobilenet_v3_large" : "mobilenet_v3_small";
    d.reason = large ? "16 feature stages (MobileNetV3-Large)" : "12 feature stages (MobileNetV3-Small)";
    d.num_classes = classes_of(state, "classifier.3");
  } else if (has(state, "conv_dw_1.weight") && has(state, "conv1.weight")) {
    const std::int64_t width = state.at("conv1.weight").size(0);
    const std::map<std::int64_t, std::string> by_width{
        {32, "mobilenet_v1"}, {24, "mobilenet_v1_0.75"}, {16, "mobilenet_v1_0.5"}, {8, "mobilenet_v1_0.25"}};
    const auto it = by_width.find(width);
    if (it == by_width.end())
      return Detection{"", 0, str("a MobileNetV1 with an unsupported stem width ", width)};
    d.architecture = it->second;
    d.reason = str("Keras MobileNet layer names, stem width ", width);
    d.num_classes = classes_of(state, "conv_preds");
  } else {
    d.reason = "no known architecture's names (conv1/layer4, features.N.conv, features.N.block, conv_dw_N)";
  }
  return d;
}

}  // namespace tl::models
