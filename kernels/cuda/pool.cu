// Max, average and adaptive-average pooling on the device, with kernels/cpu/pool.cpp's window rules and
// argmax convention. Forward is a thread per output. Backward is a gather, a thread per input element that
// visits the outputs whose windows cover it: no atomics, so results are deterministic, and since a thread
// adds its contributions in the order the CPU does (outputs in row-major order, in T), dx matches the CPU's
// bit for bit.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}
__device__ inline int64_t max64(int64_t a, int64_t b) {
  return a < b ? b : a;
}

// One output cell's window in input coordinates, [h0, h1) x [w0, w1) clipped to the input, and the size of
// the window clipped to the padded input (the count_include_pad divisor); as the CPU's window_at.
struct Window {
  int64_t h0, h1, w0, w1, padded_size;
};

__device__ inline Window window_at(const Pool2dShape& s, int64_t p, int64_t q) {
  const int64_t hs = p * s.stride_h - s.pad_top, ws = q * s.stride_w - s.pad_left;
  const int64_t he = min64(hs + s.kernel_h, s.in_h + s.pad_bottom);
  const int64_t we = min64(ws + s.kernel_w, s.in_w + s.pad_right);
  return {max64(hs, 0), min64(he, s.in_h), max64(ws, 0), min64(we, s.in_w), (he - hs) * (we - ws)};
}

__device__ inline int64_t avg_divisor(const Window& win, bool count_include_pad) {
  return count_include_pad ? win.padded_size : (win.h1 - win.h0) * (win.w1 - win.w0);
}

// The outputs [lo, hi] along one axis whose windows [o * stride - pad, o * stride - pad + kernel) hold input
// position h: o * stride <= h + pad < o * stride + kernel. (The window's clip at the padded end never
// matters, since h lies inside the input.)
struct Range {
  int64_t lo, hi;
};
__device__ inline Range covering(int64_t h, int64_t pad, int64_t kernel, int64_t stride, int64_t outputs) {
  const int64_t a = h + pad;
  return {a < kernel ? 0 : (a - kernel) / stride + 1, min64(a / stride, outputs - 1)};
}

template <typename T>
__global__ void max_forward_kernel(Pool2dShape s, int64_t P, int64_t Q, const T* __restrict__ x,
                                   T* __restrict__ y, int64_t* __restrict__ argmax) {
  const int64_t total = s.planes * P * Q;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t q = o % Q, rest = o / Q, p = rest % P, plane = rest / P;
    const T* xp = x + plane * s.in_h * s.in_w;
    const Window win = window_at(s, p, q);
    T best = -std::numeric_limits<T>::infinity();
    int64_t best_at = win.h0 * s.in_w + win.w0;
    bool found_nan = false;
    for (int64_t h = win.h0; h < win.h1 && !found_nan; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) {
        const T v = xp[h * s.in_w + w];
        if (v > best || v != v) {  // NaN wins, as in PyTorch, and ends the search as on the CPU
          best = v;
          best_at = h * s.in_w + w;
          if (v != v) {
            found_nan = true;
            break;
          }
        }
      }
    y[o] = best;
    if (argmax) argmax[o] = best_at;
  }
}

// dx at input (plane, h, w) gathers dy from every covering output whose argmax is this input.
template <typename T>
__global__ void max_backward_kernel(Pool2dShape s, int64_t P, int64_t Q, const T* __restrict__ dy,
                                    const int64_t* __restrict__ argmax, T* __restrict__ dx) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t w = t % s.in_w, rest = t / s.in_w, h = rest % s.in_h, plane = rest / s.in_h;
    const int64_t here = h * s.in_w + w;
    const Range rp = covering(h, s.pad_top, s.kernel_h, s.stride_h, P);
    const Range rq = covering(w, s.pad_left, s.kernel_w, s.stride_w, Q);
    T acc = T(0);
    for (int64_t p = rp.lo; p <= rp.hi; ++p)
      for (int64_t q = rq.lo; q <= rq.hi; ++q) {
        const int64_t o = (plane * P + p) * Q + q;
        if (argmax[o] == here) acc += dy[o];
      }
    dx[t] = acc;
  }
}

