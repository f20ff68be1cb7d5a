// Sums on the device, accumulated in double and deterministic: every partial sum covers a range fixed by the
// shape alone (not by the GPU's size or by timing), and partials are added in a fixed order, never by
// atomics. The full sum is two passes (per-block partials into a Workspace, then one block), then waits for
// the result.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxPartials = 1024;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Pass 1: block b sums x[i] for i = b * blockDim.x + thread + k * gridDim.x * blockDim.x.
template <typename T>
__global__ void partial_sums_kernel(int64_t n, const T* __restrict__ x, double* __restrict__ partials) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  double acc = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += x[i];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Pass 2, one block: the partials in order.
template <typename Out>
__global__ void final_sum_kernel(int64_t count, const double* __restrict__ partials, Out* __restrict__ out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) *out = static_cast<Out>(total);
}

// The whole of x summed into *out (device memory), queued on the stream.
template <typename T, typename Out>
void full_sum(int device, int64_t n, const T* x, Out* out) {
  const cudaStream_t s = ::tl::cuda::stream(device);
  const int64_t blocks = std::min<int64_t>(kMaxPartials, std::max<int64_t>(1, ceil_div(n, kThreads * 8)));
  ::tl::cuda::Workspace partials(device, static_cast<std::size_t>(blocks) * sizeof(double));
  partial_sums_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(n, x, partials.as<double>());
  TL_CUDA_CHECK_LAUNCH("partial_sums_kernel");
  final_sum_kernel<Out><<<1, kThreads, 0, s>>>(blocks, partials.as<double>(), out);
  TL_CUDA_CHECK_LAUNCH("final_sum_kernel");
}

// inner == 1: one block per row of `reduced` contiguous values (grid-stride over rows).
template <typename T>
__global__ void row_sums_kernel(int64_t rows, int64_t reduced, const T* __restrict__ x, T* __restrict__ y) {
  for (int64_t o = blockIdx.x; o < rows; o += gridDim.x) {
    const T* row = x + o * reduced;
    double acc = 0;
    for (int64_t r = threadIdx.x; r < reduced; r += blockDim.x) acc += row[r];
    const double total = block_sum(acc);
    if (threadIdx.x == 0) y[o] = static_cast<T>(total);
  }
}

// A thread per output (o, i) adds the reduced values r in [r0, r1) of its column: neighbouring threads read
// neighbouring i, so every load is coalesced. `chunk` splits the reduced dimension into pieces; piece s of
// output t goes to partials[s * outputs + t] (or straight to y when there is one piece).
template <typename T, typename Out>
__global__ void column_sums_kernel(int64_t outer, int64_t reduced, int64_t inner, int64_t chunk,
                                   int64_t pieces, const T* __restrict__ x, Out* __restrict__ out) {
  const int64_t outputs = outer * inner, items = outputs * pieces;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < items; u += stride) {
    const int64_t piece = u / outputs, t = u - piece * outputs;
    const int64_t o = t / inner, i = t - o * inner;
    const int64_t r0 = piece * chunk, r1 = std::min(reduced, r0 + chunk);
    const T* column = x + o * reduced * inner + i;
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r) acc += column[r * inner];
    out[u] = static_cast<Out>(acc);
  }
}

// Adds the pieces of each output in order.
template <typename T>
__global__ void combine_pieces_kernel(int64_t outputs, int64_t pieces, const double* __restrict__ partials,
                                      T* __restrict__ y) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < outputs; t += stride) {
    double acc = 0;
    for (int64_t p = 0; p < pieces; ++p) acc += partials[p * outputs + t];
    y[t] = static_cast<T>(acc);
  }
}

}  // namespace

template <typename T>
T sum(int device, int64_t n, const T* x) {
  if (n <= 0) return T(0);
  ::tl::cuda::DeviceGuard guard(device);
  ::tl::cuda::Workspace result(device, sizeof(double));
  full_sum(device, n, x, result.as<double>());
  double total = 0;
  const cudaStream_t s = ::tl::cuda::stream(device);
  TL_CUDA_CHECK(cudaMemcpyAsync(&total, result.data(), sizeof(double), cudaMemcpyDeviceToHost, s));
  TL_CUDA_CHECK(cudaStreamSynchronize(s));
  return static_cast<T>(total);
}

template <typename T>
void sum_dim(int device, int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y) {
  const int64_t outputs = outer * inner;
  if (outputs <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t s = ::tl::cuda::stream(device);
  if (reduced > 0 && outputs == 1) {
    full_sum(device, reduced, x, y);
    return;
  }
  if (reduced > 0 && inner == 1) {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outer, 65535));
    row_sums_kernel<T><<<blocks, reduction_threads(reduced), 0, s>>>(outer, reduced, x, y);
    TL_CUDA_CHECK_LAUNCH("row_sums_kernel");
    return;
  }
  // Few outputs over a long reduced dimension: split it into pieces, so that about 64k threads share the
  // work, and add the pieces afterwards. Many outputs (or a short dimension) need no split.
  constexpr int64_t kWantThreads = 65536;
  int64_t pieces = 1;
  if (outputs < kWantThreads / 4 && reduced > 64)
    pieces = std::min(ceil_div(kWantThreads, outputs), ceil_div(reduced, 32));
  const int64_t chunk = pieces > 1 ? ceil_div(reduced, pieces) : reduced;
  if (pieces > 1) pieces = ceil_div(reduced, chunk);
  if (pieces == 1) {
    column_sums_kernel<T, T><<<::tl::cuda::blocks_for(outputs, kThreads), kThreads, 0, s>>>(
        outer, reduced, inner, reduced, 1, x, y);
    TL_CUDA_CHECK_LAUNCH("column_sums_kernel");
    return;
  }
  ::tl::cuda::Workspace partials(device, static_cast<std::size_t>(pieces * outputs) * sizeof(double));
  column_sums_kernel<T, double><<<::tl::cuda::blocks_for(pieces * outputs, kThreads), kThreads, 0, s>>>(
      outer, reduced, inner, chunk, pieces, x, partials.as<double>());
  TL_CUDA_CHECK_LAUNCH("column_sums_kernel (pieces)");
  combine_pieces_kernel<T><<<::tl::cuda::blocks_for(outputs, kThreads), kThreads, 0, s>>>(
      outputs, pieces, partials.as<double>(), y);
  TL_CUDA_CHECK_LAUNCH("combine_pieces_kernel");
}

template float sum<float>(int, int64_t, const float*);
template double sum<double>(int, int64_t, const double*);
template void sum_dim<float>(int, int64_t, int64_t, int64_t, const float*, float*);
template void sum_dim<double>(int, int64_t, int64_t, int64_t, const double*, double*);

}  // namespace tl::kernels::cuda
