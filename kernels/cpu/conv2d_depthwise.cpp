// Depthwise convolution (groups == in_channels == out_channels): each (sample, channel) plane meets its own
// R x S filter. A GEMM would have one row per group, so the loops are written directly:
//   forward          one correlation per plane, OpenMP over the N * C planes
//   backward data    the correlation of dy (spread out by the stride) with the filter turned by 180 degrees,
//                    on the same plane kernels as forward
//   backward filter  OpenMP over channels, each reducing over the batch itself, so nothing is shared;
//                    per plane, one dot product per tap over the zero-bordered, flattened plane
// 3x3 and 5x5 filters with stride 1 or 2 and no dilation (MobileNet's) take fixed-size loops with no bounds
// checks on interior columns (or, for short rows, over the flattened plane); every other shape takes the
// general loops. Every inner loop runs along the output with unit (or compile-time) stride, so it vectorises.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"

namespace tl::kernels::cpu {
namespace {

using conv2d_detail::kAnyStride;
using conv2d_detail::Span;
using conv2d_detail::valid_span;
using conv2d_detail::worth_parallel;

// ---- forward (and stride-1 backward data): one plane's correlation ----------------------------------------

// out[p][q] = bias + sum over (r, t) of w[r][t] * in[p * stride_h - pad_top + r * dilation_h]
//                                                   [q * stride_w - pad_left + t * dilation_w],
// zero outside `in`. The output size is given rather than derived, so backward data can run it on dy.
struct PlaneConv {
  int64_t in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
};

PlaneConv forward_plane(const Conv2dShape& s) {
  return {s.in_h,     s.in_w,     s.out_h(), s.out_w(),  s.kernel_h,   s.kernel_w,
          s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.dilation_h, s.dilation_w};
}

// Stride-1 backward data: dx[h][w] = sum of w[r][t] * dy[h + pad_top - r * d][...], which is a correlation of
// dy with the rotated filter and padding (R - 1) * d - pad.
PlaneConv transposed_plane(const Conv2dShape& s) {
  return {s.out_h(),
          s.out_w(),
          s.in_h,
          s.in_w,
          s.kernel_h,
          s.kernel_w,
          1,
          1,
          (s.kernel_h - 1) * s.dilation_h - s.pad_top,
          (s.kernel_w - 1) * s.dilation_w - s.pad_left,
          s.dilation_h,
          s.dilation_w};
}

template <typename T, int kStride>
TL_CONV_SIMD_CLONES void correlate_general(const PlaneConv& g, const T* in, const T* w, T bias, T* out) {
  const int64_t stride = kStride == kAnyStride ? g.stride_w : kStride;
  for (int64_t p = 0; p < g.out_h; ++p) {
    T* o = out + p * g.out_w;
    std::fill(o, o + g.out_w, bias);
    for (int64_t r = 0; r < g.kernel_h; ++r) {
      const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
      if (h < 0 || h >= g.in_h) continue;
      const T* row = in + h * g.in_w;
      for (int64_t t = 0; t < g.kernel_w; ++t) {
        const int64_t offset = t * g.dilation_w - g.pad_left;
        const Span span = valid_span(offset, stride, g.in_w, g.out_w);
        const T wv = w[r * g.kernel_w + t];
#pragma omp simd
        for (int64_t q = span.begin; q < span.end; ++q) o[q] += wv * row[q * stride + offset];
      }
    }
  }
}

// Compile-time taps and stride. On the interior columns, where all K taps fall inside the row, there is no
// bounds check, so the loop over q vectorises; rows in the padding point at a row of zeros instead of being
// tested.
template <typename T, int K, int Stride>
TL_CONV_SIMD_CLONES void correlate_fixed(const PlaneConv& g, const T* in, const T* w, T bias,
                                         const T* zero_row, T* out) {
  T taps[K * K];  // a copy the compiler knows no store to `out` can change
  std::copy(w, w + K * K, taps);
  const Span inner = valid_span(-g.pad_left, Stride, g.in_w - (K - 1), g.out_w);
  for (int64_t p = 0; p < g.out_h; ++p) {
    const T* rows[K];
    for (int r = 0; r < K; ++r) {
      const int64_t h = p * Stride - g.pad_top + r;
      rows[r] = h >= 0 && h < g.in_h ? in + h * g.in_w : zero_row;
    }
    const auto edge = [&](int64_t q) {
      T acc = bias;
      for (int r = 0; r < K; ++r)
        for (int t = 0; t < K; ++t) {
          const int64_t col = q * Stride - g.pad_left + t;
          if (col >= 0 && col < g.in_w) acc += taps[r * K + t] * rows[r][col];
        }
      return acc;
    };
    T* o = out + p * g.out_w;
    for (int64_t q = 0; q < inner.begin; ++q) o[q] = edge(q);
#pragma omp simd
    for (int64_t q = inner.begin; q < inner.end; ++q) {
      const int64_t col = q * Stride - g.pad_left;
      T acc = bias;
      for (int r = 0; r < K; ++r)
        for (int t = 0; t < K; ++t) acc += taps[r * K + t] * rows[r][col + t];
      o[q] = acc;
    }
    for (int64_t q = inner.end; q < g.out_w; ++q) o[q] = edge(q);
  }
}

// Short rows (MobileNet's 14x14 and 7x7 planes) leave the row loops above mostly edge columns and vector
// remainders. For them the input is copied into a zero-bordered plane xp of pitch `pitch` (in[h][w] at
// xp[(h + pad_top) * pitch + w + pad_left]) and the output computed as one flattened row:
//   flat[i] = bias + sum over (r, t) of w[r][t] * xp[stride * i + r * pitch + t],  i = p * pitch + q,
// of which columns q < out_w are kept. Only the same interior of xp is written for every plane, so its
// borders stay zero from the first fill.
struct FlatLayout {
  FlatLayout(const PlaneConv& g, int64_t k, int64_t stride)
      : pitch(std::max(g.pad_left + g.in_w, (g.out_w - 1) * stride + k)),
        rows(std::max(g.pad_top + g.in_h, stride * g.out_h + k)),
        length(g.out_h * pitch) {}
  int64_t pitch, rows, length;
};

// Whether a plane takes correlate_fixed (and, for short rows, correlate_flat), and with which taps and
// stride.
struct FixedKernel {
  explicit FixedKernel(const PlaneConv& g)
      : k(g.kernel_h),
        stride(g.stride_h),
        fixed(g.kernel_h == g.kernel_w && (k == 3 || k == 5) && g.stride_h == g.stride_w &&
              (stride == 1 || stride == 2) && g.dilation_h == 1 && g.dilation_w == 1),
        flat(fixed && g.out_w < 32 && g.pad_top >= 0 && g.pad_left >= 0) {}
  int64_t k, stride;
  bool fixed, flat;
};

template <typename T, int K, int Stride>
TL_CONV_SIMD_CLONES void correlate_flat(const PlaneConv& g, const FlatLayout& f, const T* in, const T* w,
                                        T bias, T* xp, T* flat, T* out) {
  T taps[K * K];
  std::copy(w, w + K * K, taps);
  for (int64_t h = 0; h < g.in_h; ++h)
    std::copy(in + h * g.in_w, in + (h + 1) * g.in_w, xp + (h + g.pad_top) * f.pitch + g.pad_left);
#pragma omp simd
  for (int64_t i = 0; i < f.length; ++i) {
    const T* x = xp + i * Stride;
    T acc = bias;
    for (int r = 0; r < K; ++r)
      for (int t = 0; t < K; ++t) acc += taps[r * K + t] * x[r * f.pitch + t];
    flat[i] = acc;
  }
  for (int64_t p = 0; p < g.out_h; ++p)
    std::copy(flat + p * f.pitch, flat + p * f.pitch + g.out_w, out + p * g.out_w);
}

// One thread's buffers for the planes of one call: the row of zeros correlate_fixed reads in the padding, and
// correlate_flat's planes.
template <typename T>
struct PlaneBuffers {
  explicit PlaneBuffers(const PlaneConv& g)
      : kernel(g),
        layout(g, kernel.k, kernel.stride),
        zero_row(g.in_w, T(0)),
        xp(kernel.flat ? layout.rows * layout.pitch : 0, T(0)),
        flat(kernel.flat ? layout.length : 0) {}
  FixedKernel kernel;
  FlatLayout layout;
  std::vector<T> zero_row, xp, flat;
};

template <typename T>
void correlate_plane(const PlaneConv& g, const T* in, const T* w, T bias, PlaneBuffers<T>& b, T* out) {
  const int64_t k = b.kernel.k, stride = b.kernel.stride;
  if (b.kernel.flat) {
    const auto run = k == 3 ? (stride == 1 ? correlate_flat<T, 3, 1> : correlate_flat<T, 3, 2>)
                            : (stride == 1 ? correlate_flat<T, 5, 1> : correlate_flat<T, 5, 2>);
    return run(g, b.layout, in, w, bias, b.xp.data(), b.flat.data(), out);
  }
  if (b.kernel.fixed) {
    const auto run = k == 3 ? (stride == 1 ? correlate_fixed<T, 3, 1> : correlate_fixed<T, 3, 2>)
                            : (stride == 1 ? correlate_fixed<T, 5, 1> : correlate_fixed<T, 5, 2>);
    return run(g, in, w, bias, b.zero_row.data(), out);
  }
  if (g.stride_w == 1) return correlate_general<T, 1>(g, in, w, bias, out);
  if (g.stride_w == 2) return correlate_general<T, 2>(g, in, w, bias, out);
  correlate_general<T, kAnyStride>(g, in, w, bias, out);
}

// ---- strided backward data: dy spread out by the stride, then the stride-1 correlation --------------------

// With stride S, dy[p][q] lands at (p * S, q * S) of an upsampled plane that is zero elsewhere, and dx is the
// stride-1 correlation of that plane with the rotated filter. A scatter-add of dy rows into dx would store
// with the stride, which does not vectorise; this runs the vectorised fixed-size loops on every row, at the
// price of multiplying the zeros (S * S times the useful work, which is small for a depthwise layer).
PlaneConv upsampled_transposed_plane(const Conv2dShape& s) {
  PlaneConv g = transposed_plane(s);
  g.in_h = (s.out_h() - 1) * s.stride_h + 1;
  g.in_w = (s.out_w() - 1) * s.stride_w + 1;
  return g;
}

// Writes dy into the positions (p * stride_h, q * stride_w) of `up`, whose other entries stay zero from the
// first fill, since every plane writes the same positions.
template <typename T>
void spread_plane(const Conv2dShape& s, const PlaneConv& g, const T* dy, T* up) {
  const int64_t P = s.out_h(), Q = s.out_w();
  for (int64_t p = 0; p < P; ++p) {
    T* row = up + p * s.stride_h * g.in_w;
    for (int64_t q = 0; q < Q; ++q) row[q * s.stride_w] = dy[p * Q + q];
  }
}

// ---- backward filter: one plane's contribution to its channel's filter gradient ---------------------------

// With equal strides S, x copied into a zero-bordered plane xp of pitch `pitch` (x[h][w] at
// xp[(h + pad_top) * pitch + w + pad_left]) and dy into a plane gp of the same pitch (zeros past column Q),
//   dw[r][t] = sum over i in [0, P * pitch) of gp[i] * xp[S * i + r * dilation_h * pitch + t * dilation_w]:
// one long dot product per tap over the flattened plane, with no bounds checks and no short rows. The zeros
// of gp cancel the columns that wrap into the next row: a fraction 1 - Q / pitch of the work, near 1 - 1/S.
struct FlatPlanes {
  explicit FlatPlanes(const Conv2dShape& s)
      : pitch(std::max(s.pad_left + s.in_w,
                       (s.out_w() - 1) * s.stride_w + (s.kernel_w - 1) * s.dilation_w + 1)),
        rows(std::max(s.pad_top + s.in_h, s.stride_h * s.out_h() + (s.kernel_h - 1) * s.dilation_h + 1) + 1),
        dots(s.out_h() * pitch) {}
  int64_t pitch, rows, dots;
};

// Copies one plane of x and dy into xp and gp. Only the same interior positions are written for every plane,
// so the borders stay zero from the first fill.
template <typename T>
void fill_flat_planes(const Conv2dShape& s, const FlatPlanes& f, const T* x, const T* dy, T* xp, T* gp) {
  for (int64_t h = 0; h < s.in_h; ++h)
    std::copy(x + h * s.in_w, x + (h + 1) * s.in_w, xp + (h + s.pad_top) * f.pitch + s.pad_left);
  const int64_t Q = s.out_w();
  for (int64_t p = 0; p < s.out_h(); ++p) std::copy(dy + p * Q, dy + (p + 1) * Q, gp + p * f.pitch);
}

// out[t] += sum over i in [0, n) of g[i] * x[i * Stride + t], t in [0, K): K accumulators held in registers.
template <typename T, int K, int Stride>
TL_CONV_SIMD_CLONES void row_of_tap_dots(const T* g, const T* x, int64_t n, double* out) {
  static_assert(K == 3 || K == 5);
  T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T* xi = x + i * Stride;
    a0 += gi * xi[0];
    a1 += gi * xi[1];
    a2 += gi * xi[2];
    if constexpr (K == 5) {
      a3 += gi * xi[3];
      a4 += gi * xi[4];
    }
  }
  const T sums[5] = {a0, a1, a2, a3, a4};
  for (int t = 0; t < K; ++t) out[t] += sums[t];
}

// sum over i in [0, n) of g[i] * x[i * stride].
template <typename T, int kStride>
TL_CONV_SIMD_CLONES T strided_dot(const T* g, const T* x, int64_t n, int64_t run_time_stride) {
  const int64_t stride = kStride == kAnyStride ? run_time_stride : kStride;
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t i = 0; i < n; ++i) dot += g[i] * x[i * stride];
  return dot;
}

