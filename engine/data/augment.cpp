#include "engine/data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "kernels/philox.h"

namespace tl::data {
namespace {

// Uniform doubles in [0, 1) from the generator, two per Philox block (53 bits each).
class Uniforms {
 public:
  explicit Uniforms(Generator& generator) : generator_(generator) {}
  double next() {
    if (left_ == 0) {
      bits_ = kernels::philox4x32(generator_.seed(), generator_.reserve(4) / 4);
      left_ = 2;
    }
    const std::size_t at = left_ == 2 ? 0 : 2;
    --left_;
    return kernels::philox_uniform_double(bits_[at], bits_[at + 1]);
  }
  // Uniform integer in [0, n), like torch.randint(0, n).
  std::int64_t below(std::int64_t n) {
    return std::min(n - 1, static_cast<std::int64_t>(next() * static_cast<double>(n)));
  }

 private:
  Generator& generator_;
  kernels::PhiloxBlock bits_{};
  int left_ = 0;
};

// Python's round() (halves to even), which torchvision's get_params uses.
std::int64_t round_half_even(double v) {
  return static_cast<std::int64_t>(std::nearbyint(v));
}

void check_options(const AugmentOptions& o, std::int64_t size) {
  TL_CHECK(size >= 1, ValueError, "RandomResizedCrop: size must be positive, got ", size);
  TL_CHECK(o.scale_min >= 0 && o.scale_min <= o.scale_max && o.scale_max > 0, ValueError,
           "RandomResizedCrop: scale range [", o.scale_min, ", ", o.scale_max,
           "] must satisfy 0 <= scale_min <= scale_max, scale_max > 0");
  TL_CHECK(o.ratio_min > 0 && o.ratio_min <= o.ratio_max, ValueError, "RandomResizedCrop: ratio range [",
           o.ratio_min, ", ", o.ratio_max, "] must satisfy 0 < ratio_min <= ratio_max");
}

Image crop(const Image& image, std::int64_t top, std::int64_t left, std::int64_t height, std::int64_t width) {
  Image out{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3))};
  for (std::int64_t y = 0; y < height; ++y)
    std::memcpy(out.rgb.data() + y * width * 3, image.rgb.data() + ((top + y) * image.width + left) * 3,
                static_cast<std::size_t>(width * 3));
  return out;
}

}  // namespace

CropBox random_resized_crop_box(std::int64_t width, std::int64_t height, const AugmentOptions& options,
                                Generator& generator) {
  check_options(options, 1);
  TL_CHECK(width >= 1 && height >= 1, ValueError, "RandomResizedCrop: image of ", width, "x", height,
           " pixels");
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double log_min = std::log(options.ratio_min), log_max = std::log(options.ratio_max);
  Uniforms u(generator);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area =
        area * (options.scale_min + (options.scale_max - options.scale_min) * u.next());
    const double ratio = std::exp(log_min + (log_max - log_min) * u.next());
    const std::int64_t w = round_half_even(std::sqrt(target_area * ratio));
    const std::int64_t h = round_half_even(std::sqrt(target_area / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const std::int64_t top = u.below(height - h + 1);
      const std::int64_t left = u.below(width - w + 1);
      return {top, left, h, w};
    }
  }
  // No fit in 10 tries (a very long image, or scale_max > 1): the whole image, cut to the ratio range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  std::int64_t w = width, h = height;
  if (in_ratio < options.ratio_min) {
    h = std::clamp<std::int64_t>(round_half_even(static_cast<double>(w) / options.ratio_min), 1, height);
  } else if (in_ratio > options.ratio_max) {
    w = std::clamp<std::int64_t>(round_half_even(static_cast<double>(h) * options.ratio_max), 1, width);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image random_resized_crop(const Image& image, std::int64_t size, const AugmentOptions& options,
                          Interpolation interpolation, Generator& generator) {
  check_options(options, size);
  const CropBox box = random_resized_crop_box(image.width, image.height, options, generator);
  if (box.height == image.height && box.width == image.width) return resize(image, size, size, interpolation);
  return resize(crop(image, box.top, box.left, box.height, box.width), size, size, interpolation);
}

Image horizontal_flip(const Image& image) {
  Image out{image.width, image.height, std::vector<std::uint8_t>(image.rgb.size())};
  for (std::int64_t y = 0; y < image.height; ++y)
    for (std::int64_t x = 0; x < image.width; ++x)
      for (int c = 0; c < 3; ++c)
        out.rgb[static_cast<std::size_t>((y * image.width + x) * 3 + c)] =
            image.at(y, image.width - 1 - x, c);
  return out;
}

Transform train_transform(const AugmentOptions& options, const Preprocessing& preprocessing) {
  check_options(options, options.size);  // fail when the pipeline is built, not in a worker thread
  const Interpolation interpolation = parse_interpolation(preprocessing.interpolation);
  return [options, interpolation, mean = preprocessing.mean, std = preprocessing.std](const Image& image,
                                                                                      Generator& generator) {
    Image out = random_resized_crop(image, options.size, options, interpolation, generator);
    if (options.horizontal_flip && Uniforms(generator).next() < 0.5) out = horizontal_flip(out);
    return to_normalized_tensor(out, mean, std);
  };
}

Transform eval_transform_of(const Preprocessing& preprocessing, std::int64_t size) {
  TL_CHECK(size >= 1, ValueError, "eval transform: size must be positive, got ", size);
  TL_CHECK(preprocessing.crop_fraction > 0 && preprocessing.crop_fraction <= 1, ValueError,
           "eval transform: crop_fraction must be in (0, 1], got ", preprocessing.crop_fraction);
  parse_interpolation(preprocessing.interpolation);  // an unknown name fails here, not in a worker thread
  Preprocessing p = preprocessing;
  p.input_size = size;
  return [p](const Image& image, Generator&) { return eval_transform(image, p); };
}

}  // namespace tl::data
