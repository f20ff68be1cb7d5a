// General convolution as GEMMs over an im2col column matrix, one GEMM per group and chunk (see im2col.h for
// the layout and the chunking). The GEMM is the facade's, so it follows ctx's policy (our kernel or OpenBLAS)
// and brings its own threads; the transforms around it are parallelised here, never with a GEMM inside an
// OpenMP region (and, with OpenBLAS, not in parallel at all: see transforms_in_parallel).
//   forward          Y_g[Kg, cols] = W_g[Kg, Cg*R*S] x col_g[Cg*R*S, cols]
//   backward data    col_g = W_g^T x dY_g, then col2im scatter-adds col into dx
//   backward filter  dW_g += dY_g x col_g^T over the chunks; dbias = sum of dY
// A chunk of one sample reads and writes NCHW in place (a row of Y_g is a run of its output plane, ld = P*Q);
// a chunk of folded samples goes through a [K, samples * P*Q] buffer.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"

namespace tl::kernels::cpu {
namespace conv2d_detail {
namespace {

struct Geometry {
  explicit Geometry(const Conv2dShape& s)
      : PQ(s.out_h() * s.out_w()),
        HW(s.in_h * s.in_w),
        Q(s.out_w()),
        Cg(s.in_channels / s.groups),
        Kg(s.out_channels / s.groups),
        CgRS(Cg * s.kernel_h * s.kernel_w) {}
  int64_t PQ, HW, Q, Cg, Kg, CgRS;
};

int64_t chunk_columns(const Chunk& chunk, const Geometry& g) {
  return chunk.samples * chunk.rows * g.Q;
}

// The largest chunk's column count: what the scratch buffers are sized for.
int64_t max_chunk_columns(const Conv2dShape& s, const ChunkPlan& plan, const Geometry& g) {
  return plan.max_samples(s) * plan.rows_per_chunk * g.Q;
}

// y[n, k, :] = folded[k, n - first_sample, :] + bias[k], for the chunk's samples.
template <typename T>
void unfold_output(const Conv2dShape& s, const Geometry& g, const Chunk& chunk, const T* folded,
                   const T* bias, bool parallel, T* y) {
  const int64_t cols = chunk_columns(chunk, g), K = s.out_channels;
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, chunk.samples * K * g.PQ))
  for (int64_t unit = 0; unit < chunk.samples * K; ++unit) {
    const int64_t local_n = unit / K, k = unit % K;
    const T* src = folded + k * cols + local_n * g.PQ;
    T* dst = y + ((chunk.first_sample + local_n) * K + k) * g.PQ;
    const T b = bias ? bias[k] : T(0);
    for (int64_t i = 0; i < g.PQ; ++i) dst[i] = src[i] + b;
  }
}

// folded[k, n - first_sample, :] = dy[n, k, :]: the chunk's output gradient as one [K, cols] matrix.
template <typename T>
void fold_output(const Conv2dShape& s, const Geometry& g, const Chunk& chunk, const T* dy, bool parallel,
                 T* folded) {
  const int64_t cols = chunk_columns(chunk, g), K = s.out_channels;
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, chunk.samples * K * g.PQ))
  for (int64_t unit = 0; unit < chunk.samples * K; ++unit) {
    const int64_t local_n = unit / K, k = unit % K;
    std::memcpy(folded + k * cols + local_n * g.PQ, dy + ((chunk.first_sample + local_n) * K + k) * g.PQ,
                sizeof(T) * g.PQ);
  }
}

// Adds bias to output rows [first_row, first_row + rows) of the chunk's samples, written in place.
template <typename T>
void add_bias(const Conv2dShape& s, const Geometry& g, const Chunk& chunk, const T* bias, bool parallel,
              T* y) {
  if (!bias) return;
  const int64_t K = s.out_channels, begin = chunk.first_row * g.Q, end = begin + chunk.rows * g.Q;
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, chunk.samples * K * g.PQ))
  for (int64_t unit = 0; unit < chunk.samples * K; ++unit) {
    const int64_t n = chunk.first_sample + unit / K, k = unit % K;
    T* row = y + (n * K + k) * g.PQ;
    for (int64_t i = begin; i < end; ++i) row[i] += bias[k];
  }
}

// Where a chunk's [K, cols] output (or output gradient) lives and its row stride: in place for one sample.
template <typename T>
struct OutputView {
  T* data;
  int64_t ld;
};

template <typename T>
OutputView<T> in_place_view(const Conv2dShape& s, const Geometry& g, const Chunk& chunk, T* y) {
  return {y + chunk.first_sample * s.out_channels * g.PQ + chunk.first_row * g.Q, g.PQ};
}

template <typename T>
void bias_gradient(const Conv2dShape& s, const Geometry& g, const T* dy, bool parallel, T* dbias) {
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, s.batch * s.out_channels * g.PQ))
  for (int64_t k = 0; k < s.out_channels; ++k) {
    double acc = 0;
    for (int64_t n = 0; n < s.batch; ++n) {
      const T* row = dy + (n * s.out_channels + k) * g.PQ;
      for (int64_t i = 0; i < g.PQ; ++i) acc += row[i];
    }
    dbias[k] = static_cast<T>(acc);
  }
}

// ---- pointwise (1x1, stride 1, no padding), one sample per GEMM: no column matrix at all -----------------

template <typename T>
void pointwise_forward(const Context& ctx, const Conv2dShape& s, const Geometry& g, const T* x, const T* w,
                       T* y) {
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, false, false, g.Kg, g.PQ, g.Cg, T(1), w + grp * g.Kg * g.Cg, g.Cg,
                           x + (n * s.in_channels + grp * g.Cg) * g.HW, g.HW, T(0),
                           y + (n * s.out_channels + grp * g.Kg) * g.PQ, g.PQ);
}

template <typename T>
void pointwise_backward_data(const Context& ctx, const Conv2dShape& s, const Geometry& g, const T* dy,
                             const T* w, T* dx) {
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, true, false, g.Cg, g.HW, g.Kg, T(1), w + grp * g.Kg * g.Cg, g.Cg,
                           dy + (n * s.out_channels + grp * g.Kg) * g.PQ, g.PQ, T(0),
                           dx + (n * s.in_channels + grp * g.Cg) * g.HW, g.HW);
}

template <typename T>
void pointwise_backward_filter(const Context& ctx, const Conv2dShape& s, const Geometry& g, const T* x,
                               const T* dy, T* dw) {
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, false, true, g.Kg, g.Cg, g.PQ, T(1),
                           dy + (n * s.out_channels + grp * g.Kg) * g.PQ, g.PQ,
                           x + (n * s.in_channels + grp * g.Cg) * g.HW, g.HW, n == 0 ? T(0) : T(1),
                           dw + grp * g.Kg * g.Cg, g.Cg);
}

bool use_pointwise(const Conv2dShape& s, const ChunkPlan& plan) {
  return is_pointwise(s) && !plan.folds(s);
}

// OpenBLAS (the vendor GEMM) runs its own pthreads, which spin for a while after each call, so OpenMP threads
// running a transform between two GEMMs fight them for the cores (on 2 cores the stem ran at 48 GFLOP/s this
// way against 116 with the transforms on the calling thread). Our GEMM runs on the same OpenMP threads, so
// with it the transforms run in parallel.
bool transforms_in_parallel(const Context& ctx) {
  return ctx.policy == Policy::Native;
}

}  // namespace

template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y,
                    const ChunkLimits& limits) {
  const Geometry g(s);
  const bool parallel = transforms_in_parallel(ctx);
  const ChunkPlan plan = plan_chunks(s, sizeof(T), limits);
  if (use_pointwise(s, plan)) {
    pointwise_forward(ctx, s, g, x, w, y);
    return add_bias(s, g, Chunk{0, s.batch, 0, s.out_h()}, bias, parallel, y);
  }
  const int64_t max_cols = max_chunk_columns(s, plan, g);
  std::vector<T> col(s.in_channels * s.kernel_h * s.kernel_w * max_cols);
  std::vector<T> folded(plan.folds(s) ? s.out_channels * max_cols : 0);
  for (int64_t i = 0; i < plan.chunk_count(s); ++i) {
    const Chunk chunk = plan.chunk(s, i);
    const int64_t cols = chunk_columns(chunk, g);
    im2col(s, x, chunk, parallel, col.data());
    const OutputView<T> out =
        chunk.samples == 1 ? in_place_view(s, g, chunk, y) : OutputView<T>{folded.data(), cols};
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, false, false, g.Kg, cols, g.CgRS, T(1), w + grp * g.Kg * g.CgRS, g.CgRS,
                           col.data() + grp * g.CgRS * cols, cols, T(0), out.data + grp * g.Kg * out.ld,
                           out.ld);
    if (chunk.samples == 1) {
      add_bias(s, g, chunk, bias, parallel, y);
    } else {
      unfold_output(s, g, chunk, folded.data(), bias, parallel, y);
    }
  }
}

