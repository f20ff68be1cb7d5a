// A one-kernel self test: the smallest piece of real device code, compiled in every CUDA build so that a
// broken toolkit, architecture flag or link line shows up at once.
#include <cuda_runtime.h>

#include <vector>

#include "engine/error.h"
#include "kernels/cuda/device.h"

namespace tl::cuda {
namespace {

__global__ void write_pattern(int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 3 * i + 1;
}

std::string describe(cudaError_t status, const char* call) {
  return str(call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

}  // namespace

std::string run_self_test(int index) {
  if (index < 0 || index >= device_count()) return str("cuda:", index, " is not a device");
  cudaError_t status = cudaSetDevice(index);
  if (status != cudaSuccess) return describe(status, "cudaSetDevice");
  constexpr int n = 1000;
  int* device_buffer = nullptr;
  status = cudaMalloc(&device_buffer, n * sizeof(int));
  if (status != cudaSuccess) return describe(status, "cudaMalloc");
  write_pattern<<<(n + 255) / 256, 256>>>(device_buffer, n);
  status = cudaGetLastError();
  std::vector<int> host(n, -1);
  if (status == cudaSuccess)
    status = cudaMemcpy(host.data(), device_buffer, n * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(device_buffer);
  if (status != cudaSuccess) return describe(status, "write_pattern kernel or cudaMemcpy");
  for (int i = 0; i < n; ++i)
    if (host[i] != 3 * i + 1) return str("element ", i, " is ", host[i], ", expected ", 3 * i + 1);
  return "";
}

}  // namespace tl::cuda
