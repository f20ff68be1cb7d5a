// tl's own GEMM on the GPU: C = alpha * op(A) * op(B) + beta * C, row-major, any shape, transposes and
// leading dimensions (the contract of kernels/ops.h; beta == 0 never reads C, so garbage in C cannot leak).
//
// The tile (8 x 8 register blocking over BK = 8 slices, double-buffered in shared memory) is
// kernels/cuda/gemm_tile.cuh's, shared with the implicit-GEMM convolution; this file adds the GEMM's kernel,
// its epilogue and the host side. float: 128 x 128 tiles, 256 threads. double: 64 x 64 tiles, 64 threads.
// Global loads are 16 bytes wide where an operand's base address and leading dimension allow it (float only);
// every load is guarded, so edges and odd sizes run the same kernel and nothing outside the matrices is read.
//
// Besides the facade's gemm, this file exports detail::gemm_strided_batched (kernels/cuda/detail.h), which
// the 1x1 convolutions of conv2d_implicit_gemm.cu use.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/detail.h"
#include "kernels/cuda/gemm_tile.cuh"
#include "kernels/cuda/runtime.h"

namespace tl::kernels::cuda {
namespace {

using tile::aligned16;

template <typename T>
using GemmTiling = std::conditional_t<std::is_same_v<T, float>, tile::FloatWide, tile::DoubleTile>;

template <typename T>
struct GemmArgs {
  const T* A;
  const T* B;
  T* C;
  const T* row_bias;  // added to every element of row m, or null
  int64_t lda, ldb, ldc, stride_a, stride_b, stride_c;
  int M, N, K;
  T alpha, beta;
  bool vec_c;  // C 16-byte aligned with ldc and stride_c multiples of 4 (float only)
};

// C = alpha * acc + bias (+ beta * C when kReadC) over the thread's 8 x 8 block. beta == 0 and beta != 0 are
// separate instantiations: with no loads of C the compiler keeps the epilogue within 128 registers.
template <class Cfg, bool kReadC, typename T>
__device__ __forceinline__ void store_tile(const GemmArgs<T>& g, T* C, int m0, int n0, int tm, int tn,
                                           const T (&acc)[8][8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int row = m0 + (i < 4 ? tm * 4 + i : Cfg::BM / 2 + tm * 4 + i - 4);
    if (row >= g.M) continue;
    T* crow = C + static_cast<int64_t>(row) * g.ldc;
    const T bias = g.row_bias ? g.row_bias[row] : T(0);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int col = n0 + h * (Cfg::BN / 2) + tn * 4;
      T out[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) out[j] = g.alpha * acc[i][h * 4 + j] + bias;
      bool done = false;
      if constexpr (std::is_same_v<T, float>) {
        if (g.vec_c && col + 3 < g.N) {
          float4* dst = reinterpret_cast<float4*>(crow + col);
          if constexpr (kReadC) {
            const float4 old = *dst;
            out[0] += g.beta * old.x;
            out[1] += g.beta * old.y;
            out[2] += g.beta * old.z;
            out[3] += g.beta * old.w;
          }
          *dst = make_float4(out[0], out[1], out[2], out[3]);
          done = true;
        }
      }
      if (!done) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (col + j < g.N) {
            T value = out[j];
            if constexpr (kReadC) value += g.beta * crow[col + j];
            crow[col + j] = value;
          }
        }
      }
    }
  }
}

template <typename T, class Cfg, bool kTransA, bool kTransB, bool kVecA, bool kVecB>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) gemm_kernel(const GemmArgs<T> g) {
  __shared__ __align__(16) T smem_a[2 * Cfg::kStageA];
  __shared__ __align__(16) T smem_b[2 * Cfg::kStageB];
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int64_t z = blockIdx.z;

  // A untransposed and B transposed are k-contiguous; the other two are m- or n-contiguous.
  using LoadA = std::conditional_t<kTransA, tile::MNContigLoader<T, Cfg::BM, Cfg::kThreads, kVecA>,
                                   tile::KContigLoader<T, Cfg::BM, Cfg::kThreads, kVecA>>;
  using LoadB = std::conditional_t<kTransB, tile::KContigLoader<T, Cfg::BN, Cfg::kThreads, kVecB>,
                                   tile::MNContigLoader<T, Cfg::BN, Cfg::kThreads, kVecB>>;
  LoadA la(g.A + z * g.stride_a, g.lda, g.M, g.K, m0, tid);
  LoadB lb(g.B + z * g.stride_b, g.ldb, g.N, g.K, n0, tid);

  T acc[8][8];
  tile::zero(acc);

  const int tm = tid / Cfg::kThreadsN, tn = tid % Cfg::kThreadsN;
  tile::mainloop<Cfg>(la, lb, 0, (g.K + Cfg::BK - 1) / Cfg::BK, smem_a, smem_b, tm, tn, acc);

  T* C = g.C + z * g.stride_c;
  if (g.beta == T(0)) {
    store_tile<Cfg, false>(g, C, m0, n0, tm, tn, acc);
  } else {
    store_tile<Cfg, true>(g, C, m0, n0, tm, tn, acc);
  }
}

