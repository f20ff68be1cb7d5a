// BatchNorm over [N, C, spatial] on the device, following kernels/cpu/batch_norm.cpp: two-pass statistics in
// double (mean, then squared deviations), the running-stat update with the unbiased variance, and the
// normalisation as (x - mean) * scale + beta in double.
//
// A channel's N * spatial values are split into a fixed number of pieces (a function of the shape only);
// a block sums one piece of one channel, and a thread per channel adds its pieces in order. No atomics, so
// every result is deterministic; and the split keeps the GPU busy when there are few channels with many
// values each (the first layers of a ResNet). Element-wise formulas use explicitly rounded intrinsics where
// the CPU rounds a product before adding it, so that eval mode matches the CPU bit for bit.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// How each channel's values are split: `pieces` ranges of `chunk` consecutive positions t = n * spatial + i.
struct Split {
  int64_t count, chunk, pieces;
};

Split split_for(const BatchNormShape& s) {
  const int64_t count = s.batch * s.spatial;
  if (count <= 0) return {count, 0, 1};
  // Pieces of at least 4096 values, and enough of them for about 2048 blocks in all.
  int64_t pieces = std::min(ceil_div(count, 4096), std::max<int64_t>(1, ceil_div(2048, s.channels)));
  pieces = std::max<int64_t>(pieces, 1);
  const int64_t chunk = ceil_div(count, pieces);
  return {count, chunk, ceil_div(count, chunk)};
}

// ---- per-channel partial sums ----------------------------------------------------------------------------

// Each Terms adds element `at` of channel c to the two running sums.
template <typename T>
struct SumX {
  const T* x;
  __device__ void operator()(int64_t at, int64_t, double& a, double&) const { a += x[at]; }
};

template <typename T>
struct SquaredDeviation {
  const T* x;
  const double* mean;
  __device__ void operator()(int64_t at, int64_t c, double& a, double&) const {
    const double d = static_cast<double>(x[at]) - mean[c];
    a += d * d;
  }
};

// sum dy and sum dy * xhat, xhat = (x - mean) * invstd. Diff is the type the CPU subtracts in: double in
// train mode (the saved mean is widened first), T in eval mode (x - running_mean[c], both T).
template <typename T, typename Diff, typename Inv>
struct GradientTerms {
  const T* x;
  const T* dy;
  const T* mean;
  const Inv* invstd;
  __device__ void operator()(int64_t at, int64_t c, double& a, double& b) const {
    const double g = dy[at];
    const double centred = static_cast<Diff>(x[at]) - static_cast<Diff>(mean[c]);
    a += g;
    b += g * (centred * static_cast<double>(invstd[c]));
  }
};

// Block b sums piece b % pieces of channel b / pieces into part_a[b] and part_b[b] (part_b may be null).
// The position t within the channel maps to element (n * C + c) * spatial + i; (n, i) is advanced by the
// block's stride without dividing again.
template <typename Terms>
__global__ void partials_kernel(int64_t channels, int64_t spatial, Split split, Terms terms,
                                double* __restrict__ part_a, double* __restrict__ part_b) {
  const int64_t blocks = channels * split.pieces;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const int64_t c = b / split.pieces, piece = b - c * split.pieces;
    const int64_t t1 = std::min(split.count, (piece + 1) * split.chunk);
    double a = 0, bsum = 0;
    int64_t t = piece * split.chunk + threadIdx.x;
    if (t < t1) {
      int64_t n = t / spatial, i = t - n * spatial;
      const int64_t dn = blockDim.x / spatial, di = blockDim.x - dn * spatial;
      for (; t < t1; t += blockDim.x) {
        terms((n * channels + c) * spatial + i, c, a, bsum);
        n += dn;
        i += di;
        if (i >= spatial) {
          i -= spatial;
          ++n;
        }
      }
    }
    a = block_sum(a);
    bsum = block_sum(bsum);
    if (threadIdx.x == 0) {
      part_a[b] = a;
      if (part_b) part_b[b] = bsum;
    }
  }
}

