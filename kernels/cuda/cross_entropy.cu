// Softmax cross-entropy with integer labels and label smoothing on the device, as
// kernels/cpu/cross_entropy.cpp computes it: a block per row takes the row maximum, then the log-sum-exp and
// the sum of the logits in double, writes the softmax and the row's loss; one block then adds the row losses
// in a fixed order, so the mean is deterministic. A bad label is found on the device (the smallest bad row,
// by atomicMin on a flag) and reported after the copy back, with the CPU's message.
#include <cstdint>
#include <limits>

#include "engine/error.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNoBadRow = ~0ull;

struct Plus {
  __device__ double operator()(double a, double b) const { return a + b; }
};
// As std::max(a, b), which the CPU uses.
struct Max {
  __device__ double operator()(double a, double b) const { return a < b ? b : a; }
};

// The block's reduction in a fixed order, returned to every thread. blockDim.x is a multiple of 32; every
// thread of the block calls it.
template <typename Op>
__device__ double block_reduce(double v, double identity, Op op) {
  __shared__ double warp_results[32];
  __shared__ double result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? warp_results[lane] : identity;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

int reduction_threads(int64_t length) {
  return length >= 1024 ? 256 : (length >= 256 ? 128 : (length >= 64 ? 64 : 32));
}

// The row's loss is -sum_j target_j log p_j with target = (1 - eps) onehot + eps / C, i.e.
// (1 - eps) * (log_sum - z[label]) + eps * (log_sum - mean(z)); the products are rounded separately (no FMA),
// as on the CPU.
template <typename T>
__global__ void rows_kernel(int64_t rows, int64_t classes, const T* __restrict__ logits,
                            const int64_t* __restrict__ labels, double label_smoothing, T* __restrict__ probs,
                            double* __restrict__ row_loss, unsigned long long* __restrict__ bad_row) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* z = logits + r * classes;
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) max = Max{}(max, static_cast<double>(z[j]));
    max = block_reduce(max, -std::numeric_limits<double>::infinity(), Max{});
    double sum_exp = 0, sum_logits = 0;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) {
      sum_exp += exp(static_cast<double>(z[j]) - max);
      sum_logits += static_cast<double>(z[j]);
    }
    sum_exp = block_reduce(sum_exp, 0.0, Plus{});
    sum_logits = block_reduce(sum_logits, 0.0, Plus{});
    const double log_sum = max + log(sum_exp);
    if (probs)
      for (int64_t j = threadIdx.x; j < classes; j += blockDim.x)
        probs[r * classes + j] = static_cast<T>(exp(static_cast<double>(z[j]) - log_sum));
    if (threadIdx.x == 0) {
      const int64_t label = labels[r];
      if (label < 0 || label >= classes) {
        atomicMin(bad_row, static_cast<unsigned long long>(r));
        row_loss[r] = 0;
      } else {
        const double nll = log_sum - static_cast<double>(z[label]);
        const double uniform = log_sum - sum_logits / static_cast<double>(classes);
        row_loss[r] = __dadd_rn(__dmul_rn(1 - label_smoothing, nll), __dmul_rn(label_smoothing, uniform));
      }
    }
  }
}

__global__ void total_kernel(int64_t rows, const double* __restrict__ row_loss, double* __restrict__ total) {
  double acc = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) acc += row_loss[r];
  acc = block_reduce(acc, 0.0, Plus{});
  if (threadIdx.x == 0) *total = acc;
}

// Thread per logit, walking (row, class) without a division per element.
template <typename T>
__global__ void backward_kernel(int64_t total, int64_t classes, const T* __restrict__ probs,
                                const int64_t* __restrict__ labels, double label_smoothing, double scale,
                                double off_target, T* __restrict__ dlogits) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  if (first >= total) return;
  int64_t row = first / classes, j = first - row * classes;
  const int64_t drow = stride / classes, dj = stride - drow * classes;
  for (int64_t t = first; t < total; t += stride) {
    const double target = off_target + (j == labels[row] ? 1 - label_smoothing : 0.0);
    dlogits[t] = static_cast<T>(scale * (static_cast<double>(probs[t]) - target));
    row += drow;
    j += dj;
    if (j >= classes) {
      j -= classes;
      ++row;
    }
  }
}

