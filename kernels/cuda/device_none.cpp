// The answers of kernels/cuda/device.h for a build without the CUDA backend.
#include "engine/error.h"
#include "kernels/cuda/device.h"

namespace tl::cuda {

bool built_with_cuda() {
  return false;
}

int device_count() {
  return 0;
}

std::string device_description(int index) {
  throw DeviceError(
      str("cuda:", index, ": this build of tl has no CUDA backend (configure with -DTL_CUDA=ON)"));
}

std::string run_self_test(int index) {
  return str("cuda:", index, ": this build of tl has no CUDA backend");
}

}  // namespace tl::cuda
