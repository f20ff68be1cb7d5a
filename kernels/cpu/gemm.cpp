// The native GEMM: the GotoBLAS/BLIS loop nest around a register-blocked micro-kernel.
//
//   for jc over this thread's columns in nc-wide panels
//     for pc over K in kc-deep slices:     pack op(B)[pc.., jc..] into kc x nr micro-panels
//       for ic over its rows, mc at a time:  pack op(A)[ic.., pc..] into mr x kc micro-panels (in L2)
//         for jr over the panel's micro-panels of B      (each stays in L1 while ...)
//           for ir over the block's micro-panels of A    (... these stream past it from L2)
//             micro-kernel: an mr x nr tile of C, in registers
//
// Packing resolves the transposes and pads the edges with zeros, so the micro-kernel sees one layout (see
// gemm_microkernel.h). This file compiles with baseline x86-64 flags; the SIMD micro-kernels and their
// packing live in their own files, compiled for their instruction sets and chosen once by CPUID.
//
// Threads: the OpenMP threads cut C into one block each (a grid of row and column ranges, see choose_grid)
// and run the loop nest on their blocks independently, each packing its own A and B: no barriers, so one
// thread slowed by another process does not stall the others at every panel. (Measured on 2 cores: as fast as
// sharing a packed B panel between threads at 1024^3 and 2048^3, faster below.) Inside an enclosing parallel
// region the call runs on the calling thread alone.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/gemm_microkernel.h"

namespace tl::kernels::cpu {
namespace {

using detail::GemmKernel;

// ---- the portable micro-kernel: double, and float on CPUs without AVX2 ------------------------------------

template <typename T, int MR, int NR>
void portable_tile(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta, int m, int n) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (int j = 0; j < n; ++j) ci[j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * ci[j];
  }
}

template <typename T>
GemmKernel<T> portable_kernel() {
  // 4 rows x one 64-byte line of B per k; blocks sized for any recent L1/L2.
  constexpr int kMR = 4, kNR = 64 / sizeof(T);
  return {"native-generic", kMR, kNR, 128, 256, 2048, 128 * 1024, &portable_tile<T, kMR, kNR>};
}

// The float micro-kernel for this CPU, chosen once: a constant for the life of the process.
const GemmKernel<float>& float_kernel() {
  static const GemmKernel<float> chosen = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
      return detail::avx512_sgemm_kernel();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return detail::avx2_sgemm_kernel();
    return portable_kernel<float>();
  }();
  return chosen;
}

template <typename T>
const GemmKernel<T>& kernel_for();
template <>
const GemmKernel<float>& kernel_for<float>() {
  return float_kernel();
}
template <>
const GemmKernel<double>& kernel_for<double>() {
  static const GemmKernel<double> portable = portable_kernel<double>();
  return portable;
}

// ---- packing ----------------------------------------------------------------------------------------------

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

// op(X) as stored: the logical [rows, cols] matrix is X, or X^T when `trans` (then X is [cols, rows]).
template <typename T>
struct Operand {
  const T* data;
  int64_t ld;
  bool trans;

  const T* at(int64_t r, int64_t c) const { return trans ? data + c * ld + r : data + r * ld + c; }
};

// The portable packing, for kernels that bring none of their own: PackAFn and PackBFn of gemm_microkernel.h,
// with the tile width passed in.
template <typename T>
void pack_a_portable(const T* a, int64_t lda, bool trans, int64_t mc, int64_t kc, int mr, T* out) {
  for (int64_t p = 0; p < mc; p += mr, out += mr * kc) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, mc - p));
    for (int64_t k = 0; k < kc; ++k) {
      T* dst = out + k * mr;
      for (int r = 0; r < rows; ++r) dst[r] = trans ? a[k * lda + p + r] : a[(p + r) * lda + k];
      for (int r = rows; r < mr; ++r) dst[r] = T(0);
    }
  }
}

