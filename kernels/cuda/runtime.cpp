// Errors, device guards, the per-device stream and library handles, device limits and scratch memory
// (kernels/cuda/runtime.h), and the device queries, copies and options of kernels/cuda/device.h.
#include "kernels/cuda/runtime.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace tl::cuda {
namespace {

// __FILE__ is absolute in CMake builds; the message names the file from the source tree's top.
std::string_view short_path(const char* file) {
  const std::string_view path(file);
  for (const char* top : {"kernels/", "engine/", "tests/", "bench/", "tools/"}) {
    const auto at = path.rfind(top);
    if (at != std::string_view::npos) return path.substr(at);
  }
  return path;
}

constexpr int kMaxDevices = 64;

int checked_count() {
  const int count = device_count();
  return count < kMaxDevices ? count : kMaxDevices;
}

void require_index(int device) {
  TL_CHECK(device >= 0 && device < checked_count(), DeviceError, "cuda:", device, " is not a device (",
           device_count(), " found)");
}

}  // namespace

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  throw CudaError(str(call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") at ",
                      short_path(file), ":", line));
}

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  throw CudnnError(str(call, " failed: ", cudnnGetErrorString(status), " (cuDNN status ",
                       static_cast<int>(status), ") at ", short_path(file), ":", line));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw CublasError(str(call, " failed: ", cublasGetStatusName(status), " (", cublasGetStatusString(status),
                        ") at ", short_path(file), ":", line));
}

// ---- devices ----------------------------------------------------------------------------------------------

bool built_with_cuda() {
  return true;
}

int device_count() {
  // Asked once: the answer cannot change while the process runs, and the query is slow on some drivers.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // no driver or no GPU is an answer (zero devices), not an error: clear it
      return 0;
    }
    return n;
  }();
  return count;
}

void require_device(int index, const std::string& what) {
  const int count = device_count();
  TL_CHECK(count > 0, DeviceError, what,
           ": no CUDA device on this machine (no NVIDIA GPU or driver found); use the cpu device");
  TL_CHECK(index >= 0 && index < count, DeviceError, what, ": cuda:", index, " is not a device (", count,
           count == 1 ? " device: cuda:0)" : str(" devices: cuda:0 to cuda:", count - 1, ")"));
}

std::string device_description(int index) {
  require_index(index);
  cudaDeviceProp prop{};
  TL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return str(prop.name, " (compute capability ", prop.major, ".", prop.minor, ", ",
             prop.totalGlobalMem / (1024 * 1024 * 1024), " GiB)");
}

DeviceGuard::DeviceGuard(int device) {
  require_index(device);
  TL_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) TL_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  cudaSetDevice(previous_);  // a destructor cannot throw; a failure here would have failed the set above
}

// ---- per-device stream, handles and limits
// -----------------------------------------------------------------

namespace {

struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  DeviceLimits limits;
};

DeviceState& state(int device) {
  require_index(device);
  static std::array<DeviceState, kMaxDevices> states;
  DeviceState& s = states[static_cast<std::size_t>(device)];
  std::call_once(s.once, [&] {
    DeviceGuard guard(device);
    // Non-blocking: the legacy default stream (which some libraries use) must not serialise with ours.
    TL_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    cudaDeviceProp prop{};
    TL_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    s.limits.multiprocessors = prop.multiProcessorCount;
    s.limits.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
    s.limits.shared_per_block_optin = prop.sharedMemPerBlockOptin;
  });
  return s;
}

// cuDNN and cuBLAS handles are not safe to share between threads, so each thread has its own per device,
// destroyed when the thread ends.
struct ThreadHandles {
  std::array<cudnnHandle_t, kMaxDevices> cudnn{};
  std::array<cublasHandle_t, kMaxDevices> cublas{};
  ~ThreadHandles() {
    // At process exit the driver may already be gone; errors here are ignored on purpose.
    for (auto h : cudnn)
      if (h) cudnnDestroy(h);
    for (auto h : cublas)
      if (h) cublasDestroy(h);
  }
};

ThreadHandles& thread_handles() {
  thread_local ThreadHandles handles;
  return handles;
}

}  // namespace

cudaStream_t stream(int device) {
  return state(device).stream;
}

const DeviceLimits& limits(int device) {
  return state(device).limits;
}

cudnnHandle_t cudnn_handle(int device) {
  cudnnHandle_t& h = thread_handles().cudnn[static_cast<std::size_t>(device)];
  if (!h) {
    const cudaStream_t s = stream(device);
    DeviceGuard guard(device);
    TL_CUDNN_CHECK(cudnnCreate(&h));
    TL_CUDNN_CHECK(cudnnSetStream(h, s));
  }
  return h;
}

cublasHandle_t cublas_handle(int device) {
  cublasHandle_t& h = thread_handles().cublas[static_cast<std::size_t>(device)];
  if (!h) {
    const cudaStream_t s = stream(device);
    DeviceGuard guard(device);
    TL_CUBLAS_CHECK(cublasCreate(&h));
    TL_CUBLAS_CHECK(cublasSetStream(h, s));
    // Alpha and beta are host scalars in every tl call.
    TL_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  }
  return h;
}

Workspace::Workspace(int device, std::size_t nbytes)
    : device_(device), data_(allocate(device, nbytes)), nbytes_(nbytes) {}

Workspace::~Workspace() {
  deallocate(device_, data_);
}

// ---- copies -----------------------------------------------------------------------------------------------

void copy_host_to_device(int device, void* dst, const void* src, std::size_t nbytes) {
  if (nbytes == 0) return;
  const cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  TL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
  // Waiting keeps the contract simple for every caller: the host buffer may be reused or freed on return.
  // Uploads are a small share of a step (a 64-image batch at 224 px is 38 MB, ~2 ms over PCIe 5).
  TL_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_host(int device, void* dst, const void* src, std::size_t nbytes) {
  if (nbytes == 0) return;
  const cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  TL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  TL_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_device(int dst_device, void* dst, int src_device, const void* src, std::size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device == src_device) {
    const cudaStream_t s = stream(dst_device);
    DeviceGuard guard(dst_device);
    TL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, s));
    return;  // ordered on the device's stream like any kernel
  }
  // Between devices: the source's pending work must finish first, and the copy before the destination's
  // next kernel; waiting on both streams is the simple way to get both.
  synchronize(src_device);
  {
    DeviceGuard guard(dst_device);
    TL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, stream(dst_device)));
  }
  synchronize(dst_device);
}

void synchronize(int device) {
  const cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  TL_CUDA_CHECK(cudaStreamSynchronize(s));
}

void* allocate_pinned(std::size_t nbytes) {
  void* ptr = nullptr;
  TL_CUDA_CHECK(cudaHostAlloc(&ptr, nbytes == 0 ? 1 : nbytes, cudaHostAllocPortable));
  return ptr;
}

void free_pinned(void* ptr) noexcept {
  if (ptr) cudaFreeHost(ptr);
}

// ---- options ----------------------------------------------------------------------------------------------

namespace {
std::atomic<bool>& tf32_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("TL_ALLOW_TF32");
    return env != nullptr && std::strcmp(env, "1") == 0;
  }()};
  return flag;
}
}  // namespace

bool tf32_allowed() {
  return tf32_flag().load();
}

void set_tf32_allowed(bool on) {
  tf32_flag().store(on);
}

}  // namespace tl::cuda
