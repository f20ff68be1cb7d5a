// The AVX2/FMA SGEMM micro-kernel: a 6 x 16 register tile (12 ymm accumulators, two ymm of B, one broadcast
// of A = 15 of the 16 registers), the shape BLIS uses on Haswell-class cores. Per k: 2 vector loads, 6
// broadcasts, 12 FMAs.
//
// Edge tiles: a tile with fewer rows runs an instance compiled for exactly that many rows, and one with at
// most 8 columns an instance with one vector per row; the remaining columns are masked on the C loads and
// stores.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu/gemm_microkernel.h"

namespace tl::kernels::cpu::detail {
namespace {

constexpr int kMR = 6;
constexpr int kVec = 8;  // floats per ymm
constexpr int kNV = 2;   // ymm per tile row
constexpr int kNR = kNV * kVec;

// All-ones in the lanes of vector v that hold one of the n valid columns.
inline __m256i column_mask(int n, int v) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n - v * kVec), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// C[0..M) x [0..n) = alpha * acc + beta * C, columns past n masked off (beta == 0: C not read).
template <int M, int NV>
inline void store_tile(const __m256 (&acc)[M][NV], float* c, std::int64_t ldc, float alpha, float beta,
                       int n) {
  __m256i mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mask[v] = column_mask(n, v);
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + v * kVec;
      __m256 r = _mm256_mul_ps(va, acc[i][v]);
      if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, mask[v]), r);
      _mm256_maskstore_ps(ci, mask[v], r);
    }
  }
}

// The register-blocked product of an M-row A micro-panel and the first NV vectors of a B micro-panel.
template <int M, int NV>
void tile(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, float alpha,
          float beta, int n) {
  __m256 acc[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();

  for (std::int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + v * kVec);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMR;
    b += kNR;
  }
  store_tile<M, NV>(acc, c, ldc, alpha, beta, n);
}

using TileFn = void (*)(std::int64_t, const float*, const float*, float*, std::int64_t, float, float, int);

// kTiles[nv - 1][m - 1] is the instance for m rows and nv vectors per row.
template <int NV, std::size_t... Ms>
constexpr std::array<TileFn, kMR> row_instances(std::index_sequence<Ms...>) {
  return {&tile<static_cast<int>(Ms) + 1, NV>...};
}
constexpr std::array<std::array<TileFn, kMR>, kNV> kTiles = {
    row_instances<1>(std::make_index_sequence<kMR>{}),
    row_instances<2>(std::make_index_sequence<kMR>{}),
};

void run(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, float alpha, float beta,
         int m, int n) {
  const int nv = (n + kVec - 1) / kVec;
  kTiles[nv - 1][m - 1](kc, a, b, c, ldc, alpha, beta, n);
}

}  // namespace

GemmKernel<float> avx2_sgemm_kernel() {
  // BLIS's Haswell blocking for this tile: a 168 x 256 A block (168 KiB) for a 256 KiB-class L2, a 256 x 16 B
  // micro-panel (16 KiB) in a 32 KiB L1d, a 256 x 4080 B panel in L3; B chunks of 128 KiB (half such an L2).
  // Not tuned or timed: the facade runs it only on CPUs without AVX-512 (the tests call it directly).
  return {"native-avx2", kMR, kNR, 168, 256, 4080, 128 * 1024, &run};
}

}  // namespace tl::kernels::cpu::detail