template <typename Terms>
void launch_partials(cudaStream_t stream, const BatchNormShape& s, const Split& split, Terms terms,
                     double* part_a, double* part_b) {
  const int64_t blocks = s.channels * split.pieces;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(blocks, 65535));
  const int threads = split.chunk >= 1024 ? kThreads : (split.chunk >= 256 ? 128 : 64);
  partials_kernel<Terms><<<grid, threads, 0, stream>>>(s.channels, s.spatial, split, terms, part_a, part_b);
  TL_CUDA_CHECK_LAUNCH("batch_norm partials_kernel");
}

__device__ inline double pieces_total(const double* part, int64_t c, int64_t pieces) {
  double acc = 0;
  for (int64_t p = 0; p < pieces; ++p) acc += part[c * pieces + p];
  return acc;
}

// ---- per-channel finishing (a thread per channel, grid-stride) -------------------------------------------

__device__ inline int64_t first_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_threads() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

__global__ void mean_kernel(int64_t channels, Split split, const double* __restrict__ part,
                            double* __restrict__ mean) {
  for (int64_t c = first_thread(); c < channels; c += grid_threads())
    mean[c] = pieces_total(part, c, split.pieces) / static_cast<double>(split.count);
}

template <typename T>
__global__ void train_stats_kernel(int64_t channels, Split split, const double* __restrict__ part,
                                   const double* __restrict__ mean, const T* __restrict__ gamma, double eps,
                                   double momentum, T* __restrict__ running_mean, T* __restrict__ running_var,
                                   T* __restrict__ save_mean, T* __restrict__ save_invstd,
                                   double* __restrict__ scale) {
  const double count = static_cast<double>(split.count);
  for (int64_t c = first_thread(); c < channels; c += grid_threads()) {
    const double var = pieces_total(part, c, split.pieces) / count;
    const double invstd = 1.0 / sqrt(var + eps);
    scale[c] = static_cast<double>(gamma[c]) * invstd;
    if (save_mean) save_mean[c] = static_cast<T>(mean[c]);
    if (save_invstd) save_invstd[c] = static_cast<T>(invstd);
    if (running_mean)
      running_mean[c] = static_cast<T>(__dadd_rn(
          __dmul_rn(1 - momentum, static_cast<double>(running_mean[c])), __dmul_rn(momentum, mean[c])));
    if (running_var) {
      const double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_var[c] = static_cast<T>(__dadd_rn(__dmul_rn(1 - momentum, static_cast<double>(running_var[c])),
                                                __dmul_rn(momentum, unbiased)));
    }
  }
}

// Eval forward: the constants of (x - running_mean) * gamma * invstd + beta.
template <typename T>
__global__ void eval_constants_kernel(int64_t channels, const T* __restrict__ gamma,
                                      const T* __restrict__ running_mean, const T* __restrict__ running_var,
                                      double eps, double* __restrict__ mean, double* __restrict__ scale) {
  for (int64_t c = first_thread(); c < channels; c += grid_threads()) {
    const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
    mean[c] = running_mean[c];
    scale[c] = static_cast<double>(gamma[c]) * invstd;
  }
}

