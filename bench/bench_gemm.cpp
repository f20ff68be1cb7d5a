// SGEMM through the kernel facade: our native kernel (Policy::Native) beside OpenBLAS (Policy::Vendor), on
// square sizes and on the im2col GEMMs of ResNet-50's convolutions. Cases are named <group>/<shape>/<impl> so
// each native case sorts next to its OpenBLAS twin. Wall-clock time (the kernels run OpenMP/pthreads),
// reported as GFLOP/s (2 * M * N * K per call; the counter "GFLOP" is shown per second). Results and the
// command that produced them: bench/RESULTS.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/numeric.h"

namespace {

using tl::kernels::Context;
using tl::kernels::Policy;

// C[M,N] = A[M,K] * B[K,N], all row-major and dense, beta = 0 (as a convolution's forward GEMM runs).
void sgemm(benchmark::State& state, Policy policy, std::int64_t M, std::int64_t N, std::int64_t K) {
  const auto a = tl::testing::random_vector<float>(static_cast<std::size_t>(M * K), 1);
  const auto b = tl::testing::random_vector<float>(static_cast<std::size_t>(K * N), 2);
  std::vector<float> c(static_cast<std::size_t>(M * N));
  const Context ctx{tl::Device::cpu(), policy};
  for (auto _ : state) {
    tl::kernels::gemm<float>(ctx, false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP"] =
      benchmark::Counter(2e-9 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) *
                             static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  state.SetLabel(tl::kernels::gemm_implementation(ctx));
}

struct Shape {
  std::string name;
  std::int64_t M, N, K;
};

// ResNet-50 (torchvision, stride on the 3x3 conv) at batch 16, 224 x 224: the distinct shapes of its
// convolutions as im2col GEMMs, M = out_channels, K = in_channels * kh * kw, N = 16 * out_h * out_w.
// Layers that share a shape are listed once, under the first; the others are named in the comment.
std::vector<Shape> resnet50_shapes() {
  return {
      {"conv1", 64, 16 * 112 * 112, 3 * 7 * 7},          // 7x7/2, 3 -> 64, out 112x112
      {"layer1.0.conv1", 64, 16 * 56 * 56, 64},          // 1x1, 64 -> 64
      {"layer1.0.conv2", 64, 16 * 56 * 56, 64 * 9},      // 3x3, 64 -> 64 (all layer1 conv2)
      {"layer1.0.conv3", 256, 16 * 56 * 56, 64},         // 1x1, 64 -> 256 (all conv3, layer1.0.downsample)
      {"layer1.1.conv1", 64, 16 * 56 * 56, 256},         // 1x1, 256 -> 64 (layer1.1-2.conv1)
      {"layer2.0.conv1", 128, 16 * 56 * 56, 256},        // 1x1, 256 -> 128 at 56x56
      {"layer2.0.conv2", 128, 16 * 28 * 28, 128 * 9},    // 3x3/2, 128 -> 128 (and layer2.1-3.conv2, 3x3/1)
      {"layer2.0.conv3", 512, 16 * 28 * 28, 128},        // 1x1, 128 -> 512 (all layer2 conv3)
      {"layer2.0.downsample", 512, 16 * 28 * 28, 256},   // 1x1/2, 256 -> 512
      {"layer2.1.conv1", 128, 16 * 28 * 28, 512},        // 1x1, 512 -> 128 (layer2.1-3.conv1)
      {"layer3.0.conv1", 256, 16 * 28 * 28, 512},        // 1x1, 512 -> 256 at 28x28
      {"layer3.0.conv2", 256, 16 * 14 * 14, 256 * 9},    // 3x3/2, 256 -> 256 (and layer3.1-5.conv2)
      {"layer3.0.conv3", 1024, 16 * 14 * 14, 256},       // 1x1, 256 -> 1024 (all layer3 conv3)
      {"layer3.0.downsample", 1024, 16 * 14 * 14, 512},  // 1x1/2, 512 -> 1024
      {"layer3.1.conv1", 256, 16 * 14 * 14, 1024},       // 1x1, 1024 -> 256 (layer3.1-5.conv1)
      {"layer4.0.conv1", 512, 16 * 14 * 14, 1024},       // 1x1, 1024 -> 512 at 14x14
      {"layer4.0.conv2", 512, 16 * 7 * 7, 512 * 9},      // 3x3/2, 512 -> 512 (and layer4.1-2.conv2)
      {"layer4.0.conv3", 2048, 16 * 7 * 7, 512},         // 1x1, 512 -> 2048 (all layer4 conv3)
      {"layer4.0.downsample", 2048, 16 * 7 * 7, 1024},   // 1x1/2, 1024 -> 2048
      {"layer4.1.conv1", 512, 16 * 7 * 7, 2048},         // 1x1, 2048 -> 512 (layer4.1-2.conv1)
  };
}

void register_pair(const std::string& prefix, std::int64_t M, std::int64_t N, std::int64_t K) {
  for (const auto& [impl, policy] :
       {std::pair{"native", Policy::Native}, std::pair{"openblas", Policy::Vendor}}) {
    benchmark::RegisterBenchmark(
        (prefix + "/" + impl).c_str(),
        [policy = policy, M, N, K](benchmark::State& s) { sgemm(s, policy, M, N, K); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

// Registration runs once, before benchmark_main's main(); the flag only anchors the initializer.
const bool registered = [] {
  for (const std::int64_t n : {256, 512, 1024, 2048}) register_pair("sgemm/" + std::to_string(n), n, n, n);
  for (const Shape& s : resnet50_shapes())
    register_pair("resnet50_b16/" + s.name + "/M" + std::to_string(s.M) + "_N" + std::to_string(s.N) + "_K" +
                      std::to_string(s.K),
                  s.M, s.N, s.K);
  return true;
}();

}  // namespace
