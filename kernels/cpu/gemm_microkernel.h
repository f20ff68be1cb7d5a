// Private to the CPU GEMM: what the blocked driver (gemm.cpp) and its SIMD micro-kernels agree on.
//
// Packed layouts (built by the driver's packing, which also resolves the transposes):
//   A micro-panel: mr rows x kc, k-major: element (i, k) at a[k * mr + i]
//   B micro-panel: kc x nr, k-major:      element (k, j) at b[k * nr + j], 64-byte aligned
// Rows and columns beyond the matrix edge are zero in the panels.
//
// A micro-kernel computes one m x n tile (1 <= m <= mr, 1 <= n <= nr) of
//   C = alpha * Apanel * Bpanel + beta * C
// from the two micro-panels, touching only C[0..m) x [0..n) (row stride ldc). beta == 0 means C is not read.
#pragma once

#include <cstdint>

namespace tl::kernels::cpu::detail {

template <typename T>
using MicroKernelFn = void (*)(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc, T alpha,
                               T beta, int m, int n);

// Packs the mc x kc block of op(A) whose element (0, 0) is at `a` into mr-row micro-panels, one after
// another. op(A)(i, k) is a[i * lda + k], or a[k * lda + i] when trans.
template <typename T>
using PackAFn = void (*)(const T* a, std::int64_t lda, bool trans, std::int64_t mc, std::int64_t kc, T* out);
// Packs the kc x nc block of op(B) whose element (0, 0) is at `b` into nr-column micro-panels, one after
// another. op(B)(k, j) is b[k * ldb + j], or b[j * ldb + k] when trans.
template <typename T>
using PackBFn = void (*)(const T* b, std::int64_t ldb, bool trans, std::int64_t kc, std::int64_t nc, T* out);

// A micro-kernel, the cache blocking tuned for it and, optionally, packing routines written for its
// instruction set (null: the driver's portable packing). Blocking: mc rows of A per packed block (a multiple
// of mr), kc deep slices of K, nc columns per packed B panel (a multiple of nr), and b_chunk_bytes of packed
// B per chunk when the driver packs B in chunks that are used at once (see the Plan in gemm.cpp).
template <typename T>
struct GemmKernel {
  const char* name;
  int mr, nr;
  std::int64_t mc, kc, nc, b_chunk_bytes;
  MicroKernelFn<T> run;
  PackAFn<T> pack_a = nullptr;
  PackBFn<T> pack_b = nullptr;
};

// Defined in the micro-kernel files, which are compiled for their instruction sets: call one only after CPUID
// says the instructions exist.
GemmKernel<float> avx512_sgemm_kernel();
GemmKernel<float> avx2_sgemm_kernel();

}  // namespace tl::kernels::cpu::detail
