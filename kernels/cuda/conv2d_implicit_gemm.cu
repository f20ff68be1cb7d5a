// Convolution on the GPU: the conv2d_* entry points of kernels/cuda/cuda.h, and the implicit-GEMM kernels
// behind them. Each entry point picks a path:
//   depthwise (groups == C == K)              direct kernels of conv2d_depthwise.cu
//   1x1, stride 1, unpadded, ungrouped        batched GEMM per image (gemm.cu), when the image's P*Q fills
//                                             the GEMM's 128-wide column tiles well; else implicit GEMM
//   everything else                           implicit GEMM here, one grid dimension over groups
//
// Implicit GEMM: the convolution is a matrix product whose operands are gathered on the fly from the tensors
// into shared memory (zeros for padding), so no im2col buffer is ever written. Per group, with
// h = p*sh - pt + r*dh and w = q*sw - pl + s*dw:
//   forward          y[k][(n,p,q)]   = sum over (c,r,s) of w[k][(c,r,s)] * x[n][c][h][w]
//   backward data    dx[c][(n,h,w)]  = sum over (k,r,s) of w[k][c][r][s] * dy[n][k][p][q], valid p, q only
//   backward filter  dw[k][(c,r,s)]  = sum over (n,p,q) of dy[n][k][p][q] * x[n][c][h][w]
// Backward data is a gather per dx element (no atomics, deterministic). With stride > 1 only the taps r with
// (h + pt - r*dh) divisible by sh reach a given h, and which taps those are depends only on h mod sh: the dx
// elements are split into sh*sw phases, and each phase is its own GEMM over its own taps (weights repacked
// per phase), so no multiply is spent on the zeros between strided outputs.
//
// The tile machinery is gemm.cu's, shared through kernels/cuda/gemm_tile.cuh (the same 8 x 8 register
// blocking, BK = 8 slices double-buffered in shared memory, guarded loads); the gathering operand loaders and
// the epilogue are this file's. Where the output has too few tiles to fill the GPU (deep layers, and always
// backward filter, whose reduction runs over the whole batch), the reduction is split across blocks
// (split-K): each split writes its partial sums to scratch memory and a second kernel adds them in a fixed
// order, so results stay deterministic.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/detail.h"
#include "kernels/cuda/gemm_tile.cuh"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

using tile::aligned16;
using tile::kBK;

// ---- index maps: where a row or column of an implicit-GEMM operand points ------------------------------

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 by a multiply and a shift (Granlund and Montgomery): the divisors
// are the layer's sizes, fixed per launch, and the gathers divide once per slice.
struct FastDiv {
  int d = 1;
  unsigned mul = 1, shift = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(static_cast<int>(divisor)) {
    while ((uint64_t(1) << shift) < static_cast<uint64_t>(d)) ++shift;
    mul = static_cast<unsigned>(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ int div(int n) const {
    return static_cast<int>((__umulhi(static_cast<unsigned>(n), mul) + static_cast<unsigned>(n)) >> shift);
  }
};

// A position in a tensor: element offset of its plane, and (h, w) inside it. The operand element of row i,
// column j is at plane off_i + off_j, (h_i + h_j, w_i + w_j), and is zero outside the plane. An index past
// its range maps to h = kOutside, which no other term can bring back inside.
struct Coord {
  int64_t off;
  int h, w;
};
constexpr int kOutside = -(1 << 29);

// i -> (ch, r, s) over [count] = [channels x taps_h x taps_w]: a tap of the filter.
struct TapMap {
  FastDiv taps, taps_w;  // taps_h * taps_w, taps_w
  int count;
  int64_t ch_stride;
  int step_h, step_w;
  __device__ __forceinline__ Coord operator()(int i) const {
    if (i >= count) return {0, kOutside, kOutside};
    const int ch = taps.div(i), t = i - ch * taps.d;
    const int r = taps_w.div(t), s = t - r * taps_w.d;
    return {ch * ch_stride, r * step_h, s * step_w};
  }
};

// i -> (n, p, q) over [count] = [images x rows x cols]: a position of the output (or of a phase).
struct PosMap {
  FastDiv plane, cols;  // rows * cols, cols
  int count;
  int64_t img_stride;
  int mul_h, add_h, mul_w, add_w;
  __device__ __forceinline__ Coord operator()(int i) const {
    if (i >= count) return {0, kOutside, kOutside};
    const int n = plane.div(i), t = i - n * plane.d;
    const int p = cols.div(t), q = t - p * cols.d;
    return {n * img_stride, p * mul_h + add_h, q * mul_w + add_w};
  }
};

// An operand gathered from an NCHW tensor: element (row k of the slice, column j of the tile) from `rows` and
// `cols`, bounds-checked against the H x W plane. kAlongCols: a warp's lanes take 32 consecutive columns of
// one row (output positions: consecutive addresses for stride 1); kAlongRows: 8 lanes take the 8 rows of a
// slice (positions again, when the reduction runs over them). Per thread the column coordinates are computed
// once; each slice decodes one row index per row slot.
enum class Lanes { kAlongCols, kAlongRows };

template <typename T, int TW, int kThreads, Lanes kLanes, class RowMap, class ColMap>
struct GatherLoader {
  struct Op {
    const T* ptr;
    RowMap rows;
    ColMap cols;
    int H, W;
  };
  static constexpr bool kByCols = kLanes == Lanes::kAlongCols;
  static constexpr int kPer = TW * kBK / kThreads;
  static constexpr int kCols = kByCols ? TW / 32 : kPer;
  static constexpr int kRows = kPer / kCols;
  static constexpr int kRowStep = kByCols ? kThreads / 32 : kBK;
  static constexpr int kColStep = kByCols ? 32 : kThreads / kBK;
  static_assert(kPer * kThreads == TW * kBK && kRows * kCols == kPer, "bad gather shape");
  static_assert(kCols * kColStep == TW && (kRows - 1) * kRowStep < kBK, "gather does not cover the slice");

  const Op& op;
  const T* src;
  Coord col[kCols];
  int row0, col0;
  T v[kRows][kCols];

  __device__ GatherLoader(const Op& op_, int64_t group_off, int origin, int tid)
      : op(op_),
        src(op_.ptr + group_off),
        row0(kByCols ? tid / 32 : tid % kBK),
        col0(kByCols ? tid % 32 : tid / kBK) {
#pragma unroll
    for (int e = 0; e < kCols; ++e) col[e] = op.cols(origin + col0 + e * kColStep);
  }

  __device__ __forceinline__ void fetch(int k0) {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const Coord r = op.rows(k0 + row0 + i * kRowStep);
#pragma unroll
      for (int e = 0; e < kCols; ++e) {
        const int h = r.h + col[e].h, w = r.w + col[e].w;
        const bool ok = static_cast<unsigned>(h) < static_cast<unsigned>(op.H) &&
                        static_cast<unsigned>(w) < static_cast<unsigned>(op.W);
        v[i][e] = ok ? __ldg(src + (r.off + col[e].off) + (h * op.W + w)) : T(0);
      }
    }
  }

  __device__ __forceinline__ void stash(T* tile, int pitch) const {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int e = 0; e < kCols; ++e) tile[(row0 + i * kRowStep) * pitch + col0 + e * kColStep] = v[i][e];
  }
};