template <typename T>
void pack_b_portable(const T* b, int64_t ldb, bool trans, int64_t kc, int64_t nc, int nr, T* out) {
  const int64_t panels = ceil_div(nc, nr);
  // Untransposed, go row by row across all the micro-panels so that the reads stream; transposed, down each
  // micro-panel column, a contiguous run of the source.
  for (int64_t outer = 0; outer < (trans ? panels : kc); ++outer) {
    for (int64_t inner = 0; inner < (trans ? kc : panels); ++inner) {
      const int64_t p = trans ? outer : inner, k = trans ? inner : outer;
      const int cols = static_cast<int>(std::min<int64_t>(nr, nc - p * nr));
      T* dst = out + p * nr * kc + k * nr;
      for (int j = 0; j < cols; ++j) dst[j] = trans ? b[(p * nr + j) * ldb + k] : b[k * ldb + p * nr + j];
      for (int j = cols; j < nr; ++j) dst[j] = T(0);
    }
  }
}

// Packs rows [i0, i0 + mc) x columns [k0, k0 + kc) of op(A) into the kernel's A micro-panels.
template <typename T>
void pack_a(const GemmKernel<T>& kernel, const Operand<T>& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            T* out) {
  if (kernel.pack_a) return kernel.pack_a(a.at(i0, k0), a.ld, a.trans, mc, kc, out);
  pack_a_portable(a.at(i0, k0), a.ld, a.trans, mc, kc, kernel.mr, out);
}

// Packs rows [k0, k0 + kc) x columns [j0, j0 + nc) of op(B) into the kernel's B micro-panels.
template <typename T>
void pack_b(const GemmKernel<T>& kernel, const Operand<T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            T* out) {
  if (kernel.pack_b) return kernel.pack_b(b.at(k0, j0), b.ld, b.trans, kc, nc, out);
  pack_b_portable(b.at(k0, j0), b.ld, b.trans, kc, nc, kernel.nr, out);
}

// ---- the plan: which thread computes which block of C, in which slices ------------------------------------

// [begin, end) of part `p` when `n` items are cut into `parts` contiguous, near-equal parts.
struct Range {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};
Range split(int64_t n, int64_t parts, int64_t p) {
  return {n * p / parts, n * (p + 1) / parts};
}

// n cut into ceil(n / block) near-equal blocks: their size (a 576-deep K becomes 192 + 192 + 192, not
// 256 + 256 + 64, so that no slice is a thin remainder).
int64_t even_block(int64_t n, int64_t block) {
  return ceil_div(n, ceil_div(n, block));
}

// The threads form a tm x tn grid over C: thread (gm, gn) computes row tiles rows(gm) x column tiles
// cols(gn).
struct Grid {
  int tm = 1, tn = 1;
};

// Elements in the biggest of `parts` contiguous ranges of whole tiles over n.
int64_t largest_part(int64_t n, int tile, int parts) {
  int64_t largest = 0;
  for (int p = 0; p < parts; ++p) {
    const Range r = split(ceil_div(n, tile), parts, p);
    largest = std::max(largest, std::min(n, r.end * tile) - r.begin * tile);
  }
  return largest;
}

// The grid with the least work on the busiest thread; among grids within 1% of that, the one whose threads
// pack the least (rows of A plus columns of B, each K deep), so a wide, short product splits N and a tall one
// M.
Grid choose_grid(int64_t M, int64_t N, int mr, int nr, int threads) {
  Grid best;
  double best_work = 0, best_data = 0;
  for (int tm = threads; tm >= 1; --tm) {
    if (threads % tm != 0) continue;
    const int tn = threads / tm;
    const int64_t rows = largest_part(M, mr, tm), cols = largest_part(N, nr, tn);
    const double work = static_cast<double>(rows) * static_cast<double>(cols);
    const double data = static_cast<double>(rows + cols);
    const bool clearly_less = work < best_work * 0.99, about_equal = work <= best_work * 1.01;
    if (tm == threads || clearly_less || (about_equal && data < best_data))
      best = {tm, tn}, best_work = work, best_data = data;
  }
  return best;
}

// Below this many multiply-adds a fork/join costs more than a second thread saves.
constexpr double kMinParallelMacs = 1 << 18;

int thread_count(int64_t M, int64_t N, int64_t K) {
  const double macs = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (omp_in_parallel() || macs < kMinParallelMacs) return 1;
  return std::max(1, omp_get_max_threads());
}