// Train backward: dbeta, dgamma and the coefficients of dx = k * (dy - mean_dy - xhat * mean_dy_xhat). k is
// null when no dx is wanted; gamma may be null then, as on the CPU.
template <typename T>
__global__ void train_grad_kernel(int64_t channels, Split split, const double* __restrict__ part_dy,
                                  const double* __restrict__ part_dy_xhat, const T* __restrict__ gamma,
                                  const T* __restrict__ save_invstd, T* __restrict__ dgamma,
                                  T* __restrict__ dbeta, double* __restrict__ k, double* __restrict__ mean_dy,
                                  double* __restrict__ mean_dy_xhat) {
  const double count = static_cast<double>(split.count);
  for (int64_t c = first_thread(); c < channels; c += grid_threads()) {
    const double sum_dy = pieces_total(part_dy, c, split.pieces);
    const double sum_dy_xhat = pieces_total(part_dy_xhat, c, split.pieces);
    if (dbeta) dbeta[c] = static_cast<T>(sum_dy);
    if (dgamma) dgamma[c] = static_cast<T>(sum_dy_xhat);
    if (!k) continue;
    k[c] = static_cast<double>(gamma[c]) * static_cast<double>(save_invstd[c]);
    mean_dy[c] = sum_dy / count;
    mean_dy_xhat[c] = sum_dy_xhat / count;
  }
}

// Eval backward: invstd in double for the sums, and dx's scale rounded to T as the CPU rounds it (dx_scale
// is null when no dx is wanted, and gamma is not read then).
template <typename T>
__global__ void eval_grad_constants_kernel(int64_t channels, const T* __restrict__ gamma,
                                           const T* __restrict__ running_var, double eps,
                                           double* __restrict__ invstd, T* __restrict__ dx_scale) {
  for (int64_t c = first_thread(); c < channels; c += grid_threads()) {
    const double inv = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
    invstd[c] = inv;
    if (dx_scale) dx_scale[c] = static_cast<T>(static_cast<double>(gamma[c]) * inv);
  }
}

template <typename T>
__global__ void eval_grad_kernel(int64_t channels, Split split, const double* __restrict__ part_dy,
                                 const double* __restrict__ part_dy_xhat, T* __restrict__ dgamma,
                                 T* __restrict__ dbeta) {
  for (int64_t c = first_thread(); c < channels; c += grid_threads()) {
    if (dbeta) dbeta[c] = static_cast<T>(pieces_total(part_dy, c, split.pieces));
    if (dgamma) dgamma[c] = static_cast<T>(pieces_total(part_dy_xhat, c, split.pieces));
  }
}

// ---- element-wise passes over [N, C, spatial] -------------------------------------------------------------

// Position t of a grid-stride loop as (channel, i), t = (n * C + c) * spatial + i, advanced by a fixed step
// without dividing again: the step is split once into whole planes (and those into whole channels) and a
// remainder; each digit carries at most one into the next.
struct ChannelWalk {
  int64_t c, i, dc, di;
  __device__ ChannelWalk(int64_t t, int64_t step, int64_t channels, int64_t spatial) {
    const int64_t plane = t / spatial, dplane = step / spatial;
    i = t - plane * spatial;
    c = plane % channels;
    di = step - dplane * spatial;
    dc = dplane % channels;
  }
  __device__ void advance(int64_t channels, int64_t spatial) {
    i += di;
    c += dc;
    if (i >= spatial) {
      i -= spatial;
      ++c;
    }
    if (c >= channels) c -= channels;
  }
};

// y = (x - mean) * scale + beta in double, each operation rounded as on the CPU.
template <typename T>
__global__ void normalize_kernel(int64_t total, int64_t channels, int64_t spatial, const T* __restrict__ x,
                                 const double* __restrict__ mean, const double* __restrict__ scale,
                                 const T* __restrict__ beta, T* __restrict__ y) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  ChannelWalk w(first, stride, channels, spatial);
  for (int64_t t = first; t < total; t += stride, w.advance(channels, spatial)) {
    const double centred = __dsub_rn(static_cast<double>(x[t]), mean[w.c]);
    y[t] = static_cast<T>(__dadd_rn(__dmul_rn(centred, scale[w.c]), static_cast<double>(beta[w.c])));
  }
}

