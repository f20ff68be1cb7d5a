// Chunk planning and the im2col / col2im transforms behind the im2col convolution (see im2col.h).
#include "kernels/cpu/im2col.h"

#include <algorithm>

namespace tl::kernels::cpu::conv2d_detail {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Where input row / column `tap` of the filter lands for output row / column 0.
int64_t tap_offset(int64_t tap, int64_t dilation, int64_t pad) {
  return tap * dilation - pad;
}

// Column-matrix row (c, r, t) of the chunk (layout in im2col.h): Q values per sample and output row, zeros in
// the padding.
template <typename T, int kStride>
TL_CONV_SIMD_CLONES void fill_column_row(const Conv2dShape& s, const T* x, const Chunk& chunk, int64_t c,
                                         int64_t r, int64_t t, T* out) {
  const int64_t stride = kStride == kAnyStride ? s.stride_w : kStride;
  const int64_t Q = s.out_w(), offset = tap_offset(t, s.dilation_w, s.pad_left);
  const Span span = valid_span(offset, stride, s.in_w, Q);
  for (int64_t n = chunk.first_sample; n < chunk.first_sample + chunk.samples; ++n) {
    const T* x_plane = x + (n * s.in_channels + c) * s.in_h * s.in_w;
    for (int64_t p = chunk.first_row; p < chunk.first_row + chunk.rows; ++p, out += Q) {
      const int64_t h = p * s.stride_h + tap_offset(r, s.dilation_h, s.pad_top);
      if (h < 0 || h >= s.in_h) {
        std::fill(out, out + Q, T(0));
        continue;
      }
      const T* in = x_plane + h * s.in_w;
      std::fill(out, out + span.begin, T(0));
      for (int64_t q = span.begin; q < span.end; ++q) out[q] = in[q * stride + offset];
      std::fill(out + span.end, out + Q, T(0));
    }
  }
}

// Adds sample `local_n`'s entries of the column rows of channel c into its dx plane.
template <typename T, int kStride>
TL_CONV_SIMD_CLONES void add_columns_to_plane(const Conv2dShape& s, const T* col, const Chunk& chunk,
                                              int64_t local_n, int64_t c, T* dx_plane) {
  const int64_t stride = kStride == kAnyStride ? s.stride_w : kStride;
  const int64_t R = s.kernel_h, S = s.kernel_w, Q = s.out_w(), cols = chunk.samples * chunk.rows * Q;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < S; ++t) {
      const int64_t offset = tap_offset(t, s.dilation_w, s.pad_left);
      const Span span = valid_span(offset, stride, s.in_w, Q);
      const T* in = col + ((c * R + r) * S + t) * cols + local_n * chunk.rows * Q;
      for (int64_t p = chunk.first_row; p < chunk.first_row + chunk.rows; ++p, in += Q) {
        const int64_t h = p * s.stride_h + tap_offset(r, s.dilation_h, s.pad_top);
        if (h < 0 || h >= s.in_h) continue;
        T* out = dx_plane + h * s.in_w;
        for (int64_t q = span.begin; q < span.end; ++q) out[q * stride + offset] += in[q];
      }
    }
}

}  // namespace

int64_t ChunkPlan::chunk_count(const Conv2dShape& s) const {
  return sample_groups * ceil_div(s.out_h(), rows_per_chunk);
}

Chunk ChunkPlan::chunk(const Conv2dShape& s, int64_t index) const {
  const int64_t P = s.out_h();
  const int64_t pieces_per_group = ceil_div(P, rows_per_chunk);  // 1 unless samples are split
  const int64_t group = index / pieces_per_group;
  Chunk c;
  c.first_sample = group * s.batch / sample_groups;
  c.samples = (group + 1) * s.batch / sample_groups - c.first_sample;
  c.first_row = index % pieces_per_group * rows_per_chunk;
  c.rows = std::min(rows_per_chunk, P - c.first_row);
  return c;
}

ChunkPlan plan_chunks(const Conv2dShape& s, int64_t element_size, const ChunkLimits& limits) {
  const int64_t P = s.out_h(), Q = s.out_w(), PQ = P * Q;
  const int64_t col_rows = s.in_channels * s.kernel_h * s.kernel_w;
  ChunkPlan plan;
  plan.sample_groups = s.batch;
  plan.rows_per_chunk = P;
  if (s.batch > 1 && PQ < limits.target_columns) {
    // A folded chunk also needs the GEMM output (or the gathered dy) re-laid out: out_channels more rows.
    const int64_t bytes_per_sample = (col_rows + s.out_channels) * PQ * element_size;
    const int64_t wanted = ceil_div(limits.target_columns, PQ);
    const int64_t fitting = limits.scratch_bytes / bytes_per_sample;
    const int64_t per_group = std::clamp<int64_t>(std::min(wanted, fitting), 1, s.batch);
    plan.sample_groups = ceil_div(s.batch, per_group);
  }
  if (!plan.folds(s)) {
    const int64_t bytes_per_row = col_rows * Q * element_size;
    plan.rows_per_chunk = std::clamp<int64_t>(limits.scratch_bytes / bytes_per_row, 1, P);
  }
  return plan;
}

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_top == 0 &&
         s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0;
}

template <typename T>
void im2col(const Conv2dShape& s, const T* x, const Chunk& chunk, bool parallel, T* col) {
  const int64_t R = s.kernel_h, S = s.kernel_w;
  const int64_t col_rows = s.in_channels * R * S, cols = chunk.samples * chunk.rows * s.out_w();
  const auto fill = s.stride_w == 1   ? fill_column_row<T, 1>
                    : s.stride_w == 2 ? fill_column_row<T, 2>
                                      : fill_column_row<T, kAnyStride>;
  // Rows rather than channels are the parallel unit: the stem has 3 channels but 147 rows.
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, col_rows * cols))
  for (int64_t row = 0; row < col_rows; ++row)
    fill(s, x, chunk, row / (R * S), row / S % R, row % S, col + row * cols);
}

template <typename T>
void col2im(const Conv2dShape& s, const T* col, const Chunk& chunk, bool parallel, T* dx) {
  const int64_t plane = s.in_h * s.in_w, planes = chunk.samples * s.in_channels;
  const auto add = s.stride_w == 1   ? add_columns_to_plane<T, 1>
                   : s.stride_w == 2 ? add_columns_to_plane<T, 2>
                                     : add_columns_to_plane<T, kAnyStride>;
  // One thread owns each (sample, channel) plane, so the scatter-adds never race.
#pragma omp parallel for schedule(static) if (worth_parallel(parallel, planes * plane))
  for (int64_t unit = 0; unit < planes; ++unit) {
    const int64_t local_n = unit / s.in_channels, c = unit % s.in_channels;
    T* dx_plane = dx + ((chunk.first_sample + local_n) * s.in_channels + c) * plane;
    if (chunk.first_row == 0) std::fill(dx_plane, dx_plane + plane, T(0));
    add(s, col, chunk, local_n, c, dx_plane);
  }
}

#define TL_INSTANTIATE(T)                                                        \
  template void im2col<T>(const Conv2dShape&, const T*, const Chunk&, bool, T*); \
  template void col2im<T>(const Conv2dShape&, const T*, const Chunk&, bool, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu::conv2d_detail
