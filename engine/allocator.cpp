#include "engine/allocator.h"

#include <cstdlib>
#include <new>

#include "engine/error.h"

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

}  // namespace

Allocator& allocator_for(const Device& device) {
  // Stateless, so one shared instance is safe.
  static CpuAllocator cpu;
  if (device.is_cpu()) return cpu;
  throw DeviceError(str("no allocator for device ", device.str(), ": CUDA tensors are not supported yet"));
}

}  // namespace tl
