// Routes every facade call in ops.h to an implementation: by device first, then by policy. This file is the
// one place that knows which paths exist for which kernel.
#include "engine/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/ops.h"
#include "kernels/vendor/vendor.h"
#if TL_WITH_CUDA
#include "kernels/cuda/cuda.h"
#include "kernels/vendor/cuda_vendor.h"
#endif

namespace tl::kernels {
namespace {

[[maybe_unused]] void require_cpu(const Context& ctx, const char* kernel) {
  TL_CHECK(ctx.device.is_cpu(), DeviceError, kernel, ": no kernel for device ", ctx.device.str(),
           " in this build (only cpu; configure with -DTL_CUDA=ON for the CUDA backend)");
}

// On a CUDA device, auto and vendor take cuDNN/cuBLAS where a vendor path exists; native takes tl's own
// kernels, and so does reference: the GPU has no slow reference path, the CPU's is what GPU tests compare
// with.
[[maybe_unused]] bool use_vendor(const Context& ctx) {
  return ctx.policy == Policy::Auto || ctx.policy == Policy::Vendor;
}

}  // namespace

// Each kernel starts with one of these: on a CUDA device it returns the GPU path's result; on the CPU it
// falls through to the CPU paths below it. Without the CUDA backend, a CUDA context is an error.
#if TL_WITH_CUDA
#define TL_ON_CUDA(ctx, native_call, vendor_call) \
  do {                                            \
    if ((ctx).device.is_cuda()) {                 \
      if (use_vendor(ctx)) return vendor_call;    \
      return native_call;                         \
    }                                             \
  } while (0)
#define TL_ON_CUDA_NATIVE(ctx, native_call)         \
  do {                                              \
    if ((ctx).device.is_cuda()) return native_call; \
  } while (0)
#else
#define TL_ON_CUDA(ctx, native_call, vendor_call) require_cpu(ctx, __func__)
#define TL_ON_CUDA_NATIVE(ctx, native_call) require_cpu(ctx, __func__)
#endif

// ---- GEMM -------------------------------------------------------------------------------------------------

template <typename T>
void gemm(const Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  TL_ON_CUDA(
      ctx, cuda::gemm(ctx.device.index, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc),
      vendor::cublas_gemm(ctx.device.index, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no products: C = beta * C (BLAS leaves such calls to each library's whims)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  switch (ctx.policy) {
    case Policy::Reference:
      return cpu::ref::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    case Policy::Auto:
      // Measured (bench/RESULTS.md): tl's SGEMM matches or beats OpenBLAS on every shape and shares the
      // OpenMP threads (OpenBLAS's own threads fight them for the cores); tl's double GEMM is a portable
      // kernel, so float64 goes to OpenBLAS.
      if constexpr (sizeof(T) == 4) {
        return cpu::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      } else {
        return vendor::openblas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      }
    case Policy::Native:
      return cpu::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    case Policy::Vendor:
      return vendor::openblas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

const char* gemm_implementation(const Context& ctx) {
  if (ctx.device.is_cuda()) return use_vendor(ctx) ? "cublas" : "native-cuda";
  switch (ctx.policy) {
    case Policy::Reference:
      return "reference";
    case Policy::Auto:  // for float32, which is what this names
    case Policy::Native:
      return cpu::gemm_microkernel_name();
    case Policy::Vendor:
      return "openblas";
  }
  return "?";
}

// ---- convolution ------------------------------------------------------------------------------------------

template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  TL_ON_CUDA(ctx, cuda::conv2d_forward(ctx.device.index, s, x, w, bias, y),
             vendor::cudnn_conv2d_forward(ctx.device.index, s, x, w, bias, y));
  if (ctx.policy == Policy::Reference) return cpu::ref::conv2d_forward(s, x, w, bias, y);
  if (s.is_depthwise()) return cpu::depthwise_conv2d_forward(s, x, w, bias, y);
  cpu::conv2d_forward(ctx, s, x, w, bias, y);
}

template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  TL_ON_CUDA(ctx, cuda::conv2d_backward_data(ctx.device.index, s, dy, w, dx),
             vendor::cudnn_conv2d_backward_data(ctx.device.index, s, dy, w, dx));
  if (ctx.policy == Policy::Reference) return cpu::ref::conv2d_backward_data(s, dy, w, dx);
  if (s.is_depthwise()) return cpu::depthwise_conv2d_backward_data(s, dy, w, dx);
  cpu::conv2d_backward_data(ctx, s, dy, w, dx);
}

template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias) {
  TL_ON_CUDA(ctx, cuda::conv2d_backward_filter(ctx.device.index, s, x, dy, dw, dbias),
             vendor::cudnn_conv2d_backward_filter(ctx.device.index, s, x, dy, dw, dbias));
  if (ctx.policy == Policy::Reference) return cpu::ref::conv2d_backward_filter(s, x, dy, dw, dbias);
  if (s.is_depthwise()) return cpu::depthwise_conv2d_backward_filter(s, x, dy, dw, dbias);
  cpu::conv2d_backward_filter(ctx, s, x, dy, dw, dbias);
}

// ---- linear: GEMMs on the policy's path -------------------------------------------------------------------

template <typename T>
void linear_forward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                    const T* b, T* y) {
  TL_ON_CUDA(ctx, cuda::linear_forward(ctx.device.index, rows, in, out, x, w, b, y),
             vendor::cublas_linear_forward(ctx.device.index, rows, in, out, x, w, b, y));
  cpu::linear_forward(ctx, rows, in, out, x, w, b, y);
}

template <typename T>
void linear_backward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                     const T* dy, T* dx, T* dw, T* db) {
  TL_ON_CUDA(ctx, cuda::linear_backward(ctx.device.index, rows, in, out, x, w, dy, dx, dw, db),
             vendor::cublas_linear_backward(ctx.device.index, rows, in, out, x, w, dy, dx, dw, db));
  cpu::linear_backward(ctx, rows, in, out, x, w, dy, dx, dw, db);
}