// dx = k * (dy - mean_dy - xhat * mean_dy_xhat), xhat = (x - mean) * invstd, from the saved statistics.
template <typename T>
__global__ void train_dx_kernel(int64_t total, int64_t channels, int64_t spatial, const T* __restrict__ x,
                                const T* __restrict__ dy, const T* __restrict__ save_mean,
                                const T* __restrict__ save_invstd, const double* __restrict__ k,
                                const double* __restrict__ mean_dy, const double* __restrict__ mean_dy_xhat,
                                T* __restrict__ dx) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  ChannelWalk w(first, stride, channels, spatial);
  for (int64_t t = first; t < total; t += stride, w.advance(channels, spatial)) {
    const int64_t c = w.c;
    const double xhat = __dmul_rn(__dsub_rn(static_cast<double>(x[t]), static_cast<double>(save_mean[c])),
                                  static_cast<double>(save_invstd[c]));
    const double inner =
        __dsub_rn(__dsub_rn(static_cast<double>(dy[t]), mean_dy[c]), __dmul_rn(xhat, mean_dy_xhat[c]));
    dx[t] = static_cast<T>(__dmul_rn(k[c], inner));
  }
}

template <typename T>
__global__ void eval_dx_kernel(int64_t total, int64_t channels, int64_t spatial, const T* __restrict__ dy,
                               const T* __restrict__ dx_scale, T* __restrict__ dx) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  ChannelWalk w(first, stride, channels, spatial);
  for (int64_t t = first; t < total; t += stride, w.advance(channels, spatial)) dx[t] = dy[t] * dx_scale[w.c];
}

unsigned channel_grid(int64_t channels) {
  return ::tl::cuda::blocks_for(channels, kThreads);
}

}  // namespace

template <typename T>
void batch_norm_forward_train(int device, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                              double eps, double momentum, T* running_mean, T* running_var, T* y,
                              T* save_mean, T* save_invstd) {
  if (s.channels <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const Split split = split_for(s);
  const int64_t C = s.channels, parts = C * split.pieces;
  ::tl::cuda::Workspace ws(device, static_cast<std::size_t>(parts + 2 * C) * sizeof(double));
  double* part = ws.as<double>();
  double* mean = part + parts;
  double* scale = mean + C;

  launch_partials(stream, s, split, SumX<T>{x}, part, nullptr);
  mean_kernel<<<channel_grid(C), kThreads, 0, stream>>>(C, split, part, mean);
  TL_CUDA_CHECK_LAUNCH("batch_norm mean_kernel");
  launch_partials(stream, s, split, SquaredDeviation<T>{x, mean}, part, nullptr);
  train_stats_kernel<T><<<channel_grid(C), kThreads, 0, stream>>>(
      C, split, part, mean, gamma, eps, momentum, running_mean, running_var, save_mean, save_invstd, scale);
  TL_CUDA_CHECK_LAUNCH("batch_norm train_stats_kernel");
  const int64_t total = C * split.count;
  if (y && total > 0) {
    normalize_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
        total, C, s.spatial, x, mean, scale, beta, y);
    TL_CUDA_CHECK_LAUNCH("batch_norm normalize_kernel");
  }
}

template <typename T>
void batch_norm_backward_train(int device, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta) {
  if (s.channels <= 0 || (!dx && !dgamma && !dbeta)) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const Split split = split_for(s);
  const int64_t C = s.channels, parts = C * split.pieces;
  ::tl::cuda::Workspace ws(device, static_cast<std::size_t>(2 * parts + 3 * C) * sizeof(double));
  double* part_dy = ws.as<double>();
  double* part_dy_xhat = part_dy + parts;
  double* k = part_dy_xhat + parts;
  double* mean_dy = k + C;
  double* mean_dy_xhat = mean_dy + C;

  launch_partials(stream, s, split, GradientTerms<T, double, T>{x, dy, save_mean, save_invstd}, part_dy,
                  part_dy_xhat);
  train_grad_kernel<T><<<channel_grid(C), kThreads, 0, stream>>>(C, split, part_dy, part_dy_xhat, gamma,
                                                                 save_invstd, dgamma, dbeta, dx ? k : nullptr,
                                                                 mean_dy, mean_dy_xhat);
  TL_CUDA_CHECK_LAUNCH("batch_norm train_grad_kernel");
  const int64_t total = C * split.count;
  if (dx && total > 0) {
    train_dx_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
        total, C, s.spatial, x, dy, save_mean, save_invstd, k, mean_dy, mean_dy_xhat, dx);
    TL_CUDA_CHECK_LAUNCH("batch_norm train_dx_kernel");
  }
}

template <typename T>
void batch_norm_forward_eval(int device, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, double eps, T* y) {
  const int64_t C = s.channels, total = C * s.batch * s.spatial;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  ::tl::cuda::Workspace ws(device, static_cast<std::size_t>(2 * C) * sizeof(double));
  double* mean = ws.as<double>();
  double* scale = mean + C;
  eval_constants_kernel<T>
      <<<channel_grid(C), kThreads, 0, stream>>>(C, gamma, running_mean, running_var, eps, mean, scale);
  TL_CUDA_CHECK_LAUNCH("batch_norm eval_constants_kernel");
  normalize_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
      total, C, s.spatial, x, mean, scale, beta, y);
  TL_CUDA_CHECK_LAUNCH("batch_norm normalize_kernel");
}

template <typename T>
void batch_norm_backward_eval(int device, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma,
                              T* dbeta) {
  if (s.channels <= 0 || (!dx && !dgamma && !dbeta)) return;
  ::tl::cuda::DeviceGuard guard(device);
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const Split split = split_for(s);
  const int64_t C = s.channels, parts = C * split.pieces;
  // Doubles: the partial sums, invstd, and room for dx's T scale (a T fits in a double's slot).
  ::tl::cuda::Workspace ws(device, static_cast<std::size_t>(2 * parts + 2 * C) * sizeof(double));
  double* part_dy = ws.as<double>();
  double* part_dy_xhat = part_dy + parts;
  double* invstd = part_dy_xhat + parts;
  T* dx_scale = reinterpret_cast<T*>(invstd + C);

  eval_grad_constants_kernel<T>
      <<<channel_grid(C), kThreads, 0, stream>>>(C, gamma, running_var, eps, invstd, dx ? dx_scale : nullptr);
  TL_CUDA_CHECK_LAUNCH("batch_norm eval_grad_constants_kernel");
  const int64_t total = C * split.count;
  if (dx && total > 0) {
    eval_dx_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(total, C, s.spatial,
                                                                                        dy, dx_scale, dx);
    TL_CUDA_CHECK_LAUNCH("batch_norm eval_dx_kernel");
  }
  if (!dgamma && !dbeta) return;
  launch_partials(stream, s, split, GradientTerms<T, T, double>{x, dy, running_mean, invstd}, part_dy,
                  part_dy_xhat);
  eval_grad_kernel<T>
      <<<channel_grid(C), kThreads, 0, stream>>>(C, split, part_dy, part_dy_xhat, dgamma, dbeta);
  TL_CUDA_CHECK_LAUNCH("batch_norm eval_grad_kernel");
}

#define TL_INSTANTIATE(T)                                                                              \
  template void batch_norm_forward_train<T>(int, const BatchNormShape&, const T*, const T*, const T*,  \
                                            double, double, T*, T*, T*, T*, T*);                       \
  template void batch_norm_backward_train<T>(int, const BatchNormShape&, const T*, const T*, const T*, \
                                             const T*, const T*, T*, T*, T*);                          \
  template void batch_norm_forward_eval<T>(int, const BatchNormShape&, const T*, const T*, const T*,   \
                                           const T*, const T*, double, T*);                            \
  template void batch_norm_backward_eval<T>(int, const BatchNormShape&, const T*, const T*, const T*,  \
                                            const T*, const T*, double, T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cuda
