// The transforms a Dataset applies: training augmentation (torchvision's RandomResizedCrop and
// RandomHorizontalFlip, then ToTensor and Normalize) and evaluation preprocessing (resize, center crop,
// normalise), both with the model's own mean and std. Randomness comes from the generator passed in.
#pragma once

#include <functional>

#include "engine/data/image.h"
#include "engine/data/transforms.h"
#include "engine/preprocessing.h"
#include "engine/random.h"
#include "engine/tensor.h"

namespace tl::data {

// A decoded image to its [3, size, size] tensor.
using Transform = std::function<Tensor(const Image&, Generator&)>;

struct AugmentOptions {
  std::int64_t size = 224;
  double scale_min = 0.08, scale_max = 1.0;             // fraction of the image's area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // aspect ratio of the crop
  bool horizontal_flip = true;
};

// The window of a crop, in pixels of the source image.
struct CropBox {
  std::int64_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params for a width x height image: up to 10 tries for a crop of random
// area (a uniform fraction of the image's) and log-uniform aspect ratio that fits; otherwise the whole image,
// cut to the nearest ratio bound, centered.
CropBox random_resized_crop_box(std::int64_t width, std::int64_t height, const AugmentOptions& options,
                                Generator& generator);
// torchvision's RandomResizedCrop: the box above, resized to size x size.
Image random_resized_crop(const Image& image, std::int64_t size, const AugmentOptions& options,
                          Interpolation interpolation, Generator& generator);
Image horizontal_flip(const Image& image);

// RandomResizedCrop -> RandomHorizontalFlip (p = 0.5) -> normalise with `preprocessing`'s mean and std.
Transform train_transform(const AugmentOptions& options, const Preprocessing& preprocessing);
// Resize the shorter side to floor(size / crop_fraction) -> center crop size -> normalise (no randomness).
Transform eval_transform_of(const Preprocessing& preprocessing, std::int64_t size);

}  // namespace tl::data
