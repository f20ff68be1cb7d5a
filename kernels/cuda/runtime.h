// The CUDA backend's own plumbing, for kernels/cuda/*.cu and kernels/vendor/cu*.cpp only (it includes the
// CUDA, cuDNN and cuBLAS headers): typed errors and one checking macro per library, the per-device stream and
// library handles, device scratch memory, and launch-size helpers.
//
// Every device has one stream, created on first use; every kernel and library call tl makes for that device
// runs on it, so work is ordered without events. Handles are per device and bound to that stream; nothing
// here is global mutable state shared across devices.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/device.h"

namespace tl::cuda {

// A CUDA runtime, cuDNN or cuBLAS call failed. The message names the call, the status and where it was made:
//   "cudaMemcpyAsync(dst, src, n, kind, s) failed: cudaErrorInvalidValue (invalid argument) at
//    kernels/cuda/copy.cu:42"
class CudaError : public DeviceError {
 public:
  using DeviceError::DeviceError;
};
class CudnnError : public CudaError {
 public:
  using CudaError::CudaError;
};
class CublasError : public CudaError {
 public:
  using CudaError::CudaError;
};

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace tl::cuda

#define TL_CUDA_CHECK(call)                                                                             \
  do {                                                                                                  \
    const cudaError_t tl_status_ = (call);                                                              \
    if (tl_status_ != cudaSuccess) ::tl::cuda::throw_cuda_error(tl_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define TL_CUDNN_CHECK(call)                                                \
  do {                                                                      \
    const cudnnStatus_t tl_status_ = (call);                                \
    if (tl_status_ != CUDNN_STATUS_SUCCESS)                                 \
      ::tl::cuda::throw_cudnn_error(tl_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define TL_CUBLAS_CHECK(call)                                                \
  do {                                                                       \
    const cublasStatus_t tl_status_ = (call);                                \
    if (tl_status_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::tl::cuda::throw_cublas_error(tl_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: a bad launch configuration shows up here, named after the kernel.
#define TL_CUDA_CHECK_LAUNCH(kernel_name)                                                     \
  do {                                                                                        \
    const cudaError_t tl_status_ = cudaGetLastError();                                        \
    if (tl_status_ != cudaSuccess)                                                            \
      ::tl::cuda::throw_cuda_error(tl_status_, "launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)

namespace tl::cuda {

// Makes `device` current for the calling thread within a scope (CUDA's current device is per thread).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// The device's stream (created on first use; lives as long as the process).
cudaStream_t stream(int device);
// Library handles of the device, bound to its stream. One per device and thread: cuDNN and cuBLAS handles
// must not be used by two threads at once.
cudnnHandle_t cudnn_handle(int device);
cublasHandle_t cublas_handle(int device);

struct DeviceLimits {
  int multiprocessors = 0;
  std::size_t l2_bytes = 0;
  std::size_t shared_per_block_optin = 0;  // after cudaFuncSetAttribute(MaxDynamicSharedMemorySize)
};
const DeviceLimits& limits(int device);

// Scratch device memory for one call (cuDNN workspaces, partial sums), from the caching allocator.
class Workspace {
 public:
  Workspace(int device, std::size_t nbytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t size() const { return nbytes_; }

 private:
  int device_;
  void* data_;
  std::size_t nbytes_;
};

// Blocks of `threads` covering n items, capped so a grid-stride loop covers the rest (the cap keeps the
// grid within CUDA's limit for any n and is plenty to fill an H200's 132 multiprocessors).
inline unsigned blocks_for(std::int64_t n, int threads) {
  const std::int64_t blocks = (n + threads - 1) / threads;
  constexpr std::int64_t cap = 65535;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

}  // namespace tl::cuda
