// What one kernels/cuda file defines for another to call, outside the facade (kernels/cuda/cuda.h): declared
// once here, so the defining and the calling file cannot drift apart. Same conventions as cuda.h (device
// pointers on cuda:`device`, queued on its stream, no waiting), except that these expect the caller to have
// made `device` current (a DeviceGuard in the facade entry point). Plain C++ declarations.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace tl::kernels::cuda::detail {

// gemm.cu. For b < batch: C[b] = alpha op(A[b]) op(B[b]) + beta C[b] (+ row_bias[m] on row m, if not null),
// matrix b of each operand at X + b * stride_x; one launch for the whole batch. Used by the 1x1 convolutions
// of conv2d_implicit_gemm.cu.
template <typename T>
void gemm_strided_batched(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                          int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch,
                          const T* row_bias);

// conv2d_depthwise.cu: the conv2d_* entry points (conv2d_implicit_gemm.cu) for depthwise shapes (groups ==
// in_channels == out_channels), with their contracts.
template <typename T>
void depthwise_conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void depthwise_conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void depthwise_conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                                      T* dbias);

}  // namespace tl::kernels::cuda::detail
