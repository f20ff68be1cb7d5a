// Max, average and adaptive-average pooling over independent planes (one OpenMP task per plane), with
// PyTorch's window rules: max treats padding as -inf; average divides by the window clipped to the padded
// input (count_include_pad) or by the number of real elements in it.
#include <algorithm>
#include <limits>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {
namespace {

// One output cell's window in input coordinates: [h0, h1) x [w0, w1) clipped to the input, and the size of
// the window clipped to the padded input (the count_include_pad divisor).
struct Window {
  int64_t h0, h1, w0, w1, padded_size;
};

Window window_at(const Pool2dShape& s, int64_t p, int64_t q) {
  const int64_t hs = p * s.stride_h - s.pad_top, ws = q * s.stride_w - s.pad_left;
  const int64_t he = std::min(hs + s.kernel_h, s.in_h + s.pad_bottom);
  const int64_t we = std::min(ws + s.kernel_w, s.in_w + s.pad_right);
  return {std::max<int64_t>(hs, 0), std::min(he, s.in_h), std::max<int64_t>(ws, 0), std::min(we, s.in_w),
          (he - hs) * (we - ws)};
}

int64_t avg_divisor(const Window& win, bool count_include_pad) {
  return count_include_pad ? win.padded_size : (win.h1 - win.h0) * (win.w1 - win.w0);
}

int64_t adaptive_start(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int64_t* argmax) {
  const int64_t P = s.out_h(), Q = s.out_w(), plane_in = s.in_h * s.in_w;
#pragma omp parallel for schedule(static) if (s.planes * plane_in > kParallelGrain)
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    const T* xp = x + pl * plane_in;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const Window win = window_at(s, p, q);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_at = win.h0 * s.in_w + win.w0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) {
            const T v = xp[h * s.in_w + w];
            if (v > best || v != v) {  // NaN wins, as in PyTorch, so it is never hidden
              best = v;
              best_at = h * s.in_w + w;
              if (v != v) goto done;
            }
          }
      done:
        const int64_t o = (pl * P + p) * Q + q;
        y[o] = best;
        if (argmax) argmax[o] = best_at;
      }
  }
}

template <typename T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t P = s.out_h(), Q = s.out_w(), plane_in = s.in_h * s.in_w;
#pragma omp parallel for schedule(static) if (s.planes * plane_in > kParallelGrain)
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    T* dxp = dx + pl * plane_in;
    std::fill(dxp, dxp + plane_in, T(0));
    for (int64_t o = pl * P * Q; o < (pl + 1) * P * Q; ++o) dxp[argmax[o]] += dy[o];
  }
}

template <typename T>
void avg_pool2d_forward(const Pool2dShape& s, bool count_include_pad, const T* x, T* y) {
  const int64_t P = s.out_h(), Q = s.out_w(), plane_in = s.in_h * s.in_w;
#pragma omp parallel for schedule(static) if (s.planes * plane_in > kParallelGrain)
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    const T* xp = x + pl * plane_in;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const Window win = window_at(s, p, q);
        double acc = 0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) acc += xp[h * s.in_w + w];
        const int64_t divisor = avg_divisor(win, count_include_pad);
        y[(pl * P + p) * Q + q] = static_cast<T>(divisor > 0 ? acc / divisor : 0.0);
      }
  }
}

template <typename T>
void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, const T* dy, T* dx) {
  const int64_t P = s.out_h(), Q = s.out_w(), plane_in = s.in_h * s.in_w;
#pragma omp parallel for schedule(static) if (s.planes * plane_in > kParallelGrain)
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    T* dxp = dx + pl * plane_in;
    std::fill(dxp, dxp + plane_in, T(0));
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const Window win = window_at(s, p, q);
        const int64_t divisor = avg_divisor(win, count_include_pad);
        if (divisor == 0) continue;
        const T g = dy[(pl * P + p) * Q + q] / static_cast<T>(divisor);
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) dxp[h * s.in_w + w] += g;
      }
  }
}

template <typename T>
void adaptive_avg_pool2d_forward(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                 const T* x, T* y) {
#pragma omp parallel for schedule(static) if (planes * in_h * in_w > kParallelGrain)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_h * in_w;
    for (int64_t i = 0; i < out_h; ++i) {
      const int64_t h0 = adaptive_start(i, in_h, out_h), h1 = adaptive_end(i, in_h, out_h);
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t w0 = adaptive_start(j, in_w, out_w), w1 = adaptive_end(j, in_w, out_w);
        double acc = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) acc += xp[h * in_w + w];
        y[(pl * out_h + i) * out_w + j] = static_cast<T>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool2d_backward(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                  const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (planes * in_h * in_w > kParallelGrain)
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* dxp = dx + pl * in_h * in_w;
    std::fill(dxp, dxp + in_h * in_w, T(0));
    for (int64_t i = 0; i < out_h; ++i) {
      const int64_t h0 = adaptive_start(i, in_h, out_h), h1 = adaptive_end(i, in_h, out_h);
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t w0 = adaptive_start(j, in_w, out_w), w1 = adaptive_end(j, in_w, out_w);
        const T g = dy[(pl * out_h + i) * out_w + j] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dxp[h * in_w + w] += g;
      }
    }
  }
}

#define TL_INSTANTIATE(T)                                                                                  \
  template void max_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int64_t*);                         \
  template void max_pool2d_backward<T>(const Pool2dShape&, const T*, const int64_t*, T*);                  \
  template void avg_pool2d_forward<T>(const Pool2dShape&, bool, const T*, T*);                             \
  template void avg_pool2d_backward<T>(const Pool2dShape&, bool, const T*, T*);                            \
  template void adaptive_avg_pool2d_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*); \
  template void adaptive_avg_pool2d_backward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu
