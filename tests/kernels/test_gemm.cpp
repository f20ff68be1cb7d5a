// GEMM through the facade: the native and vendor paths against Policy::Reference, for every transpose
// combination, padded leading dimensions, alpha and beta (beta == 0 with C poisoned by NaN), float and
// double. The shapes are chosen to hit the native kernel's edges: single rows/columns/depths, sizes that are
// not multiples of the register tile, K deeper than one slice, several A blocks per thread, several B chunks
// per thread, and both ways of splitting the work between threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/ops.h"
#include "tests/support/numeric.h"

namespace {

using tl::kernels::Context;
using tl::kernels::Policy;

struct Shape {
  const char* name;
  std::int64_t M, N, K;
};

struct GemmCase {
  Shape shape;
  bool trans_a, trans_b;
};

// A product's operands and output as stored, with leading dimensions a few elements past the minimum so that
// a kernel confusing ld with the logical width fails.
template <typename T>
struct Operands {
  std::int64_t lda, ldb, ldc;
  std::vector<T> a, b;

  Operands(const GemmCase& c, std::uint64_t seed) {
    const auto [name, M, N, K] = c.shape;
    const std::int64_t a_rows = c.trans_a ? K : M, a_cols = c.trans_a ? M : K;
    const std::int64_t b_rows = c.trans_b ? N : K, b_cols = c.trans_b ? K : N;
    lda = a_cols + 3;
    ldb = b_cols + 5;
    ldc = N + 7;
    a = tl::testing::random_vector<T>(static_cast<std::size_t>(a_rows * lda), seed);
    b = tl::testing::random_vector<T>(static_cast<std::size_t>(b_rows * ldb), seed + 1);
  }
};

// C's initial contents: NaN when beta == 0 (it must not be read), else random values.
template <typename T>
std::vector<T> initial_c(std::int64_t M, std::int64_t ldc, T beta, std::uint64_t seed) {
  const auto n = static_cast<std::size_t>(M * ldc);
  return beta == T(0) ? tl::testing::poisoned_vector<T>(n) : tl::testing::random_vector<T>(n, seed);
}

// The M x N block of a row-major buffer with row stride ld.
template <typename T>
std::vector<T> block(const std::vector<T>& c, std::int64_t M, std::int64_t N, std::int64_t ld) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(M * N));
  for (std::int64_t i = 0; i < M; ++i) out.insert(out.end(), c.begin() + i * ld, c.begin() + i * ld + N);
  return out;
}

// The elements of each row past column N (the ld padding) must come back bit for bit (NaN included).
template <typename T>
void expect_padding_untouched(const std::vector<T>& before, const std::vector<T>& after, std::int64_t M,
                              std::int64_t N, std::int64_t ld) {
  for (std::int64_t i = 0; i < M; ++i) {
    const auto offset = static_cast<std::size_t>(i * ld + N);
    ASSERT_EQ(std::memcmp(before.data() + offset, after.data() + offset, sizeof(T) * (ld - N)), 0)
        << "row " << i << " written past column " << N;
  }
}

template <typename T>
void check_paths(const GemmCase& c, double tolerance) {
  const auto [name, M, N, K] = c.shape;
  const Operands<T> in(c, 42);
  for (const T alpha : {T(1), T(-0.5)}) {
    for (const T beta : {T(0), T(1), T(0.25)}) {
      SCOPED_TRACE(::testing::Message() << "alpha " << alpha << ", beta " << beta);
      const std::vector<T> c0 = initial_c<T>(M, in.ldc, beta, 7);
      std::vector<T> expected = c0;
      tl::kernels::gemm<T>(Context{tl::Device::cpu(), Policy::Reference}, c.trans_a, c.trans_b, M, N, K,
                           alpha, in.a.data(), in.lda, in.b.data(), in.ldb, beta, expected.data(), in.ldc);
      const std::vector<T> want = block(expected, M, N, in.ldc);
      for (const Policy policy : {Policy::Native, Policy::Vendor}) {
        SCOPED_TRACE(tl::kernels::policy_name(policy));
        std::vector<T> actual = c0;
        tl::kernels::gemm<T>(Context{tl::Device::cpu(), policy}, c.trans_a, c.trans_b, M, N, K, alpha,
                             in.a.data(), in.lda, in.b.data(), in.ldb, beta, actual.data(), in.ldc);
        EXPECT_LT(tl::testing::normalized_error(block(actual, M, N, in.ldc), want), tolerance);
        expect_padding_untouched(c0, actual, M, N, in.ldc);
      }
    }
  }
}

