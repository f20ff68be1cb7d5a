// Element-wise arithmetic, squeeze-excitation scaling, strided copies and dtype casts on the device, matching
// kernels/cpu/elementwise.cpp. Products that the CPU rounds before adding are rounded here too (__fmul_rn and
// friends): nvcc would otherwise fuse x * scale + shift into one FMA and the results would differ in the
// last bit from the CPU's.
#include <cstdint>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ inline double mul_rn(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ inline float add_rn(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ inline double add_rn(double a, double b) {
  return __dadd_rn(a, b);
}

// ---- one-pass maps: y[i] = op(a[i], b[i]), reading only the inputs the op takes --------------------------

template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// y may alias a or b (in place): every element is read and written by one thread, so no __restrict__.
template <typename T, typename Op>
__global__ void map_kernel(int64_t n, const T* a, const T* b, T* y, Op op, bool packed) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t done = 0;
  if (packed) {
    const int64_t packs = n / Pack<T>::kSize;
    const auto* ap = reinterpret_cast<const Pack<T>*>(a);
    const auto* bp = reinterpret_cast<const Pack<T>*>(b);
    auto* yp = reinterpret_cast<Pack<T>*>(y);
    for (int64_t i = first; i < packs; i += stride) {
      Pack<T> va{}, vb{}, out;
      if constexpr (Op::kInputs >= 1) va = ap[i];
      if constexpr (Op::kInputs >= 2) vb = bp[i];
#pragma unroll
      for (int k = 0; k < Pack<T>::kSize; ++k) out.v[k] = op(va.v[k], vb.v[k]);
      yp[i] = out;
    }
    done = packs * Pack<T>::kSize;
  }
  for (int64_t i = done + first; i < n; i += stride) {
    T va{}, vb{};
    if constexpr (Op::kInputs >= 1) va = a[i];
    if constexpr (Op::kInputs >= 2) vb = b[i];
    y[i] = op(va, vb);
  }
}

template <typename T, typename Op>
void launch_map(int device, int64_t n, const T* a, const T* b, T* y, Op op) {
  bool packed = aligned16(y);
  if constexpr (Op::kInputs >= 1) packed = packed && aligned16(a);
  if constexpr (Op::kInputs >= 2) packed = packed && aligned16(b);
  const int64_t items = packed ? (n + Pack<T>::kSize - 1) / Pack<T>::kSize : n;
  map_kernel<T, Op><<<::tl::cuda::blocks_for(items, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      n, a, b, y, op, packed);
  TL_CUDA_CHECK_LAUNCH("map_kernel (binary, affine, axpby or fill)");
}

struct AddOp {
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct SubOp {
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a - b;
  }
};
struct MulOp {
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a * b;
  }
};
struct DivOp {
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a / b;
  }
};

template <typename T>
struct AffineOp {
  static constexpr int kInputs = 1;
  T scale, shift;
  __device__ T operator()(T x, T) const { return add_rn(mul_rn(x, scale), shift); }
};

template <typename T>
struct ScaleOp {
  static constexpr int kInputs = 1;
  T alpha;
  __device__ T operator()(T x, T) const { return alpha * x; }
};

// Inputs (x, y), output y.
template <typename T>
struct AxpbyOp {
  static constexpr int kInputs = 2;
  T alpha, beta;
  __device__ T operator()(T x, T y) const { return add_rn(mul_rn(alpha, x), mul_rn(beta, y)); }
};

template <typename T>
struct FillOp {
  static constexpr int kInputs = 0;
  T value;
  __device__ T operator()(T, T) const { return value; }
};

// ---- [planes, spatial] layouts ---------------------------------------------------------------------------

// Position t = plane * spatial + i of a grid-stride loop, advanced by a fixed step without dividing again:
// the step is split once into whole planes and a remainder, and the remainder carries at most one plane.
struct PlaneWalk {
  int64_t plane, i, dplane, di;
  __device__ PlaneWalk(int64_t t, int64_t step, int64_t spatial)
      : plane(t / spatial),
        i(t - (t / spatial) * spatial),
        dplane(step / spatial),
        di(step - (step / spatial) * spatial) {}
  __device__ void advance(int64_t spatial) {
    plane += dplane;
    i += di;
    if (i >= spatial) {
      i -= spatial;
      ++plane;
    }
  }
};

