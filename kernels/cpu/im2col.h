// Private to the CPU convolution kernels (conv2d_im2col.cpp, conv2d_depthwise.cpp) and their tests: how an
// im2col convolution is cut into GEMM-sized chunks, the im2col / col2im transforms, and the passes with their
// chunking limits exposed so a test can force many small chunks.
//
// Column matrix of a chunk, [C*R*S, samples * rows * Q]:
//   row (c, r, t) = (c * R + r) * S + t, over all C input channels (group g owns rows g * Cg*R*S onwards);
//   column (n, p, q) = (n * rows + p) * Q + q, over the chunk's samples and output rows;
//   value x[first_sample + n, c, (first_row + p) * stride_h - pad_top + r * dilation_h,
//           q * stride_w - pad_left + t * dilation_w], zero in the padding.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"

// The build targets baseline x86-64 (SSE2), which would leave the inner loops of the transforms and of the
// depthwise kernel at 4 floats a step and without FMA. Their per-row and per-plane functions are therefore
// also compiled for AVX2/FMA and AVX-512, and the loader picks the clone the CPU supports (GCC function
// multi-versioning), as the GEMM picks its micro-kernel by CPUID.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TL_CONV_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TL_CONV_SIMD_CLONES
#endif

namespace tl::kernels::cpu::conv2d_detail {

// Loops over a row are instantiated for strides 1 and 2, where contiguous and pairwise accesses vectorise (a
// stride known only at run time would gather); kAnyStride reads the stride at run time.
constexpr int kAnyStride = 0;

// Below this many elements a loop runs on the calling thread: an OpenMP fork/join costs more than a second
// thread saves (and far more on a loaded machine, where the other threads have to be woken).
constexpr int64_t kMinParallelElements = int64_t{1} << 15;

inline bool worth_parallel(bool parallel, int64_t elements) {
  return parallel && elements >= kMinParallelElements;
}

// The outputs o in [0, out_size) whose input o * stride + offset lies in [0, in_size): an empty span has
// begin == end. Shared by im2col and the depthwise kernel, which both skip the padding this way instead of
// testing every element.
struct Span {
  int64_t begin = 0, end = 0;
};

inline Span valid_span(int64_t offset, int64_t stride, int64_t in_size, int64_t out_size) {
  const int64_t last_input = in_size - 1 - offset;  // o * stride must not pass this
  if (last_input < 0) return {};
  const int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t end = std::min(out_size, last_input / stride + 1);
  return {std::min(begin, end), end};
}

struct ChunkLimits {
  // Upper bound on the scratch of one chunk (the column matrix, plus the re-laid-out output when samples are
  // folded). A single sample whose column matrix exceeds it is split by output rows.
  int64_t scratch_bytes = int64_t{32} << 20;
  // Samples are folded into one GEMM until it has at least this many columns: late ResNet layers have 7x7 =
  // 49 output positions per sample, far too few for a GEMM to run at full speed. Measured on ResNet-50 layers
  // (2 cores, both GEMMs): 1024 beats 4096 at 56x56 (no folding, no copies) and ties at 28x28 and below.
  int64_t target_columns = 1024;
};

// What one round of im2col + GEMMs computes: `samples` whole samples from first_sample or, when samples == 1,
// output rows [first_row, first_row + rows) of that sample.
struct Chunk {
  int64_t first_sample = 0, samples = 1, first_row = 0, rows = 1;
};

struct ChunkPlan {
  // The batch is cut into this many groups of whole samples, as equal as they can be (sizes differ by at most
  // one), so that no GEMM is left with a small remainder. sample_groups < batch folds samples.
  int64_t sample_groups = 1;
  int64_t rows_per_chunk = 1;  // < out_h splits each sample (then sample_groups == batch)

  bool folds(const Conv2dShape& s) const { return sample_groups < s.batch; }
  int64_t max_samples(const Conv2dShape& s) const {
    return sample_groups > 0 ? (s.batch + sample_groups - 1) / sample_groups : 0;
  }
  int64_t chunk_count(const Conv2dShape& s) const;
  Chunk chunk(const Conv2dShape& s, int64_t index) const;
};

ChunkPlan plan_chunks(const Conv2dShape& s, int64_t element_size, const ChunkLimits& limits);

// 1x1, stride 1, no padding: a sample's input planes [C, H*W] already are its column matrix.
bool is_pointwise(const Conv2dShape& s);

// Writes the chunk's column matrix (layout above), [C*R*S, samples * rows * Q]. `parallel`: over OpenMP
// threads (see transforms_in_parallel in conv2d_im2col.cpp), else on the calling thread.
template <typename T>
void im2col(const Conv2dShape& s, const T* x, const Chunk& chunk, bool parallel, T* col);

// The adjoint of im2col: adds each column entry into the input position it was read from. The chunk's first
// rows zero their planes first (first_row == 0), so dx is fully written once every chunk of a sample has run.
template <typename T>
void col2im(const Conv2dShape& s, const T* col, const Chunk& chunk, bool parallel, T* dx);

// The passes of kernels/cpu/cpu.h with explicit limits (cpu::conv2d_* use ChunkLimits{}).
template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y,
                    const ChunkLimits& limits);
template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx,
                          const ChunkLimits& limits);
template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias, const ChunkLimits& limits);

}  // namespace tl::kernels::cpu::conv2d_detail
