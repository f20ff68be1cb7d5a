// Per-device memory. Storage asks the allocator of its device for bytes; the CPU allocator hands out 64-byte
// aligned blocks (a cache line, and the width of an AVX-512 load); a CUDA device's allocator is the CUDA
// backend's caching allocator (kernels/cuda/device.h).
#pragma once

#include <cstddef>

#include "engine/device.h"

namespace tl {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns at least `nbytes` bytes (never null; a zero-byte request still gets a unique pointer) or throws.
  virtual void* allocate(std::size_t nbytes) = 0;
  virtual void deallocate(void* ptr, std::size_t nbytes) noexcept = 0;
};

inline constexpr std::size_t kCpuAlignment = 64;

// The allocator for `device`; throws DeviceError for a device this build cannot allocate on.
Allocator& allocator_for(const Device& device);

}  // namespace tl
