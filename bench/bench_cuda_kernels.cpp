// GPU kernels through the kernel facade on cuda:0: tl's own CUDA kernels (Policy::Native) beside cuDNN and
// cuBLAS (Policy::Vendor), on the distinct convolution shapes of ResNet-50 (torchvision v1.5: the stride on
// the 3x3) and MobileNetV2 at batch 32, 224 x 224, float32, and on square SGEMMs.
//
// Names: cuda_conv2d/<layer>/<pass>/<impl> with pass forward, backward_data or backward_filter, and
// cuda_sgemm/<n>/<impl>; impl is native or vendor, so each native case sorts next to its twin.
//
// Timing (as llm.c and bench/RESULTS.md's method do it): every case first runs a few untimed calls (module
// loading, cuDNN's algorithm search, the allocator's first blocks); then each repeat writes a buffer of twice
// the L2 size with cudaMemsetAsync, outside the timed region, so no repeat finds its operands in L2, and
// times the one call between two CUDA events on the device's stream. The benchmark's own time is the mean of
// those event times (manual time); the counters use the median repeat: TFLOP/s from Conv2dShape::flops() (the
// same count for each pass) or 2 n^3, GB/s from the fewest bytes the pass must move (each tensor it reads or
// writes once: x, w and y in every pass of a convolution; A, B and C of a GEMM), median_us the median itself.
//
// Inputs are fresh uniform random values from the facade's fill_uniform on the device, never zeros (zeros can
// run faster than real data and hide unwritten outputs). The convolutions have no bias: in both networks
// every one is followed by BatchNorm. After the run, a table gives native's speed over vendor's per case, and
// the cuDNN algorithms the vendor path chose are listed.
//
// Without a GPU nothing is registered and the binary exits 0. --benchmark_min_time applies when given; else
// each case runs for 0.05 s of measured time (0.2 s for the SGEMMs), which keeps the whole set to a few
// minutes.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/layer_shapes.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/runtime.h"
#include "kernels/ops.h"
#include "kernels/vendor/cuda_vendor.h"