// The fused dot products for MobileNet's filters, or null for any other filter.
template <typename T>
auto fixed_tap_dots(const Conv2dShape& s) -> void (*)(const T*, const T*, int64_t, double*) {
  const int64_t k = s.kernel_h, stride = s.stride_w;
  const bool fixed = s.kernel_h == s.kernel_w && (k == 3 || k == 5) && (stride == 1 || stride == 2) &&
                     s.dilation_h == 1 && s.dilation_w == 1;
  if (!fixed) return nullptr;
  return k == 3 ? (stride == 1 ? row_of_tap_dots<T, 3, 1> : row_of_tap_dots<T, 3, 2>)
                : (stride == 1 ? row_of_tap_dots<T, 5, 1> : row_of_tap_dots<T, 5, 2>);
}

// acc[r][t] += this plane's dw[r][t]; xp and gp as filled by fill_flat_planes.
template <typename T>
void flat_filter_gradient(const Conv2dShape& s, const FlatPlanes& f, const T* xp, const T* gp, double* acc) {
  const int64_t stride = s.stride_w;
  const auto fixed = fixed_tap_dots<T>(s);
  for (int64_t r = 0; r < s.kernel_h; ++r) {
    const T* x_row = xp + r * s.dilation_h * f.pitch;
    double* out = acc + r * s.kernel_w;
    if (fixed) {
      fixed(gp, x_row, f.dots, out);
      continue;
    }
    for (int64_t t = 0; t < s.kernel_w; ++t) {
      const T* x_tap = x_row + t * s.dilation_w;
      out[t] += stride == 1   ? strided_dot<T, 1>(gp, x_tap, f.dots, 1)
                : stride == 2 ? strided_dot<T, 2>(gp, x_tap, f.dots, 2)
                              : strided_dot<T, kAnyStride>(gp, x_tap, f.dots, stride);
    }
  }
}