// ---- single-path kernels ----------------------------------------------------------------------------------

template <typename T>
void batch_norm_forward_train(const Context& ctx, const BatchNormShape& s, const T* x, const T* gamma,
                              const T* beta, double eps, double momentum, T* running_mean, T* running_var,
                              T* y, T* save_mean, T* save_invstd) {
  TL_ON_CUDA(ctx,
             cuda::batch_norm_forward_train(ctx.device.index, s, x, gamma, beta, eps, momentum, running_mean,
                                            running_var, y, save_mean, save_invstd),
             vendor::cudnn_batch_norm_forward_train(ctx.device.index, s, x, gamma, beta, eps, momentum,
                                                    running_mean, running_var, y, save_mean, save_invstd));
  cpu::batch_norm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean,
                                save_invstd);
}

template <typename T>
void batch_norm_backward_train(const Context& ctx, const BatchNormShape& s, const T* x, const T* dy,
                               const T* gamma, const T* save_mean, const T* save_invstd, T* dx, T* dgamma,
                               T* dbeta) {
  TL_ON_CUDA(ctx,
             cuda::batch_norm_backward_train(ctx.device.index, s, x, dy, gamma, save_mean, save_invstd, dx,
                                             dgamma, dbeta),
             vendor::cudnn_batch_norm_backward_train(ctx.device.index, s, x, dy, gamma, save_mean,
                                                     save_invstd, dx, dgamma, dbeta));
  cpu::batch_norm_backward_train(s, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

template <typename T>
void batch_norm_forward_eval(const Context& ctx, const BatchNormShape& s, const T* x, const T* gamma,
                             const T* beta, const T* running_mean, const T* running_var, double eps, T* y) {
  TL_ON_CUDA(
      ctx,
      cuda::batch_norm_forward_eval(ctx.device.index, s, x, gamma, beta, running_mean, running_var, eps, y),
      vendor::cudnn_batch_norm_forward_eval(ctx.device.index, s, x, gamma, beta, running_mean, running_var,
                                            eps, y));
  cpu::batch_norm_forward_eval(s, x, gamma, beta, running_mean, running_var, eps, y);
}

template <typename T>
void batch_norm_backward_eval(const Context& ctx, const BatchNormShape& s, const T* x, const T* dy,
                              const T* gamma, const T* running_mean, const T* running_var, double eps, T* dx,
                              T* dgamma, T* dbeta) {
  TL_ON_CUDA_NATIVE(ctx, cuda::batch_norm_backward_eval(ctx.device.index, s, x, dy, gamma, running_mean,
                                                        running_var, eps, dx, dgamma, dbeta));
  cpu::batch_norm_backward_eval(s, x, dy, gamma, running_mean, running_var, eps, dx, dgamma, dbeta);
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU:
      return "relu";
    case Activation::ReLU6:
      return "relu6";
    case Activation::HardSwish:
      return "hardswish";
    case Activation::HardSigmoid:
      return "hardsigmoid";
    case Activation::Sigmoid:
      return "sigmoid";
    case Activation::SiLU:
      return "silu";
  }
  return "?";
}

template <typename T>
void activation_forward(const Context& ctx, Activation a, int64_t n, const T* x, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::activation_forward(ctx.device.index, a, n, x, y));
  cpu::activation_forward(a, n, x, y);
}

