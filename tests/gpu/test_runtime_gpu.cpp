// The CUDA runtime under the kernels: the caching allocator (reuse without driver calls, byte accounting,
// poisoning, alignment, release), tensors on the device (creation, copies both ways, item), and errors: a
// device that does not exist, an allocation that cannot succeed and a failing CUDA call all surface as
// tl::DeviceError naming what failed. GpuWithoutDevice runs everywhere: it is what a user of a machine
// without a GPU sees.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/functional.h"
#include "engine/layers.h"
#include "engine/optim/optimizer.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "kernels/cuda/device.h"
#include "models/registry.h"
#include "tests/gpu/gpu_test.h"

namespace tl::testing {
namespace {

// Runs `fn`, which must throw DeviceError (or a subclass, such as the CUDA backend's CudaError); returns the
// message, or "" after recording a failure.
template <typename Fn>
std::string device_error_of(Fn&& fn, const std::string& what) {
  try {
    fn();
  } catch (const DeviceError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw something other than tl::DeviceError: " << e.what();
    return "";
  }
  ADD_FAILURE() << what << ": did not throw";
  return "";
}

void expect_contains(const std::string& message, const std::string& part, const std::string& what) {
  EXPECT_NE(message.find(part), std::string::npos)
      << what << ": the message does not say \"" << part << "\": " << message;
}

// ---- the caching allocator ------------------------------------------------------------------------------

class GpuRuntime : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    const std::string reason = cuda_unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << reason;
  }
};

TEST_F(GpuRuntime, RepeatedSizesReuseCachedBlocks) {
  // Small and large sizes, a size just past the small/large boundary, one that is not a multiple of anything.
  const std::vector<std::size_t> sizes{100, 4096, 300000, (std::size_t{1} << 20) + 1,
                                       (std::size_t{5} << 20) + 3};
  const auto allocate_all = [&] {
    std::vector<void*> blocks;
    for (const std::size_t n : sizes) blocks.push_back(cuda::allocate(0, n));
    return blocks;
  };
  const auto free_all = [](const std::vector<void*>& blocks) {
    for (void* p : blocks) cuda::deallocate(0, p);
  };
  free_all(allocate_all());  // warm-up: the first round may come from the driver
  const cuda::MemoryStats warm = cuda::memory_stats(0);
  for (int round = 0; round < 10; ++round) free_all(allocate_all());
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.driver_allocations, warm.driver_allocations) << "the same sizes again went to cudaMalloc";
  EXPECT_EQ(after.current_bytes, warm.current_bytes) << "freed blocks still count as held";
  EXPECT_EQ(after.cached_bytes, warm.cached_bytes);
}

TEST_F(GpuRuntime, CurrentAndPeakBytes) {
  constexpr std::size_t n = 3 << 20;
  const cuda::MemoryStats base = cuda::memory_stats(0);
  EXPECT_GE(base.cached_bytes, base.current_bytes);
  cuda::reset_peak(0);
  EXPECT_EQ(cuda::memory_stats(0).peak_bytes, base.current_bytes)
      << "reset_peak sets the peak to what is held";
  void* p = cuda::allocate(0, n);
  const cuda::MemoryStats held = cuda::memory_stats(0);
  // A block is at least the request, and (rounded to 2 MiB, reused up to twice the size) not far above it.
  EXPECT_GE(held.current_bytes, base.current_bytes + n);
  EXPECT_LE(held.current_bytes, base.current_bytes + 2 * n + (std::size_t{2} << 20));
  EXPECT_GE(held.peak_bytes, held.current_bytes);
  EXPECT_GE(held.cached_bytes, held.current_bytes);
  cuda::deallocate(0, p);
  const cuda::MemoryStats freed = cuda::memory_stats(0);
  EXPECT_EQ(freed.current_bytes, base.current_bytes) << "a freed block still counts as held";
  EXPECT_EQ(freed.peak_bytes, held.peak_bytes) << "the peak remembers the block";
  EXPECT_GE(freed.cached_bytes, held.current_bytes - base.current_bytes) << "the block is kept for reuse";
  cuda::reset_peak(0);
  EXPECT_EQ(cuda::memory_stats(0).peak_bytes, freed.current_bytes);
}