// Backward filter's dy operand: element (row = position (n, p, q) of the reduction, column = output channel
// k) at dy[n * K*PQ + k * PQ + p*Q + q]. No spatial bounds to check, so a column needs only its channel: the
// thread's columns are k0 + e * kColStep, kColStep * PQ apart in memory.
template <typename T, int TW, int kThreads>
struct ChannelRowsLoader {
  struct Op {
    const T* ptr;
    FastDiv plane;       // P * Q
    int count;           // N * P * Q
    int channels;        // K / groups: columns of the operand
    int64_t img_stride;  // K * P * Q
  };
  static constexpr int kCols = TW * kBK / kThreads;
  static constexpr int kColStep = kThreads / kBK;
  static_assert(kCols * kColStep == TW && kCols * kThreads == TW * kBK, "bad operand shape");

  const Op& op;
  const T* src;  // group's dy + first column's channel plane
  int row0, col0, cols_left;
  T v[kCols];

  __device__ ChannelRowsLoader(const Op& op_, int64_t group_off, int origin, int tid)
      : op(op_), row0(tid % kBK), col0(tid / kBK), cols_left(op_.channels - origin - tid / kBK) {
    src = op.ptr + group_off + static_cast<int64_t>(origin + col0) * op.plane.d;
  }

  __device__ __forceinline__ void fetch(int k0) {
    const int i = k0 + row0;
    const int n = op.plane.div(i), pq = i - n * op.plane.d;
    const T* at = src + n * op.img_stride + pq;
    const int64_t step = static_cast<int64_t>(kColStep) * op.plane.d;
#pragma unroll
    for (int e = 0; e < kCols; ++e)
      v[e] = (i < op.count && e * kColStep < cols_left) ? __ldg(at + e * step) : T(0);
  }

  __device__ __forceinline__ void stash(T* tile, int pitch) const {
#pragma unroll
    for (int e = 0; e < kCols; ++e) tile[row0 * pitch + col0 + e * kColStep] = v[e];
  }
};

// The dense loaders of gemm_tile.cuh as operands of the convolution kernel, a pointer per group: KContig for
// the forward pass's weights [K, C/g * R * S], MNContig for backward data's repacked weights [K*R*S, C/g].
template <class Base, typename T>
struct DenseOperand : Base {
  struct Op {
    const T* ptr;
    int64_t ld;
    int extent, depth;
  };
  __device__ DenseOperand(const Op& op, int64_t group_off, int origin, int tid)
      : Base(op.ptr + group_off, op.ld, op.extent, op.depth, origin, tid) {}
};
template <typename T, int TW, int kThreads, bool kVec>
using KContigOperand = DenseOperand<tile::KContigLoader<T, TW, kThreads, kVec>, T>;
template <typename T, int TW, int kThreads, bool kVec>
using MNContigOperand = DenseOperand<tile::MNContigLoader<T, TW, kThreads, kVec>, T>;

// Where output element (row m, column j) goes: at(j) + m * row_stride, at(j) = off + h * pitch + w.
struct OutMap {
  PosMap pos;
  int pitch;
  int64_t row_stride;
  __device__ __forceinline__ int64_t at(int j) const {
    const Coord c = pos(j);
    return c.off + static_cast<int64_t>(c.h) * pitch + c.w;
  }
};

