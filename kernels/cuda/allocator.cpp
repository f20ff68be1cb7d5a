// The caching device allocator of kernels/cuda/device.h. cudaMalloc and cudaFree synchronise the device and
// cost tens of microseconds; a training step allocates hundreds of tensors, so blocks are kept and reused.
// Sizes are rounded up (to 512 bytes below 1 MiB, to 2 MiB above) so that the tensors of one step find the
// blocks the previous step freed; a free block is reused for a request at most twice smaller, so a small
// tensor does not hold a huge block. No splitting: simple, and a step's sizes repeat exactly.
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/runtime.h"

namespace tl::cuda {
namespace {

constexpr std::size_t kSmallGranule = 512;
constexpr std::size_t kLargeThreshold = std::size_t{1} << 20;
constexpr std::size_t kLargeGranule = std::size_t{2} << 20;

std::size_t rounded(std::size_t nbytes) {
  if (nbytes == 0) nbytes = 1;  // a unique pointer even for an empty tensor
  const std::size_t granule = nbytes < kLargeThreshold ? kSmallGranule : kLargeGranule;
  return (nbytes + granule - 1) / granule * granule;
}

std::atomic<bool> poison_allocations{false};

class DevicePool {
 public:
  void* allocate(int device, std::size_t nbytes) {
    const std::size_t size = rounded(nbytes);
    void* ptr = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        ptr = it->second;
        live_.emplace(ptr, it->first);
        stats_.current_bytes += it->first;
        free_.erase(it);
      }
    }
    if (!ptr) ptr = allocate_from_driver(device, size);
    {
      std::lock_guard lock(mutex_);
      if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    }
    if (poison_allocations.load()) {
      DeviceGuard guard(device);
      TL_CUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, size, stream(device)));
    }
    return ptr;
  }

  void deallocate(void* ptr) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours: a bug elsewhere, but freeing it would be worse
    stats_.current_bytes -= it->second;
    free_.emplace(it->second, ptr);
    live_.erase(it);
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_bytes = stats_.current_bytes;
  }

  void release_cached(int device) {
    // Blocks may still be read by queued kernels: wait for them before giving the memory back.
    synchronize(device);
    DeviceGuard guard(device);
    std::lock_guard lock(mutex_);
    for (const auto& [size, ptr] : free_) {
      cudaFree(ptr);
      stats_.cached_bytes -= size;
    }
    free_.clear();
  }

 private:
  void* allocate_from_driver(int device, std::size_t size) {
    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached(device);  // the cache may hold enough in blocks of other sizes
      status = cudaMalloc(&ptr, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      const MemoryStats s = stats();
      throw CudaError(str("out of memory on cuda:", device, ": cannot allocate ", size, " bytes (",
                          cudaGetErrorString(status), "; tl holds ", s.current_bytes, " bytes in tensors, ",
                          s.cached_bytes, " cached); try a smaller --batch-size"));
    }
    std::lock_guard lock(mutex_);
    live_.emplace(ptr, size);
    stats_.current_bytes += size;
    stats_.cached_bytes += size;
    ++stats_.driver_allocations;
    return ptr;
  }

  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;       // by size, for best fit
  std::unordered_map<void*, std::size_t> live_;  // handed out, with their rounded sizes
  MemoryStats stats_;
};

DevicePool& pool(int device) {
  TL_CHECK(device >= 0 && device < device_count(), DeviceError, "cuda:", device, " is not a device (",
           device_count(), " found)");
  // Never destroyed: tensors freed during static destruction must still find their pool.
  static auto* pools = new std::array<DevicePool, 64>();
  return (*pools)[static_cast<std::size_t>(device)];
}

}  // namespace

void* allocate(int device, std::size_t nbytes) {
  return pool(device).allocate(device, nbytes);
}

void deallocate(int device, void* ptr) noexcept {
  if (device < 0 || device >= device_count()) return;
  pool(device).deallocate(ptr);
}

MemoryStats memory_stats(int device) {
  return pool(device).stats();
}

void reset_peak(int device) {
  pool(device).reset_peak();
}

void release_cached(int device) {
  pool(device).release_cached(device);
}

void set_poison_allocations(bool on) {
  poison_allocations.store(on);
}

}  // namespace tl::cuda
