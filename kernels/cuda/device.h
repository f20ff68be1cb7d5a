// What the rest of tl may ask of the CUDA backend: devices, memory, copies and options. Plain C++ (no CUDA
// headers), so engine/ and tests may include it in any build. In a build without the CUDA backend, or on a
// machine without a GPU or driver, there are no devices and every memory or copy call throws DeviceError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tl::cuda {

// True when this build contains the CUDA backend (it may still find no device at run time).
bool built_with_cuda();

// Number of usable devices; 0 when the build has no CUDA backend, no driver is installed or no GPU is
// present.
int device_count();

// Throws DeviceError unless cuda:`index` exists here, saying why not (no CUDA build, no GPU, index too big).
// `what` names who asked ("--device cuda:1", "Tensor::to(cuda:0)") so the message says what to fix.
void require_device(int index, const std::string& what);

// "NVIDIA H200 (compute capability 9.0, 139 GiB)"; throws DeviceError for an index that is not a device.
std::string device_description(int index);

// Launches a trivial kernel on `index` that writes a known pattern, copies it back and checks it. Returns an
// empty string on success, else what went wrong. Proves that the build's device code runs on this GPU.
std::string run_self_test(int index);

// ---- memory: the caching allocator (kernels/cuda/allocator.cpp) ------------------------------------------
// Blocks are taken from cudaMalloc once and kept for reuse: after the first training step, a step allocates
// no device memory from the driver. Blocks are 256-byte aligned. A zero-byte request gets a unique pointer.
// Work on the device's stream may still use a block when it is freed; that is safe because every kernel tl
// launches on a device runs on that device's one stream, in order.

void* allocate(int device, std::size_t nbytes);
void deallocate(int device, void* ptr) noexcept;

struct MemoryStats {
  std::size_t current_bytes = 0;        // held by live blocks
  std::size_t peak_bytes = 0;           // the most current_bytes has been since the start or reset_peak
  std::size_t cached_bytes = 0;         // taken from the driver, live or free
  std::int64_t driver_allocations = 0;  // cudaMalloc calls so far
};
MemoryStats memory_stats(int device);
void reset_peak(int device);
// Returns the free cached blocks to the driver.
void release_cached(int device);

// Tests set this: every block handed out is first filled with 0xFF bytes (NaN as float or double), so a
// kernel that leaves an output element unwritten fails its comparison instead of passing on stale data.
void set_poison_allocations(bool on);

// ---- copies ----------------------------------------------------------------------------------------------
// All run on `device`'s stream. To the host: returns when the bytes are there. From the host: returns when
// `src` may be reused (pageable memory) or at once for pinned memory from allocate_pinned, in which case
// the caller keeps the buffer alive until synchronize(device) or a later copy to the host.

void copy_host_to_device(int device, void* dst, const void* src, std::size_t nbytes);
void copy_device_to_host(int device, void* dst, const void* src, std::size_t nbytes);
void copy_device_to_device(int dst_device, void* dst, int src_device, const void* src, std::size_t nbytes);

// Page-locked host memory (fast, asynchronous uploads); the data loader's batches use it.
void* allocate_pinned(std::size_t nbytes);
void free_pinned(void* ptr) noexcept;

// Waits for everything queued on the device's stream; throws CudaError if any of it failed.
void synchronize(int device);

// ---- options ---------------------------------------------------------------------------------------------
// TF32 tensor-core math on the vendor path (cuDNN convolutions, cuBLAS GEMM): faster, ~1e-3 relative error
// instead of float32's ~1e-6. Off by default so GPU results match the CPU's; TL_ALLOW_TF32=1 or the trainer's
// --allow-tf32 turns it on.
bool tf32_allowed();
void set_tf32_allowed(bool on);

}  // namespace tl::cuda