template <typename T, class OpA, class OpB>
struct IgemmArgs {
  OpA a;
  OpB b;
  OutMap out;
  T* out_ptr;       // group 0, split 0
  const T* bias;    // per row (output channel), or null
  int M, N, depth;  // per group: output rows, output columns, reduction length
  int group0;       // first group of this launch
  int splits, tiles_per_split;
  int64_t a_group, b_group, out_group, bias_group;  // element offsets from one group to the next
  int64_t split_stride;                             // from one split's partial output to the next
};

template <typename T, class Cfg, class LoadA, class LoadB>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    igemm_kernel(const IgemmArgs<T, typename LoadA::Op, typename LoadB::Op> p) {
  __shared__ __align__(16) T smem_a[2 * Cfg::kStageA];
  __shared__ __align__(16) T smem_b[2 * Cfg::kStageB];
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int gz = blockIdx.z / p.splits, split = blockIdx.z - gz * p.splits;
  const int64_t g = p.group0 + gz;

  LoadA la(p.a, g * p.a_group, m0, tid);
  LoadB lb(p.b, g * p.b_group, n0, tid);

  T acc[8][8];
  tile::zero(acc);

  const int tm = tid / Cfg::kThreadsN, tn = tid % Cfg::kThreadsN;
  const int tiles = (p.depth + Cfg::BK - 1) / Cfg::BK;
  const int kt_begin = min(tiles, split * p.tiles_per_split);
  const int kt_end = min(tiles, kt_begin + p.tiles_per_split);
  tile::mainloop<Cfg>(la, lb, kt_begin, kt_end, smem_a, smem_b, tm, tn, acc);

  // Every element of the tile is written, also by a split whose range was empty (its partial is zero).
  T* out = p.out_ptr + g * p.out_group + split * p.split_stride;
  const T* bias = p.bias ? p.bias + g * p.bias_group : nullptr;
  int64_t at[8];  // output offset of each of the thread's columns, -1 past the last column
  bool run[2];    // the 4 columns of a half are 4 consecutive addresses
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + h * (Cfg::BN / 2) + tn * 4 + j;
      at[h * 4 + j] = col < p.N ? p.out.at(col) : -1;
    }
    run[h] = at[h * 4] >= 0 && at[h * 4 + 3] == at[h * 4] + 3;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int row = m0 + (i < 4 ? tm * 4 + i : Cfg::BM / 2 + tm * 4 + i - 4);
    if (row >= p.M) continue;
    const int64_t row_off = row * p.out.row_stride;
    const T b = bias ? bias[row] : T(0);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      bool done = false;
      if constexpr (std::is_same_v<T, float>) {
        float* dst = out + at[h * 4] + row_off;
        if (run[h] && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
          *reinterpret_cast<float4*>(dst) = make_float4(acc[i][h * 4] + b, acc[i][h * 4 + 1] + b,
                                                        acc[i][h * 4 + 2] + b, acc[i][h * 4 + 3] + b);
          done = true;
        }
      }
      if (!done) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (at[h * 4 + j] >= 0) out[at[h * 4 + j] + row_off] = acc[i][h * 4 + j] + b;
      }
    }
  }
}

// ---- small kernels: weight repacking, split-K sums, bias gradients -------------------------------------

// Backward data's weights for one phase: wt[g][(k * Rp + ri) * Sp + si][c] = w[g * Kg + k][c][r][s] with
// r = r0h + ri * rsh and s = r0w + si * rsw, the phase's taps.
struct PhasePack {
  int64_t groups, Kg, Cg, R, S, Rp, Sp, r0h, rsh, r0w, rsw;
};

template <typename T>
__global__ void pack_phase_kernel(const T* __restrict__ w, PhasePack pk, int64_t n, T* __restrict__ wt) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = i;
    const int64_t c = t % pk.Cg;
    t /= pk.Cg;
    const int64_t si = t % pk.Sp;
    t /= pk.Sp;
    const int64_t ri = t % pk.Rp;
    t /= pk.Rp;
    const int64_t k = t % pk.Kg;
    const int64_t g = t / pk.Kg;
    const int64_t r = pk.r0h + ri * pk.rsh, s = pk.r0w + si * pk.rsw;
    wt[i] = w[(((g * pk.Kg + k) * pk.Cg + c) * pk.R + r) * pk.S + s];
  }
}

// out[i] = sum over splits z of part[z * stride + i] (+ bias[(i / inner) % channels]), in order of z.
template <typename T>
__global__ void splitk_sum_kernel(const T* __restrict__ part, int splits, int64_t stride, int64_t n,
                                  const T* __restrict__ bias, int64_t inner, int64_t channels,
                                  T* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double acc = 0;
    for (int z = 0; z < splits; ++z) acc += static_cast<double>(part[z * stride + i]);
    if (bias) acc += static_cast<double>(bias[(i / inner) % channels]);
    out[i] = static_cast<T>(acc);
  }
}

constexpr int kSumThreads = 256;

// Block (k, chunk) sums dy[n, k, :] over positions [chunk * chunk_len, ...) of the flattened (n, pq) range,
// in double, with a fixed-shape tree: the same result on every run.
template <typename T>
__global__ void __launch_bounds__(kSumThreads)
    channel_sum_kernel(const T* __restrict__ dy, int channels, FastDiv pq, int total, int chunk_len,
                       double* __restrict__ partial) {
  __shared__ double red[kSumThreads];
  const int k = blockIdx.x, chunk = blockIdx.y;
  const int begin = chunk * chunk_len, end = min(total, begin + chunk_len);
  double acc = 0;
  for (int t = begin + static_cast<int>(threadIdx.x); t < end; t += kSumThreads) {
    const int n = pq.div(t), i = t - n * pq.d;
    acc += static_cast<double>(dy[(static_cast<int64_t>(n) * channels + k) * pq.d + i]);
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) red[threadIdx.x] += red[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[static_cast<int64_t>(chunk) * channels + k] = red[0];
}

template <typename T>
__global__ void chunk_sum_kernel(const double* __restrict__ partial, int chunks, int channels,
                                 T* __restrict__ out) {
  for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < channels; k += gridDim.x * blockDim.x) {
    double acc = 0;
    for (int c = 0; c < chunks; ++c) acc += partial[static_cast<int64_t>(c) * channels + k];
    out[k] = static_cast<T>(acc);
  }
}

// ---- host side ------------------------------------------------------------------------------------------

// The layer's sizes, in int64 so no product overflows on the host.
struct Geometry {
  explicit Geometry(const Conv2dShape& s)
      : N(s.batch),
        C(s.in_channels),
        H(s.in_h),
        W(s.in_w),
        K(s.out_channels),
        R(s.kernel_h),
        S(s.kernel_w),
        P(s.out_h()),
        Q(s.out_w()),
        G(s.groups),
        Cg(C / G),
        Kg(K / G),
        sh(s.stride_h),
        sw(s.stride_w),
        pt(s.pad_top),
        pl(s.pad_left),
        dh(s.dilation_h),
        dw(s.dilation_w) {}
  int64_t N, C, H, W, K, R, S, P, Q, G, Cg, Kg, sh, sw, pt, pl, dh, dw;
  int64_t HW() const { return H * W; }
  int64_t PQ() const { return P * Q; }
  int64_t CgRS() const { return Cg * R * S; }
  bool pointwise() const {
    return R == 1 && S == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && P == H && Q == W && G == 1;
  }
};

constexpr int64_t kIndexLimit = (int64_t(1) << 31) - 1024;  // 32-bit indices, with room for a tile's overhang
constexpr int64_t kSpatialLimit = int64_t(1) << 27;         // coordinates stay far from kOutside
constexpr int64_t kChannelLimit = int64_t(65535) * 64;      // row tiles within the grid's y limit

// The implicit-GEMM kernels index rows, columns and planes with 32-bit integers (offsets are 64-bit).
void check_index_range(const Geometry& g) {
  const int64_t spatial =
      std::max({g.H, g.W, g.P, g.Q, g.R * g.dh, g.S * g.dw, g.pt, g.pl, g.sh * g.P, g.sw * g.Q});
  const bool fits = g.N * g.P * g.Q < kIndexLimit && g.N * g.H * g.W < kIndexLimit &&
                    g.H * g.W < kIndexLimit && g.P * g.Q < kIndexLimit && g.K * g.R * g.S < kIndexLimit &&
                    g.CgRS() < kIndexLimit && g.K < kChannelLimit && g.C < kChannelLimit &&
                    spatial < kSpatialLimit;
  TL_CHECK(fits, ValueError, "conv2d: shape N=", g.N, " C=", g.C, " H=", g.H, " W=", g.W, " K=", g.K,
           " R=", g.R, " S=", g.S, " is too large for the native CUDA convolution (32-bit tile indices)");
}

PosMap pos_map(int64_t images, int64_t rows, int64_t cols, int64_t img_stride, int64_t mul_h, int64_t add_h,
               int64_t mul_w, int64_t add_w) {
  PosMap m;
  m.plane = FastDiv(std::max<int64_t>(1, rows * cols));
  m.cols = FastDiv(std::max<int64_t>(1, cols));
  m.count = static_cast<int>(images * rows * cols);
  m.img_stride = img_stride;
  m.mul_h = static_cast<int>(mul_h);
  m.add_h = static_cast<int>(add_h);
  m.mul_w = static_cast<int>(mul_w);
  m.add_w = static_cast<int>(add_w);
  return m;
}

TapMap tap_map(int64_t channels, int64_t taps_h, int64_t taps_w, int64_t ch_stride, int64_t step_h,
               int64_t step_w) {
  TapMap m;
  m.taps = FastDiv(std::max<int64_t>(1, taps_h * taps_w));
  m.taps_w = FastDiv(std::max<int64_t>(1, taps_w));
  m.count = static_cast<int>(channels * taps_h * taps_w);
  m.ch_stride = ch_stride;
  m.step_h = static_cast<int>(step_h);
  m.step_w = static_cast<int>(step_w);
  return m;
}

// How many splits of the reduction: enough blocks for two waves of the GPU, each split at least
// `min_tiles` slices long, and the partial sums within a memory budget.
int choose_splits(int device, int64_t blocks, int threads, int64_t tiles, int64_t min_tiles, int64_t groups,
                  int64_t partial_elems, int64_t elem_bytes) {
  const int64_t per_sm = 2 * 256 / threads;
  const int64_t target = 2 * per_sm * ::tl::cuda::limits(device).multiprocessors;
  if (blocks >= target || tiles < 2 * min_tiles) return 1;
  int64_t splits = (target + blocks - 1) / blocks;
  splits = std::min(splits, tiles / min_tiles);
  splits = std::min<int64_t>(splits, 65535 / std::max<int64_t>(1, groups));
  constexpr int64_t kBudget = int64_t(256) << 20;  // bytes of partial sums
  splits = std::min(splits, kBudget / std::max<int64_t>(1, partial_elems * elem_bytes));
  return static_cast<int>(std::max<int64_t>(1, splits));
}

// Launches `args` over all groups (several launches if groups * splits exceed the grid's z limit).
template <typename T, class Cfg, class LoadA, class LoadB>
void launch_igemm(int device, IgemmArgs<T, typename LoadA::Op, typename LoadB::Op> args, int64_t groups) {
  const cudaStream_t stream = ::tl::cuda::stream(device);
  const int64_t per_launch = std::max<int64_t>(1, 65535 / args.splits);
  for (int64_t g0 = 0; g0 < groups; g0 += per_launch) {
    const int64_t gc = std::min(per_launch, groups - g0);
    args.group0 = static_cast<int>(g0);
    const dim3 grid(static_cast<unsigned>((args.N + Cfg::BN - 1) / Cfg::BN),
                    static_cast<unsigned>((args.M + Cfg::BM - 1) / Cfg::BM),
                    static_cast<unsigned>(gc * args.splits));
    igemm_kernel<T, Cfg, LoadA, LoadB><<<grid, Cfg::kThreads, 0, stream>>>(args);
    TL_CUDA_CHECK_LAUNCH("igemm_kernel");
  }
}

template <typename T>
void launch_splitk_sum(int device, const T* part, int splits, int64_t n, const T* bias, int64_t inner,
                       int64_t channels, T* out) {
  constexpr int kThreads = 256;
  splitk_sum_kernel<T><<<::tl::cuda::blocks_for(n, kThreads), kThreads, 0, ::tl::cuda::stream(device)>>>(
      part, splits, n, n, bias, inner, channels, out);
  TL_CUDA_CHECK_LAUNCH("splitk_sum_kernel");
}

// dbias[k] = sum of dy[n, k, p, q] over n, p, q.
template <typename T>
void bias_gradient(int device, const Geometry& g, const T* dy, T* dbias) {
  const int64_t total = g.N * g.PQ();
  const int64_t sms = ::tl::cuda::limits(device).multiprocessors;
  int64_t chunks = std::max<int64_t>(1, (4 * sms + g.K - 1) / g.K);
  chunks = std::min({chunks, std::max<int64_t>(1, total / 4096), int64_t(65535)});
  const int64_t chunk_len = (total + chunks - 1) / chunks;
  ::tl::cuda::Workspace partial(device, static_cast<std::size_t>(chunks * g.K) * sizeof(double));
  const cudaStream_t stream = ::tl::cuda::stream(device);
  channel_sum_kernel<T>
      <<<dim3(static_cast<unsigned>(g.K), static_cast<unsigned>(chunks)), kSumThreads, 0, stream>>>(
          dy, static_cast<int>(g.K), FastDiv(std::max<int64_t>(1, g.PQ())), static_cast<int>(total),
          static_cast<int>(chunk_len), partial.as<double>());
  TL_CUDA_CHECK_LAUNCH("channel_sum_kernel");
  chunk_sum_kernel<T><<<::tl::cuda::blocks_for(g.K, 256), 256, 0, stream>>>(
      partial.as<double>(), static_cast<int>(chunks), static_cast<int>(g.K), dbias);
  TL_CUDA_CHECK_LAUNCH("chunk_sum_kernel");
}

// ---- forward ----

template <typename T, class Cfg, bool kVecA>
void forward_igemm(int device, const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  using LoadA = KContigOperand<T, Cfg::BM, Cfg::kThreads, kVecA>;
  using LoadB = GatherLoader<T, Cfg::BN, Cfg::kThreads, Lanes::kAlongCols, TapMap, PosMap>;
  IgemmArgs<T, typename LoadA::Op, typename LoadB::Op> args{};
  const int64_t depth = g.CgRS(), cols = g.N * g.PQ();
  args.a = {w, depth, static_cast<int>(g.Kg), static_cast<int>(depth)};
  args.b.ptr = x;
  args.b.rows = tap_map(g.Cg, g.R, g.S, g.HW(), g.dh, g.dw);
  args.b.cols = pos_map(g.N, g.P, g.Q, g.C * g.HW(), g.sh, -g.pt, g.sw, -g.pl);
  args.b.H = static_cast<int>(g.H);
  args.b.W = static_cast<int>(g.W);
  args.out.pos = pos_map(g.N, g.P, g.Q, g.K * g.PQ(), 1, 0, 1, 0);
  args.out.pitch = static_cast<int>(g.Q);
  args.out.row_stride = g.PQ();
  args.M = static_cast<int>(g.Kg);
  args.N = static_cast<int>(cols);
  args.depth = static_cast<int>(depth);
  args.a_group = g.Kg * depth;
  args.b_group = g.Cg * g.HW();
  args.out_group = g.Kg * g.PQ();
  args.bias_group = g.Kg;

  const int64_t tiles = (depth + kBK - 1) / kBK;
  const int64_t blocks = ((cols + Cfg::BN - 1) / Cfg::BN) * ((g.Kg + Cfg::BM - 1) / Cfg::BM) * g.G;
  const int64_t y_elems = g.N * g.K * g.PQ();
  const int splits = choose_splits(device, blocks, Cfg::kThreads, tiles, 16, g.G, y_elems, sizeof(T));
  args.splits = splits;
  args.tiles_per_split = static_cast<int>((tiles + splits - 1) / splits);
  if (splits == 1) {
    args.out_ptr = y;
    args.bias = bias;
    launch_igemm<T, Cfg, LoadA, LoadB>(device, args, g.G);
    return;
  }
  ::tl::cuda::Workspace part(device, static_cast<std::size_t>(splits * y_elems) * sizeof(T));
  args.out_ptr = part.as<T>();
  args.bias = nullptr;
  args.split_stride = y_elems;
  launch_igemm<T, Cfg, LoadA, LoadB>(device, args, g.G);
  launch_splitk_sum<T>(device, part.as<T>(), splits, y_elems, bias, g.PQ(), g.K, y);
}