template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx,
                          const ChunkLimits& limits) {
  const Geometry g(s);
  const bool parallel = transforms_in_parallel(ctx);
  const ChunkPlan plan = plan_chunks(s, sizeof(T), limits);
  if (use_pointwise(s, plan)) return pointwise_backward_data(ctx, s, g, dy, w, dx);
  const int64_t max_cols = max_chunk_columns(s, plan, g);
  std::vector<T> col(s.in_channels * s.kernel_h * s.kernel_w * max_cols);
  std::vector<T> folded(plan.folds(s) ? s.out_channels * max_cols : 0);
  for (int64_t i = 0; i < plan.chunk_count(s); ++i) {
    const Chunk chunk = plan.chunk(s, i);
    const int64_t cols = chunk_columns(chunk, g);
    OutputView<const T> grad{nullptr, cols};
    if (chunk.samples == 1) {
      grad = in_place_view(s, g, chunk, dy);
    } else {
      fold_output(s, g, chunk, dy, parallel, folded.data());
      grad.data = folded.data();
    }
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, true, false, g.CgRS, cols, g.Kg, T(1), w + grp * g.Kg * g.CgRS, g.CgRS,
                           grad.data + grp * g.Kg * grad.ld, grad.ld, T(0), col.data() + grp * g.CgRS * cols,
                           cols);
    col2im(s, col.data(), chunk, parallel, dx);
  }
}

template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias, const ChunkLimits& limits) {
  const Geometry g(s);
  const bool parallel = transforms_in_parallel(ctx);
  if (dbias) bias_gradient(s, g, dy, parallel, dbias);
  if (!dw) return;
  if (s.batch == 0) return std::fill(dw, dw + s.out_channels * g.CgRS, T(0));
  const ChunkPlan plan = plan_chunks(s, sizeof(T), limits);
  if (use_pointwise(s, plan)) return pointwise_backward_filter(ctx, s, g, x, dy, dw);
  const int64_t max_cols = max_chunk_columns(s, plan, g);
  std::vector<T> col(s.in_channels * s.kernel_h * s.kernel_w * max_cols);
  std::vector<T> folded(plan.folds(s) ? s.out_channels * max_cols : 0);
  for (int64_t i = 0; i < plan.chunk_count(s); ++i) {
    const Chunk chunk = plan.chunk(s, i);
    const int64_t cols = chunk_columns(chunk, g);
    im2col(s, x, chunk, parallel, col.data());
    OutputView<const T> grad{nullptr, cols};
    if (chunk.samples == 1) {
      grad = in_place_view(s, g, chunk, dy);
    } else {
      fold_output(s, g, chunk, dy, parallel, folded.data());
      grad.data = folded.data();
    }
    // The first chunk overwrites dw (it may hold NaN), the others accumulate into it.
    for (int64_t grp = 0; grp < s.groups; ++grp)
      tl::kernels::gemm<T>(ctx, false, true, g.Kg, g.CgRS, cols, T(1), grad.data + grp * g.Kg * grad.ld,
                           grad.ld, col.data() + grp * g.CgRS * cols, cols, i == 0 ? T(0) : T(1),
                           dw + grp * g.Kg * g.CgRS, g.CgRS);
  }
}

}  // namespace conv2d_detail

template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  conv2d_detail::conv2d_forward(ctx, s, x, w, bias, y, conv2d_detail::ChunkLimits{});
}
template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  conv2d_detail::conv2d_backward_data(ctx, s, dy, w, dx, conv2d_detail::ChunkLimits{});
}
template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias) {
  conv2d_detail::conv2d_backward_filter(ctx, s, x, dy, dw, dbias, conv2d_detail::ChunkLimits{});
}

#define TL_INSTANTIATE(T)                                                                                  \
  template void conv2d_forward<T>(const Context&, const Conv2dShape&, const T*, const T*, const T*, T*);   \
  template void conv2d_backward_data<T>(const Context&, const Conv2dShape&, const T*, const T*, T*);       \
  template void conv2d_backward_filter<T>(const Context&, const Conv2dShape&, const T*, const T*, T*, T*); \
  template void conv2d_detail::conv2d_forward<T>(const Context&, const Conv2dShape&, const T*, const T*,   \
                                                 const T*, T*, const conv2d_detail::ChunkLimits&);         \
  template void conv2d_detail::conv2d_backward_data<T>(const Context&, const Conv2dShape&, const T*,       \
                                                       const T*, T*, const conv2d_detail::ChunkLimits&);   \
  template void conv2d_detail::conv2d_backward_filter<T>(                                                  \
      const Context&, const Conv2dShape&, const T*, const T*, T*, T*, const conv2d_detail::ChunkLimits&);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu
