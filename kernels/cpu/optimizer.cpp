// SGD and Adam updates. Each follows torch.optim's single-tensor path operation by operation, in T, with each
// Python-float hyperparameter rounded to T as ATen rounds a scalar meeting a T tensor: what PyTorch computes
// for a float32 parameter is then what we compute, up to its vectorised fused multiply-adds. Element i reads
// and writes only element i, so the OpenMP split cannot change a result.
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {

template <typename T>
void sgd_update(const SgdStep& s, int64_t n, T* param, const T* grad, T* momentum_buffer) {
  const T weight_decay = static_cast<T>(s.weight_decay);
  const T momentum = static_cast<T>(s.momentum);
  const T keep = static_cast<T>(1.0 - s.dampening);  // torch: add_(d, alpha=1 - dampening)
  const T neg_lr = static_cast<T>(-s.lr);            // torch: add_(d, alpha=-lr)
  const bool decay = s.weight_decay != 0, use_momentum = s.momentum != 0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T d = grad[i];
    if (decay) d = d + weight_decay * param[i];
    if (use_momentum) {
      const T buf = s.first_step ? d : momentum_buffer[i] * momentum + keep * d;
      momentum_buffer[i] = buf;
      d = s.nesterov ? d + momentum * buf : buf;
    }
    param[i] = param[i] + neg_lr * d;
  }
}

template <typename T>
void adam_update(const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq) {
  // The per-step scalars, in double as Python computes them.
  const double step = static_cast<double>(s.step);
  const double bias_correction1 = 1.0 - std::pow(s.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(s.beta2, step);
  const T neg_step_size = static_cast<T>(-(s.lr / bias_correction1));
  const T bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T beta1 = static_cast<T>(s.beta1), one_minus_beta1 = static_cast<T>(1.0 - s.beta1);
  const T beta2 = static_cast<T>(s.beta2), one_minus_beta2 = static_cast<T>(1.0 - s.beta2);
  const T eps = static_cast<T>(s.eps);
  const T weight_decay = static_cast<T>(s.weight_decay);
  const T shrink = static_cast<T>(1.0 - s.lr * s.weight_decay);  // AdamW: param.mul_(1 - lr * wd)
  const bool coupled_decay = !s.decoupled && s.weight_decay != 0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if (s.decoupled) p = p * shrink;
    if (coupled_decay) g = g + weight_decay * p;
    const T m = exp_avg[i] * beta1 + one_minus_beta1 * g;
    const T v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;  // addcmul_: self + value * t1 * t2
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const T denom = std::sqrt(v) / bias_correction2_sqrt + eps;
    param[i] = p + neg_step_size * m / denom;  // addcdiv_: self + value * t1 / t2
  }
}

template void sgd_update<float>(const SgdStep&, int64_t, float*, const float*, float*);
template void sgd_update<double>(const SgdStep&, int64_t, double*, const double*, double*);
template void adam_update<float>(const AdamStep&, int64_t, float*, const float*, float*, float*);
template void adam_update<double>(const AdamStep&, int64_t, double*, const double*, double*, double*);

}  // namespace tl::kernels::cpu
