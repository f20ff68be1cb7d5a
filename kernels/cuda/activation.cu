// Element-wise activations and their derivatives on the device, the same formulas as
// kernels/cpu/activation.cpp (values at the kinks included). max/min are written as std::max/std::min are,
// not as fmax/fmin, so a NaN input stays NaN as it does on the CPU and in PyTorch (fmaxf(NaN, 0) would be 0).
// Sigmoid and SiLU use the device's exp, which may differ from the host's in the last bit or two.
#include <cstdint>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ inline T max_like_std(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
__device__ inline T min_like_std(T a, T b) {
  return b < a ? b : a;
}

__device__ inline float exp_of(float x) {
  return expf(x);
}
__device__ inline double exp_of(double x) {
  return exp(x);
}

template <typename T>
__device__ inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_of(-x));
}

struct ReLU {
  template <typename T>
  __device__ static T forward(T x) {
    return max_like_std(x, T(0));
  }
  template <typename T>
  __device__ static T derivative(T x) {
    return T(x > T(0));
  }
};

struct ReLU6 {
  template <typename T>
  __device__ static T forward(T x) {
    return min_like_std(max_like_std(x, T(0)), T(6));
  }
  template <typename T>
  __device__ static T derivative(T x) {
    return T(x > T(0)) * T(x < T(6));
  }
};

struct HardSwish {
  template <typename T>
  __device__ static T forward(T x) {
    return x * min_like_std(max_like_std(x + T(3), T(0)), T(6)) / T(6);
  }
  template <typename T>
  __device__ static T derivative(T x) {
    return x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1));
  }
};

struct HardSigmoid {
  template <typename T>
  __device__ static T forward(T x) {
    return min_like_std(max_like_std(x / T(6) + T(0.5), T(0)), T(1));
  }
  template <typename T>
  __device__ static T derivative(T x) {
    return T(x > T(-3)) * T(x < T(3)) / T(6);
  }
};

struct Sigmoid {
  template <typename T>
  __device__ static T forward(T x) {
    return sigmoid(x);
  }
  template <typename T>
  __device__ static T derivative(T x) {
    const T s = sigmoid(x);
    return s * (T(1) - s);
  }
};

struct SiLU {
  template <typename T>
  __device__ static T forward(T x) {
    return x * sigmoid(x);
  }
  template <typename T>
  __device__ static T derivative(T x) {
    const T s = sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

// Sixteen bytes of T, so one load or store moves four floats or two doubles.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// y and x may be the same buffer (in place): each element is read and written by the same thread, so no
// __restrict__ here.
template <typename F, typename T>
__global__ void forward_kernel(int64_t n, const T* x, T* y, bool packed) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t done = 0;
  if (packed) {
    const int64_t packs = n / Pack<T>::kSize;
    const auto* xp = reinterpret_cast<const Pack<T>*>(x);
    auto* yp = reinterpret_cast<Pack<T>*>(y);
    for (int64_t i = first; i < packs; i += stride) {
      Pack<T> a = xp[i];
#pragma unroll
      for (int k = 0; k < Pack<T>::kSize; ++k) a.v[k] = F::forward(a.v[k]);
      yp[i] = a;
    }
    done = packs * Pack<T>::kSize;
  }
  for (int64_t i = done + first; i < n; i += stride) y[i] = F::forward(x[i]);
}

template <typename F, typename T>
__global__ void backward_kernel(int64_t n, const T* x, const T* dy, T* dx, bool packed) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t done = 0;
  if (packed) {
    const int64_t packs = n / Pack<T>::kSize;
    const auto* xp = reinterpret_cast<const Pack<T>*>(x);
    const auto* dyp = reinterpret_cast<const Pack<T>*>(dy);
    auto* dxp = reinterpret_cast<Pack<T>*>(dx);
    for (int64_t i = first; i < packs; i += stride) {
      const Pack<T> a = xp[i];
      Pack<T> g = dyp[i];
#pragma unroll
      for (int k = 0; k < Pack<T>::kSize; ++k) g.v[k] = g.v[k] * F::derivative(a.v[k]);
      dxp[i] = g;
    }
    done = packs * Pack<T>::kSize;
  }
  for (int64_t i = done + first; i < n; i += stride) dx[i] = dy[i] * F::derivative(x[i]);
}

// Blocks for n elements taken Pack-wise when packed (the tail then fits in the same grid).
template <typename T>
unsigned grid_for(int64_t n, bool packed) {
  return ::tl::cuda::blocks_for(packed ? (n + Pack<T>::kSize - 1) / Pack<T>::kSize : n, kThreads);
}

template <typename F, typename T>
void launch_forward(int device, int64_t n, const T* x, T* y) {
  const bool packed = aligned16(x) && aligned16(y);
  forward_kernel<F, T><<<grid_for<T>(n, packed), kThreads, 0, ::tl::cuda::stream(device)>>>(n, x, y, packed);
  TL_CUDA_CHECK_LAUNCH("activation forward_kernel");
}

template <typename F, typename T>
void launch_backward(int device, int64_t n, const T* x, const T* dy, T* dx) {
  const bool packed = aligned16(x) && aligned16(dy) && aligned16(dx);
  backward_kernel<F, T>
      <<<grid_for<T>(n, packed), kThreads, 0, ::tl::cuda::stream(device)>>>(n, x, dy, dx, packed);
  TL_CUDA_CHECK_LAUNCH("activation backward_kernel");
}

}  // namespace

template <typename T>
void activation_forward(int device, Activation a, int64_t n, const T* x, T* y) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  switch (a) {
    case Activation::ReLU:
      return launch_forward<ReLU>(device, n, x, y);
    case Activation::ReLU6:
      return launch_forward<ReLU6>(device, n, x, y);
    case Activation::HardSwish:
      return launch_forward<HardSwish>(device, n, x, y);
    case Activation::HardSigmoid:
      return launch_forward<HardSigmoid>(device, n, x, y);
    case Activation::Sigmoid:
      return launch_forward<Sigmoid>(device, n, x, y);
    case Activation::SiLU:
      return launch_forward<SiLU>(device, n, x, y);
  }
}

template <typename T>
void activation_backward(int device, Activation a, int64_t n, const T* x, const T* dy, T* dx) {
  if (n <= 0) return;
  ::tl::cuda::DeviceGuard guard(device);
  switch (a) {
    case Activation::ReLU:
      return launch_backward<ReLU>(device, n, x, dy, dx);
    case Activation::ReLU6:
      return launch_backward<ReLU6>(device, n, x, dy, dx);
    case Activation::HardSwish:
      return launch_backward<HardSwish>(device, n, x, dy, dx);
    case Activation::HardSigmoid:
      return launch_backward<HardSigmoid>(device, n, x, dy, dx);
    case Activation::Sigmoid:
      return launch_backward<Sigmoid>(device, n, x, dy, dx);
    case Activation::SiLU:
      return launch_backward<SiLU>(device, n, x, dy, dx);
  }
}

template void activation_forward<float>(int, Activation, int64_t, const float*, float*);
template void activation_forward<double>(int, Activation, int64_t, const double*, double*);
template void activation_backward<float>(int, Activation, int64_t, const float*, const float*, float*);
template void activation_backward<double>(int, Activation, int64_t, const double*, const double*, double*);

}  // namespace tl::kernels::cuda