// Unequal strides (which the flattened form cannot express): one dot product per (output row, tap).
template <typename T>
void rowwise_filter_gradient(const Conv2dShape& s, const T* x, const T* dy, double* acc) {
  const int64_t P = s.out_h(), Q = s.out_w();
  for (int64_t p = 0; p < P; ++p) {
    const T* grad = dy + p * Q;
    for (int64_t r = 0; r < s.kernel_h; ++r) {
      const int64_t h = p * s.stride_h - s.pad_top + r * s.dilation_h;
      if (h < 0 || h >= s.in_h) continue;
      const T* row = x + h * s.in_w;
      for (int64_t t = 0; t < s.kernel_w; ++t) {
        const int64_t offset = t * s.dilation_w - s.pad_left;
        const Span span = valid_span(offset, s.stride_w, s.in_w, Q);
        if (span.end > span.begin)
          acc[r * s.kernel_w + t] += strided_dot<T, kAnyStride>(
              grad + span.begin, row + span.begin * s.stride_w + offset, span.end - span.begin, s.stride_w);
      }
    }
  }
}

template <typename T>
double plane_sum(const T* v, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += v[i];
  return acc;
}

}  // namespace

template <typename T>
void depthwise_conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const PlaneConv g = forward_plane(s);
  const int64_t C = s.in_channels, taps = s.kernel_h * s.kernel_w;
