// Linear layers on the GPU through gemm.cu, as on the CPU (kernels/cpu/linear.cpp):
//   y = x w^T + b     y is first filled with b, then the GEMM accumulates into it (beta = 1)
//   dx = dy w,  dw = dy^T x,  db = column sums of dy
// Null outputs are skipped. The column sums run in double over chunks of rows, and the chunks are added in a
// fixed order, so db is the same on every run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// y[r][o] = b[o].
template <typename T>
__global__ void fill_rows_kernel(const T* __restrict__ b, int64_t rows, int64_t cols, T* __restrict__ y) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = b[i % cols];
}

// A block covers 32 columns x 8 lanes of rows: lane l of column o sums rows begin + l, begin + l + 8, ... of
// its chunk (consecutive threads read consecutive columns), then the 8 lanes are added in order.
constexpr int kColsPerBlock = 32, kRowLanes = kThreads / kColsPerBlock;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    column_sum_kernel(const T* __restrict__ dy, int64_t rows, int64_t cols, int64_t chunk_rows,
                      double* __restrict__ partial) {
  __shared__ double red[kRowLanes][kColsPerBlock];
  const int lane_c = threadIdx.x % kColsPerBlock, lane_r = threadIdx.x / kColsPerBlock;
  const int64_t col = blockIdx.x * static_cast<int64_t>(kColsPerBlock) + lane_c;
  const int64_t begin = blockIdx.y * chunk_rows, end = std::min(rows, begin + chunk_rows);
  double acc = 0;
  if (col < cols)
    for (int64_t r = begin + lane_r; r < end; r += kRowLanes) acc += static_cast<double>(dy[r * cols + col]);
  red[lane_r][lane_c] = acc;
  __syncthreads();
  if (lane_r == 0 && col < cols) {
    double total = 0;
    for (int l = 0; l < kRowLanes; ++l) total += red[l][lane_c];
    partial[blockIdx.y * cols + col] = total;
  }
}

template <typename T>
__global__ void chunk_sum_kernel(const double* __restrict__ partial, int64_t chunks, int64_t cols,
                                 T* __restrict__ out) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double acc = 0;
    for (int64_t k = 0; k < chunks; ++k) acc += partial[k * cols + c];
    out[c] = static_cast<T>(acc);
  }
}

// db[o] = sum over rows r of dy[r][o].
template <typename T>
void column_sums(int device, int64_t rows, int64_t cols, const T* dy, T* db) {
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const int64_t col_blocks = (cols + kColsPerBlock - 1) / kColsPerBlock;
  const int64_t sms = ::tl::cuda::limits(device).multiprocessors;
  // Enough blocks to fill the GPU, each chunk at least 64 rows.
  int64_t chunks = std::max<int64_t>(1, (4 * sms + col_blocks - 1) / col_blocks);
  chunks = std::min({chunks, std::max<int64_t>(1, rows / 64), int64_t(65535)});
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  ::tl::cuda::Workspace partial(device, static_cast<std::size_t>(chunks * cols) * sizeof(double));
  // col_blocks fits the grid's x limit (2^31 - 1) for any cols that fits in memory as doubles.
  column_sum_kernel<T>
      <<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)), kThreads, 0, stream>>>(
          dy, rows, cols, chunk_rows, partial.as<double>());
  TL_CUDA_CHECK_LAUNCH("column_sum_kernel");
  chunk_sum_kernel<T><<<::tl::cuda::blocks_for(cols, kThreads), kThreads, 0, stream>>>(partial.as<double>(),
                                                                                       chunks, cols, db);
  TL_CUDA_CHECK_LAUNCH("chunk_sum_kernel");
}

}  // namespace

template <typename T>
void linear_forward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w, const T* b,
                    T* y) {
  ::tl::cuda::DeviceGuard guard(device);
  if (rows <= 0 || out <= 0) return;
  if (b) {
    fill_rows_kernel<T>
        <<<::tl::cuda::blocks_for(rows * out, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(b, rows,
                                                                                                    out, y);
    TL_CUDA_CHECK_LAUNCH("fill_rows_kernel");
  }
  gemm<T>(device, false, true, rows, out, in, T(1), x, in, w, in, b ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w, const T* dy,
                     T* dx, T* dw, T* db) {
  ::tl::cuda::DeviceGuard guard(device);
  if (dx) gemm<T>(device, false, false, rows, in, out, T(1), dy, out, w, in, T(0), dx, in);
  if (dw) gemm<T>(device, true, false, out, in, rows, T(1), dy, out, x, in, T(0), dw, in);
  if (db && out > 0) column_sums<T>(device, rows, out, dy, db);
}

template void linear_forward<float>(int, int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                    float*);
template void linear_forward<double>(int, int64_t, int64_t, int64_t, const double*, const double*,
                                     const double*, double*);
template void linear_backward<float>(int, int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                     float*, float*, float*);
template void linear_backward<double>(int, int64_t, int64_t, int64_t, const double*, const double*,
                                      const double*, double*, double*, double*);

}  // namespace tl::kernels::cuda
