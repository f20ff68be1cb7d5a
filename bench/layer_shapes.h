// What the convolution benchmarks share: how a layer is written down (batch 32, square input and kernel,
// padding kernel / 2), the three passes each layer is timed in, and the element counts of x, w and y. The CPU
// benchmark (bench_conv2d.cpp) and the GPU one (bench_cuda_kernels.cpp) each keep their own list of layers,
// since they time different sets; this header keeps the two describing them in the same terms.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace tl::bench {

// Input channels, input size, output channels, kernel, stride, groups; batch 32, padding kernel / 2.
inline kernels::Conv2dShape conv(std::int64_t in_channels, std::int64_t size, std::int64_t out_channels,
                                 std::int64_t kernel, std::int64_t stride, std::int64_t groups = 1) {
  kernels::Conv2dShape s;
  s.batch = 32;
  s.in_channels = in_channels, s.in_h = s.in_w = size;
  s.out_channels = out_channels, s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = kernel / 2;
  s.groups = groups;
  return s;
}

struct Layer {
  const char* name;
  kernels::Conv2dShape shape;
};

enum class Pass { Forward, BackwardData, BackwardFilter };

// The pass's part of a benchmark name.
inline const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::Forward:
      return "forward";
    case Pass::BackwardData:
      return "backward_data";
    case Pass::BackwardFilter:
      return "backward_filter";
  }
  return "?";
}

// Elements of the input, the weights and the output (or of their gradients: the same sizes).
inline std::int64_t x_size(const kernels::Conv2dShape& s) {
  return s.batch * s.in_channels * s.in_h * s.in_w;
}
inline std::int64_t w_size(const kernels::Conv2dShape& s) {
  return s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
}
inline std::int64_t y_size(const kernels::Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_h() * s.out_w();
}

}  // namespace tl::bench
