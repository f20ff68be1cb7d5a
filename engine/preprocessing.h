// How a model's images are prepared: what its pretrained weights saw in training (timm's pretrained_cfg).
// Stored with the weights, read by the data pipeline and tl_predict, so mean/std can never silently mismatch.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace tl {

struct Preprocessing {
  std::int64_t input_size = 224;                    // square side after cropping
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // per RGB channel, on pixels scaled to [0, 1]
  std::array<double, 3> std{0.229, 0.224, 0.225};
  std::string interpolation = "bilinear";
  double crop_fraction = 0.875;  // resize the shorter side to input_size / crop_fraction, then center-crop
};

}  // namespace tl
