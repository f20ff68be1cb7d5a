// Depthwise convolution on the GPU (groups == in_channels == out_channels): each (sample, channel) plane
// meets its own R x S filter, so a GEMM would have one row per group; direct kernels instead.
//   forward          one thread per output element
//   backward data    one thread per dx element, gathering the dy elements whose window covers it (no atomics:
//                    the same result on every run)
//   backward filter  blocks of (channel, chunk of the batch's positions) sum dy * x per tap in double, with a
//                    fixed reduction tree; a second kernel adds the chunks in order (deterministic, no float
//                    atomics); dbias rides along as one more sum
// 3x3 and 5x5 filters (MobileNet's) have their taps unrolled at compile time, and backward data has
// compile-time strides 1 and 2; every other shape takes the same kernels with run-time loops. Called from the
// conv2d_* entry points in conv2d_implicit_gemm.cu (declared in kernels/cuda/detail.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/detail.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 by a multiply and a shift (Granlund and Montgomery).
struct FastDiv {
  int d = 1;
  unsigned mul = 1, shift = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(static_cast<int>(divisor)) {
    while ((uint64_t(1) << shift) < static_cast<uint64_t>(d)) ++shift;
    mul = static_cast<unsigned>(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ int div(int n) const {
    return static_cast<int>((__umulhi(static_cast<unsigned>(n), mul) + static_cast<unsigned>(n)) >> shift);
  }
};

// The layer, as the kernels see it. Planes are (n, c) pairs; a launch covers planes [plane0, plane0 + count /
// plane size) of the tensor, and `first_channel` is plane0's channel.
struct Depthwise {
  int C, H, W, P, Q, R, S, sh, sw, pt, pl, dh, dw;
  FastDiv channels;  // C
};

constexpr int kThreads = 256;

// ---- forward ----

// y[plane][p][q] = bias[c] + sum over (r, s) of w[c][r][s] * x[plane][p*sh - pt + r*dh][q*sw - pl + s*dw].
template <typename T, int KR, int KS>
__global__ void __launch_bounds__(kThreads)
    dw_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                      Depthwise d, FastDiv plane_size, FastDiv cols, int first_channel, int count,
                      T* __restrict__ y) {
  const int R = KR > 0 ? KR : d.R, S = KS > 0 ? KS : d.S;
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < count; i += gridDim.x * kThreads) {
    const int plane = plane_size.div(i), pq = i - plane * plane_size.d;
    const int p = cols.div(pq), q = pq - p * cols.d;
    const int cc = first_channel + plane;
    const int c = cc - d.channels.div(cc) * d.C;
    const T* xp = x + static_cast<int64_t>(plane) * d.H * d.W;
    const T* wp = w + c * R * S;
    const int h0 = p * d.sh - d.pt, w0 = q * d.sw - d.pl;
    T acc = bias ? __ldg(bias + c) : T(0);
    // R and S are compile-time for the fixed filters, so these loops unroll fully there.
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int h = h0 + r * d.dh;
      if (static_cast<unsigned>(h) >= static_cast<unsigned>(d.H)) continue;
      const T* row = xp + h * d.W;
#pragma unroll
      for (int s = 0; s < S; ++s) {
        const int col = w0 + s * d.dw;
        if (static_cast<unsigned>(col) < static_cast<unsigned>(d.W))
          acc += __ldg(wp + r * S + s) * __ldg(row + col);
      }
    }
    y[i] = acc;  // y is offset to plane0 by the host, like x
  }
}

// ---- backward data ----

// dx[plane][h][w] = sum over (r, s) of w[c][r][s] * dy[plane][p][q] where p * sh = h + pt - r*dh and
// q * sw = w + pl - s*dw, for the (p, q) inside dy. kStride: sh == sw == kStride, or 0 for run-time strides.
template <int kStride>
__device__ __forceinline__ bool source_index(int t, int stride, int limit, int& out) {
  if (t < 0) return false;
  int idx;
  if constexpr (kStride == 1) {
    idx = t;
  } else if constexpr (kStride == 2) {
    if (t & 1) return false;
    idx = t >> 1;
  } else {
    idx = t / stride;
    if (idx * stride != t) return false;
  }
  out = idx;
  return idx < limit;
}