// What the forward copies back in one transfer.
struct Outcome {
  double total;
  unsigned long long bad_row;
};

}  // namespace

template <typename T>
T cross_entropy_forward(int device, int64_t rows, int64_t classes, const T* logits, const int64_t* labels,
                        double label_smoothing, T* probs) {
  Outcome outcome{0.0, kNoBadRow};
  if (rows > 0) {
    ::tl::cuda::DeviceGuard guard(device);
    const cudaStream_t s = ::tl::cuda::stream(device);
    ::tl::cuda::Workspace ws(device, sizeof(Outcome) + static_cast<std::size_t>(rows) * sizeof(double));
    auto* dev_outcome = ws.as<Outcome>();
    auto* row_loss = reinterpret_cast<double*>(dev_outcome + 1);
    TL_CUDA_CHECK(cudaMemsetAsync(&dev_outcome->bad_row, 0xFF, sizeof(unsigned long long), s));
    const unsigned blocks = static_cast<unsigned>(rows < 65535 ? rows : 65535);
    rows_kernel<T><<<blocks, reduction_threads(classes), 0, s>>>(
        rows, classes, logits, labels, label_smoothing, probs, row_loss, &dev_outcome->bad_row);
    TL_CUDA_CHECK_LAUNCH("cross_entropy rows_kernel");
    total_kernel<<<1, kThreads, 0, s>>>(rows, row_loss, &dev_outcome->total);
    TL_CUDA_CHECK_LAUNCH("cross_entropy total_kernel");
    TL_CUDA_CHECK(cudaMemcpyAsync(&outcome, dev_outcome, sizeof(Outcome), cudaMemcpyDeviceToHost, s));
    TL_CUDA_CHECK(cudaStreamSynchronize(s));
    if (outcome.bad_row != kNoBadRow) {
      const auto row = static_cast<int64_t>(outcome.bad_row);
      int64_t label = 0;
      TL_CUDA_CHECK(cudaMemcpyAsync(&label, labels + row, sizeof(int64_t), cudaMemcpyDeviceToHost, s));
      TL_CUDA_CHECK(cudaStreamSynchronize(s));
      throw ValueError(
          str("cross_entropy: label ", label, " at row ", row, " is outside [0, ", classes, ")"));
    }
  }
  return static_cast<T>(outcome.total / static_cast<double>(rows));
}

// Labels are not range-checked here (that would mean waiting for the device); forward has checked them, and
// an out-of-range label only fails to match any class, it is never used as an index.
template <typename T>
void cross_entropy_backward(int device, int64_t rows, int64_t classes, const T* probs, const int64_t* labels,
                            double label_smoothing, T dloss, T* dlogits) {
  const int64_t total = rows * classes;
  if (total <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  const double scale = static_cast<double>(dloss) / static_cast<double>(rows);
  const double off_target = label_smoothing / static_cast<double>(classes);
  backward_kernel<T><<<::tl::cuda::blocks_for(total, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      total, classes, probs, labels, label_smoothing, scale, off_target, dlogits);
  TL_CUDA_CHECK_LAUNCH("cross_entropy backward_kernel");
}

template float cross_entropy_forward<float>(int, int64_t, int64_t, const float*, const int64_t*, double,
                                            float*);
template double cross_entropy_forward<double>(int, int64_t, int64_t, const double*, const int64_t*, double,
                                              double*);
template void cross_entropy_backward<float>(int, int64_t, int64_t, const float*, const int64_t*, double,
                                            float, float*);
template void cross_entropy_backward<double>(int, int64_t, int64_t, const double*, const int64_t*, double,
                                             double, double*);

}  // namespace tl::kernels::cuda