template <typename T>
__global__ void channel_mul_kernel(int64_t total, int64_t spatial, const T* __restrict__ x,
                                   const T* __restrict__ scale, T* __restrict__ y) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  PlaneWalk w(first, stride, spatial);
  for (int64_t t = first; t < total; t += stride, w.advance(spatial)) y[t] = x[t] * scale[w.plane];
}

// One block per plane (grid-stride over planes): dscale[p] = sum_i dy[p, i] * x[p, i] in double.
template <typename T>
__global__ void channel_mul_dscale_kernel(int64_t planes, int64_t spatial, const T* __restrict__ x,
                                          const T* __restrict__ dy, T* __restrict__ dscale) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T* xp = x + p * spatial;
    const T* dyp = dy + p * spatial;
    double acc = 0;
    for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x)
      acc += static_cast<double>(dyp[i]) * static_cast<double>(xp[i]);
    const double sum = block_sum(acc);
    if (threadIdx.x == 0) dscale[p] = static_cast<T>(sum);
  }
}

// ---- strided copies ------------------------------------------------------------------------------------

constexpr int kMaxDims = 8;

// Passed by value as a kernel argument: sizes and strides (in elements) of both views, outermost first.
struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t src[kMaxDims] = {};
  int64_t dst[kMaxDims] = {};
};

struct alignas(16) Bytes16 {
  std::uint64_t lo, hi;
};
// Elements of any other size, copied byte by byte.
struct AnyBytes {};

// Each thread keeps its multi-index (innermost last) and advances it by the grid stride, split once into
// digits of the same mixed radix; a digit sum carries at most one into the next digit. The outermost digit
// is not reduced: once it passes its size, t has passed total.
template <typename E>
__global__ void copy_strided_kernel(int64_t total, StridedLayout L, int64_t element_size,
                                    const unsigned char* __restrict__ src, unsigned char* __restrict__ dst) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  int64_t idx[kMaxDims], inc[kMaxDims];
  int64_t rest = first, step = stride;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 1; --d) {
    if (d < L.ndim) {
      idx[d] = rest % L.sizes[d];
      rest /= L.sizes[d];
      inc[d] = step % L.sizes[d];
      step /= L.sizes[d];
    }
  }
  idx[0] = rest;
  inc[0] = step;
  for (int64_t t = first; t < total; t += stride) {
    int64_t s = 0, o = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d < L.ndim) {
        s += idx[d] * L.src[d];
        o += idx[d] * L.dst[d];
      }
    }
    if constexpr (std::is_same_v<E, AnyBytes>) {
      for (int64_t k = 0; k < element_size; ++k) dst[o * element_size + k] = src[s * element_size + k];
    } else {
      reinterpret_cast<E*>(dst)[o] = reinterpret_cast<const E*>(src)[s];
    }
    int64_t carry = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 1; --d) {
      if (d < L.ndim) {
        idx[d] += inc[d] + carry;
        carry = idx[d] >= L.sizes[d] ? 1 : 0;
        if (carry) idx[d] -= L.sizes[d];
      }
    }
    idx[0] += inc[0] + carry;
  }
}

template <typename E>
void launch_copy(int device, int64_t total, const StridedLayout& L, int64_t element_size, const void* src,
                 void* dst) {
  copy_strided_kernel<E>
      <<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
          total, L, element_size, static_cast<const unsigned char*>(src), static_cast<unsigned char*>(dst));
  TL_CUDA_CHECK_LAUNCH("copy_strided_kernel");
}

// ---- casts -----------------------------------------------------------------------------------------------

template <typename From, typename To>
__global__ void cast_kernel(int64_t n, const From* __restrict__ in, To* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<To>(in[i]);  // float to int64 truncates toward zero, as on the CPU
}