template <typename T>
__global__ void avg_forward_kernel(Pool2dShape s, int64_t P, int64_t Q, bool count_include_pad,
                                   const T* __restrict__ x, T* __restrict__ y) {
  const int64_t total = s.planes * P * Q;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t q = o % Q, rest = o / Q, p = rest % P, plane = rest / P;
    const T* xp = x + plane * s.in_h * s.in_w;
    const Window win = window_at(s, p, q);
    double acc = 0;
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) acc += xp[h * s.in_w + w];
    const int64_t divisor = avg_divisor(win, count_include_pad);
    y[o] = static_cast<T>(divisor > 0 ? acc / static_cast<double>(divisor) : 0.0);
  }
}

template <typename T>
__global__ void avg_backward_kernel(Pool2dShape s, int64_t P, int64_t Q, bool count_include_pad,
                                    const T* __restrict__ dy, T* __restrict__ dx) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t w = t % s.in_w, rest = t / s.in_w, h = rest % s.in_h, plane = rest / s.in_h;
    const Range rp = covering(h, s.pad_top, s.kernel_h, s.stride_h, P);
    const Range rq = covering(w, s.pad_left, s.kernel_w, s.stride_w, Q);
    T acc = T(0);
    for (int64_t p = rp.lo; p <= rp.hi; ++p)
      for (int64_t q = rq.lo; q <= rq.hi; ++q) {
        const int64_t divisor = avg_divisor(window_at(s, p, q), count_include_pad);
        if (divisor == 0) continue;
        acc += dy[(plane * P + p) * Q + q] / static_cast<T>(divisor);
      }
    dx[t] = acc;
  }
}

// Adaptive windows: output i covers [floor(i * in / out), ceil((i + 1) * in / out)).
__device__ inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
__device__ inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

// The outputs whose adaptive windows hold input position h lie in [h * out / in, ((h + 1) * out - 1) / in];
// the range is widened by one on each side and every candidate checked, so a rounding slip in that bound
// cannot drop or add a window.
__device__ inline Range adaptive_covering(int64_t h, int64_t in, int64_t out) {
  return {max64((h * out) / in - 1, 0), min64(((h + 1) * out - 1) / in + 1, out - 1)};
}

template <typename T>
__global__ void adaptive_forward_kernel(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                        int64_t out_w, const T* __restrict__ x, T* __restrict__ y) {
  const int64_t total = planes * out_h * out_w;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t j = o % out_w, rest = o / out_w, i = rest % out_h, plane = rest / out_h;
    const T* xp = x + plane * in_h * in_w;
    const int64_t h0 = adaptive_start(i, in_h, out_h), h1 = adaptive_end(i, in_h, out_h);
    const int64_t w0 = adaptive_start(j, in_w, out_w), w1 = adaptive_end(j, in_w, out_w);
    double acc = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) acc += xp[h * in_w + w];
    y[o] = static_cast<T>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
  }
}

template <typename T>
__global__ void adaptive_backward_kernel(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                         int64_t out_w, const T* __restrict__ dy, T* __restrict__ dx) {
  const int64_t total = planes * in_h * in_w;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t w = t % in_w, rest = t / in_w, h = rest % in_h, plane = rest / in_h;
    const Range ri = adaptive_covering(h, in_h, out_h);
    const Range rj = adaptive_covering(w, in_w, out_w);
    T acc = T(0);
    for (int64_t i = ri.lo; i <= ri.hi; ++i) {
      const int64_t h0 = adaptive_start(i, in_h, out_h), h1 = adaptive_end(i, in_h, out_h);
      if (h < h0 || h >= h1) continue;
      for (int64_t j = rj.lo; j <= rj.hi; ++j) {
        const int64_t w0 = adaptive_start(j, in_w, out_w), w1 = adaptive_end(j, in_w, out_w);
        if (w < w0 || w >= w1) continue;
        acc += dy[(plane * out_h + i) * out_w + j] / static_cast<T>((h1 - h0) * (w1 - w0));
      }
    }
    dx[t] = acc;
  }
}

