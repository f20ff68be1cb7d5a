// Recognising an architecture from a state dict's names and shapes, for checkpoints that do not say what they
// are (a .pth or safetensors file is just named tensors).
#pragma once

#include <string>

#include "engine/state_dict.h"

namespace tl::models {

struct Detection {
  std::string architecture;  // a registry name; empty when nothing matched
  std::int64_t num_classes = 0;
  std::string reason;  // what gave it away, for the user: "bottleneck blocks 3-4-6-3"
};

Detection detect_architecture(const StateDict& state);

}  // namespace tl::models