// ---- backward data ----

// One axis of a stride phase: dx rows h = h' * stride + phase, h' < count, reached by the taps
// r = r0 + i * r_step (i < taps) from dy rows p = h' + p0 - i * p_step.
struct PhaseAxis {
  int64_t count = 0, taps = 0, r0 = 0, r_step = 1, p0 = 0, p_step = 0;
};

PhaseAxis phase_axis(int64_t phase, int64_t size, int64_t stride, int64_t pad, int64_t dil, int64_t kernel) {
  PhaseAxis a;
  a.count = phase < size ? (size - phase + stride - 1) / stride : 0;
  const int64_t gcd = std::gcd(stride, dil);
  a.r_step = stride / gcd;
  int64_t r0 = -1;
  for (int64_t r = 0; r < std::min(kernel, a.r_step); ++r) {
    const int64_t rem = ((phase + pad - r * dil) % stride + stride) % stride;
    if (rem == 0) {
      r0 = r;
      break;
    }
  }
  if (r0 < 0) return a;  // no tap reaches this phase: its dx rows are zero
  a.r0 = r0;
  a.taps = (kernel - 1 - r0) / a.r_step + 1;
  a.p0 = (phase + pad - r0 * dil) / stride;  // exact
  a.p_step = dil / gcd;
  return a;
}

template <typename T, class Cfg, bool kVecA>
void backward_data_igemm(int device, const Geometry& g, const T* dy, const T* w, T* dx) {
  using LoadA = MNContigOperand<T, Cfg::BM, Cfg::kThreads, kVecA>;
  using LoadB = GatherLoader<T, Cfg::BN, Cfg::kThreads, Lanes::kAlongCols, TapMap, PosMap>;
  const cudaStream_t stream = ::tl::cuda::stream(device);

  // Repack the weights phase by phase; the phases partition the taps, so the packed copy is w's size.
  // Each phase starts at a multiple of 4 elements to keep 16-byte loads possible.
  struct Phase {
    int64_t ph, pw;
    PhaseAxis h, w;
    int64_t offset;  // of its packed weights
  };
  std::vector<Phase> phases;
  int64_t packed = 0;
  for (int64_t ph = 0; ph < g.sh; ++ph)
    for (int64_t pw = 0; pw < g.sw; ++pw) {
      Phase p{ph, pw, phase_axis(ph, g.H, g.sh, g.pt, g.dh, g.R), phase_axis(pw, g.W, g.sw, g.pl, g.dw, g.S),
              packed};
      if (p.h.count == 0 || p.w.count == 0) continue;  // no dx element in this phase
      phases.push_back(p);
      packed += (g.G * g.Kg * p.h.taps * p.w.taps * g.Cg + 3) / 4 * 4;
    }
  // 16 spare bytes so the packed copy can start 16-byte aligned whatever the allocator returns.
  ::tl::cuda::Workspace wt(device, static_cast<std::size_t>(std::max<int64_t>(packed, 1)) * sizeof(T) + 16);
  T* const packed_w =
      reinterpret_cast<T*>((reinterpret_cast<std::uintptr_t>(wt.data()) + 15) & ~std::uintptr_t(15));
  for (const Phase& p : phases) {
    const int64_t n = g.G * g.Kg * p.h.taps * p.w.taps * g.Cg;
    if (n == 0) continue;
    const PhasePack pk{g.G, g.Kg, g.Cg, g.R, g.S, p.h.taps, p.w.taps, p.h.r0, p.h.r_step, p.w.r0, p.w.r_step};
    pack_phase_kernel<T><<<::tl::cuda::blocks_for(n, 256), 256, 0, stream>>>(w, pk, n, packed_w + p.offset);
    TL_CUDA_CHECK_LAUNCH("pack_phase_kernel");
  }

  // One split count for all phases, so every split's partial covers all of dx.
  const int64_t dx_elems = g.N * g.C * g.HW();
  int64_t blocks = 0, max_tiles = 0;
  for (const Phase& p : phases) {
    blocks +=
        ((g.N * p.h.count * p.w.count + Cfg::BN - 1) / Cfg::BN) * ((g.Cg + Cfg::BM - 1) / Cfg::BM) * g.G;
    max_tiles = std::max(max_tiles, (g.Kg * p.h.taps * p.w.taps + kBK - 1) / kBK);
  }
  const int splits = choose_splits(device, blocks, Cfg::kThreads, max_tiles, 16, g.G, dx_elems, sizeof(T));
  std::unique_ptr<::tl::cuda::Workspace> part;
  if (splits > 1)
    part = std::make_unique<::tl::cuda::Workspace>(device,
                                                   static_cast<std::size_t>(splits * dx_elems) * sizeof(T));

  for (const Phase& p : phases) {
    const int64_t depth = g.Kg * p.h.taps * p.w.taps, cols = g.N * p.h.count * p.w.count;
    IgemmArgs<T, typename LoadA::Op, typename LoadB::Op> args{};
    args.a = {packed_w + p.offset, g.Cg, static_cast<int>(g.Cg), static_cast<int>(depth)};
    args.b.ptr = dy;
    args.b.rows = tap_map(g.Kg, p.h.taps, p.w.taps, g.PQ(), -p.h.p_step, -p.w.p_step);
    args.b.cols = pos_map(g.N, p.h.count, p.w.count, g.K * g.PQ(), 1, p.h.p0, 1, p.w.p0);
    args.b.H = static_cast<int>(g.P);
    args.b.W = static_cast<int>(g.Q);
    // dx[n, c, h' * sh + ph, w' * sw + pw].
    args.out.pos = pos_map(g.N, p.h.count, p.w.count, g.C * g.HW(), g.sh, p.ph, g.sw, p.pw);
    args.out.pitch = static_cast<int>(g.W);
    args.out.row_stride = g.HW();
    args.M = static_cast<int>(g.Cg);
    args.N = static_cast<int>(cols);
    args.depth = static_cast<int>(depth);
    args.a_group = depth * g.Cg;
    args.b_group = g.Kg * g.PQ();
    args.out_group = g.Cg * g.HW();
    const int64_t tiles = (depth + kBK - 1) / kBK;
    args.splits = splits;
    args.tiles_per_split = static_cast<int>(std::max<int64_t>(1, (tiles + splits - 1) / splits));
    args.split_stride = splits > 1 ? dx_elems : 0;
    args.out_ptr = splits > 1 ? part->as<T>() : dx;
    launch_igemm<T, Cfg, LoadA, LoadB>(device, args, g.G);
  }
  if (splits > 1) launch_splitk_sum<T>(device, part->as<T>(), splits, dx_elems, nullptr, 1, 1, dx);
}