// Every kernel here is a grid-stride loop with a thread per item, so all share one launch shape, on the
// device's stream. The arguments convert to the kernel's parameter types (type_identity: not deduced).
template <typename... Params>
void launch_per_item(int device, int64_t items, void (&kernel)(Params...),
                     std::type_identity_t<Params>... args) {
  kernel<<<::tl::cuda::blocks_for(items, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(args...);
}

}  // namespace

template <typename T>
void max_pool2d_forward(int device, const Pool2dShape& s, const T* x, T* y, int64_t* argmax) {
  const int64_t P = s.out_h(), Q = s.out_w(), total = s.planes * P * Q;
  if (P <= 0 || Q <= 0 || total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, max_forward_kernel<T>, s, P, Q, x, y, argmax);
  TL_CUDA_CHECK_LAUNCH("max_forward_kernel");
}

template <typename T>
void max_pool2d_backward(int device, const Pool2dShape& s, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, max_backward_kernel<T>, s, s.out_h(), s.out_w(), dy, argmax, dx);
  TL_CUDA_CHECK_LAUNCH("max_backward_kernel");
}

template <typename T>
void avg_pool2d_forward(int device, const Pool2dShape& s, bool count_include_pad, const T* x, T* y) {
  const int64_t P = s.out_h(), Q = s.out_w(), total = s.planes * P * Q;
  if (P <= 0 || Q <= 0 || total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, avg_forward_kernel<T>, s, P, Q, count_include_pad, x, y);
  TL_CUDA_CHECK_LAUNCH("avg_forward_kernel");
}

template <typename T>
void avg_pool2d_backward(int device, const Pool2dShape& s, bool count_include_pad, const T* dy, T* dx) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, avg_backward_kernel<T>, s, s.out_h(), s.out_w(), count_include_pad, dy, dx);
  TL_CUDA_CHECK_LAUNCH("avg_backward_kernel");
}

template <typename T>
void adaptive_avg_pool2d_forward(int device, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w, const T* x, T* y) {
  const int64_t total = planes * out_h * out_w;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, adaptive_forward_kernel<T>, planes, in_h, in_w, out_h, out_w, x, y);
  TL_CUDA_CHECK_LAUNCH("adaptive_forward_kernel");
}

template <typename T>
void adaptive_avg_pool2d_backward(int device, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w, const T* dy, T* dx) {
  const int64_t total = planes * in_h * in_w;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  launch_per_item(device, total, adaptive_backward_kernel<T>, planes, in_h, in_w, out_h, out_w, dy, dx);
  TL_CUDA_CHECK_LAUNCH("adaptive_backward_kernel");
}

#define TL_INSTANTIATE(T)                                                                                   \
  template void max_pool2d_forward<T>(int, const Pool2dShape&, const T*, T*, int64_t*);                     \
  template void max_pool2d_backward<T>(int, const Pool2dShape&, const T*, const int64_t*, T*);              \
  template void avg_pool2d_forward<T>(int, const Pool2dShape&, bool, const T*, T*);                         \
  template void avg_pool2d_backward<T>(int, const Pool2dShape&, bool, const T*, T*);                        \
  template void adaptive_avg_pool2d_forward<T>(int, int64_t, int64_t, int64_t, int64_t, int64_t, const T*,  \
                                               T*);                                                         \
  template void adaptive_avg_pool2d_backward<T>(int, int64_t, int64_t, int64_t, int64_t, int64_t, const T*, \
                                                T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cuda