// Block sizes and the split for one call on `threads` threads. Two loop orders per thread:
//  - panels, the general one (the nest at the top of this file);
//  - chunks, when all of a thread's rows fit one A block, so that no packed B is used by more than that one
//    block. Each K slice then packs the A block once and walks the columns in chunks of b_chunk_bytes of
//    packed B, each packed (its rows streaming from memory) and used at once, while it is still in L2 -
//    instead of nc-wide panels that spill to L3 before they are read back. This is the small-M case: a
//    convolution with 64-256 output channels over a batch of images (+10-25% on ResNet-50's early layers).
struct Plan {
  Grid grid;
  int threads = 1;
  int64_t mc = 0, kc = 0;  // rows of C per packed A block, depth of each K slice
  bool chunks = false;
  int64_t panel_tiles = 0;  // B micro-panels per panel, or per chunk
  int64_t b_slab = 0;       // elements of one thread's packed B panel or chunk
  int64_t a_slab = 0;       // elements of one thread's packed A block
};

template <typename T>
Plan make_plan(const GemmKernel<T>& kernel, int64_t M, int64_t N, int64_t K, int threads) {
  const int mr = kernel.mr, nr = kernel.nr;
  Plan plan;
  plan.threads = threads;
  plan.grid = choose_grid(M, N, mr, nr, threads);
  plan.kc = even_block(K, kernel.kc);
  const int64_t rows = ceil_div(ceil_div(M, mr), plan.grid.tm) * mr;  // the tallest thread's rows
  const int64_t col_tiles = ceil_div(ceil_div(N, nr), plan.grid.tn);  // the widest thread's micro-panels
  plan.mc = round_up(even_block(rows, kernel.mc), mr);
  plan.chunks = rows <= plan.mc;
  const int64_t tile_bytes = plan.kc * nr * static_cast<int64_t>(sizeof(T));
  plan.panel_tiles = plan.chunks ? std::clamp<int64_t>(kernel.b_chunk_bytes / tile_bytes, 1, col_tiles)
                                 : even_block(col_tiles, ceil_div(kernel.nc, nr));
  plan.b_slab = plan.panel_tiles * plan.kc * nr;
  plan.a_slab = round_up(plan.mc * plan.kc, 64);
  return plan;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A 64-byte-aligned buffer of `count` T, uninitialised (packing writes every element that is read).
template <typename T>
std::unique_ptr<T[], AlignedFree> aligned_buffer(int64_t count) {
  const auto bytes = static_cast<std::size_t>(round_up(std::max<int64_t>(count, 1) * int64_t{sizeof(T)}, 64));
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p));
}

// Everything one call needs, shared read-only by the threads (each writes only its own slabs and block of C).
template <typename T>
struct Problem {
  const GemmKernel<T>& kernel;
  Operand<T> a, b;
  int64_t M, N, K;
  T alpha, beta;
  T* c;
  int64_t ldc;
  Plan plan;
  T* b_packed;  // plan.threads slabs of plan.b_slab
  T* a_packed;  // plan.threads slabs of plan.a_slab
};

// ---- the loop nest, as run by one thread ------------------------------------------------------------------

// C[rows.., micro-panels `tiles`] = alpha * (packed A block) * (packed B micro-panels) + beta * C.
template <typename T>
void macro_kernel(const Problem<T>& pb, const T* a_block, int64_t ic, int64_t mc, const T* b_panel,
                  Range tiles, int64_t kc, T beta) {
  const int mr = pb.kernel.mr, nr = pb.kernel.nr;
  for (int64_t jt = tiles.begin; jt < tiles.end; ++jt) {
    const T* b = b_panel + (jt - tiles.begin) * kc * nr;
    const int n = static_cast<int>(std::min<int64_t>(nr, pb.N - jt * nr));
    T* c = pb.c + ic * pb.ldc + jt * nr;
    for (int64_t i = 0; i < mc; i += mr) {
      const int m = static_cast<int>(std::min<int64_t>(mr, mc - i));
      pb.kernel.run(kc, a_block + i * kc, b, c + i * pb.ldc, pb.ldc, pb.alpha, beta, m, n);
    }
  }
}

// The panels order (see Plan) for one panel, the micro-panels `tiles`: packs each K slice of it, then runs
// every A block of rows [row_begin, row_end) over it.
template <typename T>
void run_columns(const Problem<T>& pb, int64_t row_begin, int64_t row_end, Range tiles, T* b_panel,
                 T* a_block) {
  const Plan& plan = pb.plan;
  const int nr = pb.kernel.nr;
  const int64_t j0 = tiles.begin * nr, j1 = std::min(pb.N, tiles.end * nr);
  for (int64_t pc = 0; pc < pb.K; pc += plan.kc) {
    const int64_t kc = std::min(plan.kc, pb.K - pc);
    const T beta = pc == 0 ? pb.beta : T(1);  // later slices accumulate onto the first
    pack_b(pb.kernel, pb.b, pc, kc, j0, j1 - j0, b_panel);
    for (int64_t ic = row_begin; ic < row_end; ic += plan.mc) {
      const int64_t mc = std::min(plan.mc, row_end - ic);
      pack_a(pb.kernel, pb.a, ic, mc, pc, kc, a_block);
      macro_kernel(pb, a_block, ic, mc, b_panel, tiles, kc, beta);
    }
  }
}

// The chunks order (see Plan): the A block is packed once per K slice, B chunk by chunk.
template <typename T>
void run_chunks(const Problem<T>& pb, int64_t row_begin, int64_t row_end, Range cols, T* b_chunk,
                T* a_block) {
  const Plan& plan = pb.plan;
  const int nr = pb.kernel.nr;
  for (int64_t pc = 0; pc < pb.K; pc += plan.kc) {
    const int64_t kc = std::min(plan.kc, pb.K - pc);
    const T beta = pc == 0 ? pb.beta : T(1);
    pack_a(pb.kernel, pb.a, row_begin, row_end - row_begin, pc, kc, a_block);
    for (int64_t jt = cols.begin; jt < cols.end; jt += plan.panel_tiles) {
      const Range chunk{jt, std::min(cols.end, jt + plan.panel_tiles)};
      const int64_t j0 = chunk.begin * nr, j1 = std::min(pb.N, chunk.end * nr);
      pack_b(pb.kernel, pb.b, pc, kc, j0, j1 - j0, b_chunk);
      macro_kernel(pb, a_block, row_begin, row_end - row_begin, b_chunk, chunk, kc, beta);
    }
  }
}

// Thread `tid` of plan.threads computes its block of C (see Grid).
template <typename T>
void run_thread(const Problem<T>& pb, int tid) {
  const Plan& plan = pb.plan;
  const int mr = pb.kernel.mr, nr = pb.kernel.nr;
  const Range rows = split(ceil_div(pb.M, mr), plan.grid.tm, tid / plan.grid.tn);  // in row tiles
  const Range cols = split(ceil_div(pb.N, nr), plan.grid.tn, tid % plan.grid.tn);  // in micro-panels
  const int64_t row_begin = rows.begin * mr, row_end = std::min(pb.M, rows.end * mr);
  if (row_begin >= row_end || cols.size() == 0) return;
  T* b_panel = pb.b_packed + tid * plan.b_slab;
  T* a_block = pb.a_packed + tid * plan.a_slab;
  if (plan.chunks) return run_chunks(pb, row_begin, row_end, cols, b_panel, a_block);
  for (int64_t jt = cols.begin; jt < cols.end; jt += plan.panel_tiles)
    run_columns(pb, row_begin, row_end, Range{jt, std::min(cols.end, jt + plan.panel_tiles)}, b_panel,
                a_block);
}

}  // namespace

// ---- the entry point --------------------------------------------------------------------------------------

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const GemmKernel<T>& kernel = kernel_for<T>();
  const int threads = thread_count(M, N, K);
  const Plan plan = make_plan(kernel, M, N, K, threads);
  // A team smaller than asked for (OMP_DYNAMIC, thread limits) falls back to one thread: size for both.
  const Plan serial = threads == 1 ? plan : make_plan(kernel, M, N, K, 1);
  auto b_packed = aligned_buffer<T>(std::max(plan.b_slab * threads, serial.b_slab));
  auto a_packed = aligned_buffer<T>(std::max(plan.a_slab * threads, serial.a_slab));

  const Problem<T> pb{kernel, {A, lda, trans_a}, {B, ldb, trans_b}, M, N, K, alpha, beta, C, ldc,
                      plan,   b_packed.get(),    a_packed.get()};
  if (threads == 1) return run_thread(pb, 0);
#pragma omp parallel num_threads(threads)
  {
    if (omp_get_num_threads() == threads) {
      run_thread(pb, omp_get_thread_num());
    } else {
#pragma omp single
      {
        Problem<T> alone = pb;
        alone.plan = serial;
        run_thread(alone, 0);
      }
    }
  }
}

const char* gemm_microkernel_name() {
  return float_kernel().name;
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace tl::kernels::cpu