// ---- backward filter ----

template <typename T, class Cfg>
void backward_filter_igemm(int device, const Geometry& g, const T* x, const T* dy, T* dw) {
  using LoadA = ChannelRowsLoader<T, Cfg::BM, Cfg::kThreads>;
  using LoadB = GatherLoader<T, Cfg::BN, Cfg::kThreads, Lanes::kAlongRows, PosMap, TapMap>;
  IgemmArgs<T, typename LoadA::Op, typename LoadB::Op> args{};
  const int64_t depth = g.N * g.PQ(), cols = g.CgRS();
  args.a.ptr = dy;
  args.a.plane = FastDiv(std::max<int64_t>(1, g.PQ()));
  args.a.count = static_cast<int>(depth);
  args.a.channels = static_cast<int>(g.Kg);
  args.a.img_stride = g.K * g.PQ();
  args.b.ptr = x;
  args.b.rows = pos_map(g.N, g.P, g.Q, g.C * g.HW(), g.sh, -g.pt, g.sw, -g.pl);
  args.b.cols = tap_map(g.Cg, g.R, g.S, g.HW(), g.dh, g.dw);
  args.b.H = static_cast<int>(g.H);
  args.b.W = static_cast<int>(g.W);
  args.out.pos = pos_map(cols, 1, 1, 1, 0, 0, 0, 0);
  args.out.pitch = 0;
  args.out.row_stride = cols;
  args.M = static_cast<int>(g.Kg);
  args.N = static_cast<int>(cols);
  args.depth = static_cast<int>(depth);
  args.a_group = g.Kg * g.PQ();
  args.b_group = g.Cg * g.HW();
  args.out_group = g.Kg * cols;

  const int64_t tiles = (depth + kBK - 1) / kBK;
  const int64_t blocks = ((cols + Cfg::BN - 1) / Cfg::BN) * ((g.Kg + Cfg::BM - 1) / Cfg::BM) * g.G;
  const int64_t dw_elems = g.K * cols;
  const int splits = choose_splits(device, blocks, Cfg::kThreads, tiles, 8, g.G, dw_elems, sizeof(T));
  args.splits = splits;
  args.tiles_per_split = static_cast<int>(std::max<int64_t>(1, (tiles + splits - 1) / splits));
  if (splits == 1) {
    args.out_ptr = dw;
    launch_igemm<T, Cfg, LoadA, LoadB>(device, args, g.G);
    return;
  }
  ::tl::cuda::Workspace part(device, static_cast<std::size_t>(splits * dw_elems) * sizeof(T));
  args.out_ptr = part.as<T>();
  args.split_stride = dw_elems;
  launch_igemm<T, Cfg, LoadA, LoadB>(device, args, g.G);
  launch_splitk_sum<T>(device, part.as<T>(), splits, dw_elems, nullptr, 1, 1, dw);
}

