// The AVX-512 SGEMM micro-kernel and its packing.
//
// Tile: 8 rows x 48 columns (24 zmm accumulators, three zmm of B, one broadcast of A). Per k it issues 3
// vector loads, 8 broadcasts and 24 FMAs: 12 cycles on the two FMA ports, with the 11 loads well inside the
// two load ports. Eight rows rather than the 14 x 32 that would use all 32 registers: when ldc is a multiple
// of 1024 floats (4 KiB, common: N = 1024, 2048, 16 * 56 * 56) every row of the C tile maps to the same L1
// set, and 14 rows overflow its 12 ways on each tile's read-modify-write; 8 rows fit (measured: 14 x 32 lost
// ~10% there).
//
// Edge tiles: a tile with fewer rows runs an instance compiled for exactly that many rows, and one with fewer
// columns an instance with only the vectors it needs, so edges cost only the work they contain; the columns
// past the edge are masked on the C loads and stores.
//
// Packing: the transposing cases go through 8 x 8 register transposes; the others are vector copies. The
// untransposed B panel is read row by row across all its micro-panels, so the reads stream through memory.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu/gemm_microkernel.h"

namespace tl::kernels::cpu::detail {
namespace {

constexpr int kMR = 8;
constexpr int kVec = 16;  // floats per zmm
constexpr int kNV = 3;    // zmm per tile row
constexpr int kNR = kNV * kVec;

// Lanes of vector v that hold one of the n valid columns.
inline __mmask16 column_mask(int n, int v) {
  const int valid = n - v * kVec;
  if (valid >= kVec) return static_cast<__mmask16>(0xFFFF);
  return valid <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << valid) - 1u);
}

// C[0..M) x [0..n) = alpha * acc + beta * C, columns past n masked off (beta == 0: C not read).
template <int M, int NV>
inline void store_tile(const __m512 (&acc)[M][NV], float* c, std::int64_t ldc, float alpha, float beta,
                       int n) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mask[v] = column_mask(n, v);
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_ps(c + i * ldc + v * kVec, mask[v], _mm512_mul_ps(va, acc[i][v]));
    return;
  }
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + v * kVec;
      const __m512 old = _mm512_maskz_loadu_ps(mask[v], ci);
      _mm512_mask_storeu_ps(ci, mask[v], _mm512_fmadd_ps(vb, old, _mm512_mul_ps(va, acc[i][v])));
    }
  }
}

// The register-blocked product of an M-row A micro-panel and the first NV vectors of a B micro-panel.
template <int M, int NV>
void tile(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, float alpha,
          float beta, int n) {
  __m512 acc[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

      // The C tile is needed after the loop: start bringing it into L2 (not L1, where the A and B streams
      // would evict it before use).
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * kVec - 1), _MM_HINT_T1);
  }

  for (std::int64_t k = 0; k < kc; ++k, a += kMR, b += kNR) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + v * kVec);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  store_tile<M, NV>(acc, c, ldc, alpha, beta, n);
}

using TileFn = void (*)(std::int64_t, const float*, const float*, float*, std::int64_t, float, float, int);

// kTiles[nv - 1][m - 1] is the instance for m rows and nv vectors per row.
template <int NV, std::size_t... Ms>
constexpr std::array<TileFn, kMR> row_instances(std::index_sequence<Ms...>) {
  return {&tile<static_cast<int>(Ms) + 1, NV>...};
}
template <std::size_t... Vs>
constexpr std::array<std::array<TileFn, kMR>, kNV> all_instances(std::index_sequence<Vs...>) {
  return {row_instances<static_cast<int>(Vs) + 1>(std::make_index_sequence<kMR>{})...};
}
constexpr std::array<std::array<TileFn, kMR>, kNV> kTiles = all_instances(std::make_index_sequence<kNV>{});

void run(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, float alpha, float beta,
         int m, int n) {
  const int nv = (n + kVec - 1) / kVec;
  kTiles[nv - 1][m - 1](kc, a, b, c, ldc, alpha, beta, n);
}

// ---- packing ----------------------------------------------------------------------------------------------

inline __mmask8 first_lanes8(std::int64_t n) {
  return n >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << n) - 1u);
}