#pragma omp parallel if (worth_parallel(true, s.batch * C * g.out_h * g.out_w * taps))
  {
    PlaneBuffers<T> buffers(g);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < s.batch * C; ++plane) {
      const int64_t c = plane % C;
      correlate_plane(g, x + plane * g.in_h * g.in_w, w + c * taps, bias ? bias[c] : T(0), buffers,
                      y + plane * g.out_h * g.out_w);
    }
  }
}

template <typename T>
void depthwise_conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t C = s.in_channels, taps = s.kernel_h * s.kernel_w;
  const int64_t HW = s.in_h * s.in_w, PQ = s.out_h() * s.out_w();
  std::vector<T> rotated(C * taps);  // each channel's filter turned by 180 degrees
  for (int64_t c = 0; c < C; ++c)
    std::reverse_copy(w + c * taps, w + (c + 1) * taps, rotated.data() + c * taps);
  const bool strided = s.stride_h != 1 || s.stride_w != 1;
  const PlaneConv g = strided ? upsampled_transposed_plane(s) : transposed_plane(s);
#pragma omp parallel if (worth_parallel(true, s.batch * C * HW * taps))
  {
    PlaneBuffers<T> buffers(g);
    std::vector<T> upsampled(strided ? g.in_h * g.in_w : 0, T(0));
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < s.batch * C; ++plane) {
      const T* grad = dy + plane * PQ;
      if (strided) {
        spread_plane(s, g, grad, upsampled.data());
        grad = upsampled.data();
      }
      correlate_plane(g, grad, rotated.data() + plane % C * taps, T(0), buffers, dx + plane * HW);
    }
  }
}