template <typename T>
void activation_backward(const Context& ctx, Activation a, int64_t n, const T* x, const T* dy, T* dx) {
  TL_ON_CUDA_NATIVE(ctx, cuda::activation_backward(ctx.device.index, a, n, x, dy, dx));
  cpu::activation_backward(a, n, x, dy, dx);
}

template <typename T>
void binary(const Context& ctx, BinaryOp op, int64_t n, const T* a, const T* b, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::binary(ctx.device.index, op, n, a, b, y));
  cpu::binary(op, n, a, b, y);
}

template <typename T>
void affine(const Context& ctx, int64_t n, const T* x, T scale, T shift, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::affine(ctx.device.index, n, x, scale, shift, y));
  cpu::affine(n, x, scale, shift, y);
}

template <typename T>
void axpby(const Context& ctx, int64_t n, T alpha, const T* x, T beta, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::axpby(ctx.device.index, n, alpha, x, beta, y));
  cpu::axpby(n, alpha, x, beta, y);
}

template <typename T>
void fill(const Context& ctx, int64_t n, T value, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::fill(ctx.device.index, n, value, y));
  cpu::fill(n, value, y);
}

template <typename T>
void channel_mul_forward(const Context& ctx, int64_t planes, int64_t spatial, const T* x, const T* scale,
                         T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::channel_mul_forward(ctx.device.index, planes, spatial, x, scale, y));
  cpu::channel_mul_forward(planes, spatial, x, scale, y);
}

template <typename T>
void channel_mul_backward(const Context& ctx, int64_t planes, int64_t spatial, const T* x, const T* scale,
                          const T* dy, T* dx, T* dscale) {
  TL_ON_CUDA_NATIVE(ctx,
                    cuda::channel_mul_backward(ctx.device.index, planes, spatial, x, scale, dy, dx, dscale));
  cpu::channel_mul_backward(planes, spatial, x, scale, dy, dx, dscale);
}

void copy_strided(const Context& ctx, int64_t element_size, int64_t ndim, const int64_t* sizes,
                  const int64_t* src_strides, const void* src, const int64_t* dst_strides, void* dst) {
  TL_ON_CUDA_NATIVE(ctx, cuda::copy_strided(ctx.device.index, element_size, ndim, sizes, src_strides, src,
                                            dst_strides, dst));
  cpu::copy_strided(element_size, ndim, sizes, src_strides, src, dst_strides, dst);
}

void cast(const Context& ctx, int64_t n, DType from, const void* src, DType to, void* dst) {
  TL_ON_CUDA_NATIVE(ctx, cuda::cast(ctx.device.index, n, from, src, to, dst));
  cpu::cast(n, from, src, to, dst);
}

template <typename T>
T sum(const Context& ctx, int64_t n, const T* x) {
  TL_ON_CUDA_NATIVE(ctx, cuda::sum(ctx.device.index, n, x));
  return cpu::sum(n, x);
}

template <typename T>
void sum_dim(const Context& ctx, int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::sum_dim(ctx.device.index, outer, reduced, inner, x, y));
  cpu::sum_dim(outer, reduced, inner, x, y);
}

template <typename T>
void max_pool2d_forward(const Context& ctx, const Pool2dShape& s, const T* x, T* y, int64_t* argmax) {
  TL_ON_CUDA_NATIVE(ctx, cuda::max_pool2d_forward(ctx.device.index, s, x, y, argmax));
  cpu::max_pool2d_forward(s, x, y, argmax);
}

template <typename T>
void max_pool2d_backward(const Context& ctx, const Pool2dShape& s, const T* dy, const int64_t* argmax,
                         T* dx) {
  TL_ON_CUDA_NATIVE(ctx, cuda::max_pool2d_backward(ctx.device.index, s, dy, argmax, dx));
  cpu::max_pool2d_backward(s, dy, argmax, dx);
}

template <typename T>
void avg_pool2d_forward(const Context& ctx, const Pool2dShape& s, bool count_include_pad, const T* x, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::avg_pool2d_forward(ctx.device.index, s, count_include_pad, x, y));
  cpu::avg_pool2d_forward(s, count_include_pad, x, y);
}

template <typename T>
void avg_pool2d_backward(const Context& ctx, const Pool2dShape& s, bool count_include_pad, const T* dy,
                         T* dx) {
  TL_ON_CUDA_NATIVE(ctx, cuda::avg_pool2d_backward(ctx.device.index, s, count_include_pad, dy, dx));
  cpu::avg_pool2d_backward(s, count_include_pad, dy, dx);
}