namespace {

using namespace tl::bench;  // conv, Layer, Pass and the buffer sizes, shared with the other conv benchmark
using tl::kernels::Context;
using tl::kernels::Conv2dShape;
using tl::kernels::Policy;

constexpr int kDevice = 0;
constexpr int kWarmupCalls = 3;

// Every distinct convolution shape of the two networks, once, under the first layer that has it; the comment
// names the others. Arguments: input channels, input size, output channels, kernel, stride (padding kernel /
// 2), groups.
const Layer kLayers[] = {
    // ResNet-50: the stem, then per stage conv1 (1x1), conv2 (3x3, stride 2 in block 0 of layers 2-4), conv3
    // (1x1) and block 0's downsample (1x1, stride 2 in layers 2-4).
    {"resnet50.conv1", conv(3, 224, 64, 7, 2)},
    {"resnet50.layer1.0.conv1", conv(64, 56, 64, 1, 1)},
    {"resnet50.layer1.conv2", conv(64, 56, 64, 3, 1)},   // layer1.0-2.conv2
    {"resnet50.layer1.conv3", conv(64, 56, 256, 1, 1)},  // layer1.0-2.conv3, layer1.0.downsample
    {"resnet50.layer1.conv1", conv(256, 56, 64, 1, 1)},  // layer1.1-2.conv1
    {"resnet50.layer2.0.conv1", conv(256, 56, 128, 1, 1)},
    {"resnet50.layer2.0.conv2_s2", conv(128, 56, 128, 3, 2)},
    {"resnet50.layer2.conv3", conv(128, 28, 512, 1, 1)},  // layer2.0-3.conv3
    {"resnet50.layer2.0.downsample_s2", conv(256, 56, 512, 1, 2)},
    {"resnet50.layer2.conv1", conv(512, 28, 128, 1, 1)},  // layer2.1-3.conv1
    {"resnet50.layer2.conv2", conv(128, 28, 128, 3, 1)},  // layer2.1-3.conv2
    {"resnet50.layer3.0.conv1", conv(512, 28, 256, 1, 1)},
    {"resnet50.layer3.0.conv2_s2", conv(256, 28, 256, 3, 2)},
    {"resnet50.layer3.conv3", conv(256, 14, 1024, 1, 1)},  // layer3.0-5.conv3
    {"resnet50.layer3.0.downsample_s2", conv(512, 28, 1024, 1, 2)},
    {"resnet50.layer3.conv1", conv(1024, 14, 256, 1, 1)},  // layer3.1-5.conv1
    {"resnet50.layer3.conv2", conv(256, 14, 256, 3, 1)},   // layer3.1-5.conv2
    {"resnet50.layer4.0.conv1", conv(1024, 14, 512, 1, 1)},
    {"resnet50.layer4.0.conv2_s2", conv(512, 14, 512, 3, 2)},
    {"resnet50.layer4.conv3", conv(512, 7, 2048, 1, 1)},  // layer4.0-2.conv3
    {"resnet50.layer4.0.downsample_s2", conv(1024, 14, 2048, 1, 2)},
    {"resnet50.layer4.conv1", conv(2048, 7, 512, 1, 1)},  // layer4.1-2.conv1
    {"resnet50.layer4.conv2", conv(512, 7, 512, 3, 1)},   // layer4.1-2.conv2
    // MobileNetV2 (torchvision): the stem, the depthwise 3x3s, the expanding and projecting 1x1s, the last
    // 1x1.
    {"mobilenet_v2.features.0", conv(3, 224, 32, 3, 2)},
    {"mobilenet_v2.dw.32@112", conv(32, 112, 32, 3, 1, 32)},       // features.1
    {"mobilenet_v2.dw_s2.96@112", conv(96, 112, 96, 3, 2, 96)},    // features.2
    {"mobilenet_v2.dw.144@56", conv(144, 56, 144, 3, 1, 144)},     // features.3
    {"mobilenet_v2.dw_s2.144@56", conv(144, 56, 144, 3, 2, 144)},  // features.4
    {"mobilenet_v2.dw.192@28", conv(192, 28, 192, 3, 1, 192)},     // features.5-6
    {"mobilenet_v2.dw_s2.192@28", conv(192, 28, 192, 3, 2, 192)},  // features.7
    {"mobilenet_v2.dw.384@14", conv(384, 14, 384, 3, 1, 384)},     // features.8-11
    {"mobilenet_v2.dw.576@14", conv(576, 14, 576, 3, 1, 576)},     // features.12-13
    {"mobilenet_v2.dw_s2.576@14", conv(576, 14, 576, 3, 2, 576)},  // features.14
    {"mobilenet_v2.dw.960@7", conv(960, 7, 960, 3, 1, 960)},       // features.15-17
    {"mobilenet_v2.expand.16-96@112", conv(16, 112, 96, 1, 1)},    // features.2
    {"mobilenet_v2.expand.24-144@56", conv(24, 56, 144, 1, 1)},    // features.3-4
    {"mobilenet_v2.expand.32-192@28", conv(32, 28, 192, 1, 1)},    // features.5-7
    {"mobilenet_v2.expand.64-384@14", conv(64, 14, 384, 1, 1)},    // features.8-11
    {"mobilenet_v2.expand.96-576@14", conv(96, 14, 576, 1, 1)},    // features.12-14
    {"mobilenet_v2.expand.160-960@7", conv(160, 7, 960, 1, 1)},    // features.15-17
    {"mobilenet_v2.project.32-16@112", conv(32, 112, 16, 1, 1)},   // features.1
    {"mobilenet_v2.project.96-24@56", conv(96, 56, 24, 1, 1)},     // features.2
    {"mobilenet_v2.project.144-24@56", conv(144, 56, 24, 1, 1)},   // features.3
    {"mobilenet_v2.project.144-32@28", conv(144, 28, 32, 1, 1)},   // features.4
    {"mobilenet_v2.project.192-32@28", conv(192, 28, 32, 1, 1)},   // features.5-6
    {"mobilenet_v2.project.192-64@14", conv(192, 14, 64, 1, 1)},   // features.7
    {"mobilenet_v2.project.384-64@14", conv(384, 14, 64, 1, 1)},   // features.8-10
    {"mobilenet_v2.project.384-96@14", conv(384, 14, 96, 1, 1)},   // features.11
    {"mobilenet_v2.project.576-96@14", conv(576, 14, 96, 1, 1)},   // features.12-13
    {"mobilenet_v2.project.576-160@7", conv(576, 7, 160, 1, 1)},   // features.14
    {"mobilenet_v2.project.960-160@7", conv(960, 7, 160, 1, 1)},   // features.15-16
    {"mobilenet_v2.project.960-320@7", conv(960, 7, 320, 1, 1)},   // features.17
    {"mobilenet_v2.features.18", conv(320, 7, 1280, 1, 1)},
};

// Device memory for one case, from tl's caching allocator.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::int64_t count)
      : data_(static_cast<float*>(
            tl::cuda::allocate(kDevice, static_cast<std::size_t>(count) * sizeof(float)))) {}
  ~DeviceBuffer() { tl::cuda::deallocate(kDevice, data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* get() const { return data_; }

 private:
  float* data_;
};

// Uniform in [-scale, scale): never all zeros. Each buffer of a case gets its own seed.
void fill_random(const Context& ctx, const DeviceBuffer& buffer, std::int64_t count, std::uint64_t seed,
                 double scale) {
  tl::kernels::fill_uniform<float>(ctx, count, seed, 0, -scale, scale, buffer.get());
}

// Times single calls between CUDA events on the device's stream, with the L2 flushed before each.
class GpuTimer {
 public:
  GpuTimer()
      : flush_bytes_(2 * tl::cuda::limits(kDevice).l2_bytes),
        flush_(tl::cuda::allocate(kDevice, flush_bytes_)) {
    TL_CUDA_CHECK(cudaEventCreate(&start_));
    TL_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~GpuTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    tl::cuda::deallocate(kDevice, flush_);
  }
  GpuTimer(const GpuTimer&) = delete;
  GpuTimer& operator=(const GpuTimer&) = delete;

  // Milliseconds of device time `call` took. The flush is queued before the start event, so it is not timed.
  template <typename Call>
  double time_ms(Call&& call) {
    const cudaStream_t stream = tl::cuda::stream(kDevice);
    TL_CUDA_CHECK(cudaMemsetAsync(flush_, ++flushes_ & 0xff, flush_bytes_, stream));
    TL_CUDA_CHECK(cudaEventRecord(start_, stream));
    call();
    TL_CUDA_CHECK(cudaEventRecord(stop_, stream));
    TL_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    TL_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  std::size_t flush_bytes_;
  void* flush_;
  int flushes_ = 0;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// The last measurement of each case, for the ratio table after the run (the benchmark library may call a case
// more than once while it sizes the iteration count; the last call has the most repeats).
struct Measurement {
  double median_ms = 0;
  double tflops = 0;
};

std::map<std::string, Measurement>& measurements() {
  static std::map<std::string, Measurement> all;
  return all;
}

// Times `call` once per benchmark iteration and sets the counters from the median repeat.
template <typename Call>
void measure(benchmark::State& state, const std::string& name, double flops, double bytes, Call&& call) {
  for (int i = 0; i < kWarmupCalls; ++i) call();
  tl::cuda::synchronize(kDevice);
  GpuTimer timer;
  std::vector<double> times;
  for (auto _ : state) {
    const double ms = timer.time_ms(call);
    state.SetIterationTime(ms * 1e-3);
    times.push_back(ms);
  }
  if (times.empty()) return;
  std::sort(times.begin(), times.end());
  const std::size_t n = times.size();
  const double median_ms = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  const double seconds = median_ms * 1e-3;
  state.counters["TFLOP/s"] = flops / seconds * 1e-12;
  state.counters["GB/s"] = bytes / seconds * 1e-9;
  state.counters["median_us"] = median_ms * 1e3;
  measurements()[name] = {median_ms, flops / seconds * 1e-12};
}

void run_pass(const Context& ctx, Pass pass, const Conv2dShape& s, float* x, float* w, float* y) {
  switch (pass) {
    case Pass::Forward:
      return tl::kernels::conv2d_forward<float>(ctx, s, x, w, nullptr, y);
    case Pass::BackwardData:
      return tl::kernels::conv2d_backward_data<float>(ctx, s, y, w, x);
    case Pass::BackwardFilter:
      return tl::kernels::conv2d_backward_filter<float>(ctx, s, x, y, w, nullptr);
  }
}

void conv2d_case(benchmark::State& state, const std::string& name, const Conv2dShape& s, Pass pass,
                 Policy policy) {
  try {
    tl::cuda::DeviceGuard guard(kDevice);
    const Context ctx{tl::Device::cuda(kDevice), policy};
    // x, w, y hold the input or the gradient of each, whichever the pass reads and writes; no pass writes a
    // buffer it reads, so the inputs stay random across repeats.
    const DeviceBuffer x(x_size(s)), w(w_size(s)), y(y_size(s));
    fill_random(ctx, x, x_size(s), 1, 1.0);
    fill_random(ctx, w, w_size(s), 2, 0.1);
    fill_random(ctx, y, y_size(s), 3, 1.0);
    const double bytes = sizeof(float) * static_cast<double>(x_size(s) + w_size(s) + y_size(s));
    measure(state, name, s.flops(), bytes, [&] { run_pass(ctx, pass, s, x.get(), w.get(), y.get()); });
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void sgemm_case(benchmark::State& state, const std::string& name, std::int64_t n, Policy policy) {
  try {
    tl::cuda::DeviceGuard guard(kDevice);
    const Context ctx{tl::Device::cuda(kDevice), policy};
    const DeviceBuffer a(n * n), b(n * n), c(n * n);
    fill_random(ctx, a, n * n, 1, 1.0);
    fill_random(ctx, b, n * n, 2, 1.0);
    const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    const double bytes = 3.0 * sizeof(float) * static_cast<double>(n) * static_cast<double>(n);
    measure(state, name, flops, bytes, [&] {
      tl::kernels::gemm<float>(ctx, false, false, n, n, n, 1.0f, a.get(), n, b.get(), n, 0.0f, c.get(), n);
    });
    state.SetLabel(tl::kernels::gemm_implementation(ctx));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

const std::pair<const char*, Policy> kImpls[] = {{"native", Policy::Native}, {"vendor", Policy::Vendor}};

void register_all(bool set_min_time) {
  for (const Layer& layer : kLayers)
    for (const Pass pass : {Pass::Forward, Pass::BackwardData, Pass::BackwardFilter})
      for (const auto& [impl, policy] : kImpls) {
        const std::string name =
            std::string("cuda_conv2d/") + layer.name + "/" + pass_name(pass) + "/" + impl;
        auto* b = benchmark::RegisterBenchmark(
            name.c_str(), [name, shape = layer.shape, pass, policy = policy](benchmark::State& state) {
              conv2d_case(state, name, shape, pass, policy);
            });
        b->UseManualTime()->Unit(benchmark::kMicrosecond);
        if (set_min_time) b->MinTime(0.05);
      }
  for (const std::int64_t n : {1024, 2048, 4096, 8192})
    for (const auto& [impl, policy] : kImpls) {
      const std::string name = "cuda_sgemm/" + std::to_string(n) + "/" + impl;
      auto* b = benchmark::RegisterBenchmark(
          name.c_str(),
          [name, n, policy = policy](benchmark::State& state) { sgemm_case(state, name, n, policy); });
      b->UseManualTime()->Unit(benchmark::kMicrosecond);
      if (set_min_time) b->MinTime(0.2);
    }
}

// native / vendor speed per case (above 1: ours is faster), with the geometric mean per group: each pass of
// the convolutions, and the SGEMMs.
void print_ratios(std::FILE* out) {
  const auto& all = measurements();
  std::map<std::string, std::pair<double, int>> log_sums;  // group -> (sum of log ratios, count)
  std::fprintf(out, "\nnative vs vendor (median of repeats; speed ratio = vendor time / native time)\n");
  std::fprintf(out, "%-70s %12s %12s %10s %10s %8s\n", "case", "native_us", "vendor_us", "native_TF",
               "vendor_TF", "ratio");
  for (const auto& [name, native] : all) {
    const std::string suffix = "/native";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string base = name.substr(0, name.size() - suffix.size());
    const auto vendor = all.find(base + "/vendor");
    if (vendor == all.end() || native.median_ms <= 0) continue;
    const double ratio = vendor->second.median_ms / native.median_ms;
    std::fprintf(out, "%-70s %12.1f %12.1f %10.2f %10.2f %8.3f\n", base.c_str(), native.median_ms * 1e3,
                 vendor->second.median_ms * 1e3, native.tflops, vendor->second.tflops, ratio);
    // Group: the pass for convolutions (the last component of base), "sgemm" for the GEMMs.
    const std::string group =
        base.rfind("cuda_sgemm/", 0) == 0 ? "sgemm" : "conv2d " + base.substr(base.rfind('/') + 1);
    auto& [sum, count] = log_sums[group];
    sum += std::log(ratio);
    ++count;
  }
  for (const auto& [group, entry] : log_sums)
    std::fprintf(out, "geometric mean native/vendor speed, %-24s %6.3f over %d cases\n", group.c_str(),
                 std::exp(entry.first / entry.second), entry.second);
}

bool has_flag(int argc, char** argv, const char* prefix) {
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // Read before Initialize, which removes the flags it consumes from argv.
  const bool min_time_given = has_flag(argc, argv, "--benchmark_min_time");
  const bool machine_format =
      has_flag(argc, argv, "--benchmark_format=json") || has_flag(argc, argv, "--benchmark_format=csv");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (tl::cuda::device_count() == 0) {
    std::printf("bench_cuda_kernels: no CUDA device on this machine (%s); nothing to time\n",
                tl::cuda::built_with_cuda() ? "no GPU or driver found" : "built without CUDA");
    return 0;
  }
  // The table and notes go where they cannot break machine-readable output on stdout.
  std::FILE* notes = machine_format ? stderr : stdout;
  std::fprintf(notes, "cuda:%d: %s; TF32 %s\n", kDevice, tl::cuda::device_description(kDevice).c_str(),
               tl::cuda::tf32_allowed() ? "allowed (TL_ALLOW_TF32=1)" : "off (float32 math)");
  register_all(!min_time_given);
  benchmark::RunSpecifiedBenchmarks();
  print_ratios(notes);
  std::fprintf(notes, "\ncuDNN algorithms chosen (tl::kernels::vendor::cudnn_chosen_algorithms):\n%s",
               tl::kernels::vendor::cudnn_chosen_algorithms().c_str());
  benchmark::Shutdown();
  return 0;
}
