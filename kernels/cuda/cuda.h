// tl's own CUDA kernels behind kernels/ops.h (the "native" GPU path). Same contracts as the facade (see
// ops.h), with the Context replaced by the device index: every pointer is device memory on cuda:`device`, and
// every kernel is queued on that device's stream (kernels/cuda/runtime.h) and returns without waiting, except
// those that return a value to the host (sum, cross_entropy_forward), which wait for it.
// Plain C++ declarations, so dispatch.cpp (a host compiler's file) can call them.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace tl::kernels::cuda {

// ---- matrix products and convolutions (gemm.cu, conv2d_implicit_gemm.cu, conv2d_depthwise.cu) ------------

// Tiled SGEMM/DGEMM: shared-memory tiles, register blocking; any shape, any transposes, any leading dims.
template <typename T>
void gemm(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Convolution: 1x1 stride-1 unpadded ungrouped as GEMM, depthwise by a direct kernel, everything else by an
// implicit-GEMM kernel (no im2col buffer), grouped convolutions included.
template <typename T>
void conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias);

// Linear through gemm above.
template <typename T>
void linear_forward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w, const T* b,
                    T* y);
template <typename T>
void linear_backward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w, const T* dy,
                     T* dx, T* dw, T* db);

// ---- normalisation (batch_norm.cu) -------------------------------------------------------------------------

template <typename T>
void batch_norm_forward_train(int device, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                              double eps, double momentum, T* running_mean, T* running_var, T* y,
                              T* save_mean, T* save_invstd);
template <typename T>
void batch_norm_backward_train(int device, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta);
template <typename T>
void batch_norm_forward_eval(int device, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, double eps, T* y);
template <typename T>
void batch_norm_backward_eval(int device, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma,
                              T* dbeta);

// ---- element-wise (activation.cu, elementwise.cu) ----------------------------------------------------------

template <typename T>
void activation_forward(int device, Activation a, int64_t n, const T* x, T* y);
template <typename T>
void activation_backward(int device, Activation a, int64_t n, const T* x, const T* dy, T* dx);

template <typename T>
void binary(int device, BinaryOp op, int64_t n, const T* a, const T* b, T* y);
template <typename T>
void affine(int device, int64_t n, const T* x, T scale, T shift, T* y);
template <typename T>
void axpby(int device, int64_t n, T alpha, const T* x, T beta, T* y);
// T: float, double or int64_t.
template <typename T>
void fill(int device, int64_t n, T value, T* y);

template <typename T>
void channel_mul_forward(int device, int64_t planes, int64_t spatial, const T* x, const T* scale, T* y);
template <typename T>
void channel_mul_backward(int device, int64_t planes, int64_t spatial, const T* x, const T* scale,
                          const T* dy, T* dx, T* dscale);

// ndim <= 8 (more throws ValueError). Both pointers on `device`.
void copy_strided(int device, int64_t element_size, int64_t ndim, const int64_t* sizes,
                  const int64_t* src_strides, const void* src, const int64_t* dst_strides, void* dst);
void cast(int device, int64_t n, DType from, const void* src, DType to, void* dst);

// ---- reductions (reduce.cu) ------------------------------------------------------------------------------

template <typename T>
T sum(int device, int64_t n, const T* x);
template <typename T>
void sum_dim(int device, int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y);

// ---- pooling (pool.cu) -----------------------------------------------------------------------------------

template <typename T>
void max_pool2d_forward(int device, const Pool2dShape& s, const T* x, T* y, int64_t* argmax);
template <typename T>
void max_pool2d_backward(int device, const Pool2dShape& s, const T* dy, const int64_t* argmax, T* dx);
template <typename T>
void avg_pool2d_forward(int device, const Pool2dShape& s, bool count_include_pad, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(int device, const Pool2dShape& s, bool count_include_pad, const T* dy, T* dx);
template <typename T>
void adaptive_avg_pool2d_forward(int device, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(int device, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w, const T* dy, T* dx);

// ---- loss, randomness, optimizers (cross_entropy.cu, random.cu, optimizer.cu) ------------------------------

// labels on the device; a label out of range throws ValueError naming the first such row and its label.
template <typename T>
T cross_entropy_forward(int device, int64_t rows, int64_t classes, const T* logits, const int64_t* labels,
                        double label_smoothing, T* probs);
template <typename T>
void cross_entropy_backward(int device, int64_t rows, int64_t classes, const T* probs, const int64_t* labels,
                            double label_smoothing, T dloss, T* dlogits);

// The same Philox streams as the CPU (kernels/philox.h): bit-identical masks and values on both devices.
template <typename T>
void dropout_forward(int device, int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* x,
                     T* y);
template <typename T>
void dropout_backward(int device, int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* dy,
                      T* dx);
template <typename T>
void fill_uniform(int device, int64_t n, std::uint64_t seed, std::uint64_t offset, double low, double high,
                  T* y);
template <typename T>
void fill_normal(int device, int64_t n, std::uint64_t seed, std::uint64_t offset, double mean, double stddev,
                 T* y);

// Fused: one launch updates all n values of a parameter (and its state) in place.
template <typename T>
void sgd_update(int device, const SgdStep& s, int64_t n, T* param, const T* grad, T* momentum_buffer);
template <typename T>
void adam_update(int device, const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg,
                 T* exp_avg_sq);

}  // namespace tl::kernels::cuda
