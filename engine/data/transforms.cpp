#include "engine/data/transforms.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <vector>

namespace tl::data {
namespace {

double bilinear_filter(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_filter(double x) {  // Keys' cubic with a = -0.5, as PIL
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// For each output index along one axis: the first input index and the normalised weights of the inputs it
// blends (PIL's precompute_coeffs).
struct AxisWeights {
  std::vector<std::int64_t> first;
  std::vector<std::vector<double>> weights;
};

AxisWeights axis_weights(std::int64_t in, std::int64_t out, Interpolation interpolation) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);
  const double support = (interpolation == Interpolation::Bicubic ? 2.0 : 1.0) * filter_scale;
  AxisWeights w;
  for (std::int64_t o = 0; o < out; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    if (interpolation == Interpolation::Nearest) {
      w.first.push_back(std::min<std::int64_t>(static_cast<std::int64_t>(center), in - 1));
      w.weights.push_back({1.0});
      continue;
    }
    const std::int64_t lo = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
    const std::int64_t hi = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in);
    std::vector<double> k;
    double total = 0;
    for (std::int64_t i = lo; i < hi; ++i) {
      const double x = (static_cast<double>(i) - center + 0.5) / filter_scale;
      const double v = interpolation == Interpolation::Bicubic ? bicubic_filter(x) : bilinear_filter(x);
      k.push_back(v);
      total += v;
    }
    for (double& v : k) v = total != 0 ? v / total : 0.0;
    w.first.push_back(lo);
    w.weights.push_back(std::move(k));
  }
  return w;
}

std::uint8_t to_byte(double v) {
  return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

}  // namespace

Interpolation parse_interpolation(const std::string& name) {
  if (name == "nearest") return Interpolation::Nearest;
  if (name == "bilinear") return Interpolation::Bilinear;
  if (name == "bicubic") return Interpolation::Bicubic;
  throw ValueError(str("unknown interpolation '", name, "' (expected nearest, bilinear or bicubic)"));
}

Image resize(const Image& image, std::int64_t width, std::int64_t height, Interpolation interpolation) {
  TL_CHECK(width >= 1 && height >= 1, ValueError, "resize: target size must be positive, got ", width, "x",
           height);
  const AxisWeights wx = axis_weights(image.width, width, interpolation);
  const AxisWeights wy = axis_weights(image.height, height, interpolation);
  // Horizontal pass into floats, then vertical into bytes.
  std::vector<float> rows(static_cast<std::size_t>(image.height * width * 3));
#pragma omp parallel for schedule(static) if (image.height * width > 65536)
  for (std::int64_t y = 0; y < image.height; ++y)
    for (std::int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        const auto& k = wx.weights[static_cast<std::size_t>(x)];
        for (std::size_t i = 0; i < k.size(); ++i)
          acc += k[i] * image.at(y, wx.first[static_cast<std::size_t>(x)] + static_cast<std::int64_t>(i), c);
        rows[static_cast<std::size_t>((y * width + x) * 3 + c)] = static_cast<float>(acc);
      }
  Image out{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3))};
#pragma omp parallel for schedule(static) if (height * width > 65536)
  for (std::int64_t y = 0; y < height; ++y) {
    const auto& k = wy.weights[static_cast<std::size_t>(y)];
    const std::int64_t y0 = wy.first[static_cast<std::size_t>(y)];
    for (std::int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (std::size_t i = 0; i < k.size(); ++i)
          acc += k[i] *
                 rows[static_cast<std::size_t>(((y0 + static_cast<std::int64_t>(i)) * width + x) * 3 + c)];
        out.rgb[static_cast<std::size_t>((y * width + x) * 3 + c)] = to_byte(acc);
      }
  }
  return out;
}

Image resize_shorter_side(const Image& image, std::int64_t size, Interpolation interpolation) {
  TL_CHECK(size >= 1, ValueError, "resize: size must be positive, got ", size);
  if (image.width <= image.height) {
    const auto h = static_cast<std::int64_t>(static_cast<double>(size) * image.height / image.width);
    return resize(image, size, h, interpolation);
  }
  const auto w = static_cast<std::int64_t>(static_cast<double>(size) * image.width / image.height);
  return resize(image, w, size, interpolation);
}

Image center_crop(const Image& image, std::int64_t height, std::int64_t width) {
  TL_CHECK(height >= 1 && width >= 1, ValueError, "center_crop: size must be positive, got ", height, "x",
           width);
  // Python's round(): halves go to the even neighbour.
  const auto offset = [](std::int64_t from, std::int64_t to) {
    return static_cast<std::int64_t>(std::nearbyint(static_cast<double>(from - to) / 2.0));
  };
  const std::int64_t top = offset(image.height, height), left = offset(image.width, width);
  Image out{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3), 0)};
  for (std::int64_t y = 0; y < height; ++y) {
    const std::int64_t sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    for (std::int64_t x = 0; x < width; ++x) {
      const std::int64_t sx = x + left;
      if (sx < 0 || sx >= image.width) continue;
      for (int c = 0; c < 3; ++c)
        out.rgb[static_cast<std::size_t>((y * width + x) * 3 + c)] = image.at(sy, sx, c);
    }
  }
  return out;
}

Tensor to_normalized_tensor(const Image& image, const std::array<double, 3>& mean,
                            const std::array<double, 3>& std) {
  Tensor t = empty({3, image.height, image.width});
  float* out = t.data<float>();
  const std::int64_t plane = image.height * image.width;
  for (int c = 0; c < 3; ++c) {
    const double scale = 1.0 / (255.0 * std[static_cast<std::size_t>(c)]);
    const double shift = -mean[static_cast<std::size_t>(c)] / std[static_cast<std::size_t>(c)];
    for (std::int64_t i = 0; i < plane; ++i)
      out[c * plane + i] = static_cast<float>(image.rgb[static_cast<std::size_t>(i * 3 + c)] * scale + shift);
  }
  return t;
}

Tensor eval_transform(const Image& image, const Preprocessing& p) {
  const auto resized_side =
      static_cast<std::int64_t>(std::floor(static_cast<double>(p.input_size) / p.crop_fraction));
  const Image resized = resize_shorter_side(image, resized_side, parse_interpolation(p.interpolation));
  return to_normalized_tensor(center_crop(resized, p.input_size, p.input_size), p.mean, p.std);
}

}  // namespace tl::data