template <typename From>
void cast_from(int device, int64_t n, const From* src, DType to, void* dst) {
  const unsigned blocks = ::tl::cuda::blocks_for(n, kThreads);
  const cudaStream_t s = ::tl::cuda::stream(device);
  switch (to) {
    case DType::Float32:
      cast_kernel<From, float><<<blocks, kThreads, 0, s>>>(n, src, static_cast<float*>(dst));
      break;
    case DType::Float64:
      cast_kernel<From, double><<<blocks, kThreads, 0, s>>>(n, src, static_cast<double*>(dst));
      break;
    case DType::Int64:
      cast_kernel<From, std::int64_t><<<blocks, kThreads, 0, s>>>(n, src, static_cast<std::int64_t*>(dst));
      break;
    default:
      throw DTypeError(str("cast: unknown target dtype ", static_cast<int>(to)));
  }
  TL_CUDA_CHECK_LAUNCH("cast_kernel");
}

}  // namespace

// ---- the declared functions ----------------------------------------------------------------------------

template <typename T>
void binary(int device, BinaryOp op, int64_t n, const T* a, const T* b, T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  switch (op) {
    case BinaryOp::Add:
      return launch_map(device, n, a, b, y, AddOp{});
    case BinaryOp::Sub:
      return launch_map(device, n, a, b, y, SubOp{});
    case BinaryOp::Mul:
      return launch_map(device, n, a, b, y, MulOp{});
    case BinaryOp::Div:
      return launch_map(device, n, a, b, y, DivOp{});
  }
}

template <typename T>
void affine(int device, int64_t n, const T* x, T scale, T shift, T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_map(device, n, x, static_cast<const T*>(nullptr), y, AffineOp<T>{scale, shift});
}

template <typename T>
void axpby(int device, int64_t n, T alpha, const T* x, T beta, T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  // With beta == 0, y is not read: it may hold NaN, and 0 * NaN would be NaN.
  if (beta == T(0))
    launch_map(device, n, x, static_cast<const T*>(nullptr), y, ScaleOp<T>{alpha});
  else
    launch_map(device, n, x, static_cast<const T*>(y), y, AxpbyOp<T>{alpha, beta});
}

template <typename T>
void fill(int device, int64_t n, T value, T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_map(device, n, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), y, FillOp<T>{value});
}

template <typename T>
void channel_mul_forward(int device, int64_t planes, int64_t spatial, const T* x, const T* scale, T* y) {
  const int64_t total = planes * spatial;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  channel_mul_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      total, spatial, x, scale, y);
  TL_CUDA_CHECK_LAUNCH("channel_mul_kernel");
}

