#include "engine/allocator.h"

#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/device.h"

namespace tl {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t nbytes) override {
    // aligned_alloc wants a multiple of the alignment.
    const std::size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* ptr = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
    if (!ptr) throw Error(str("out of host memory: could not allocate ", nbytes, " bytes"));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t) noexcept override { std::free(ptr); }
};

// Forwards to the CUDA backend's caching allocator (kernels/cuda/allocator.cpp).
class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device) {}
  void* allocate(std::size_t nbytes) override { return cuda::allocate(device_, nbytes); }
  void deallocate(void* ptr, std::size_t) noexcept override { cuda::deallocate(device_, ptr); }

 private:
  int device_;
};

}  // namespace

Allocator& allocator_for(const Device& device) {
  // Stateless, so one shared instance is safe.
  static CpuAllocator cpu;
  if (device.is_cpu()) return cpu;
  cuda::require_device(device.index, str("a tensor on ", device.str()));
  static std::vector<std::unique_ptr<CudaAllocator>> per_device = [] {
    std::vector<std::unique_ptr<CudaAllocator>> all;
    for (int i = 0; i < cuda::device_count(); ++i) all.push_back(std::make_unique<CudaAllocator>(i));
    return all;
  }();
  return *per_device[static_cast<std::size_t>(device.index)];
}

}  // namespace tl