template <typename T, int KR, int KS, int kStride>
__global__ void __launch_bounds__(kThreads)
    dw_backward_data_kernel(const T* __restrict__ dy, const T* __restrict__ w, Depthwise d,
                            FastDiv plane_size, FastDiv cols, int first_channel, int count,
                            T* __restrict__ dx) {
  const int R = KR > 0 ? KR : d.R, S = KS > 0 ? KS : d.S;
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < count; i += gridDim.x * kThreads) {
    const int plane = plane_size.div(i), hw = i - plane * plane_size.d;
    const int h = cols.div(hw), wi = hw - h * cols.d;
    const int cc = first_channel + plane;
    const int c = cc - d.channels.div(cc) * d.C;
    const T* gp = dy + static_cast<int64_t>(plane) * d.P * d.Q;
    const T* wp = w + c * R * S;
    T acc = T(0);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      int p;
      if (!source_index<kStride>(h + d.pt - r * d.dh, d.sh, d.P, p)) continue;
      const T* row = gp + p * d.Q;
#pragma unroll
      for (int s = 0; s < S; ++s) {
        int q;
        if (source_index<kStride>(wi + d.pl - s * d.dw, d.sw, d.Q, q))
          acc += __ldg(wp + r * S + s) * __ldg(row + q);
      }
    }
    dx[i] = acc;
  }
}

// ---- backward filter ----

// Sums over the block in double with a fixed shape: 256 -> 32 partial sums in fixed order, then one thread
// adds the 32. Every thread must call it; the result is valid in thread 0.
__device__ __forceinline__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    double s = 0;
#pragma unroll
    for (int j = 0; j < kThreads / 32; ++j) s += red[threadIdx.x + 32 * j];
    red[threadIdx.x] = s;
  }
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0)
    for (int j = 0; j < 32; ++j) total += red[j];
  __syncthreads();  // red is reused by the next call
  return total;
}

// Block (c, chunk) writes partial[chunk][c][t] = sum over its positions (n, p, q) of dy[n,c,p,q] * x[n,c,h,w]
// for each tap t (h = p*sh - pt + r*dh, w = q*sw - pl + s*dw), and partial[chunk][c][taps] = sum of dy.
// taps == 0: only the dy sum (dw not wanted). KR, KS > 0: all taps accumulate in registers in one pass; else
// a pass per tap.
template <typename T, int KR, int KS>
__global__ void __launch_bounds__(kThreads)
    dw_filter_partial_kernel(const T* __restrict__ x, const T* __restrict__ dy, Depthwise d, int N,
                             FastDiv plane_size, FastDiv cols, int taps, int chunk_len,
                             double* __restrict__ partial) {
  __shared__ double red[kThreads];
  const int c = blockIdx.x, chunk = blockIdx.y;
  const int total = N * plane_size.d;
  const int begin = chunk * chunk_len, end = min(total, begin + chunk_len);
  double* out = partial + (static_cast<int64_t>(chunk) * d.C + c) * (taps + 1);
  const int64_t x_plane = static_cast<int64_t>(d.H) * d.W, g_plane = plane_size.d;

  // Element t of the range: dy value and the top-left input coordinate of its window.
  const auto decode = [&](int t, T& g, const T*& xp, int& h0, int& w0) {
    const int n = plane_size.div(t), pq = t - n * plane_size.d;
    const int p = cols.div(pq), q = pq - p * cols.d;
    const int64_t plane = static_cast<int64_t>(n) * d.C + c;
    g = __ldg(dy + plane * g_plane + pq);
    xp = x + plane * x_plane;
    h0 = p * d.sh - d.pt;
    w0 = q * d.sw - d.pl;
  };

  if constexpr (KR > 0 && KS > 0) {
    double acc[KR * KS + 1];
#pragma unroll
    for (int k = 0; k <= KR * KS; ++k) acc[k] = 0;
    for (int t = begin + static_cast<int>(threadIdx.x); t < end; t += kThreads) {
      T g;
      const T* xp;
      int h0, w0;
      decode(t, g, xp, h0, w0);
      acc[KR * KS] += static_cast<double>(g);
      if (taps == 0) continue;
#pragma unroll
      for (int r = 0; r < KR; ++r) {
        const int h = h0 + r * d.dh;
        const bool row_ok = static_cast<unsigned>(h) < static_cast<unsigned>(d.H);
#pragma unroll
        for (int s = 0; s < KS; ++s) {
          const int col = w0 + s * d.dw;
          if (row_ok && static_cast<unsigned>(col) < static_cast<unsigned>(d.W))
            acc[r * KS + s] += static_cast<double>(g) * static_cast<double>(__ldg(xp + h * d.W + col));
        }
      }
    }
    if (taps > 0) {
#pragma unroll
      for (int k = 0; k < KR * KS; ++k) {
        const double v = block_sum(acc[k], red);
        if (threadIdx.x == 0) out[k] = v;
      }
    }
    const double v = block_sum(acc[KR * KS], red);
    if (threadIdx.x == 0) out[taps] = v;
  } else {
    for (int k = 0; k <= taps; ++k) {
      const int r = k < taps ? k / d.S : 0, s = k < taps ? k - r * d.S : 0;
      double acc = 0;
      for (int t = begin + static_cast<int>(threadIdx.x); t < end; t += kThreads) {
        T g;
        const T* xp;
        int h0, w0;
        decode(t, g, xp, h0, w0);
        if (k == taps) {
          acc += static_cast<double>(g);
          continue;
        }
        const int h = h0 + r * d.dh, col = w0 + s * d.dw;
        if (static_cast<unsigned>(h) < static_cast<unsigned>(d.H) &&
            static_cast<unsigned>(col) < static_cast<unsigned>(d.W))
          acc += static_cast<double>(g) * static_cast<double>(__ldg(xp + h * d.W + col));
      }
      const double v = block_sum(acc, red);
      if (threadIdx.x == 0) out[k] = v;
    }
  }
}

// dw[c][t] and dbias[c] from the chunks' partial sums, added in chunk order.
template <typename T>
__global__ void dw_filter_final_kernel(const double* __restrict__ partial, int chunks, int C, int taps,
                                       T* __restrict__ dw, T* __restrict__ dbias) {
  const int64_t n = static_cast<int64_t>(C) * (taps + 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double acc = 0;
    for (int k = 0; k < chunks; ++k) acc += partial[k * n + i];
    const int64_t c = i / (taps + 1), t = i - c * (taps + 1);
    if (t < taps) {
      if (dw) dw[c * taps + t] = static_cast<T>(acc);
    } else if (dbias) {
      dbias[c] = static_cast<T>(acc);
    }
  }
}

// ---- host side ----

Depthwise make_depthwise(const Conv2dShape& s) {
  Depthwise d;
  d.C = static_cast<int>(s.in_channels);
  d.H = static_cast<int>(s.in_h);
  d.W = static_cast<int>(s.in_w);
  d.P = static_cast<int>(s.out_h());
  d.Q = static_cast<int>(s.out_w());
  d.R = static_cast<int>(s.kernel_h);
  d.S = static_cast<int>(s.kernel_w);
  d.sh = static_cast<int>(s.stride_h);
  d.sw = static_cast<int>(s.stride_w);
  d.pt = static_cast<int>(s.pad_top);
  d.pl = static_cast<int>(s.pad_left);
  d.dh = static_cast<int>(s.dilation_h);
  d.dw = static_cast<int>(s.dilation_w);
  d.channels = FastDiv(std::max<int64_t>(1, s.in_channels));
  return d;
}

constexpr int64_t kIndexLimit = int64_t(1) << 30;  // per plane and per launch, with headroom for 32-bit loops

// The kernels index planes and positions with 32-bit integers (offsets are 64-bit); element counts of a
// launch stay within 2^30 by splitting the planes into chunks (kIndexLimit).
void check_depthwise_range(const Conv2dShape& s) {
  const int64_t hw = s.in_h * s.in_w, pq = s.out_h() * s.out_w();
  const int64_t spatial =
      std::max({s.in_h, s.in_w, s.out_h(), s.out_w(), s.kernel_h * s.dilation_h, s.kernel_w * s.dilation_w,
                s.pad_top, s.pad_left, s.stride_h * s.out_h(), s.stride_w * s.out_w()});
  TL_CHECK(
      hw < kIndexLimit && pq < kIndexLimit && s.batch * pq < kIndexLimit && s.in_channels < kIndexLimit &&
          s.kernel_h * s.kernel_w < kIndexLimit && spatial < (int64_t(1) << 28),
      ValueError, "depthwise conv2d: shape N=", s.batch, " C=", s.in_channels, " H=", s.in_h, " W=", s.in_w,
      " R=", s.kernel_h, " S=", s.kernel_w, " is too large for the native CUDA kernels (32-bit indices)");
}

enum class Taps { k3x3, k5x5, kAny };
Taps taps_of(const Conv2dShape& s) {
  if (s.kernel_h == 3 && s.kernel_w == 3) return Taps::k3x3;
  if (s.kernel_h == 5 && s.kernel_w == 5) return Taps::k5x5;
  return Taps::kAny;
}

// Runs `launch(plane0, planes, count)` over chunks of planes holding at most 2^30 elements each, so the
// kernels' 32-bit grid-stride index (count plus one grid's width) and first_channel + plane cannot overflow.
template <class F>
void for_plane_chunks(int64_t planes, int64_t plane_elems, F&& launch) {
  constexpr int64_t kChunkLimit = int64_t(1) << 30;
  const int64_t per = std::max<int64_t>(1, kChunkLimit / std::max<int64_t>(1, plane_elems));
  for (int64_t p0 = 0; p0 < planes; p0 += per) {
    const int64_t n = std::min(per, planes - p0);
    launch(p0, n, n * plane_elems);
  }
}

}  // namespace

namespace detail {

template <typename T>
void depthwise_conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t planes = s.batch * s.in_channels, HW = s.in_h * s.in_w, PQ = s.out_h() * s.out_w();
  if (planes * PQ == 0) return;
  check_depthwise_range(s);
  const Depthwise d = make_depthwise(s);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const Taps taps = taps_of(s);
  for_plane_chunks(planes, PQ, [&](int64_t p0, int64_t, int64_t count) {
    const unsigned blocks = ::tl::cuda::blocks_for(count, kThreads);
    const T* xp = x + p0 * HW;
    T* yp = y + p0 * PQ;
    const int c0 = static_cast<int>(p0 % s.in_channels);
    const FastDiv plane_size(PQ), cols(std::max<int64_t>(1, s.out_w()));
    void (*kernel)(const T*, const T*, const T*, Depthwise, FastDiv, FastDiv, int, int, T*) =
        taps == Taps::k3x3 ? dw_forward_kernel<T, 3, 3>
                           : (taps == Taps::k5x5 ? dw_forward_kernel<T, 5, 5> : dw_forward_kernel<T, 0, 0>);
    kernel<<<blocks, kThreads, 0, stream>>>(xp, w, bias, d, plane_size, cols, c0, static_cast<int>(count),
                                            yp);
    TL_CUDA_CHECK_LAUNCH("dw_forward_kernel");
  });
}

template <typename T>
void depthwise_conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t planes = s.batch * s.in_channels, HW = s.in_h * s.in_w, PQ = s.out_h() * s.out_w();
  if (planes * HW == 0) return;
  check_depthwise_range(s);
  const Depthwise d = make_depthwise(s);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const Taps taps = taps_of(s);
  const int stride =
      s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2) ? static_cast<int>(s.stride_h) : 0;
  using Kernel = void (*)(const T*, const T*, Depthwise, FastDiv, FastDiv, int, int, T*);
  Kernel kernel = dw_backward_data_kernel<T, 0, 0, 0>;
  if (taps == Taps::k3x3)
    kernel = stride == 1
                 ? dw_backward_data_kernel<T, 3, 3, 1>
                 : (stride == 2 ? dw_backward_data_kernel<T, 3, 3, 2> : dw_backward_data_kernel<T, 3, 3, 0>);
  if (taps == Taps::k5x5)
    kernel = stride == 1
                 ? dw_backward_data_kernel<T, 5, 5, 1>
                 : (stride == 2 ? dw_backward_data_kernel<T, 5, 5, 2> : dw_backward_data_kernel<T, 5, 5, 0>);
  if (taps == Taps::kAny && stride == 1) kernel = dw_backward_data_kernel<T, 0, 0, 1>;
  for_plane_chunks(planes, HW, [&](int64_t p0, int64_t, int64_t count) {
    const unsigned blocks = ::tl::cuda::blocks_for(count, kThreads);
    const int c0 = static_cast<int>(p0 % s.in_channels);
    const FastDiv plane_size(HW), cols(std::max<int64_t>(1, s.in_w));
    kernel<<<blocks, kThreads, 0, stream>>>(dy + p0 * PQ, w, d, plane_size, cols, c0, static_cast<int>(count),
                                            dx + p0 * HW);
    TL_CUDA_CHECK_LAUNCH("dw_backward_data_kernel");
  });
}

template <typename T>
void depthwise_conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                                      T* dbias) {
  if (!dw && !dbias) return;
  const int64_t C = s.in_channels, PQ = s.out_h() * s.out_w();
  if (C == 0) return;
  check_depthwise_range(s);
  const Depthwise d = make_depthwise(s);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const int taps = dw ? static_cast<int>(s.kernel_h * s.kernel_w) : 0;
  const int64_t total = s.batch * PQ;
  const int64_t sms = ::tl::cuda::limits(device).multiprocessors;
  int64_t chunks = std::max<int64_t>(1, (4 * sms + C - 1) / C);
  chunks = std::min({chunks, std::max<int64_t>(1, total / 2048), int64_t(65535)});
  const int64_t chunk_len = (total + chunks - 1) / chunks;
  ::tl::cuda::Workspace partial(device, static_cast<std::size_t>(chunks * C * (taps + 1)) * sizeof(double));

  using Kernel = void (*)(const T*, const T*, Depthwise, int, FastDiv, FastDiv, int, int, double*);
  const Taps fixed = taps_of(s);
  const Kernel kernel = fixed == Taps::k3x3   ? dw_filter_partial_kernel<T, 3, 3>
                        : fixed == Taps::k5x5 ? dw_filter_partial_kernel<T, 5, 5>
                                              : dw_filter_partial_kernel<T, 0, 0>;
  const FastDiv plane_size(std::max<int64_t>(1, PQ)), cols(std::max<int64_t>(1, s.out_w()));
  kernel<<<dim3(static_cast<unsigned>(C), static_cast<unsigned>(chunks)), kThreads, 0, stream>>>(
      x, dy, d, static_cast<int>(s.batch), plane_size, cols, taps, static_cast<int>(chunk_len),
      partial.as<double>());
  TL_CUDA_CHECK_LAUNCH("dw_filter_partial_kernel");
  dw_filter_final_kernel<T><<<::tl::cuda::blocks_for(C * (taps + 1), kThreads), kThreads, 0, stream>>>(
      partial.as<double>(), static_cast<int>(chunks), static_cast<int>(C), taps, dw, dbias);
  TL_CUDA_CHECK_LAUNCH("dw_filter_final_kernel");
}

#define TL_INSTANTIATE(T)                                                                               \
  template void depthwise_conv2d_forward<T>(int, const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void depthwise_conv2d_backward_data<T>(int, const Conv2dShape&, const T*, const T*, T*);     \
  template void depthwise_conv2d_backward_filter<T>(int, const Conv2dShape&, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace detail
}  // namespace tl::kernels::cuda
