// SGD and Adam updates on the device: one fused launch per parameter, with kernels/cpu/optimizer.cpp's
// operations in its order and its per-step scalars (computed on the host in double and rounded to T the same
// way). Every multiply, add, divide and square root is written with an explicitly rounded intrinsic, which
// nvcc never contracts into an FMA, so each element's result equals the CPU's bit for bit.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float mul(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ inline double mul(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ inline float add(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ inline double add(double a, double b) {
  return __dadd_rn(a, b);
}
__device__ inline float div_rn(float a, float b) {
  return __fdiv_rn(a, b);
}
__device__ inline double div_rn(double a, double b) {
  return __ddiv_rn(a, b);
}
__device__ inline float sqrt_rn(float a) {
  return __fsqrt_rn(a);
}
__device__ inline double sqrt_rn(double a) {
  return __dsqrt_rn(a);
}

template <typename T>
struct SgdScalars {
  T weight_decay, momentum, keep, neg_lr;
  bool decay, use_momentum, nesterov, first_step;
};

template <typename T>
__global__ void sgd_kernel(int64_t n, SgdScalars<T> c, T* __restrict__ param, const T* __restrict__ grad,
                           T* __restrict__ momentum_buffer) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const T p = param[i];
    T d = grad[i];
    if (c.decay) d = add(d, mul(c.weight_decay, p));
    if (c.use_momentum) {
      const T buf = c.first_step ? d : add(mul(momentum_buffer[i], c.momentum), mul(c.keep, d));
      momentum_buffer[i] = buf;
      d = c.nesterov ? add(d, mul(c.momentum, buf)) : buf;
    }
    param[i] = add(p, mul(c.neg_lr, d));
  }
}

template <typename T>
struct AdamScalars {
  T neg_step_size, bias_correction2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
      shrink;
  bool decoupled, coupled_decay;
};

template <typename T>
__global__ void adam_kernel(int64_t n, AdamScalars<T> c, T* __restrict__ param, const T* __restrict__ grad,
                            T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    T p = param[i];
    T g = grad[i];
    if (c.decoupled) p = mul(p, c.shrink);
    if (c.coupled_decay) g = add(g, mul(c.weight_decay, p));
    const T m = add(mul(exp_avg[i], c.beta1), mul(c.one_minus_beta1, g));
    const T v = add(mul(exp_avg_sq[i], c.beta2), mul(mul(c.one_minus_beta2, g), g));  // addcmul_
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const T denom = add(div_rn(sqrt_rn(v), c.bias_correction2_sqrt), c.eps);
    param[i] = add(p, div_rn(mul(c.neg_step_size, m), denom));  // addcdiv_
  }
}

}  // namespace

template <typename T>
void sgd_update(int device, const SgdStep& s, int64_t n, T* param, const T* grad, T* momentum_buffer) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  SgdScalars<T> c{};
  c.weight_decay = static_cast<T>(s.weight_decay);
  c.momentum = static_cast<T>(s.momentum);
  c.keep = static_cast<T>(1.0 - s.dampening);  // torch: add_(d, alpha=1 - dampening)
  c.neg_lr = static_cast<T>(-s.lr);            // torch: add_(d, alpha=-lr)
  c.decay = s.weight_decay != 0;
  c.use_momentum = s.momentum != 0;
  c.nesterov = s.nesterov;
  c.first_step = s.first_step;
  sgd_kernel<T><<<::tl::cuda::blocks_for(n, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      n, c, param, grad, momentum_buffer);
  TL_CUDA_CHECK_LAUNCH("sgd_kernel");
}

template <typename T>
void adam_update(int device, const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg,
                 T* exp_avg_sq) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  // The per-step scalars, in double as Python computes them, then rounded to T.
  const double step = static_cast<double>(s.step);
  const double bias_correction1 = 1.0 - std::pow(s.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(s.beta2, step);
  AdamScalars<T> c{};
  c.neg_step_size = static_cast<T>(-(s.lr / bias_correction1));
  c.bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  c.beta1 = static_cast<T>(s.beta1);
  c.one_minus_beta1 = static_cast<T>(1.0 - s.beta1);
  c.beta2 = static_cast<T>(s.beta2);
  c.one_minus_beta2 = static_cast<T>(1.0 - s.beta2);
  c.eps = static_cast<T>(s.eps);
  c.weight_decay = static_cast<T>(s.weight_decay);
  c.shrink = static_cast<T>(1.0 - s.lr * s.weight_decay);  // AdamW: param.mul_(1 - lr * wd)
  c.decoupled = s.decoupled;
  c.coupled_decay = !s.decoupled && s.weight_decay != 0;
  adam_kernel<T><<<::tl::cuda::blocks_for(n, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      n, c, param, grad, exp_avg, exp_avg_sq);
  TL_CUDA_CHECK_LAUNCH("adam_kernel");
}

template void sgd_update<float>(int, const SgdStep&, int64_t, float*, const float*, float*);
template void sgd_update<double>(int, const SgdStep&, int64_t, double*, const double*, double*);
template void adam_update<float>(int, const AdamStep&, int64_t, float*, const float*, float*, float*);
template void adam_update<double>(int, const AdamStep&, int64_t, double*, const double*, double*, double*);

}  // namespace tl::kernels::cuda