TEST_F(GpuRuntime, ReleaseCachedReturnsFreeBlocksToTheDriver) {
  void* p = cuda::allocate(0, std::size_t{64} << 20);
  cuda::deallocate(0, p);
  cuda::release_cached(0);
  const cuda::MemoryStats released = cuda::memory_stats(0);
  // Cached = live + free, and nothing is free any more.
  EXPECT_EQ(released.cached_bytes, released.current_bytes);
  // So a large block now needs the driver again.
  void* q = cuda::allocate(0, std::size_t{64} << 20);
  EXPECT_EQ(cuda::memory_stats(0).driver_allocations, released.driver_allocations + 1);
  cuda::deallocate(0, q);
}

TEST_F(GpuRuntime, BlocksAreAlignedUniqueAndPoisoned) {
  std::vector<void*> blocks;
  for (const std::size_t n : {std::size_t{0}, std::size_t{0}, std::size_t{1}, std::size_t{3},
                              std::size_t{257}, (std::size_t{1} << 20) + 1}) {
    void* p = cuda::allocate(0, n);
    ASSERT_NE(p, nullptr) << n << " bytes";
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u) << n << " bytes: not 256-byte aligned";
    for (void* q : blocks) EXPECT_NE(p, q) << "two live blocks share an address (" << n << " bytes)";
    blocks.push_back(p);
  }
  for (void* p : blocks) cuda::deallocate(0, p);

  // The fixture turned poisoning on: a fresh block reads as 0xFF bytes, even one that held data before.
  constexpr std::size_t n = 4096;
  std::vector<unsigned char> data(n, 0x5A), back(n, 0);
  void* p = cuda::allocate(0, n);
  cuda::copy_host_to_device(0, p, data.data(), n);
  cuda::deallocate(0, p);
  void* q = cuda::allocate(0, n);  // most likely the same block, reused
  cuda::copy_device_to_host(0, back.data(), q, n);
  EXPECT_EQ(back, std::vector<unsigned char>(n, 0xFF)) << "a new block is not poisoned";
  cuda::deallocate(0, q);
}

TEST_F(GpuRuntime, CopiesRoundTripBetweenHostAndDevices) {
  constexpr std::size_t n = (1 << 20) + 5;
  const auto values = random_vector<double>(n, 99);
  std::vector<double> back(n, 0.0);
  void* a = cuda::allocate(0, n * sizeof(double));
  void* b = cuda::allocate(0, n * sizeof(double));
  cuda::copy_host_to_device(0, a, values.data(), n * sizeof(double));
  cuda::copy_device_to_device(0, b, 0, a, n * sizeof(double));
  cuda::copy_device_to_host(0, back.data(), b, n * sizeof(double));
  EXPECT_EQ(std::memcmp(back.data(), values.data(), n * sizeof(double)), 0);
  cuda::synchronize(0);
  cuda::deallocate(0, a);
  cuda::deallocate(0, b);

  // Pinned host memory works as a source and destination too.
  auto* pinned = static_cast<double*>(cuda::allocate_pinned(n * sizeof(double)));
  ASSERT_NE(pinned, nullptr);
  std::memcpy(pinned, values.data(), n * sizeof(double));
  void* c = cuda::allocate(0, n * sizeof(double));
  cuda::copy_host_to_device(0, c, pinned, n * sizeof(double));
  cuda::synchronize(0);
  std::memset(pinned, 0, n * sizeof(double));
  cuda::copy_device_to_host(0, pinned, c, n * sizeof(double));
  EXPECT_EQ(std::memcmp(pinned, values.data(), n * sizeof(double)), 0);
  cuda::deallocate(0, c);
  cuda::free_pinned(pinned);
}