class GemmPaths : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmPaths, FloatMatchesReference) {
  check_paths<float>(GetParam(), 1e-5);
}
TEST_P(GemmPaths, DoubleMatchesReference) {
  check_paths<double>(GetParam(), 1e-12);
}

// The float kernel on AVX-512 (8 x 48 tiles, mc = kc = 512, nc = 4080, B in 384 KiB chunks) and the double
// one (4 x 8 tiles, mc = 128, kc = 256) on two threads, the edges and loop orders these reach:
const Shape kShapes[] = {
    {"one", 1, 1, 1},
    {"depth_one", 37, 41, 1},
    {"single_row", 1, 300, 129},
    {"single_column", 129, 1, 300},
    {"odd", 17, 33, 65},
    {"odd_deep", 31, 47, 129},
    {"off_tile_two_k_slices", 29, 65, 600},  // no dimension a multiple of a tile; K cut into two slices
    {"larger", 300, 200, 500},               // threads split M; double: two A blocks per thread, two K slices
    {"tall_skinny", 1100, 9, 40},            // threads split M; float: two A blocks per thread (panel order)
    {"short_wide", 5, 3000, 300},            // threads split N; B packed in several chunks per thread
};

std::vector<GemmCase> all_cases() {
  std::vector<GemmCase> cases;
  for (const Shape& s : kShapes)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true}) cases.push_back({s, ta, tb});
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<GemmCase>& info) {
  const GemmCase& c = info.param;
  return std::string(c.shape.name) + "_" + std::to_string(c.shape.M) + "x" + std::to_string(c.shape.N) + "x" +
         std::to_string(c.shape.K) + "_" + (c.trans_a ? "T" : "N") + (c.trans_b ? "T" : "N");
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmPaths, ::testing::ValuesIn(all_cases()), case_name);

// Inside an enclosing parallel region the native GEMM must run on the calling thread: each of two threads
// runs its own product (large enough that it would otherwise go parallel) and both must be right.
TEST(GemmNative, CorrectInsideParallelRegion) {
  constexpr std::int64_t M = 120, N = 130, K = 300;
  const auto a = tl::testing::random_vector<float>(M * K, 1);
  const auto b = tl::testing::random_vector<float>(K * N, 2);
  std::vector<float> expected(M * N);
  tl::kernels::gemm<float>(Context{tl::Device::cpu(), Policy::Reference}, false, false, M, N, K, 1.0f,
                           a.data(), K, b.data(), N, 0.0f, expected.data(), N);
  std::vector<std::vector<float>> results(2, tl::testing::poisoned_vector<float>(M * N));
#pragma omp parallel for num_threads(2) schedule(static, 1)
  for (int t = 0; t < 2; ++t) {
    tl::kernels::gemm<float>(Context{tl::Device::cpu(), Policy::Native}, false, false, M, N, K, 1.0f,
                             a.data(), K, b.data(), N, 0.0f, results[t].data(), N);
  }
  for (const auto& r : results) EXPECT_LT(tl::testing::normalized_error(r, expected), 1e-5);
}