template <typename T, bool kTransA, bool kTransB>
void launch_gemm(bool vec_a, bool vec_b, dim3 grid, cudaStream_t stream, const GemmArgs<T>& args) {
  using Cfg = GemmTiling<T>;
  void (*kernel)(GemmArgs<T>) = gemm_kernel<T, Cfg, kTransA, kTransB, false, false>;
  if constexpr (std::is_same_v<T, float>) {
    if (vec_a && vec_b) kernel = gemm_kernel<T, Cfg, kTransA, kTransB, true, true>;
    if (vec_a && !vec_b) kernel = gemm_kernel<T, Cfg, kTransA, kTransB, true, false>;
    if (!vec_a && vec_b) kernel = gemm_kernel<T, Cfg, kTransA, kTransB, false, true>;
  }
  kernel<<<grid, Cfg::kThreads, 0, stream>>>(args);
  TL_CUDA_CHECK_LAUNCH("gemm_kernel");
}

}  // namespace

namespace detail {

// Splits the problem so every launch fits the grid limits (y and z at most 65535 blocks) and 32-bit tile
// indices; a K beyond 2^30 runs as several launches accumulating into C (beta = 1 after the first).
template <typename T>
void gemm_strided_batched(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                          int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch,
                          const T* row_bias) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  using Cfg = GemmTiling<T>;
  constexpr bool kFloat = std::is_same_v<T, float>;
  constexpr int64_t kMaxBatch = 65535;
  constexpr int64_t kMaxM = 65535 * static_cast<int64_t>(Cfg::BM);
  constexpr int64_t kMaxN = int64_t(1) << 30;  // a multiple of BN
  constexpr int64_t kMaxK = int64_t(1) << 30;  // a multiple of BK
  const cudaStream_t stream = ::tl::cuda::stream(device);
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatch) {
    const int64_t bc = std::min(kMaxBatch, batch - b0);
    for (int64_t m0 = 0; m0 < M; m0 += kMaxM) {
      const int64_t mc = std::min(kMaxM, M - m0);
      for (int64_t n0 = 0; n0 < N; n0 += kMaxN) {
        const int64_t nc = std::min(kMaxN, N - n0);
        for (int64_t k0 = 0; k0 == 0 || k0 < K; k0 += kMaxK) {
          const int64_t kc = std::max<int64_t>(0, std::min(kMaxK, K - k0));
          GemmArgs<T> args{};
          args.A = A + b0 * stride_a + (trans_a ? m0 + k0 * lda : m0 * lda + k0);
          args.B = B + b0 * stride_b + (trans_b ? n0 * ldb + k0 : k0 * ldb + n0);
          args.C = C + b0 * stride_c + m0 * ldc + n0;
          args.row_bias = row_bias && k0 == 0 ? row_bias + m0 : nullptr;
          args.lda = lda;
          args.ldb = ldb;
          args.ldc = ldc;
          args.stride_a = stride_a;
          args.stride_b = stride_b;
          args.stride_c = stride_c;
          args.M = static_cast<int>(mc);
          args.N = static_cast<int>(nc);
          args.K = static_cast<int>(kc);
          args.alpha = alpha;
          args.beta = k0 == 0 ? beta : T(1);
          const bool vec_a = kFloat && aligned16(args.A) && lda % 4 == 0 && (bc == 1 || stride_a % 4 == 0);
          const bool vec_b = kFloat && aligned16(args.B) && ldb % 4 == 0 && (bc == 1 || stride_b % 4 == 0);
          args.vec_c = kFloat && aligned16(args.C) && ldc % 4 == 0 && (bc == 1 || stride_c % 4 == 0);
          const dim3 grid(static_cast<unsigned>((nc + Cfg::BN - 1) / Cfg::BN),
                          static_cast<unsigned>((mc + Cfg::BM - 1) / Cfg::BM), static_cast<unsigned>(bc));
          if (trans_a && trans_b) {
            launch_gemm<T, true, true>(vec_a, vec_b, grid, stream, args);
          } else if (trans_a) {
            launch_gemm<T, true, false>(vec_a, vec_b, grid, stream, args);
          } else if (trans_b) {
            launch_gemm<T, false, true>(vec_a, vec_b, grid, stream, args);
          } else {
            launch_gemm<T, false, false>(vec_a, vec_b, grid, stream, args);
          }
        }
      }
    }
  }
}

}  // namespace detail

template <typename T>
void gemm(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  ::tl::cuda::DeviceGuard guard(device);
  detail::gemm_strided_batched<T>(device, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C,
                                  ldc, 0, 1, nullptr);
}

#define TL_INSTANTIATE(T)                                                                                    \
  template void gemm<T>(int, bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, \
                        T, T*, int64_t);                                                                     \
  template void detail::gemm_strided_batched<T>(int, bool, bool, int64_t, int64_t, int64_t, T, const T*,     \
                                                int64_t, int64_t, const T*, int64_t, int64_t, T, T*,         \
                                                int64_t, int64_t, int64_t, const T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cuda
