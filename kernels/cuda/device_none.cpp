// The answers of kernels/cuda/device.h for a build without the CUDA backend: no devices, and every memory or
// copy call throws DeviceError saying so.
#include "engine/error.h"
#include "kernels/cuda/device.h"

namespace tl::cuda {
namespace {

[[noreturn]] void no_backend(const std::string& what) {
  throw DeviceError(str(what,
                        ": this build of tl has no CUDA backend (configure with -DTL_CUDA=ON on a machine "
                        "with the CUDA toolkit and cuDNN); use the cpu device"));
}

}  // namespace

bool built_with_cuda() {
  return false;
}

int device_count() {
  return 0;
}

void require_device(int index, const std::string& what) {
  (void)index;
  no_backend(what);
}

std::string device_description(int index) {
  no_backend(str("cuda:", index));
}

std::string run_self_test(int index) {
  return str("cuda:", index, ": this build of tl has no CUDA backend");
}

void* allocate(int device, std::size_t) {
  no_backend(str("allocating on cuda:", device));
}
void deallocate(int, void*) noexcept {}
MemoryStats memory_stats(int device) {
  no_backend(str("memory_stats(cuda:", device, ")"));
}
void reset_peak(int) {}
void release_cached(int) {}
void set_poison_allocations(bool) {}

void copy_host_to_device(int device, void*, const void*, std::size_t) {
  no_backend(str("copy to cuda:", device));
}
void copy_device_to_host(int device, void*, const void*, std::size_t) {
  no_backend(str("copy from cuda:", device));
}
void copy_device_to_device(int dst_device, void*, int, const void*, std::size_t) {
  no_backend(str("copy to cuda:", dst_device));
}
void* allocate_pinned(std::size_t) {
  no_backend("pinned host memory");
}
void free_pinned(void*) noexcept {}
void synchronize(int device) {
  no_backend(str("synchronize(cuda:", device, ")"));
}

bool tf32_allowed() {
  return false;
}
void set_tf32_allowed(bool) {}

}  // namespace tl::cuda