// After the first steps, a training step allocates no device memory from the driver, and holds the same
// bytes after each step (nothing leaks). Two warm-up steps: the first creates the optimizer's momentum
// buffers, which take blocks that step's temporaries had freed, so the second still allocates.
TEST_F(GpuRuntime, TrainingStepsAfterWarmUpMakeNoDriverAllocations) {
  const auto model = models::create_model("resnet18", 10, 3);
  model->to(device());
  model->train();
  Generator g(5);
  const Tensor x = uniform({2, 3, 32, 32}, -1.0, 1.0, g).to(device());
  const Tensor labels = tensor(std::vector<std::int64_t>{1, 7}, {2}).to(device());
  optim::ParamGroup group;
  group.name = "all";
  group.lr = group.initial_lr = 0.01;
  group.params = model->named_parameters();
  optim::SgdOptions options;
  options.momentum = 0.9;
  const auto optimizer = optim::make_sgd({group}, options);
  const auto step = [&] {
    optimizer->zero_grad();
    const Tensor loss = cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer->step();
    return loss.item<double>();
  };
  step();
  step();
  const cuda::MemoryStats warm = cuda::memory_stats(0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::isfinite(step()));
    const cuda::MemoryStats now = cuda::memory_stats(0);
    EXPECT_EQ(now.driver_allocations, warm.driver_allocations) << "step " << i + 3 << " called cudaMalloc";
    EXPECT_EQ(now.current_bytes, warm.current_bytes) << "step " << i + 3 << " holds more or fewer bytes";
  }
}

// An allocation no device can satisfy is a DeviceError that says so and names the device, and the allocator
// keeps working afterwards.
TEST_F(GpuRuntime, OutOfMemoryIsDeviceError) {
  const std::size_t huge = std::size_t{1} << 50;  // 1 PiB
  const std::string message = device_error_of([&] { cuda::allocate(0, huge); }, "allocate(cuda:0, 1 PiB)");
  expect_contains(message, "cuda:0", "out of memory");
  expect_contains(message, "out of memory", "out of memory");
  void* p = cuda::allocate(0, 1024);
  EXPECT_NE(p, nullptr);
  cuda::deallocate(0, p);
}

TEST_F(GpuRuntime, DevicesThatDoNotExistAreDeviceErrors) {
  const int count = cuda::device_count();
  const std::string past = "cuda:" + std::to_string(count);
  {
    const std::string message = device_error_of([&] { cuda::require_device(count, "--device " + past); },
                                                "require_device(" + past + ")");
    expect_contains(message, "--device " + past, "require_device");  // who asked
    expect_contains(message, "is not a device", "require_device");
  }
  device_error_of([&] { cuda::require_device(-1, "--device cuda:-1"); }, "require_device(-1)");
  cuda::require_device(0, "--device cuda:0");  // exists: no throw
  device_error_of([&] { cuda::device_description(count); }, "device_description(" + past + ")");
  device_error_of([&] { cuda::allocate(count, 16); }, "allocate(" + past + ")");
  device_error_of([&] { zeros({2, 2}, DType::Float32, Device::cuda(count)); }, "zeros on " + past);
  const Tensor t = zeros({2, 2});
  const std::string message = device_error_of([&] { t.to(Device::cuda(count)); }, "Tensor::to(" + past + ")");
  expect_contains(message, past, "Tensor::to");
}

// ---- tensors on the device --------------------------------------------------------------------------------

class GpuTensors : public GpuTest {};

