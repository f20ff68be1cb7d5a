// Element-wise activations and their derivatives, as PyTorch defines them (including the value at the kinks:
// relu'(0) = 0, relu6' is 0 at 0 and 6, hardswish'(x) = x/3 + 1/2 on [-3, 3]). One loop per activation,
// written branch-free where it can be, so the compiler vectorises them: these are memory-bound passes over
// every activation of the network.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {
namespace {

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// NaN passes through max/min as it does in PyTorch: std::max(NaN, 0) is NaN.
struct ReLU {
  template <typename T>
  static T forward(T x) {
    return std::max(x, T(0));
  }
  template <typename T>
  static T derivative(T x) {
    return T(x > T(0));
  }
};

struct ReLU6 {
  template <typename T>
  static T forward(T x) {
    return std::min(std::max(x, T(0)), T(6));
  }
  template <typename T>
  static T derivative(T x) {
    return T(x > T(0)) * T(x < T(6));
  }
};

struct HardSwish {
  template <typename T>
  static T forward(T x) {
    return x * std::min(std::max(x + T(3), T(0)), T(6)) / T(6);
  }
  template <typename T>
  static T derivative(T x) {
    return x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1));
  }
};

struct HardSigmoid {
  template <typename T>
  static T forward(T x) {
    return std::min(std::max(x / T(6) + T(0.5), T(0)), T(1));
  }
  template <typename T>
  static T derivative(T x) {
    return T(x > T(-3)) * T(x < T(3)) / T(6);
  }
};

struct Sigmoid {
  template <typename T>
  static T forward(T x) {
    return sigmoid(x);
  }
  template <typename T>
  static T derivative(T x) {
    const T s = sigmoid(x);
    return s * (T(1) - s);
  }
};

struct SiLU {
  template <typename T>
  static T forward(T x) {
    return x * sigmoid(x);
  }
  template <typename T>
  static T derivative(T x) {
    const T s = sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

template <typename F, typename T>
void forward_loop(int64_t n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = F::forward(x[i]);
}

template <typename F, typename T>
void backward_loop(int64_t n, const T* x, const T* dy, T* dx) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * F::derivative(x[i]);
}

// Calls fn.operator()<F>() with F the functor of activation a.
template <typename Fn>
void with_functor(Activation a, Fn&& fn) {
  switch (a) {
    case Activation::ReLU:
      return fn.template operator()<ReLU>();
    case Activation::ReLU6:
      return fn.template operator()<ReLU6>();
    case Activation::HardSwish:
      return fn.template operator()<HardSwish>();
    case Activation::HardSigmoid:
      return fn.template operator()<HardSigmoid>();
    case Activation::Sigmoid:
      return fn.template operator()<Sigmoid>();
    case Activation::SiLU:
      return fn.template operator()<SiLU>();
  }
}

}  // namespace

template <typename T>
void activation_forward(Activation a, int64_t n, const T* x, T* y) {
  with_functor(a, [&]<typename F>() { forward_loop<F>(n, x, y); });
}

template <typename T>
void activation_backward(Activation a, int64_t n, const T* x, const T* dy, T* dx) {
  with_functor(a, [&]<typename F>() { backward_loop<F>(n, x, dy, dx); });
}

template void activation_forward<float>(Activation, int64_t, const float*, float*);
template void activation_forward<double>(Activation, int64_t, const double*, double*);
template void activation_backward<float>(Activation, int64_t, const float*, const float*, float*);
template void activation_backward<double>(Activation, int64_t, const double*, const double*, double*);

}  // namespace tl::kernels::cpu
