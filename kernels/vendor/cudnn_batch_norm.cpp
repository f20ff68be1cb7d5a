// cuDNN spatial batch normalisation behind the facade's contracts (kernels/vendor/cuda_vendor.h), through
// cuDNN 9's legacy cudnnBatchNormalization* API (deprecated but present).
//
// [N, C, spatial] is described to cuDNN as NCHW [N, C, spatial, 1] in CUDNN_BATCHNORM_SPATIAL mode: one mean
// and variance per channel over N * spatial values, as tl defines it. cuDNN's conventions match tl's, which
// is what lets the two paths exchange saved statistics:
//  - resultSaveMean / resultSaveInvVariance are the batch mean and 1 / sqrt(biased var + eps) (cuDNN's
//    "inverse variance" is the inverse standard deviation), tl's save_mean / save_invstd;
//  - exponentialAverageFactor f updates running = (1 - f) * running + f * stat, tl's momentum;
//  - the running variance is updated with the unbiased batch variance (N * spatial / (N * spatial - 1)), as
//    PyTorch's does on this very call.
// The scale/bias/mean/variance descriptor comes from cudnnDeriveBNTensorDescriptor: [1, C, 1, 1] of the
// data's type for float and double data alike.
//
// Our own kernels (tl::kernels::cuda) take the cases cuDNN cannot: eps below CUDNN_BN_MIN_EPSILON, sizes
// beyond cuDNN's int descriptors or empty tensors, and a training batch of one value per channel (its
// unbiased variance is undefined; tl keeps the biased one there, cuDNN would divide by zero).
#include <cudnn.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"
#include "kernels/vendor/cuda_vendor.h"

namespace tl::kernels::vendor {
namespace {

using std::int64_t;

// Unused by cuDNN when the saved statistics are given (they already hold eps), which they always are here;
// cuDNN still asks for a value of at least CUDNN_BN_MIN_EPSILON. PyTorch's default.
constexpr double kBackwardEpsilon = 1e-5;

template <typename T>
constexpr cudnnDataType_t cudnn_type() {
  if constexpr (std::is_same_v<T, double>)
    return CUDNN_DATA_DOUBLE;
  else
    return CUDNN_DATA_FLOAT;
}

class TensorDescriptor {
 public:
  TensorDescriptor() { TL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

// The data descriptor [N, C, spatial, 1] and the derived per-channel one [1, C, 1, 1].
struct Descriptors {
  TensorDescriptor data, channel;

  Descriptors(const BatchNormShape& s, cudnnDataType_t type) {
    TL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(data.get(), CUDNN_TENSOR_NCHW, type, static_cast<int>(s.batch),
                                              static_cast<int>(s.channels), static_cast<int>(s.spatial), 1));
    TL_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(channel.get(), data.get(), CUDNN_BATCHNORM_SPATIAL));
  }
};

// cuDNN's descriptors hold int sizes; it rejects empty tensors as bad parameters.
bool cudnn_can_run(const BatchNormShape& s, double eps) {
  if (!(eps >= CUDNN_BN_MIN_EPSILON)) return false;
  const int64_t limit = INT_MAX;
  if (s.batch <= 0 || s.channels <= 0 || s.spatial <= 0) return false;
  return s.batch * s.channels * s.spatial <= limit;
}

// Scratch of `count` values of T, only when `wanted` is null: cuDNN writes outputs tl's caller may not want.
template <typename T>
T* or_scratch(T* wanted, int device, int64_t count, std::unique_ptr<::tl::cuda::Workspace>& holder) {
  if (wanted) return wanted;
  holder = std::make_unique<::tl::cuda::Workspace>(device, static_cast<std::size_t>(count) * sizeof(T));
  return holder->as<T>();
}

template <typename T>
struct Scalars {
  // cuDNN reads blend factors as double for double data, float otherwise: T is exactly that.
  const T one = T(1), zero = T(0);
};

}  // namespace

template <typename T>
void cudnn_batch_norm_forward_train(int device, const BatchNormShape& s, const T* x, const T* gamma,
                                    const T* beta, double eps, double momentum, T* running_mean,
                                    T* running_var, T* y, T* save_mean, T* save_invstd) {
  ::tl::cuda::DeviceGuard guard(device);
  if (!cudnn_can_run(s, eps) || s.batch * s.spatial < 2)
    return ::tl::kernels::cuda::batch_norm_forward_train<T>(
        device, s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd);
  // cuDNN takes both running statistics or neither; a caller tracking only one gets scratch for the other.
  std::unique_ptr<::tl::cuda::Workspace> mean_scratch, var_scratch;
  if (running_mean || running_var) {
    running_mean = or_scratch(running_mean, device, s.channels, mean_scratch);
    running_var = or_scratch(running_var, device, s.channels, var_scratch);
  }
  const Descriptors d(s, cudnn_type<T>());
  const Scalars<T> k;
  TL_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      ::tl::cuda::cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL, &k.one, &k.zero, d.data.get(), x,
      d.data.get(), y, d.channel.get(), gamma, beta, momentum, running_mean, running_var, eps, save_mean,
      save_invstd));
}

template <typename T>
void cudnn_batch_norm_backward_train(int device, const BatchNormShape& s, const T* x, const T* dy,
                                     const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                                     T* dgamma, T* dbeta) {
  ::tl::cuda::DeviceGuard guard(device);
  if (!dx && !dgamma && !dbeta) return;
  if (!cudnn_can_run(s, kBackwardEpsilon))
    return ::tl::kernels::cuda::batch_norm_backward_train<T>(device, s, x, dy, gamma, save_mean, save_invstd,
                                                             dx, dgamma, dbeta);
  // cuDNN computes all three gradients in one pass; unwanted ones land in scratch.
  std::unique_ptr<::tl::cuda::Workspace> dx_scratch, dgamma_scratch, dbeta_scratch;
  dx = or_scratch(dx, device, s.batch * s.channels * s.spatial, dx_scratch);
  dgamma = or_scratch(dgamma, device, s.channels, dgamma_scratch);
  dbeta = or_scratch(dbeta, device, s.channels, dbeta_scratch);
  const Descriptors d(s, cudnn_type<T>());
  const Scalars<T> k;
  TL_CUDNN_CHECK(cudnnBatchNormalizationBackward(::tl::cuda::cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL,
                                                 &k.one, &k.zero, &k.one, &k.zero, d.data.get(), x,
                                                 d.data.get(), dy, d.data.get(), dx, d.channel.get(), gamma,
                                                 dgamma, dbeta, kBackwardEpsilon, save_mean, save_invstd));
}

template <typename T>
void cudnn_batch_norm_forward_eval(int device, const BatchNormShape& s, const T* x, const T* gamma,
                                   const T* beta, const T* running_mean, const T* running_var, double eps,
                                   T* y) {
  ::tl::cuda::DeviceGuard guard(device);
  if (!cudnn_can_run(s, eps))
    return ::tl::kernels::cuda::batch_norm_forward_eval<T>(device, s, x, gamma, beta, running_mean,
                                                           running_var, eps, y);
  const Descriptors d(s, cudnn_type<T>());
  const Scalars<T> k;
  TL_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      ::tl::cuda::cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL, &k.one, &k.zero, d.data.get(), x,
      d.data.get(), y, d.channel.get(), gamma, beta, running_mean, running_var, eps));
}

#define TL_INSTANTIATE(T)                                                                                    \
  template void cudnn_batch_norm_forward_train<T>(int, const BatchNormShape&, const T*, const T*, const T*,  \
                                                  double, double, T*, T*, T*, T*, T*);                       \
  template void cudnn_batch_norm_backward_train<T>(int, const BatchNormShape&, const T*, const T*, const T*, \
                                                   const T*, const T*, T*, T*, T*);                          \
  template void cudnn_batch_norm_forward_eval<T>(int, const BatchNormShape&, const T*, const T*, const T*,   \
                                                 const T*, const T*, double, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::vendor
