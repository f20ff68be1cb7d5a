// What every GPU test shares: the decision to run or skip (with the reason), a fixture that starts each test
// from the same device state (allocation poisoning on, TF32 off), an RAII device buffer for kernel-level
// tests, and the comparisons (normalised error; bit-for-bit).
//
// TL_GPU_TESTS_DEVICE=cpu runs the suite against the CPU instead of cuda:0: the same inputs, references and
// tolerances, with the CPU's native and vendor paths as the paths under test. It checks the tests themselves
// on a machine without a GPU (sizes, contracts, tolerances); it proves nothing about the CUDA backend. Tests
// that only make sense on a real device (the caching allocator, CUDA errors) skip in that mode.
// TL_GPU_TESTS_REPORT=1 prints every comparison's error beside its tolerance, to see the margins.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "kernels/cuda/device.h"
#include "kernels/policy.h"
#include "tests/support/numeric.h"

namespace tl::kernels {
// GoogleTest prints a Policy parameter by name ("native"), not as its bytes.
inline void PrintTo(Policy policy, std::ostream* os) {
  *os << policy_name(policy);
}
}  // namespace tl::kernels

namespace tl::testing {

inline bool gpu_tests_on_cpu() {
  const char* env = std::getenv("TL_GPU_TESTS_DEVICE");
  return env != nullptr && std::string(env) == "cpu";
}

// The device the suite tests: cuda:0, or the CPU under TL_GPU_TESTS_DEVICE=cpu.
inline Device gpu_test_device() {
  return gpu_tests_on_cpu() ? Device::cpu() : Device::cuda(0);
}

// Why the suite cannot run here; empty when it can.
inline std::string gpu_unavailable_reason() {
  if (gpu_tests_on_cpu()) return "";
  if (!cuda::built_with_cuda())
    return "this build has no CUDA backend (TL_CUDA=OFF or no toolkit); TL_GPU_TESTS_DEVICE=cpu runs these "
           "checks against the CPU paths";
  if (cuda::device_count() == 0) return "no CUDA device on this machine";
  return "";
}

// Why a test that needs a real CUDA device (the allocator, driver errors) cannot run; empty when it can.
inline std::string cuda_unavailable_reason() {
  if (gpu_tests_on_cpu())
    return "needs a real CUDA device (TL_GPU_TESTS_DEVICE=cpu checks only the comparisons)";
  return gpu_unavailable_reason();
}

// For plain TESTs that do not use the fixture. GTEST_SKIP returns from the enclosing void function.
#define TL_SKIP_WITHOUT_GPU()                                                    \
  do {                                                                           \
    const std::string tl_skip_reason_ = ::tl::testing::gpu_unavailable_reason(); \
    if (!tl_skip_reason_.empty()) GTEST_SKIP() << tl_skip_reason_;               \
  } while (0)

#define TL_SKIP_WITHOUT_CUDA()                                                    \
  do {                                                                            \
    const std::string tl_skip_reason_ = ::tl::testing::cuda_unavailable_reason(); \
    if (!tl_skip_reason_.empty()) GTEST_SKIP() << tl_skip_reason_;                \
  } while (0)

inline bool report_errors() {
  const char* env = std::getenv("TL_GPU_TESTS_REPORT");
  return env != nullptr && std::string(env) == "1";
}

// The fixture of every GPU test (Base: ::testing::Test or ::testing::TestWithParam<P>). Skips with the
// reason where the suite cannot run. Otherwise every device block handed out during the test is filled with
// 0xFF first (NaN as float or double), so an output element a kernel forgets to write fails its comparison;
// and TF32 is off whatever TL_ALLOW_TF32 says, because every tolerance below is a float32 one.
template <typename Base>
class GpuFixture : public Base {
 protected:
  void SetUp() override {
    const std::string reason = gpu_unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    active_ = true;
    if (device().is_cuda()) {
      cuda::set_poison_allocations(true);
      previous_tf32_ = cuda::tf32_allowed();
      cuda::set_tf32_allowed(false);
    }
  }
  void TearDown() override {
    if (!active_ || !device().is_cuda()) return;
    cuda::set_poison_allocations(false);
    cuda::set_tf32_allowed(previous_tf32_);
  }

  static Device device() { return gpu_test_device(); }

 private:
  bool active_ = false;
  bool previous_tf32_ = false;
};

using GpuTest = GpuFixture<::testing::Test>;
template <typename P>
using GpuParamTest = GpuFixture<::testing::TestWithParam<P>>;

// Sets TF32 for a scope and restores the previous setting, also when a check throws.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool on) : previous_(cuda::tf32_allowed()) { cuda::set_tf32_allowed(on); }
  ~Tf32Scope() { cuda::set_tf32_allowed(previous_); }
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool previous_;
};

