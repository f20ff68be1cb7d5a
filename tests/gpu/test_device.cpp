// The CUDA backend's first test: a device is found and the build's device code runs on it.
#include <gtest/gtest.h>

#include "kernels/cuda/device.h"

namespace {

TEST(GpuDevice, SelfTestKernelRunsOnEveryDevice) {
  if (!tl::cuda::built_with_cuda())
    GTEST_SKIP() << "this build has no CUDA backend (TL_CUDA=OFF or no toolkit)";
  const int count = tl::cuda::device_count();
  if (count == 0) GTEST_SKIP() << "no CUDA device on this machine";
  for (int i = 0; i < count; ++i) {
    std::cout << "cuda:" << i << ": " << tl::cuda::device_description(i) << "\n";
    EXPECT_EQ(tl::cuda::run_self_test(i), "") << "on cuda:" << i;
  }
}

}  // namespace
