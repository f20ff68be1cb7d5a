// Library-backed kernels behind the same contracts as kernels/ops.h: OpenBLAS on the CPU (cuDNN and cuBLAS
// join here with the CUDA backend).
#pragma once

#include <cstdint>

namespace tl::kernels::vendor {

// cblas_sgemm / cblas_dgemm, row-major.
template <typename T>
void openblas_gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
                   const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C,
                   std::int64_t ldc);

}  // namespace tl::kernels::vendor
