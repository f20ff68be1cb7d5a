// Direct convolution loops, one output (or gradient) element at a time, accumulating in double. Slow on
// purpose: every line maps to the definition, so this is what the fast paths are tested against.
#include "kernels/cpu/cpu.h"

namespace tl::kernels::cpu::ref {
namespace {

struct Layout {
  explicit Layout(const Conv2dShape& s)
      : s(s),
        P(s.out_h()),
        Q(s.out_w()),
        cin_g(s.in_channels / s.groups),
        cout_g(s.out_channels / s.groups) {}
  int64_t x_at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return ((n * s.in_channels + c) * s.in_h + h) * s.in_w + w;
  }
  int64_t y_at(int64_t n, int64_t k, int64_t p, int64_t q) const {
    return ((n * s.out_channels + k) * P + p) * Q + q;
  }
  int64_t w_at(int64_t k, int64_t c, int64_t r, int64_t t) const {
    return ((k * cin_g + c) * s.kernel_h + r) * s.kernel_w + t;
  }
  const Conv2dShape& s;
  int64_t P, Q, cin_g, cout_g;
};

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const Layout L(s);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t k = 0; k < s.out_channels; ++k) {
      const int64_t g = k / L.cout_g;
      for (int64_t p = 0; p < L.P; ++p)
        for (int64_t q = 0; q < L.Q; ++q) {
          double acc = bias ? static_cast<double>(bias[k]) : 0.0;
          for (int64_t c = 0; c < L.cin_g; ++c)
            for (int64_t r = 0; r < s.kernel_h; ++r) {
              const int64_t h = p * s.stride_h - s.pad_top + r * s.dilation_h;
              if (h < 0 || h >= s.in_h) continue;
              for (int64_t t = 0; t < s.kernel_w; ++t) {
                const int64_t wi = q * s.stride_w - s.pad_left + t * s.dilation_w;
                if (wi < 0 || wi >= s.in_w) continue;
                acc += static_cast<double>(x[L.x_at(n, g * L.cin_g + c, h, wi)]) * w[L.w_at(k, c, r, t)];
              }
            }
          y[L.y_at(n, k, p, q)] = static_cast<T>(acc);
        }
    }
}

template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const Layout L(s);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t ci = 0; ci < s.in_channels; ++ci) {
      const int64_t g = ci / L.cin_g, c = ci % L.cin_g;
      for (int64_t h = 0; h < s.in_h; ++h)
        for (int64_t wi = 0; wi < s.in_w; ++wi) {
          // Every output position (p, q) and tap (r, t) that read x[n, ci, h, wi].
          double acc = 0;
          for (int64_t k = g * L.cout_g; k < (g + 1) * L.cout_g; ++k)
            for (int64_t r = 0; r < s.kernel_h; ++r) {
              const int64_t ph = h + s.pad_top - r * s.dilation_h;
              if (ph < 0 || ph % s.stride_h != 0 || ph / s.stride_h >= L.P) continue;
              for (int64_t t = 0; t < s.kernel_w; ++t) {
                const int64_t qw = wi + s.pad_left - t * s.dilation_w;
                if (qw < 0 || qw % s.stride_w != 0 || qw / s.stride_w >= L.Q) continue;
                acc += static_cast<double>(dy[L.y_at(n, k, ph / s.stride_h, qw / s.stride_w)]) *
                       w[L.w_at(k, c, r, t)];
              }
            }
          dx[L.x_at(n, ci, h, wi)] = static_cast<T>(acc);
        }
    }
}

template <typename T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  const Layout L(s);
  for (int64_t k = 0; k < s.out_channels; ++k) {
    const int64_t g = k / L.cout_g;
    for (int64_t c = 0; c < L.cin_g; ++c)
      for (int64_t r = 0; r < s.kernel_h; ++r)
        for (int64_t t = 0; t < s.kernel_w; ++t) {
          double acc = 0;
          for (int64_t n = 0; n < s.batch; ++n)
            for (int64_t p = 0; p < L.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_top + r * s.dilation_h;
              if (h < 0 || h >= s.in_h) continue;
              for (int64_t q = 0; q < L.Q; ++q) {
                const int64_t wi = q * s.stride_w - s.pad_left + t * s.dilation_w;
                if (wi < 0 || wi >= s.in_w) continue;
                acc += static_cast<double>(dy[L.y_at(n, k, p, q)]) * x[L.x_at(n, g * L.cin_g + c, h, wi)];
              }
            }
          dw[L.w_at(k, c, r, t)] = static_cast<T>(acc);
        }
    if (dbias) {
      double acc = 0;
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t p = 0; p < L.P; ++p)
          for (int64_t q = 0; q < L.Q; ++q) acc += dy[L.y_at(n, k, p, q)];
      dbias[k] = static_cast<T>(acc);
    }
  }
}

#define TL_INSTANTIATE(T)                                                                \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data<T>(const Conv2dShape&, const T*, const T*, T*);     \
  template void conv2d_backward_filter<T>(const Conv2dShape&, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu::ref