template <typename T>
void adaptive_avg_pool2d_forward(const Context& ctx, int64_t planes, int64_t in_h, int64_t in_w,
                                 int64_t out_h, int64_t out_w, const T* x, T* y) {
  TL_ON_CUDA_NATIVE(
      ctx, cuda::adaptive_avg_pool2d_forward(ctx.device.index, planes, in_h, in_w, out_h, out_w, x, y));
  cpu::adaptive_avg_pool2d_forward(planes, in_h, in_w, out_h, out_w, x, y);
}

template <typename T>
void adaptive_avg_pool2d_backward(const Context& ctx, int64_t planes, int64_t in_h, int64_t in_w,
                                  int64_t out_h, int64_t out_w, const T* dy, T* dx) {
  TL_ON_CUDA_NATIVE(
      ctx, cuda::adaptive_avg_pool2d_backward(ctx.device.index, planes, in_h, in_w, out_h, out_w, dy, dx));
  cpu::adaptive_avg_pool2d_backward(planes, in_h, in_w, out_h, out_w, dy, dx);
}

template <typename T>
T cross_entropy_forward(const Context& ctx, int64_t rows, int64_t classes, const T* logits,
                        const int64_t* labels, double label_smoothing, T* probs) {
  TL_ON_CUDA_NATIVE(ctx, cuda::cross_entropy_forward(ctx.device.index, rows, classes, logits, labels,
                                                     label_smoothing, probs));
  return cpu::cross_entropy_forward(rows, classes, logits, labels, label_smoothing, probs);
}

template <typename T>
void cross_entropy_backward(const Context& ctx, int64_t rows, int64_t classes, const T* probs,
                            const int64_t* labels, double label_smoothing, T dloss, T* dlogits) {
  TL_ON_CUDA_NATIVE(ctx, cuda::cross_entropy_backward(ctx.device.index, rows, classes, probs, labels,
                                                      label_smoothing, dloss, dlogits));
  cpu::cross_entropy_backward(rows, classes, probs, labels, label_smoothing, dloss, dlogits);
}

template <typename T>
void dropout_forward(const Context& ctx, int64_t n, double p, std::uint64_t seed, std::uint64_t offset,
                     const T* x, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::dropout_forward(ctx.device.index, n, p, seed, offset, x, y));
  cpu::dropout_forward(n, p, seed, offset, x, y);
}

template <typename T>
void dropout_backward(const Context& ctx, int64_t n, double p, std::uint64_t seed, std::uint64_t offset,
                      const T* dy, T* dx) {
  TL_ON_CUDA_NATIVE(ctx, cuda::dropout_backward(ctx.device.index, n, p, seed, offset, dy, dx));
  cpu::dropout_backward(n, p, seed, offset, dy, dx);
}

template <typename T>
void fill_uniform(const Context& ctx, int64_t n, std::uint64_t seed, std::uint64_t offset, double low,
                  double high, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::fill_uniform(ctx.device.index, n, seed, offset, low, high, y));
  cpu::fill_uniform(n, seed, offset, low, high, y);
}

template <typename T>
void fill_normal(const Context& ctx, int64_t n, std::uint64_t seed, std::uint64_t offset, double mean,
                 double stddev, T* y) {
  TL_ON_CUDA_NATIVE(ctx, cuda::fill_normal(ctx.device.index, n, seed, offset, mean, stddev, y));
  cpu::fill_normal(n, seed, offset, mean, stddev, y);
}

// ---- instantiations ---------------------------------------------------------------------------------------

