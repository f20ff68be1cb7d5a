// The register-blocked GEMM tile that gemm.cu and conv2d_implicit_gemm.cu both build their kernels from, in
// one place so a change to the blocking, or a fix, reaches both. Each file keeps its own kernel, its epilogue
// and any operand loaders beyond the dense ones here (the convolution's gathers).
//
// One thread block computes a BM x BN tile of C = op(A) op(B), walking the reduction in slices of BK = 8.
// Whichever way an operand is stored, its loader lands the slice in shared memory k-major (As[k][m],
// Bs[k][n]), so the product reads both the same way: per k, a thread takes 8 values of A and 8 of B as four
// 16-byte shared loads and does 64 FMAs into its 8 x 8 register tile. A thread's 8 rows are two runs of 4,
// BM/2 apart (its columns likewise, BN/2 apart): a warp's 16-byte shared loads are then either broadcasts or
// consecutive, free of bank conflicts. Shared memory holds two slices; the next one is fetched from global
// memory into registers while this one is multiplied, so a single barrier per slice orders everything.
//
// So thread (tm, tn) = (tid / kThreadsN, tid % kThreadsN) ends with acc[i][h * 4 + j] = C at tile row
// (i < 4 ? tm * 4 + i : BM / 2 + tm * 4 + i - 4) and tile column h * BN / 2 + tn * 4 + j; that is what an
// epilogue writes out.
//
// A loader is any type with fetch(k0) (global memory -> registers: the slice starting at reduction index k0,
// zeros past the operand's edges) and stash(tile, pitch) (registers -> the shared slice, k-major). Plain FP32
// FMAs throughout (no TF32), so results agree with the CPU within float32 rounding.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tl::kernels::cuda::tile {

constexpr int kBK = 8;

// A tile shape. Each thread owns an 8 x 8 block of C, so BM/8 x BN/8 threads.
template <typename T, int BM_, int BN_, int kMinBlocks_>
struct Tiling {
  static constexpr int BM = BM_, BN = BN_, BK = kBK;
  static constexpr int kThreadsN = BN / 8;
  static constexpr int kThreads = (BM / 8) * (BN / 8);
  static constexpr int kMinBlocks = kMinBlocks_;
  // Row pitch of a shared slice. 4 elements of padding keep rows 16-byte aligned and make the transposing
  // stores of a k-contiguous operand hit 32 different banks (pitch = 4 mod 32 words).
  static constexpr int kLdA = BM + 4, kLdB = BN + 4;
  static constexpr int kStageA = BK * kLdA, kStageB = BK * kLdB;
};

// float: 128 x 128 (256 threads), at most 128 registers so two blocks share a multiprocessor; 64 x 128 (128
// threads, three blocks) for outputs of at most 64 rows (64-channel layers), so half of every tile is not
// wasted. double: 64 x 64, 64 threads (FP64 serves gradient checks, not training).
using FloatWide = Tiling<float, 128, 128, 2>;
using FloatNarrow = Tiling<float, 64, 128, 3>;
using DoubleTile = Tiling<double, 64, 64, 1>;

// The kVec loaders' precondition on an operand's base (its leading dimension must also be a multiple of 4).
inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

__device__ __forceinline__ float madd(float a, float b, float c) {
  return fmaf(a, b, c);
}
__device__ __forceinline__ double madd(double a, double b, double c) {
  return fma(a, b, c);
}

__device__ __forceinline__ void load4_global(const float* p, float* v) {
  const float4 t = __ldg(reinterpret_cast<const float4*>(p));
  v[0] = t.x;
  v[1] = t.y;
  v[2] = t.z;
  v[3] = t.w;
}

__device__ __forceinline__ void load4_shared(const float* p, float* v) {
  const float4 t = *reinterpret_cast<const float4*>(p);
  v[0] = t.x;
  v[1] = t.y;
  v[2] = t.z;
  v[3] = t.w;
}
__device__ __forceinline__ void load4_shared(const double* p, double* v) {
  const double2 a = *reinterpret_cast<const double2*>(p);
  const double2 b = *reinterpret_cast<const double2*>(p + 2);
  v[0] = a.x;
  v[1] = a.y;
  v[2] = b.x;
  v[3] = b.y;
}
__device__ __forceinline__ void store4_shared(float* p, const float* v) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4_shared(double* p, const double* v) {
  *reinterpret_cast<double2*>(p) = make_double2(v[0], v[1]);
  *reinterpret_cast<double2*>(p + 2) = make_double2(v[2], v[3]);
}

