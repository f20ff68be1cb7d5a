// cuBLAS behind the facade's GEMM and linear contracts (kernels/vendor/cuda_vendor.h).
//
// cuBLAS is column-major and tl is row-major. A row-major matrix with row stride ld, read column-major, is
// its transpose with leading dimension ld; so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: the
// operands swap places, M and N swap, the transpose flags stay with their operands, and no data moves.
//
// Precision: float products use TF32 tensor cores only when tl::cuda::tf32_allowed(). Otherwise the compute
// type is CUBLAS_COMPUTE_32F under CUBLAS_DEFAULT_MATH, which cuBLAS guarantees keeps at least float32's
// mantissa and exponent in every phase (TF32's 10-bit mantissa is excluded); the _PEDANTIC variant would add
// nothing for float data but may forgo faster float32 kernels, so it is not used.
#include <cublas_v2.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"
#include "kernels/vendor/cuda_vendor.h"

namespace tl::kernels::vendor {
namespace {

using std::int64_t;

template <typename T>
constexpr cudaDataType_t blas_type() {
  if constexpr (std::is_same_v<T, double>)
    return CUDA_R_64F;
  else
    return CUDA_R_32F;
}

// The handle is shared by every cuBLAS call this thread makes on the device, so its modes are set on every
// call rather than trusted: host scalars (alpha, beta live on our stack), and the math mode that, together
// with the compute type returned, decides whether float products may run on TF32.
template <typename T>
cublasComputeType_t prepare(cublasHandle_t handle) {
  TL_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  if constexpr (std::is_same_v<T, double>) {
    TL_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    return CUBLAS_COMPUTE_64F;
  } else {
    const bool tf32 = ::tl::cuda::tf32_allowed();
    TL_CUBLAS_CHECK(cublasSetMathMode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  }
}

cublasOperation_t op(bool trans) {
  return trans ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// Row-major C[M,N] = alpha op(A) op(B) + beta C on the device's handle (the caller holds the DeviceGuard).
// The _64 entry points take the int64 sizes as they are: no narrowing for large activations.
template <typename T>
void gemm_rows(int device, cublasHandle_t handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    // C = beta * C (zeros when beta == 0). cuBLAS would reject the leading dimensions an empty A or B may
    // carry (lda = 0); our kernel handles any shape, and this case costs one pass over C either way.
    ::tl::kernels::cuda::gemm<T>(device, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const cublasComputeType_t compute = prepare<T>(handle);
  // cuBLAS does not read C when beta == 0, as the facade's contract requires (C may hold NaN on entry).
  TL_CUBLAS_CHECK(cublasGemmEx_64(handle, op(trans_b), op(trans_a), N, M, K, &alpha, B, blas_type<T>(), ldb,
                                  A, blas_type<T>(), lda, &beta, C, blas_type<T>(), ldc, compute,
                                  CUBLAS_GEMM_DEFAULT));
}

// A device vector of n ones, for the bias broadcast and the bias-gradient column sums.
template <typename T>
void fill_ones(int device, int64_t n, T* ones) {
  ::tl::kernels::cuda::fill<T>(device, n, T(1), ones);
}

// y[o, r] += b[o] * ones[r] on the column-major view of y: a rank-1 update, Level 2, so never TF32.
void ger(cublasHandle_t handle, int64_t m, int64_t n, const float* x, const float* y, float* A, int64_t lda) {
  const float one = 1.0f;
  TL_CUBLAS_CHECK(cublasSger_64(handle, m, n, &one, x, 1, y, 1, A, lda));
}
void ger(cublasHandle_t handle, int64_t m, int64_t n, const double* x, const double* y, double* A,
         int64_t lda) {
  const double one = 1.0;
  TL_CUBLAS_CHECK(cublasDger_64(handle, m, n, &one, x, 1, y, 1, A, lda));
}

// y = A x with A column-major [m, n]; y is not read (beta == 0).
void gemv(cublasHandle_t handle, int64_t m, int64_t n, const float* A, int64_t lda, const float* x,
          float* y) {
  const float one = 1.0f, zero = 0.0f;
  TL_CUBLAS_CHECK(cublasSgemv_64(handle, CUBLAS_OP_N, m, n, &one, A, lda, x, 1, &zero, y, 1));
}
void gemv(cublasHandle_t handle, int64_t m, int64_t n, const double* A, int64_t lda, const double* x,
          double* y) {
  const double one = 1.0, zero = 0.0;
  TL_CUBLAS_CHECK(cublasDgemv_64(handle, CUBLAS_OP_N, m, n, &one, A, lda, x, 1, &zero, y, 1));
}

}  // namespace

template <typename T>
void cublas_gemm(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  ::tl::cuda::DeviceGuard guard(device);
  gemm_rows<T>(device, ::tl::cuda::cublas_handle(device), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
               beta, C, ldc);
}

// y = x w^T, then + b: the bias is added by a rank-1 update after the product rather than broadcast into y
// by a K = 1 product before it, because under TF32 that product would round b to TF32 too.
template <typename T>
void cublas_linear_forward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                           const T* b, T* y) {
  ::tl::cuda::DeviceGuard guard(device);
  if (rows == 0 || out == 0) return;
  cublasHandle_t handle = ::tl::cuda::cublas_handle(device);
  gemm_rows<T>(device, handle, false, true, rows, out, in, T(1), x, in, w, in, T(0), y, out);
  if (b) {
    ::tl::cuda::Workspace ones(device, static_cast<std::size_t>(rows) * sizeof(T));
    fill_ones<T>(device, rows, ones.as<T>());
    prepare<T>(handle);
    // Read column-major, y is [out, rows] with leading dimension out: y += b ones^T.
    ger(handle, out, rows, b, ones.as<T>(), y, out);
  }
}

// dx = dy w; dw = dy^T x; db = column sums of dy, each skipped when its output is null.
template <typename T>
void cublas_linear_backward(int device, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                            const T* dy, T* dx, T* dw, T* db) {
  ::tl::cuda::DeviceGuard guard(device);
  cublasHandle_t handle = ::tl::cuda::cublas_handle(device);
  if (dx) gemm_rows<T>(device, handle, false, false, rows, in, out, T(1), dy, out, w, in, T(0), dx, in);
  if (dw) gemm_rows<T>(device, handle, true, false, out, in, rows, T(1), dy, out, x, in, T(0), dw, in);
  if (db && out > 0) {
    if (rows == 0) {
      // An empty sum is zero; cuBLAS's gemv returns early for n == 0 and would leave db unwritten.
      TL_CUDA_CHECK(
          cudaMemsetAsync(db, 0, static_cast<std::size_t>(out) * sizeof(T), ::tl::cuda::stream(device)));
      return;
    }
    ::tl::cuda::Workspace ones(device, static_cast<std::size_t>(rows) * sizeof(T));
    fill_ones<T>(device, rows, ones.as<T>());
    prepare<T>(handle);
    // Read column-major, dy is [out, rows] with leading dimension out: db = dy ones.
    gemv(handle, out, rows, dy, out, ones.as<T>(), db);
  }
}

template void cublas_gemm<float>(int, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                 const float*, int64_t, float, float*, int64_t);
template void cublas_gemm<double>(int, bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                  const double*, int64_t, double, double*, int64_t);
template void cublas_linear_forward<float>(int, int64_t, int64_t, int64_t, const float*, const float*,
                                           const float*, float*);
template void cublas_linear_forward<double>(int, int64_t, int64_t, int64_t, const double*, const double*,
                                            const double*, double*);
template void cublas_linear_backward<float>(int, int64_t, int64_t, int64_t, const float*, const float*,
                                            const float*, float*, float*, float*);
template void cublas_linear_backward<double>(int, int64_t, int64_t, int64_t, const double*, const double*,
                                             const double*, double*, double*, double*);

}  // namespace tl::kernels::vendor