template <typename T>
void channel_mul_backward(int device, int64_t planes, int64_t spatial, const T* x, const T* scale,
                          const T* dy, T* dx, T* dscale) {
  if (planes <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t s = ::tl::cuda::stream(device);
  const int64_t total = planes * spatial;
  if (dx && total > 0) {
    channel_mul_kernel<T>
        <<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, s>>>(total, spatial, dy, scale, dx);
    TL_CUDA_CHECK_LAUNCH("channel_mul_kernel (dx)");
  }
  if (dscale) {
    // spatial == 0 still writes dscale (zeros), as the CPU does.
    const int threads = reduction_threads(spatial);
    const unsigned blocks = static_cast<unsigned>(planes < 65535 ? planes : 65535);
    channel_mul_dscale_kernel<T><<<blocks, threads, 0, s>>>(planes, spatial, x, dy, dscale);
    TL_CUDA_CHECK_LAUNCH("channel_mul_dscale_kernel");
  }
}

void copy_strided(int device, int64_t element_size, int64_t ndim, const int64_t* sizes,
                  const int64_t* src_strides, const void* src, const int64_t* dst_strides, void* dst) {
  TL_CHECK(ndim >= 0 && ndim <= kMaxDims, ValueError, "copy_strided: at most ", kMaxDims,
           " dimensions on the GPU, got ", ndim);
  TL_CHECK(element_size > 0, ValueError, "copy_strided: element size must be positive, got ", element_size);
  int64_t total = 1;
  for (int64_t d = 0; d < ndim; ++d) total *= sizes[d];
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t s = ::tl::cuda::stream(device);

  // Fewer, longer dimensions make cheaper index arithmetic: size-1 dimensions go, and a dimension merges
  // into the one inside it when both views step over the inner one contiguously. Built innermost first.
  StridedLayout L;
  int64_t sz[kMaxDims], ss[kMaxDims], ds[kMaxDims];
  int kept = 0;
  for (int64_t d = ndim - 1; d >= 0; --d) {
    if (sizes[d] == 1) continue;
    if (kept > 0 && src_strides[d] == ss[kept - 1] * sz[kept - 1] &&
        dst_strides[d] == ds[kept - 1] * sz[kept - 1]) {
      sz[kept - 1] *= sizes[d];
      continue;
    }
    sz[kept] = sizes[d];
    ss[kept] = src_strides[d];
    ds[kept] = dst_strides[d];
    ++kept;
  }
  if (kept == 0 || (kept == 1 && ss[0] == 1 && ds[0] == 1)) {
    // One element, or one dense run in both views.
    TL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(total * element_size),
                                  cudaMemcpyDeviceToDevice, s));
    return;
  }
  L.ndim = kept;
  for (int k = 0; k < kept; ++k) {  // back to outermost first
    L.sizes[k] = sz[kept - 1 - k];
    L.src[k] = ss[kept - 1 - k];
    L.dst[k] = ds[kept - 1 - k];
  }
  const auto aligned = [&](std::uintptr_t a) {
    return reinterpret_cast<std::uintptr_t>(src) % a == 0 && reinterpret_cast<std::uintptr_t>(dst) % a == 0;
  };
  switch (element_size) {
    case 1:
      return launch_copy<std::uint8_t>(device, total, L, element_size, src, dst);
    case 2:
      if (aligned(2)) return launch_copy<std::uint16_t>(device, total, L, element_size, src, dst);
      break;
    case 4:
      if (aligned(4)) return launch_copy<std::uint32_t>(device, total, L, element_size, src, dst);
      break;
    case 8:
      if (aligned(8)) return launch_copy<std::uint64_t>(device, total, L, element_size, src, dst);
      break;
    case 16:
      if (aligned(16)) return launch_copy<Bytes16>(device, total, L, element_size, src, dst);
      break;
    default:
      break;
  }
  launch_copy<AnyBytes>(device, total, L, element_size, src, dst);
}

void cast(int device, int64_t n, DType from, const void* src, DType to, void* dst) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  if (from == to) {
    TL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * dtype_size(from),
                                  cudaMemcpyDeviceToDevice, ::tl::cuda::stream(device)));
    return;
  }
  switch (from) {
    case DType::Float32:
      return cast_from(device, n, static_cast<const float*>(src), to, dst);
    case DType::Float64:
      return cast_from(device, n, static_cast<const double*>(src), to, dst);
    case DType::Int64:
      return cast_from(device, n, static_cast<const std::int64_t*>(src), to, dst);
  }
  throw DTypeError(str("cast: unknown source dtype ", static_cast<int>(from)));
}

#define TL_INSTANTIATE(T)                                                              \
  template void binary<T>(int, BinaryOp, int64_t, const T*, const T*, T*);             \
  template void affine<T>(int, int64_t, const T*, T, T, T*);                           \
  template void axpby<T>(int, int64_t, T, const T*, T, T*);                            \
  template void channel_mul_forward<T>(int, int64_t, int64_t, const T*, const T*, T*); \
  template void channel_mul_backward<T>(int, int64_t, int64_t, const T*, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE
template void fill<float>(int, int64_t, float, float*);
template void fill<double>(int, int64_t, double, double*);
template void fill<int64_t>(int, int64_t, int64_t, int64_t*);

}  // namespace tl::kernels::cuda
