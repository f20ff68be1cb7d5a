// The CPU implementations behind kernels/ops.h. Same contracts as the facade (see ops.h), minus the Context
// where a kernel has only one CPU path.
//   tl::kernels::cpu::ref  plain loops written for clarity: the ground truth every other path is tested
//   against tl::kernels::cpu       the fast paths (blocked GEMM with SIMD micro-kernels, im2col convolution,
//   a direct
//                          depthwise kernel, OpenMP) and the kernels that need only one implementation
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace tl::kernels::cpu {

namespace ref {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias);

}  // namespace ref

// ---- fast paths -------------------------------------------------------------------------------------------

// Blocked, packed GEMM; float runs an AVX-512 or AVX2/FMA micro-kernel chosen by CPUID at run time.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
// "native-avx512", "native-avx2" or "native-generic": the micro-kernel gemm<float> uses on this CPU.
const char* gemm_microkernel_name();

// General convolution through im2col and the GEMM of `ctx` (so the GEMM follows the kernel policy).
template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias);

// Linear through the GEMM of `ctx`.
template <typename T>
void linear_forward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                    const T* b, T* y);
template <typename T>
void linear_backward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                     const T* dy, T* dx, T* dw, T* db);

// Depthwise convolution (groups == in_channels == out_channels), direct.
template <typename T>
void depthwise_conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void depthwise_conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void depthwise_conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias);

// ---- single-implementation kernels (clear loops, OpenMP where the work is large) --------------------------

template <typename T>
void batch_norm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta, double eps,
                              double momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                              T* save_invstd);
template <typename T>
void batch_norm_backward_train(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta);
template <typename T>
void batch_norm_forward_eval(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, double eps, T* y);
template <typename T>
void batch_norm_backward_eval(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma,
                              T* dbeta);

template <typename T>
void activation_forward(Activation a, int64_t n, const T* x, T* y);
template <typename T>
void activation_backward(Activation a, int64_t n, const T* x, const T* dy, T* dx);

template <typename T>
void binary(BinaryOp op, int64_t n, const T* a, const T* b, T* y);
template <typename T>
void affine(int64_t n, const T* x, T scale, T shift, T* y);
template <typename T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y);
template <typename T>
void fill(int64_t n, T value, T* y);
template <typename T>
void channel_mul_forward(int64_t planes, int64_t spatial, const T* x, const T* scale, T* y);
template <typename T>
void channel_mul_backward(int64_t planes, int64_t spatial, const T* x, const T* scale, const T* dy, T* dx,
                          T* dscale);
void copy_strided(int64_t element_size, int64_t ndim, const int64_t* sizes, const int64_t* src_strides,
                  const void* src, const int64_t* dst_strides, void* dst);
void cast(int64_t n, DType from, const void* src, DType to, void* dst);

template <typename T>
T sum(int64_t n, const T* x);
template <typename T>
void sum_dim(int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y);

template <typename T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int64_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const int64_t* argmax, T* dx);
template <typename T>
void avg_pool2d_forward(const Pool2dShape& s, bool count_include_pad, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, const T* dy, T* dx);
template <typename T>
void adaptive_avg_pool2d_forward(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                 const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                  const T* dy, T* dx);

template <typename T>
T cross_entropy_forward(int64_t rows, int64_t classes, const T* logits, const int64_t* labels,
                        double label_smoothing, T* probs);
template <typename T>
void cross_entropy_backward(int64_t rows, int64_t classes, const T* probs, const int64_t* labels,
                            double label_smoothing, T dloss, T* dlogits);

template <typename T>
void dropout_forward(int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* x, T* y);
template <typename T>
void dropout_backward(int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* dy, T* dx);
template <typename T>
void fill_uniform(int64_t n, std::uint64_t seed, std::uint64_t offset, double low, double high, T* y);
template <typename T>
void fill_normal(int64_t n, std::uint64_t seed, std::uint64_t offset, double mean, double stddev, T* y);

// ---- optimizer updates (kernels/cpu/optimizer.cpp) ----------------------------------------------------

template <typename T>
void sgd_update(const SgdStep& s, int64_t n, T* param, const T* grad, T* momentum_buffer);
template <typename T>
void adam_update(const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq);

}  // namespace tl::kernels::cpu
