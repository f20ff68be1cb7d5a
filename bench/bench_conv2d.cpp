// 2-D convolution through the kernel facade at real layer shapes of ResNet-50 (torchvision v1.5: the stride
// on the 3x3) and MobileNetV2, batch 32, 224 x 224 input. Each layer runs forward, backward-data and
// backward-filter, with the im2col GEMM on our kernel (native) and on OpenBLAS (vendor); depthwise layers
// have one path, the direct kernel (native). Names: conv2d/<layer>/<pass>/<impl>. Wall-clock time (the
// kernels run OpenMP and OpenBLAS threads); the counter GFLOP is per second, from Conv2dShape::flops(), the
// same count for every pass. Each case runs one untimed call first (page faults, thread start-up) and then a
// fixed number of timed calls, sized from its FLOP count, so the whole set stays within a few minutes on two
// cores.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/layer_shapes.h"
#include "kernels/ops.h"

namespace {

using namespace tl::bench;  // conv, Layer, Pass and the buffer sizes, shared with the other conv benchmark
using tl::kernels::Context;
using tl::kernels::Conv2dShape;
using tl::kernels::Policy;

// Input channels, input size, output channels, kernel, stride (padding kernel / 2), groups.
const Layer kLayers[] = {
    {"resnet50.conv1", conv(3, 224, 64, 7, 2)},               // the stem
    {"resnet50.layer1.1x1_reduce", conv(256, 56, 64, 1, 1)},  // layer1.1.conv1
    {"resnet50.layer1.3x3", conv(64, 56, 64, 3, 1)},          // layer1.*.conv2
    {"resnet50.layer1.1x1_expand", conv(64, 56, 256, 1, 1)},  // layer1.*.conv3
    {"resnet50.layer2.3x3", conv(128, 28, 128, 3, 1)},        // layer2.1-3.conv2
    {"resnet50.layer3.0.3x3_s2", conv(256, 28, 256, 3, 2)},   // layer3.0.conv2
    {"resnet50.layer3.3x3", conv(256, 14, 256, 3, 1)},        // layer3.1-5.conv2
    {"resnet50.layer3.0.downsample", conv(512, 28, 1024, 1, 2)},
    {"resnet50.layer4.3x3", conv(512, 7, 512, 3, 1)},            // layer4.1-2.conv2
    {"mobilenet_v2.features.0", conv(3, 224, 32, 3, 2)},         // the stem
    {"mobilenet_v2.dw3x3.112", conv(32, 112, 32, 3, 1, 32)},     // features.1
    {"mobilenet_v2.dw3x3_s2.112", conv(96, 112, 96, 3, 2, 96)},  // features.2
    {"mobilenet_v2.dw3x3.14", conv(576, 14, 576, 3, 1, 576)},    // features.12-13
    {"mobilenet_v2.expand1x1.56", conv(24, 56, 144, 1, 1)},      // features.3 expand
    {"mobilenet_v2.project1x1.7", conv(960, 7, 160, 1, 1)},      // features.15-16 project
};

// Deterministic values in [-scale, scale) from a linear congruential generator: the Mersenne Twister of
// tests/support would take longer over the stem's 100 MB of buffers than the timed calls themselves.
std::vector<float> pattern(std::size_t n, std::uint32_t seed, float scale) {
  std::vector<float> v(n);
  std::uint32_t state = seed * 2654435761u + 1u;
  for (float& x : v) {
    state = state * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(state >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
  return v;
}

// The layers are followed by BatchNorm, so there is no bias (and no bias gradient).
void run_pass(const Context& ctx, Pass pass, const Conv2dShape& s, std::vector<float>& x,
              std::vector<float>& w, std::vector<float>& y) {
  switch (pass) {
    case Pass::Forward:
      return tl::kernels::conv2d_forward<float>(ctx, s, x.data(), w.data(), nullptr, y.data());
    case Pass::BackwardData:
      return tl::kernels::conv2d_backward_data(ctx, s, y.data(), w.data(), x.data());
    case Pass::BackwardFilter:
      return tl::kernels::conv2d_backward_filter<float>(ctx, s, x.data(), y.data(), w.data(), nullptr);
  }
}

void conv2d(benchmark::State& state, const Conv2dShape& s, Pass pass, Policy policy) {
  // x, w, y hold the input or the gradient of each, whichever the pass reads and writes.
  auto x = pattern(x_size(s), 1, 1.0f);
  auto w = pattern(w_size(s), 2, 0.1f);
  auto y = pattern(y_size(s), 3, 1.0f);
  const Context ctx{tl::Device::cpu(), policy};
  run_pass(ctx, pass, s, x, w, y);
  for (auto _ : state) {
    run_pass(ctx, pass, s, x, w, y);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP"] = benchmark::Counter(1e-9 * s.flops() * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.SetLabel(s.is_depthwise() ? "direct" : tl::kernels::gemm_implementation(ctx));
}

// About 1.5 s of work at 10 GFLOP/s, at least 2 and at most 20 calls.
benchmark::IterationCount iterations_for(const Conv2dShape& s) {
  return std::clamp<benchmark::IterationCount>(static_cast<benchmark::IterationCount>(1.5e10 / s.flops()), 2,
                                               20);
}

// Registration runs once, before benchmark_main's main(); the flag only anchors the initializer.
const bool registered = [] {
  for (const Layer& layer : kLayers)
    for (const Pass pass : {Pass::Forward, Pass::BackwardData, Pass::BackwardFilter})
      for (const auto& [impl, policy] :
           {std::pair{"native", Policy::Native}, std::pair{"vendor", Policy::Vendor}}) {
        if (layer.shape.is_depthwise() && policy != Policy::Native) continue;  // one path: the direct kernel
        const std::string name = std::string("conv2d/") + layer.name + "/" + pass_name(pass) + "/" + impl;
        benchmark::RegisterBenchmark(name.c_str(),
                                     [shape = layer.shape, pass, policy = policy](benchmark::State& state) {
                                       conv2d(state, shape, pass, policy);
                                     })
            ->UseRealTime()
            ->Iterations(iterations_for(layer.shape))
            ->Unit(benchmark::kMillisecond);
      }
  return true;
}();

}  // namespace