// v = p[0..n) then zeros (n may be anything; only p[0..min(n, 4)) is read). kVec: p is 16-byte aligned, so a
// whole run is one load.
template <bool kVec, typename T>
__device__ __forceinline__ void load4_guarded(const T* p, int n, T (&v)[4]) {
  if constexpr (kVec) {
    if (n >= 4) {
      load4_global(p, v);
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) v[j] = j < n ? __ldg(p + j) : T(0);
}

// An operand whose element (i, k), i < extent (M or N), k < depth (K), is at p[i * ld + k] (k contiguous).
// Per slot a thread fetches 4 consecutive k of one row and stores them transposed.
// kVec: p is 16-byte aligned and ld % 4 == 0, so a 4-run starting at a multiple of 4 may be one load.
// The per-slot row pointers are computed once; a slice costs one add per slot.
template <typename T, int TW, int kThreads, bool kVec>
struct KContigLoader {
  static constexpr int kSlots = TW * kBK / 4 / kThreads;
  static constexpr int kRowStep = kThreads / 2;  // two 4-runs per row of a slice
  static_assert(kSlots >= 1 && kSlots * 4 * kThreads == TW * kBK, "tile does not split into 4-runs");

  const T* src[kSlots];  // row start + kq; rows past the extent point at row 0 and are never read
  bool row_ok[kSlots];
  int depth, kq, row0;
  T v[kSlots][4];

  __device__ KContigLoader(const T* p, int64_t ld, int extent, int depth_, int origin, int tid)
      : depth(depth_), kq((tid & 1) * 4), row0(tid >> 1) {
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int i = origin + row0 + s * kRowStep;
      row_ok[s] = i < extent;
      src[s] = p + static_cast<int64_t>(row_ok[s] ? i : 0) * ld + kq;
    }
  }

  __device__ __forceinline__ void fetch(int k0) {
    const int k_left = depth - k0 - kq;  // how many of the 4-run exist
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const T* at = src[s] + k0;
      const int n = row_ok[s] ? k_left : 0;
      load4_guarded<kVec>(at, n, v[s]);
    }
  }

  __device__ __forceinline__ void stash(T* tile, int pitch) const {
#pragma unroll
    for (int s = 0; s < kSlots; ++s)
#pragma unroll
      for (int j = 0; j < 4; ++j) tile[(kq + j) * pitch + row0 + s * kRowStep] = v[s][j];
  }
};

// An operand whose element (i, k) is at p[k * ld + i] (i contiguous). Per slot a thread fetches 4
// consecutive i of one k row and stores them as they are. kVec as above.
template <typename T, int TW, int kThreads, bool kVec>
struct MNContigLoader {
  static constexpr int kPerRow = TW / 4;
  static constexpr int kSlots = kBK * kPerRow / kThreads;
  static constexpr int kRowStep = kThreads / kPerRow;
  static_assert(kSlots >= 1 && kThreads % kPerRow == 0 && kSlots * kRowStep == kBK, "bad loader shape");

  const T* src;  // p + krow0 * ld + i0
  int64_t ld;
  int depth, krow0, col, i_left;  // i_left = extent - i0: how many of the 4-run exist
  T v[kSlots][4];

  __device__ MNContigLoader(const T* p, int64_t ld_, int extent, int depth_, int origin, int tid)
      : ld(ld_),
        depth(depth_),
        krow0(tid / kPerRow),
        col((tid % kPerRow) * 4),
        i_left(extent - origin - col) {
    src = p + static_cast<int64_t>(krow0) * ld + origin + col;
  }

  __device__ __forceinline__ void fetch(int k0) {
    const T* row = src + static_cast<int64_t>(k0) * ld;
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int k = k0 + krow0 + s * kRowStep;
      const T* at = row + static_cast<int64_t>(s * kRowStep) * ld;
      const int n = k < depth ? i_left : 0;
      load4_guarded<kVec>(at, n, v[s]);
    }
  }

  __device__ __forceinline__ void stash(T* tile, int pitch) const {
#pragma unroll
    for (int s = 0; s < kSlots; ++s) store4_shared(tile + (krow0 + s * kRowStep) * pitch + col, v[s]);
  }
};

template <typename T>
__device__ __forceinline__ void zero(T (&acc)[8][8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = T(0);
}

// One BK-deep slice: acc += As^T * Bs over the thread's 8 x 8 block.
template <class Cfg, typename T>
__device__ __forceinline__ void multiply_slice(const T* As, const T* Bs, int tm, int tn, T (&acc)[8][8]) {
#pragma unroll
  for (int k = 0; k < Cfg::BK; ++k) {
    T a[8], b[8];
    load4_shared(As + k * Cfg::kLdA + tm * 4, a);
    load4_shared(As + k * Cfg::kLdA + Cfg::BM / 2 + tm * 4, a + 4);
    load4_shared(Bs + k * Cfg::kLdB + tn * 4, b);
    load4_shared(Bs + k * Cfg::kLdB + Cfg::BN / 2 + tn * 4, b + 4);
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = madd(a[i], b[j], acc[i][j]);
  }
}

// Slices [kt_begin, kt_end) through double-buffered shared memory (sa: 2 * kStageA, sb: 2 * kStageB
// elements, 16-byte aligned). At slice t the block reads stage t & 1 and writes stage (t + 1) & 1, which
// everyone finished reading before the barrier that ended slice t - 1. An empty range leaves acc as it is.
template <class Cfg, typename T, class LoadA, class LoadB>
__device__ __forceinline__ void mainloop(LoadA& la, LoadB& lb, int kt_begin, int kt_end, T* sa, T* sb, int tm,
                                         int tn, T (&acc)[8][8]) {
  if (kt_begin >= kt_end) return;
  la.fetch(kt_begin * Cfg::BK);
  lb.fetch(kt_begin * Cfg::BK);
  la.stash(sa, Cfg::kLdA);
  lb.stash(sb, Cfg::kLdB);
  __syncthreads();
  int stage = 0;
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    const bool more = kt + 1 < kt_end;
    if (more) {
      la.fetch((kt + 1) * Cfg::BK);
      lb.fetch((kt + 1) * Cfg::BK);
    }
    multiply_slice<Cfg>(sa + stage * Cfg::kStageA, sb + stage * Cfg::kStageB, tm, tn, acc);
    if (more) {
      la.stash(sa + (stage ^ 1) * Cfg::kStageA, Cfg::kLdA);
      lb.stash(sb + (stage ^ 1) * Cfg::kStageB, Cfg::kLdB);
    }
    __syncthreads();
    stage ^= 1;
  }
}

}  // namespace tl::kernels::cuda::tile
