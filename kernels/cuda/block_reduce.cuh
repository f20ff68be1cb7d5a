// Block-wide sums in double for kernels/cuda/*.cu, in one fixed order: each warp adds its lanes by a shuffle
// tree, then warp 0 adds the warp totals in warp order. No atomics, so the same inputs give the same bits on
// every run, which is what lets the GPU results be held to the CPU's (batch_norm.cu, reduce.cu,
// elementwise.cu). The order depends on blockDim.x, so a caller that picks its thread count from the shape
// (reduction_threads or its own rule) keeps its results reproducible.
//
// Contract: a one-dimensional block, blockDim.x a multiple of 32 and at most 1024, and every thread of the
// block calls block_sum (it holds barriers).
#pragma once

#include <cstdint>

namespace tl::kernels::cuda {

__device__ inline double warp_sum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// The block's total, returned to every thread. Back-to-back calls are safe (batch_norm.cu makes two in a
// row): warp_totals is rewritten only after the previous call's last barrier, by which time warp 0 has read
// it, and total only after this call's first barrier, by which time every thread has read the previous one.
__device__ inline double block_sum(double v) {
  __shared__ double warp_totals[32];
  __shared__ double total;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? warp_totals[lane] : 0.0;
    v = warp_sum(v);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

// Threads for a block that sums `length` values with block_sum: a warp for short rows, up to 256 for long
// ones, so that few threads idle. A function of the length only, so the summation order is too.
inline int reduction_threads(std::int64_t length) {
  return length >= 1024 ? 256 : (length >= 256 ? 128 : (length >= 64 ? 64 : 32));
}

}  // namespace tl::kernels::cuda
