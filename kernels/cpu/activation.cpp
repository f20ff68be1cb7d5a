// Element-wise activations and their derivatives, as PyTorch defines them (including the value at the kinks:
// relu'(0) = 0, relu6' is 0 at 0 and 6, hardswish'(x) = x/3 + 1/2 on [-3, 3]).
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {
namespace {

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
T forward_one(Activation a, T x) {
  switch (a) {
    case Activation::ReLU:
      return x > T(0) ? x : T(0);
    case Activation::ReLU6:
      return x < T(0) ? T(0) : (x > T(6) ? T(6) : x);
    case Activation::HardSwish:
      return x <= T(-3) ? T(0) : (x >= T(3) ? x : x * (x + T(3)) / T(6));
    case Activation::HardSigmoid:
      return x <= T(-3) ? T(0) : (x >= T(3) ? T(1) : x / T(6) + T(0.5));
    case Activation::Sigmoid:
      return sigmoid(x);
    case Activation::SiLU:
      return x * sigmoid(x);
  }
  return x;
}

template <typename T>
T derivative_one(Activation a, T x) {
  switch (a) {
    case Activation::ReLU:
      return x > T(0) ? T(1) : T(0);
    case Activation::ReLU6:
      return (x > T(0) && x < T(6)) ? T(1) : T(0);
    case Activation::HardSwish:
      return x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1));
    case Activation::HardSigmoid:
      return (x > T(-3) && x < T(3)) ? T(1) / T(6) : T(0);
    case Activation::Sigmoid: {
      const T s = sigmoid(x);
      return s * (T(1) - s);
    }
    case Activation::SiLU: {
      const T s = sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
  }
  return T(1);
}

}  // namespace

template <typename T>
void activation_forward(Activation a, int64_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = forward_one(a, x[i]);
}

template <typename T>
void activation_backward(Activation a, int64_t n, const T* x, const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * derivative_one(a, x[i]);
}

template void activation_forward<float>(Activation, int64_t, const float*, float*);
template void activation_forward<double>(Activation, int64_t, const double*, double*);
template void activation_backward<float>(Activation, int64_t, const float*, const float*, float*);
template void activation_backward<double>(Activation, int64_t, const double*, const double*, double*);

}  // namespace tl::kernels::cpu