// n elements of T on `device` (cuda:N through the caching allocator, or host memory for the CPU mode), freed
// on destruction. A new buffer holds poison (every byte 0xFF) unless made from values. Transfers are
// synchronous with respect to the device's stream, so download() sees every kernel queued before it.
template <typename T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  DeviceBuffer(Device device, std::size_t n) : device_(device), n_(n) {
    acquire();
    poison();
  }
  DeviceBuffer(Device device, const std::vector<T>& values) : device_(device), n_(values.size()) {
    acquire();
    upload(values);
  }
  ~DeviceBuffer() { release(); }

  DeviceBuffer(DeviceBuffer&& other) noexcept
      : device_(other.device_),
        n_(other.n_),
        ptr_(std::exchange(other.ptr_, nullptr)),
        host_(std::move(other.host_)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      device_ = other.device_;
      n_ = other.n_;
      ptr_ = std::exchange(other.ptr_, nullptr);
      host_ = std::move(other.host_);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const { return static_cast<T*>(ptr_); }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }

  void upload(const std::vector<T>& values) {
    ASSERT_EQ(values.size(), n_) << "DeviceBuffer::upload of the wrong size";
    write_bytes(values.data());
  }
  std::vector<T> download() const {
    std::vector<T> out(n_);
    if (n_ == 0) return out;
    if (device_.is_cuda()) {
      cuda::copy_device_to_host(device_.index, out.data(), ptr_, bytes());
    } else {
      std::memcpy(out.data(), ptr_, bytes());
    }
    return out;
  }
  // Every byte 0xFF: NaN for float and double, -1 for int64. Written explicitly before each kernel call, so
  // the check does not depend on the allocator's poisoning (a reused buffer holds the last call's results).
  void poison() {
    const std::vector<unsigned char> bytes_ff(bytes(), 0xFF);
    write_bytes(bytes_ff.data());
  }

 private:
  void acquire() {
    if (device_.is_cuda()) {
      ptr_ = cuda::allocate(device_.index, bytes());
    } else {
      host_.resize(n_ == 0 ? 1 : n_);  // a valid pointer even when empty, as the device allocator gives
      ptr_ = host_.data();
    }
  }
  void release() noexcept {
    if (ptr_ != nullptr && device_.is_cuda()) cuda::deallocate(device_.index, ptr_);
    ptr_ = nullptr;
  }
  void write_bytes(const void* src) {
    if (n_ == 0) return;
    if (device_.is_cuda()) {
      cuda::copy_host_to_device(device_.index, ptr_, src, bytes());
    } else {
      std::memcpy(ptr_, src, bytes());
    }
  }

  Device device_;
  std::size_t n_ = 0;
  void* ptr_ = nullptr;
  std::vector<T> host_;  // the storage in the CPU mode
};

// ||actual - expected|| / ||expected|| below `tolerance`; a NaN or infinity in actual never passes.
template <typename A, typename B>
void expect_close(const std::vector<A>& actual, const std::vector<B>& expected, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  const double error = normalized_error(actual, expected);
  if (report_errors()) std::printf("  %-88s %9.2e  (< %.0e)\n", what.c_str(), error, tolerance);
  EXPECT_LT(error, tolerance) << what;
}

// The same bits in every element (random streams, casts, copies): names the first element that differs.
template <typename T>
void expect_bitwise_equal(const std::vector<T>& actual, const std::vector<T>& expected,
                          const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0) {
      if (mismatches++ == 0) first = i;
    }
  }
  if (report_errors()) std::printf("  %-88s %zu of %zu differ\n", what.c_str(), mismatches, actual.size());
  if (mismatches == 0) return;
  if constexpr (std::is_floating_point_v<T> || std::is_integral_v<T>) {
    ADD_FAILURE() << what << ": " << mismatches << " of " << actual.size()
                  << " elements differ; the first is " << first << ": " << +actual[first] << " instead of "
                  << +expected[first];
  } else {
    ADD_FAILURE() << what << ": " << mismatches << " of " << actual.size()
                  << " elements differ; the first is " << first;
  }
}

// Exactly the same values (==): as bit-for-bit, except that +0 and -0 are equal (a dropped element may be
// written as 0 or as x * 0); NaN never passes.
template <typename T>
void expect_same_values(const std::vector<T>& actual, const std::vector<T>& expected,
                        const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (!(actual[i] == expected[i])) {
      if (mismatches++ == 0) first = i;
    }
  }
  if (report_errors()) std::printf("  %-88s %zu of %zu differ\n", what.c_str(), mismatches, actual.size());
  if (mismatches == 0) return;
  ADD_FAILURE() << what << ": " << mismatches << " of " << actual.size() << " elements differ; the first is "
                << first << ": " << actual[first] << " instead of " << expected[first];
}

}  // namespace tl::testing