TEST_F(GpuTensors, CreationCopiesAndItem) {
  const Tensor z = zeros({3, 5}, DType::Float32, device());
  EXPECT_EQ(z.device(), device());
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(15, 0.0f));
  const Tensor f = full({4}, -2.5, DType::Float64, device());
  EXPECT_EQ(f.to_vector<double>(), std::vector<double>(4, -2.5));
  EXPECT_EQ(full({1}, 7.0, DType::Int64, device()).item<std::int64_t>(), 7);
  EXPECT_EQ(ones({2, 2}, DType::Float32, device()).to_vector<float>(), std::vector<float>(4, 1.0f));

  // Every dtype survives cpu -> device -> cpu bit for bit, also from a non-contiguous view.
  Generator g(3);
  const Tensor x32 = uniform({4, 6}, -1, 1, g, DType::Float32),
               x64 = uniform({4, 6}, -1, 1, g, DType::Float64);
  const Tensor i64 = tensor(std::vector<std::int64_t>{-(std::int64_t{1} << 62), -1, 0, 1,
                                                      (std::int64_t{1} << 53) + 1, std::int64_t{1} << 62},
                            {6});
  expect_bitwise_equal(x32.to(device()).to(Device::cpu()).to_vector<float>(), x32.to_vector<float>(),
                       "float32 round trip");
  expect_bitwise_equal(x64.to(device()).to(Device::cpu()).to_vector<double>(), x64.to_vector<double>(),
                       "float64 round trip");
  expect_bitwise_equal(i64.to(device()).to(Device::cpu()).to_vector<std::int64_t>(),
                       i64.to_vector<std::int64_t>(), "int64 round trip");
  const Tensor view = x32.transpose(0, 1).narrow(0, 1, 3);
  expect_bitwise_equal(view.to(device()).to_vector<float>(), view.to_vector<float>(),
                       "a transposed, narrowed view");
  // Views and dtype conversions on the device itself.
  const Tensor on_device = x64.to(device());
  expect_bitwise_equal(on_device.transpose(0, 1).contiguous().to_vector<double>(),
                       x64.transpose(0, 1).contiguous().to_vector<double>(),
                       "transpose().contiguous() on the device");
  expect_bitwise_equal(on_device.to(DType::Float32).to_vector<float>(),
                       x64.to(DType::Float32).to_vector<float>(), "float64 -> float32 on the device");
  EXPECT_EQ(on_device.narrow(0, 2, 1).narrow(1, 3, 1).item<double>(), x64.to_vector<double>()[2 * 6 + 3]);
  // copy_ from another device.
  const Tensor dst = zeros({4, 6}, DType::Float32, device());
  dst.copy_(x32);
  expect_bitwise_equal(dst.to_vector<float>(), x32.to_vector<float>(), "copy_ from the cpu");
}

// ---- a failing CUDA call ----------------------------------------------------------------------------------

// A copy to an address no allocation owns fails in the CUDA runtime; tl reports it as a DeviceError naming
// the call that failed, the CUDA status and where (kernels/cuda/...:line). It has a ctest entry (a process)
// of its own: should the driver treat the bad address as a fault, the context is lost for the rest of the
// process, and no other test may depend on it.
TEST(GpuErrors, FailedCudaCallIsDeviceErrorNamingTheCall) {
  TL_SKIP_WITHOUT_CUDA();
  const std::vector<float> host(16, 1.0f);
  void* bogus = reinterpret_cast<void*>(std::uintptr_t{16});  // the null page: never a device allocation
  const std::string message =
      device_error_of([&] { cuda::copy_host_to_device(0, bogus, host.data(), host.size() * sizeof(float)); },
                      "copy to address 16");
  expect_contains(message, " failed: cudaError",
                  "a failed copy");  // "<call> failed: cudaErrorInvalidValue (...)"
  expect_contains(message, " at kernels/cuda/", "a failed copy");
  std::printf("a failed copy reports: %s\n", message.c_str());
}

// ---- what a machine without a GPU says --------------------------------------------------------------------

// Runs in every build and on every machine. Without a device, asking for cuda:0 says there is no CUDA device
// (or no CUDA backend in this build) and names the device asked for; with devices, the first index past them
// says it is not a device.
TEST(GpuWithoutDevice, MovingToCudaSaysWhyItCannot) {
  const Tensor t = zeros({2, 3});
  const int count = cuda::device_count();
  if (count == 0) {
    for (const std::string& message :
         {device_error_of([&] { t.to(Device::cuda(0)); }, "Tensor::to(cuda:0)"),
          device_error_of(
              [&] {
                zeros({2, 3}, DType::Float32, Device::cuda(0));
              },
              "zeros(..., cuda:0)"),
          device_error_of([&] { models::create_model("resnet18", 10)->to(Device::cuda(0)); },
                          "Module::to(cuda:0)")}) {
      expect_contains(message, "cuda:0", "without a device");
      expect_contains(message, "no CUDA", "without a device");  // "no CUDA device" or "no CUDA backend"
    }
    return;
  }
  const std::string past = "cuda:" + std::to_string(count);
  const std::string message = device_error_of([&] { t.to(Device::cuda(count)); }, "Tensor::to(" + past + ")");
  expect_contains(message, past, "a device index past the last");
  expect_contains(message, "is not a device", "a device index past the last");
}

}  // namespace
}  // namespace tl::testing