#define TL_INSTANTIATE_FLOATING(T)                                                                           \
  template void gemm<T>(const Context&, bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t,         \
                        const T*, int64_t, T, T*, int64_t);                                                  \
  template void conv2d_forward<T>(const Context&, const Conv2dShape&, const T*, const T*, const T*, T*);     \
  template void conv2d_backward_data<T>(const Context&, const Conv2dShape&, const T*, const T*, T*);         \
  template void conv2d_backward_filter<T>(const Context&, const Conv2dShape&, const T*, const T*, T*, T*);   \
  template void linear_forward<T>(const Context&, int64_t, int64_t, int64_t, const T*, const T*, const T*,   \
                                  T*);                                                                       \
  template void linear_backward<T>(const Context&, int64_t, int64_t, int64_t, const T*, const T*, const T*,  \
                                   T*, T*, T*);                                                              \
  template void batch_norm_forward_train<T>(const Context&, const BatchNormShape&, const T*, const T*,       \
                                            const T*, double, double, T*, T*, T*, T*, T*);                   \
  template void batch_norm_backward_train<T>(const Context&, const BatchNormShape&, const T*, const T*,      \
                                             const T*, const T*, const T*, T*, T*, T*);                      \
  template void batch_norm_forward_eval<T>(const Context&, const BatchNormShape&, const T*, const T*,        \
                                           const T*, const T*, const T*, double, T*);                        \
  template void batch_norm_backward_eval<T>(const Context&, const BatchNormShape&, const T*, const T*,       \
                                            const T*, const T*, const T*, double, T*, T*, T*);               \
  template void activation_forward<T>(const Context&, Activation, int64_t, const T*, T*);                    \
  template void activation_backward<T>(const Context&, Activation, int64_t, const T*, const T*, T*);         \
  template void binary<T>(const Context&, BinaryOp, int64_t, const T*, const T*, T*);                        \
  template void affine<T>(const Context&, int64_t, const T*, T, T, T*);                                      \
  template void axpby<T>(const Context&, int64_t, T, const T*, T, T*);                                       \
  template void channel_mul_forward<T>(const Context&, int64_t, int64_t, const T*, const T*, T*);            \
  template void channel_mul_backward<T>(const Context&, int64_t, int64_t, const T*, const T*, const T*, T*,  \
                                        T*);                                                                 \
  template T sum<T>(const Context&, int64_t, const T*);                                                      \
  template void sum_dim<T>(const Context&, int64_t, int64_t, int64_t, const T*, T*);                         \
  template void max_pool2d_forward<T>(const Context&, const Pool2dShape&, const T*, T*, int64_t*);           \
  template void max_pool2d_backward<T>(const Context&, const Pool2dShape&, const T*, const int64_t*, T*);    \
  template void avg_pool2d_forward<T>(const Context&, const Pool2dShape&, bool, const T*, T*);               \
  template void avg_pool2d_backward<T>(const Context&, const Pool2dShape&, bool, const T*, T*);              \
  template void adaptive_avg_pool2d_forward<T>(const Context&, int64_t, int64_t, int64_t, int64_t, int64_t,  \
                                               const T*, T*);                                                \
  template void adaptive_avg_pool2d_backward<T>(const Context&, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                                const T*, T*);                                               \
  template T cross_entropy_forward<T>(const Context&, int64_t, int64_t, const T*, const int64_t*, double,    \
                                      T*);                                                                   \
  template void cross_entropy_backward<T>(const Context&, int64_t, int64_t, const T*, const int64_t*,        \
                                          double, T, T*);                                                    \
  template void dropout_forward<T>(const Context&, int64_t, double, std::uint64_t, std::uint64_t, const T*,  \
                                   T*);                                                                      \
  template void dropout_backward<T>(const Context&, int64_t, double, std::uint64_t, std::uint64_t, const T*, \
                                    T*);                                                                     \
  template void fill_uniform<T>(const Context&, int64_t, std::uint64_t, std::uint64_t, double, double, T*);  \
  template void fill_normal<T>(const Context&, int64_t, std::uint64_t, std::uint64_t, double, double, T*);

TL_INSTANTIATE_FLOATING(float)
TL_INSTANTIATE_FLOATING(double)
#undef TL_INSTANTIATE_FLOATING

template void fill<float>(const Context&, int64_t, float, float*);
template void fill<double>(const Context&, int64_t, double, double*);
template void fill<int64_t>(const Context&, int64_t, int64_t, int64_t*);

// ---- optimizer updates (CPU only for now) -----------------------------------------------------------------

template <typename T>
void sgd_update(const Context& ctx, const SgdStep& s, int64_t n, T* param, const T* grad,
                T* momentum_buffer) {
  TL_ON_CUDA_NATIVE(ctx, cuda::sgd_update(ctx.device.index, s, n, param, grad, momentum_buffer));
  cpu::sgd_update(s, n, param, grad, momentum_buffer);
}

template <typename T>
void adam_update(const Context& ctx, const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg,
                 T* exp_avg_sq) {
  TL_ON_CUDA_NATIVE(ctx, cuda::adam_update(ctx.device.index, s, n, param, grad, exp_avg, exp_avg_sq));
  cpu::adam_update(s, n, param, grad, exp_avg, exp_avg_sq);
}

template void sgd_update<float>(const Context&, const SgdStep&, int64_t, float*, const float*, float*);
template void sgd_update<double>(const Context&, const SgdStep&, int64_t, double*, const double*, double*);
template void adam_update<float>(const Context&, const AdamStep&, int64_t, float*, const float*, float*,
                                 float*);
template void adam_update<double>(const Context&, const AdamStep&, int64_t, double*, const double*, double*,
                                  double*);

}  // namespace tl::kernels
