// The vendor GPU path behind kernels/ops.h: cuDNN and cuBLAS. Same contracts as the facade, with the Context
// replaced by the device index (pointers are device memory on cuda:`device`; calls are queued on its stream).
// TF32 math is used only when tl::cuda::tf32_allowed() (off by default). Plain C++ declarations.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/ops.h"

namespace tl::kernels::vendor {

// cublasSgemm / cublasDgemm, row-major (computed as the column-major transpose).
template <typename T>
void cublas_gemm(int device, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                 T alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C,
                 std::int64_t ldc);

template <typename T>
void cublas_linear_forward(int device, std::int64_t rows, std::int64_t in, std::int64_t out, const T* x,
                           const T* w, const T* b, T* y);
template <typename T>
void cublas_linear_backward(int device, std::int64_t rows, std::int64_t in, std::int64_t out, const T* x,
                            const T* w, const T* dy, T* dx, T* dw, T* db);

// cuDNN convolutions. The algorithm of each (direction, shape, dtype, math mode) is found once with
// cudnnFind…AlgorithmEx within a workspace limit and cached for the process.
template <typename T>
void cudnn_conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void cudnn_conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void cudnn_conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias);

// The algorithms the cache chose so far, one line each ("fwd f32 n32 c64 64x56x56 k64 3x3 s1: algo 1"), for
// benchmarks and bench/RESULTS.md.
std::string cudnn_chosen_algorithms();

// cuDNN spatial batch normalisation (cudnnBatchNormalizationForwardTraining / …Inference / …Backward).
template <typename T>
void cudnn_batch_norm_forward_train(int device, const BatchNormShape& s, const T* x, const T* gamma,
                                    const T* beta, double eps, double momentum, T* running_mean,
                                    T* running_var, T* y, T* save_mean, T* save_invstd);
template <typename T>
void cudnn_batch_norm_backward_train(int device, const BatchNormShape& s, const T* x, const T* dy,
                                     const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                                     T* dgamma, T* dbeta);
template <typename T>
void cudnn_batch_norm_forward_eval(int device, const BatchNormShape& s, const T* x, const T* gamma,
                                   const T* beta, const T* running_mean, const T* running_var, double eps,
                                   T* y);

}  // namespace tl::kernels::vendor