// The native path names the micro-kernel CPUID chose; on an AVX-512 machine that must be the AVX-512 one.
TEST(GemmNative, NamesTheMicroKernelThisCpuSupports) {
  const std::string name = tl::kernels::gemm_implementation(Context{tl::Device::cpu(), Policy::Native});
  EXPECT_TRUE(name == "native-avx512" || name == "native-avx2" || name == "native-generic") << name;
  __builtin_cpu_init();
  const bool fma = __builtin_cpu_supports("fma");
  if (fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    EXPECT_EQ(name, "native-avx512");
  else if (fma && __builtin_cpu_supports("avx2"))
    EXPECT_EQ(name, "native-avx2");
  else
    EXPECT_EQ(name, "native-generic");
}

// ---- the SIMD micro-kernels on their own ------------------------------------------------------------------
// The facade runs only the best micro-kernel this CPU has; these hold every one it can execute (the AVX2
// kernel too, on an AVX-512 machine) to the packed-panel contract of gemm_microkernel.h, for every tile size
// m x n.

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

void check_micro_kernel(const tl::kernels::cpu::detail::GemmKernel<float>& kernel) {
  constexpr std::int64_t kc = 37;
  const int mr = kernel.mr, nr = kernel.nr;
  const std::int64_t ldc = nr + 3;
  const auto a_full = tl::testing::random_vector<float>(static_cast<std::size_t>(mr * kc), 11);
  const auto b_values = tl::testing::random_vector<float>(static_cast<std::size_t>(kc * nr), 12);
  const std::size_t b_bytes = (sizeof(float) * kc * nr + 63) / 64 * 64;  // aligned_alloc wants a multiple
  std::unique_ptr<float, FreeDeleter> b(static_cast<float*>(std::aligned_alloc(64, b_bytes)));
  for (int m = 1; m <= mr; ++m) {
    for (int n = 1; n <= nr; ++n) {
      // Panels as the driver packs them: zero past row m of A and past column n of B.
      std::vector<float> a(a_full);
      for (std::int64_t k = 0; k < kc; ++k) {
        for (int i = m; i < mr; ++i) a[k * mr + i] = 0.0f;
        for (int j = 0; j < nr; ++j) b.get()[k * nr + j] = j < n ? b_values[k * nr + j] : 0.0f;
      }
      for (const float beta : {0.0f, 0.5f}) {
        SCOPED_TRACE(::testing::Message() << kernel.name << " tile " << m << " x " << n << ", beta " << beta);
        const auto c0 = beta == 0.0f ? tl::testing::poisoned_vector<float>(mr * ldc)
                                     : tl::testing::random_vector<float>(mr * ldc, 13);
        std::vector<float> c = c0, want;
        kernel.run(kc, a.data(), b.get(), c.data(), ldc, -1.5f, beta, m, n);
        std::vector<float> got;
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < n; ++j) {
            double acc = 0;
            for (std::int64_t k = 0; k < kc; ++k) acc += double{a[k * mr + i]} * double{b.get()[k * nr + j]};
            want.push_back(static_cast<float>(-1.5 * acc + (beta == 0.0f ? 0.0 : beta * c0[i * ldc + j])));
            got.push_back(c[i * ldc + j]);
          }
        }
        ASSERT_LT(tl::testing::normalized_error(got, want), 1e-5);
        // Nothing outside the m x n tile is touched.
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < ldc; ++j) {
            if (i < m && j < n) continue;
            ASSERT_EQ(std::memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float)), 0) << i << ", " << j;
          }
        }
      }
    }
  }
}

TEST(GemmMicroKernel, Avx512TilesOfEverySize) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")))
    GTEST_SKIP() << "this CPU has no AVX-512";
  check_micro_kernel(tl::kernels::cpu::detail::avx512_sgemm_kernel());
}

TEST(GemmMicroKernel, Avx2TilesOfEverySize) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
    GTEST_SKIP() << "this CPU has no AVX2/FMA";
  check_micro_kernel(tl::kernels::cpu::detail::avx2_sgemm_kernel());
}

}  // namespace