// ---- tile choice ----

// The 1x1 GEMM tiles the image's P*Q positions 128 at a time; when that wastes more than 15% of the tile
// (small images, as in the deep layers), the implicit GEMM's columns run over the whole batch instead.
bool pointwise_gemm_pays(const Geometry& g) {
  const int64_t tiles = (g.HW() + 127) / 128;
  return g.HW() * 100 >= tiles * 128 * 85;
}

template <typename T>
void forward_any(int device, const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    const bool vec = aligned16(w) && g.CgRS() % 4 == 0;
    if (g.Kg <= 64) {
      if (vec) return forward_igemm<T, tile::FloatNarrow, true>(device, g, x, w, bias, y);
      return forward_igemm<T, tile::FloatNarrow, false>(device, g, x, w, bias, y);
    }
    if (vec) return forward_igemm<T, tile::FloatWide, true>(device, g, x, w, bias, y);
    return forward_igemm<T, tile::FloatWide, false>(device, g, x, w, bias, y);
  } else {
    return forward_igemm<T, tile::DoubleTile, false>(device, g, x, w, bias, y);
  }
}

template <typename T>
void backward_data_any(int device, const Geometry& g, const T* dy, const T* w, T* dx) {
  if constexpr (std::is_same_v<T, float>) {
    const bool vec =
        g.Cg % 4 == 0;  // the packed weights start 16-byte aligned, each phase at a multiple of 4
    if (g.Cg <= 64) {
      if (vec) return backward_data_igemm<T, tile::FloatNarrow, true>(device, g, dy, w, dx);
      return backward_data_igemm<T, tile::FloatNarrow, false>(device, g, dy, w, dx);
    }
    if (vec) return backward_data_igemm<T, tile::FloatWide, true>(device, g, dy, w, dx);
    return backward_data_igemm<T, tile::FloatWide, false>(device, g, dy, w, dx);
  } else {
    return backward_data_igemm<T, tile::DoubleTile, false>(device, g, dy, w, dx);
  }
}

template <typename T>
void backward_filter_any(int device, const Geometry& g, const T* x, const T* dy, T* dw) {
  if constexpr (std::is_same_v<T, float>) {
    if (g.Kg <= 64) return backward_filter_igemm<T, tile::FloatNarrow>(device, g, x, dy, dw);
    return backward_filter_igemm<T, tile::FloatWide>(device, g, x, dy, dw);
  } else {
    return backward_filter_igemm<T, tile::DoubleTile>(device, g, x, dy, dw);
  }
}

}  // namespace

// ---- entry points ---------------------------------------------------------------------------------------

template <typename T>
void conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  ::tl::cuda::DeviceGuard guard(device);
  if (s.is_depthwise()) return detail::depthwise_conv2d_forward<T>(device, s, x, w, bias, y);
  const Geometry g(s);
  if (g.N * g.K * g.PQ() == 0) return;
  if (g.pointwise() && (pointwise_gemm_pays(g) || g.N * g.HW() >= kIndexLimit)) {
    // y[n] = w [K, C] * x[n] [C, HW] + bias, one GEMM per image in one launch.
    return detail::gemm_strided_batched<T>(device, false, false, g.K, g.HW(), g.C, T(1), w, g.C, 0, x, g.HW(),
                                           g.C * g.HW(), T(0), y, g.HW(), g.K * g.HW(), g.N, bias);
  }
  check_index_range(g);
  forward_any<T>(device, g, x, w, bias, y);
}

template <typename T>
void conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  ::tl::cuda::DeviceGuard guard(device);
  if (s.is_depthwise()) return detail::depthwise_conv2d_backward_data<T>(device, s, dy, w, dx);
  const Geometry g(s);
  if (g.N * g.C * g.HW() == 0) return;
  if (g.pointwise() && (pointwise_gemm_pays(g) || g.N * g.HW() >= kIndexLimit)) {
    // dx[n] = w^T [C, K] * dy[n] [K, HW].
    return detail::gemm_strided_batched<T>(device, true, false, g.C, g.HW(), g.K, T(1), w, g.C, 0, dy, g.HW(),
                                           g.K * g.HW(), T(0), dx, g.HW(), g.C * g.HW(), g.N, nullptr);
  }
  check_index_range(g);
  backward_data_any<T>(device, g, dy, w, dx);
}

template <typename T>
void conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  ::tl::cuda::DeviceGuard guard(device);
  if (s.is_depthwise()) return detail::depthwise_conv2d_backward_filter<T>(device, s, x, dy, dw, dbias);
  const Geometry g(s);
  if (!dw && !dbias) return;
  check_index_range(g);
  if (dbias && g.K > 0) bias_gradient<T>(device, g, dy, dbias);
  // dw = sum over images of dy[n] [K, PQ] * x[n]^T: the implicit GEMM reduces over all images at once (split
  // across blocks), which a GEMM per image cannot; it serves 1x1 layers too.
  if (dw && g.K * g.CgRS() > 0) backward_filter_any<T>(device, g, x, dy, dw);
}

#define TL_INSTANTIATE(T)                                                                     \
  template void conv2d_forward<T>(int, const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data<T>(int, const Conv2dShape&, const T*, const T*, T*);     \
  template void conv2d_backward_filter<T>(int, const Conv2dShape&, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cuda
