// Image transforms with torchvision's semantics: resize (antialiased when shrinking, like PIL), center crop,
// and conversion to a normalised CHW float tensor. The random augmentations of training live beside these.
#pragma once

#include <string>

#include "engine/data/image.h"
#include "engine/preprocessing.h"
#include "engine/tensor.h"

namespace tl::data {

enum class Interpolation { Nearest, Bilinear, Bicubic };

// "nearest", "bilinear" or "bicubic"; throws ValueError naming the text otherwise.
Interpolation parse_interpolation(const std::string& name);

// Resamples to width x height. Shrinking widens the filter by the scale factor (PIL's antialiasing), so
// downscaled photos do not alias.
Image resize(const Image& image, std::int64_t width, std::int64_t height, Interpolation interpolation);

// torchvision Resize(size): the shorter side becomes `size`, the longer keeps the aspect ratio (truncated).
Image resize_shorter_side(const Image& image, std::int64_t size, Interpolation interpolation);

// torchvision CenterCrop: the middle height x width window, offsets rounded half to even; an image smaller
// than the window is padded with black first.
Image center_crop(const Image& image, std::int64_t height, std::int64_t width);

// [3, H, W] float32, (pixel / 255 - mean[c]) / std[c].
Tensor to_normalized_tensor(const Image& image, const std::array<double, 3>& mean,
                            const std::array<double, 3>& std);

// Evaluation preprocessing for a model: resize the shorter side to floor(input_size / crop_fraction),
// center-crop input_size, normalise with the model's mean and std. Gives [3, input_size, input_size].
Tensor eval_transform(const Image& image, const Preprocessing& preprocessing);

}  // namespace tl::data