template <typename T>
void depthwise_conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  const int64_t C = s.in_channels, taps = s.kernel_h * s.kernel_w;
  const int64_t HW = s.in_h * s.in_w, PQ = s.out_h() * s.out_w();
  const bool flat = s.stride_h == s.stride_w;
  const FlatPlanes f(s);
#pragma omp parallel if (worth_parallel(true, s.batch * C * PQ * taps))
  {
    // Per thread: the flattened planes.
    std::vector<T> xp(dw && flat ? f.rows * f.pitch : 0, T(0)), gp(dw && flat ? f.dots : 0, T(0));
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < C; ++c) {
      std::vector<double> acc(taps, 0.0);
      double bias_acc = 0;
      for (int64_t n = 0; n < s.batch; ++n) {
        const T* x_plane = x + (n * C + c) * HW;
        const T* grad = dy + (n * C + c) * PQ;
        if (dw && flat) {
          fill_flat_planes(s, f, x_plane, grad, xp.data(), gp.data());
          flat_filter_gradient(s, f, xp.data(), gp.data(), acc.data());
        } else if (dw) {
          rowwise_filter_gradient(s, x_plane, grad, acc.data());
        }
        if (dbias) bias_acc += plane_sum(grad, PQ);
      }
      if (dw)
        for (int64_t i = 0; i < taps; ++i) dw[c * taps + i] = static_cast<T>(acc[i]);
      if (dbias) dbias[c] = static_cast<T>(bias_acc);
    }
  }
}

#define TL_INSTANTIATE(T)                                                                          \
  template void depthwise_conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void depthwise_conv2d_backward_data<T>(const Conv2dShape&, const T*, const T*, T*);     \
  template void depthwise_conv2d_backward_filter<T>(const Conv2dShape&, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu
