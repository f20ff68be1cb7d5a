// Dropout and random fills from the Philox stream, with kernels/philox.h's functions compiled for the device:
// element i takes the same counter and the same draw as on the CPU (kernels/cpu/random.cpp). Where the CPU
// computes low + range * u in double, the device does too, with the multiply and the add rounded separately
// (__dmul_rn, __dadd_rn): nvcc would otherwise fuse them into one FMA and the last bit could differ.
#include <cstdint>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"
#include "kernels/philox.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Thread per Philox block: four draws serve four consecutive elements, exactly as the CPU groups them.
template <typename T>
__global__ void dropout_kernel(int64_t n, double p, std::uint64_t seed, std::uint64_t first_block, T scale,
                               const T* __restrict__ in, T* __restrict__ out) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const PhiloxBlock bits = philox4x32(seed, first_block + static_cast<std::uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i < n) out[i] = philox_uniform_float(bits[k]) >= p ? in[i] * scale : T(0);
    }
  }
}

__global__ void uniform_float_kernel(int64_t n, std::uint64_t seed, std::uint64_t first_block, double low,
                                     double range, float* __restrict__ y) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const PhiloxBlock bits = philox4x32(seed, first_block + static_cast<std::uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i < n) {
        const double u = philox_uniform_float(bits[k]);
        y[i] = static_cast<float>(__dadd_rn(low, __dmul_rn(range, u)));
      }
    }
  }
}

// One whole Philox block per double: 53 bits from its first two words.
__global__ void uniform_double_kernel(int64_t n, std::uint64_t seed, std::uint64_t first_block, double low,
                                      double range, double* __restrict__ y) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const PhiloxBlock bits = philox4x32(seed, first_block + static_cast<std::uint64_t>(i));
    y[i] = __dadd_rn(low, __dmul_rn(range, philox_uniform_double(bits[0], bits[1])));
  }
}

template <typename T>
__global__ void normal_kernel(int64_t n, std::uint64_t seed, std::uint64_t first_block, double mean,
                              double stddev, T* __restrict__ y) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const std::array<double, 4> z =
        philox_normals(philox4x32(seed, first_block + static_cast<std::uint64_t>(b)));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i < n) y[i] = static_cast<T>(__dadd_rn(mean, __dmul_rn(stddev, z[k])));
    }
  }
}

template <typename T>
void dropout(int device, int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* in, T* out) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  // The scale is rounded to T on the host, as the CPU rounds it.
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  dropout_kernel<T>
      <<<::tl::cuda::blocks_for((n + 3) / 4, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
          n, p, seed, offset / 4, scale, in, out);
  TL_CUDA_CHECK_LAUNCH("dropout_kernel");
}

}  // namespace

template <typename T>
void dropout_forward(int device, int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* x,
                     T* y) {
  dropout(device, n, p, seed, offset, x, y);
}

template <typename T>
void dropout_backward(int device, int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* dy,
                      T* dx) {
  dropout(device, n, p, seed, offset, dy, dx);
}

template <typename T>
void fill_uniform(int device, int64_t n, std::uint64_t seed, std::uint64_t offset, double low, double high,
                  T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t s = ::tl::cuda::stream(device);
  const double range = high - low;
  if constexpr (sizeof(T) == 4) {
    uniform_float_kernel<<<::tl::cuda::blocks_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(
        n, seed, offset / 4, low, range, y);
    TL_CUDA_CHECK_LAUNCH("uniform_float_kernel");
  } else {
    uniform_double_kernel<<<::tl::cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, seed, offset / 4, low,
                                                                                   range, y);
    TL_CUDA_CHECK_LAUNCH("uniform_double_kernel");
  }
}

template <typename T>
void fill_normal(int device, int64_t n, std::uint64_t seed, std::uint64_t offset, double mean, double stddev,
                 T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  normal_kernel<T>
      <<<::tl::cuda::blocks_for((n + 3) / 4, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
          n, seed, offset / 4, mean, stddev, y);
  TL_CUDA_CHECK_LAUNCH("normal_kernel");
}

#define TL_INSTANTIATE(T)                                                                              \
  template void dropout_forward<T>(int, int64_t, double, std::uint64_t, std::uint64_t, const T*, T*);  \
  template void dropout_backward<T>(int, int64_t, double, std::uint64_t, std::uint64_t, const T*, T*); \
  template void fill_uniform<T>(int, int64_t, std::uint64_t, std::uint64_t, double, double, T*);       \
  template void fill_normal<T>(int, int64_t, std::uint64_t, std::uint64_t, double, double, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cuda