// dst[c * ldd + r] = src[r * lds + c] for the r < rows, c < cols block of src (rows, cols <= 8); source rows
// past `rows` read as zeros; writes the `cols` destination rows of 8 floats each.
inline void transpose8x8(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, float* dst,
                         std::int64_t ldd) {
  const __mmask8 mask = first_lanes8(cols);
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    r[i] = i < rows ? _mm256_maskz_loadu_ps(mask, src + i * lds) : _mm256_setzero_ps();
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then rows 4-7
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  // u[j] holds columns j (low lane) and j + 4 (high lane) of rows 0-3; u[4 + j] the same for rows 4-7.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    if (j < cols) _mm256_storeu_ps(dst + j * ldd, _mm256_permute2f128_ps(u[j], u[4 + j], 0x20));
    if (j + 4 < cols) _mm256_storeu_ps(dst + (j + 4) * ldd, _mm256_permute2f128_ps(u[j], u[4 + j], 0x31));
  }
}

void pack_a(const float* a, std::int64_t lda, bool trans, std::int64_t mc, std::int64_t kc, float* out) {
  for (std::int64_t p = 0; p < mc; p += kMR, out += kMR * kc) {
    const std::int64_t rows = mc - p < kMR ? mc - p : kMR;
    if (trans) {  // op(A)(i, k) = a[k * lda + i]: the panel's 8 values for one k are contiguous
      const __mmask8 mask = first_lanes8(rows);
      for (std::int64_t k = 0; k < kc; ++k)
        _mm256_storeu_ps(out + k * kMR, _mm256_maskz_loadu_ps(mask, a + k * lda + p));
    } else {  // op(A)(i, k) = a[i * lda + k]: transpose 8 rows x 8 k at a time
      for (std::int64_t k = 0; k < kc; k += 8)
        transpose8x8(a + p * lda + k, lda, rows, kc - k < 8 ? kc - k : 8, out + k * kMR, kMR);
    }
  }
}

void pack_b(const float* b, std::int64_t ldb, bool trans, std::int64_t kc, std::int64_t nc, float* out) {
  if (!trans) {  // op(B)(k, j) = b[k * ldb + j]: copy row k across every micro-panel, so reads stream
    for (std::int64_t k = 0; k < kc; ++k) {
      const float* src = b + k * ldb;
      float* dst = out + k * kNR;
      for (std::int64_t q = 0; q < nc; q += kNR, dst += kNR * kc) {
#pragma GCC unroll 4
        for (int v = 0; v < kNV; ++v) {
          const std::int64_t valid = nc - q - v * kVec;
          const __mmask16 mask = valid >= kVec ? static_cast<__mmask16>(0xFFFF)
                                 : valid <= 0  ? static_cast<__mmask16>(0)
                                               : static_cast<__mmask16>((1u << valid) - 1u);
          _mm512_store_ps(dst + v * kVec, _mm512_maskz_loadu_ps(mask, src + q + v * kVec));
        }
      }
    }
    return;
  }
  // op(B)(k, j) = b[j * ldb + k]: transpose 8 columns x 8 k at a time.
  for (std::int64_t q = 0; q < nc; q += kNR, out += kNR * kc) {
    for (std::int64_t k = 0; k < kc; k += 8) {
      const std::int64_t depth = kc - k < 8 ? kc - k : 8;
      for (std::int64_t g = 0; g < kNR; g += 8) {
        const std::int64_t cols = nc - q - g;  // source rows of this group that exist (may be <= 0: zeros)
        const float* src = cols > 0 ? b + (q + g) * ldb + k : b;
        transpose8x8(src, ldb, cols < 0 ? 0 : cols, depth, out + k * kNR + g, kNR);
      }
    }
  }
}

}  // namespace

GemmKernel<float> avx512_sgemm_kernel() {
  // Measured on a 2-core Sapphire Rapids VM (48 KiB L1d, 2 MiB L2 per core), see bench/RESULTS.md:
  //  kc 512: deep slices halve C's read-modify-write traffic against 256 (+3-5% at 1024^3); the 96 KiB B
  //          micro-panel then streams from L2, which keeps up with 3 loads per 12 cycles.
  //  mc 512: the packed 512 x 512 A block (1 MiB) stays in L2.
  //  nc 4080: a thread's packed 512 x 4080 B panel (8 MiB) lives in L3; used only with more rows than one A
  //  block. chunk 384 KiB of packed B when one A block covers a thread's rows (beat 96 KiB-1.5 MiB on
  //  ResNet-50 shapes).
  return {"native-avx512", kMR, kNR, 512, 512, 4080, 384 * 1024, &run, &pack_a, &pack_b};
}

}  // namespace tl::kernels::cpu::detail
