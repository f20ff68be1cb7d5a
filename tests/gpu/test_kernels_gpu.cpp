// Every kernel of kernels/ops.h on cuda:0, down the native and the vendor path (the test parameter), against
// the CPU reference. Inputs are fresh random values in T (float or double); the reference runs on the CPU in
// float64 from exactly those values, through Policy::Reference, and outputs compare by normalised error
// ||out - ref|| / ||ref||:
//   float32  1e-5, or 3e-5 for reductions over more than 1024 terms (rounding grows with the sum's length);
//   float64  1e-12 (1e-11 beyond 1024 terms).
// Each output buffer is poisoned (NaN) right before each call, so an element left unwritten fails; a null
// output pointer ("not needed") is exercised where the contract allows one. Random fills, casts, copies and
// fills of constants match the CPU bit for bit, dropout value for value (a dropped element may be -0), and
// float64 normals to a few ulps (see RandomFillsMatchCpu). TF32 is off (the fixture) except in its own test.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/device.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test.h"
#include "tests/support/numeric.h"

namespace tl::testing {
namespace {

using kernels::Activation;
using kernels::AdamStep;
using kernels::BatchNormShape;
using kernels::BinaryOp;
using kernels::Context;
using kernels::Conv2dShape;
using kernels::Policy;
using kernels::Pool2dShape;
using kernels::SgdStep;

// ---- helpers ----------------------------------------------------------------------------------------------

template <typename T>
const char* type_name() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// See the file comment: rounding of a sum grows with its number of terms.
template <typename T>
double tolerance(std::int64_t terms = 1) {
  if constexpr (std::is_same_v<T, float>) {
    return terms > 1024 ? 3e-5 : 1e-5;
  } else {
    return terms > 1024 ? 1e-11 : 1e-12;
  }
}

Context reference() {
  return {Device::cpu(), Policy::Reference};
}

template <typename T>
std::vector<double> widen(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

template <typename T>
std::vector<T> round_to(const std::vector<double>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
  return out;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Fresh inputs for every call: each draw uses the next seed, so no two buffers of a test are alike, and a
// failure reproduces.
class Random {
 public:
  template <typename T>
  std::vector<T> uniform(std::size_t n, double low = -1.0, double high = 1.0) {
    return random_vector<T>(n, next_seed_++, low, high);
  }
  std::vector<std::int64_t> labels(std::size_t n, std::int64_t classes) {
    const auto u = random_vector<double>(n, next_seed_++, 0.0, static_cast<double>(classes));
    std::vector<std::int64_t> out(n);
    for (std::size_t i = 0; i < n; ++i)
      out[i] = std::min<std::int64_t>(static_cast<std::int64_t>(u[i]), classes - 1);
    return out;
  }
  // Random 32- or 64-bit patterns (copies and casts compare bits).
  template <typename U>
  std::vector<U> bits(std::size_t n) {
    std::mt19937_64 rng(next_seed_++);
    std::vector<U> out(n);
    for (auto& v : out) v = static_cast<U>(rng());
    return out;
  }

 private:
  std::uint64_t next_seed_ = 20240601;
};

std::string str_of(const Conv2dShape& s) {
  std::ostringstream out;
  out << "x [" << s.batch << ", " << s.in_channels << ", " << s.in_h << ", " << s.in_w << "] w ["
      << s.out_channels << ", " << s.in_channels / s.groups << ", " << s.kernel_h << ", " << s.kernel_w
      << "] stride " << s.stride_h << "x" << s.stride_w << " pad (" << s.pad_top << ", " << s.pad_bottom
      << ", " << s.pad_left << ", " << s.pad_right << ") dilation " << s.dilation_h << " groups " << s.groups;
  return out.str();
}

std::string str_of(const Pool2dShape& s) {
  std::ostringstream out;
  out << "planes " << s.planes << " in " << s.in_h << "x" << s.in_w << " kernel " << s.kernel_h << "x"
      << s.kernel_w << " stride " << s.stride_h << "x" << s.stride_w << " pad (" << s.pad_top << ", "
      << s.pad_bottom << ", " << s.pad_left << ", " << s.pad_right << ")";
  return out.str();
}

class GpuKernels : public GpuParamTest<Policy> {
 protected:
  Context gpu() const { return {device(), GetParam()}; }
  // A device copy of host values.
  template <typename T>
  DeviceBuffer<T> put(const std::vector<T>& values) const {
    return DeviceBuffer<T>(device(), values);
  }
  // A poisoned device buffer for an output.
  template <typename T>
  DeviceBuffer<T> out(std::size_t n) const {
    return DeviceBuffer<T>(device(), n);
  }
  std::string where(const std::string& what) const {
    return what + " [" + kernels::policy_name(GetParam()) + " on " + device().str() + "]";
  }

  Random rng_;
};

// Runs body<float>() and body<double>(), each under a trace naming the type.
template <typename Body>
void for_float_and_double(Body&& body) {
  {
    SCOPED_TRACE("float32");
    body.template operator()<float>();
  }
  {
    SCOPED_TRACE("float64");
    body.template operator()<double>();
  }
}

// ---- GEMM -------------------------------------------------------------------------------------------------

struct GemmCase {
  std::int64_t M, N, K;
  std::int64_t pad_a, pad_b, pad_c;  // leading dimension beyond the stored width
};

TEST_P(GpuKernels, GemmAllTransposesAndLeadingDimensions) {
  // Odd sizes, a row and a column vector, a larger product, K = 0 (C = beta * C) and K = 1.
  const GemmCase cases[] = {{37, 53, 29, 3, 5, 7},     {1, 64, 96, 0, 1, 2}, {96, 1, 64, 2, 0, 1},
                            {256, 192, 320, 8, 4, 16}, {6, 5, 0, 3, 3, 1},   {130, 70, 1, 1, 2, 3}};
  constexpr double kSentinel = 42.0;  // in C's padding: a kernel must not write past column N
  const std::string implementation = kernels::gemm_implementation(gpu());
  EXPECT_FALSE(implementation.empty() || implementation == "?") << where("gemm_implementation names no path");
  if (report_errors()) std::printf("  gemm_implementation: %s\n", implementation.c_str());
  for_float_and_double([&]<typename T>() {
    for (const GemmCase& c : cases)
      for (const bool ta : {false, true})
        for (const bool tb : {false, true})
          for (const bool beta_zero : {true, false}) {
            const std::int64_t a_rows = ta ? c.K : c.M, a_cols = ta ? c.M : c.K, lda = a_cols + c.pad_a;
            const std::int64_t b_rows = tb ? c.N : c.K, b_cols = tb ? c.K : c.N, ldb = b_cols + c.pad_b;
            const std::int64_t ldc = c.N + c.pad_c;
            auto A = rng_.uniform<T>(static_cast<std::size_t>(std::max<std::int64_t>(1, a_rows * lda)));
            auto B = rng_.uniform<T>(static_cast<std::size_t>(std::max<std::int64_t>(1, b_rows * ldb)));
            // NaN in the padding of A and B: an element read there would poison the result.
            for (std::int64_t r = 0; r < a_rows; ++r)
              for (std::int64_t j = a_cols; j < lda; ++j) A[r * lda + j] = static_cast<T>(kNaN);
            for (std::int64_t r = 0; r < b_rows; ++r)
              for (std::int64_t j = b_cols; j < ldb; ++j) B[r * ldb + j] = static_cast<T>(kNaN);
            // With beta == 0, C is not read: it starts as NaN and must not leak.
            auto C = beta_zero ? std::vector<T>(c.M * ldc, static_cast<T>(kNaN)) : rng_.uniform<T>(c.M * ldc);
            for (std::int64_t i = 0; i < c.M; ++i)
              for (std::int64_t j = c.N; j < ldc; ++j) C[i * ldc + j] = static_cast<T>(kSentinel);
            const T alpha = beta_zero ? T(1) : T(1.5), beta = beta_zero ? T(0) : T(-0.75);

            std::vector<double> expected = widen(C);
            const auto A64 = widen(A), B64 = widen(B);
            kernels::gemm<double>(reference(), ta, tb, c.M, c.N, c.K, alpha, A64.data(), lda, B64.data(), ldb,
                                  beta, expected.data(), ldc);

            auto dA = put(A), dB = put(B), dC = put(C);
            kernels::gemm<T>(gpu(), ta, tb, c.M, c.N, c.K, alpha, dA.data(), lda, dB.data(), ldb, beta,
                             dC.data(), ldc);
            const auto actual = dC.download();

            std::vector<T> got;
            std::vector<double> want;
            bool padding_intact = true;
            for (std::int64_t i = 0; i < c.M; ++i)
              for (std::int64_t j = 0; j < ldc; ++j) {
                if (j < c.N) {
                  got.push_back(actual[i * ldc + j]);
                  want.push_back(expected[i * ldc + j]);
                } else if (actual[i * ldc + j] != static_cast<T>(kSentinel)) {
                  padding_intact = false;
                }
              }
            const std::string what = where(str("gemm ", type_name<T>(), " M ", c.M, " N ", c.N, " K ", c.K,
                                               ta ? " A^T" : " A", tb ? " B^T" : " B", " lda ", lda, " ldb ",
                                               ldb, " ldc ", ldc, beta_zero ? " beta 0" : " beta -0.75"));
            expect_close(got, want, tolerance<T>(c.K), what);
            EXPECT_TRUE(padding_intact) << what << ": wrote into C beyond column N (ldc > N)";
          }
  });
}

// ---- convolution ------------------------------------------------------------------------------------------

struct ConvCase {
  const char* name;
  Conv2dShape shape;
};

Conv2dShape conv_shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k,
                       std::int64_t r, std::int64_t s, std::int64_t stride_h = 1, std::int64_t stride_w = 1,
                       std::array<std::int64_t, 4> pad = {0, 0, 0, 0}, std::int64_t dilation = 1,
                       std::int64_t groups = 1) {
  Conv2dShape shape;
  shape.batch = n, shape.in_channels = c, shape.in_h = h, shape.in_w = w;
  shape.out_channels = k, shape.kernel_h = r, shape.kernel_w = s;
  shape.stride_h = stride_h, shape.stride_w = stride_w;
  shape.pad_top = pad[0], shape.pad_bottom = pad[1], shape.pad_left = pad[2], shape.pad_right = pad[3];
  shape.dilation_h = shape.dilation_w = dilation;
  shape.groups = groups;
  return shape;
}

// Every family the models use and every edge the kernels special-case.
const std::vector<ConvCase>& conv_cases() {
  constexpr std::array<std::int64_t, 4> p1{1, 1, 1, 1}, keras_same{0, 1, 0, 1};
  static const std::vector<ConvCase> cases{
      {"general_3x3", conv_shape(2, 5, 9, 11, 6, 3, 3, 1, 1, p1)},
      {"pointwise", conv_shape(2, 16, 7, 7, 8, 1, 1)},
      {"pointwise_stride2", conv_shape(2, 8, 9, 9, 12, 1, 1, 2, 2)},
      {"depthwise", conv_shape(2, 8, 10, 10, 8, 3, 3, 1, 1, p1, 1, 8)},
      {"depthwise_stride2_odd", conv_shape(1, 6, 13, 7, 6, 3, 3, 2, 2, p1, 1, 6)},
      {"depthwise_pad_0_1_stride2", conv_shape(2, 8, 8, 8, 8, 3, 3, 2, 2, keras_same, 1, 8)},
      {"depthwise_multiplier2", conv_shape(2, 4, 6, 6, 8, 3, 3, 1, 1, p1, 1, 4)},
      {"grouped_4", conv_shape(2, 8, 8, 8, 12, 3, 3, 1, 1, p1, 1, 4)},
      {"stride2", conv_shape(2, 3, 15, 15, 4, 3, 3, 2, 2, p1)},
      {"pad_0_1_stride2", conv_shape(2, 4, 8, 8, 5, 3, 3, 2, 2, keras_same)},
      {"dilation2", conv_shape(1, 3, 12, 12, 4, 3, 3, 1, 1, {2, 2, 2, 2}, 2)},
      {"batch1", conv_shape(1, 3, 5, 8, 2, 3, 3, 1, 1, p1)},
      {"odd_7x13_kernel3x5_stride1x2", conv_shape(3, 5, 7, 13, 7, 3, 5, 1, 2, {1, 1, 2, 2})},
      {"stem_7x7_stride2", conv_shape(2, 3, 32, 32, 16, 7, 7, 2, 2, {3, 3, 3, 3})},
      {"large_3x3", conv_shape(2, 64, 28, 28, 64, 3, 3, 1, 1, p1)},
      {"large_pointwise", conv_shape(4, 128, 14, 14, 64, 1, 1)},
  };
  return cases;
}

std::size_t x_size(const Conv2dShape& s) {
  return static_cast<std::size_t>(s.batch * s.in_channels * s.in_h * s.in_w);
}
std::size_t w_size(const Conv2dShape& s) {
  return static_cast<std::size_t>(s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w);
}
std::size_t y_size(const Conv2dShape& s) {
  return static_cast<std::size_t>(s.batch * s.out_channels * s.out_h() * s.out_w());
}

TEST_P(GpuKernels, Conv2dForward) {
  for_float_and_double([&]<typename T>() {
    for (const ConvCase& c : conv_cases()) {
      const Conv2dShape& s = c.shape;
      const auto x = rng_.uniform<T>(x_size(s)), w = rng_.uniform<T>(w_size(s)),
                 bias = rng_.uniform<T>(static_cast<std::size_t>(s.out_channels));
      const auto x64 = widen(x), w64 = widen(w), b64 = widen(bias);
      auto dx = put(x), dw = put(w), db = put(bias);
      auto dy = out<T>(y_size(s));
      for (const bool with_bias : {true, false}) {
        std::vector<double> expected(y_size(s), kNaN);
        kernels::conv2d_forward<double>(reference(), s, x64.data(), w64.data(),
                                        with_bias ? b64.data() : nullptr, expected.data());
        dy.poison();
        kernels::conv2d_forward<T>(gpu(), s, dx.data(), dw.data(), with_bias ? db.data() : nullptr,
                                   dy.data());
        expect_close(dy.download(), expected,
                     tolerance<T>(s.in_channels / s.groups * s.kernel_h * s.kernel_w),
                     where(str("conv2d_forward ", type_name<T>(), " ", c.name, with_bias ? " +bias " : " ",
                               str_of(s))));
      }
    }
  });
}

TEST_P(GpuKernels, Conv2dBackwardData) {
  for_float_and_double([&]<typename T>() {
    for (const ConvCase& c : conv_cases()) {
      const Conv2dShape& s = c.shape;
      const auto gy = rng_.uniform<T>(y_size(s)), w = rng_.uniform<T>(w_size(s));
      const auto gy64 = widen(gy), w64 = widen(w);
      std::vector<double> expected(x_size(s), kNaN);
      kernels::conv2d_backward_data<double>(reference(), s, gy64.data(), w64.data(), expected.data());
      auto dgy = put(gy), dw = put(w);
      auto dx = out<T>(x_size(s));
      kernels::conv2d_backward_data<T>(gpu(), s, dgy.data(), dw.data(), dx.data());
      expect_close(dx.download(), expected, tolerance<T>(s.out_channels / s.groups * s.kernel_h * s.kernel_w),
                   where(str("conv2d_backward_data ", type_name<T>(), " ", c.name, " ", str_of(s))));
    }
  });
}

TEST_P(GpuKernels, Conv2dBackwardFilterAndBias) {
  for_float_and_double([&]<typename T>() {
    for (const ConvCase& c : conv_cases()) {
      const Conv2dShape& s = c.shape;
      const auto x = rng_.uniform<T>(x_size(s)), gy = rng_.uniform<T>(y_size(s));
      const auto x64 = widen(x), gy64 = widen(gy);
      std::vector<double> expected_dw(w_size(s), kNaN),
          expected_db(static_cast<std::size_t>(s.out_channels), kNaN);
      kernels::conv2d_backward_filter<double>(reference(), s, x64.data(), gy64.data(), expected_dw.data(),
                                              expected_db.data());
      auto dx = put(x), dgy = put(gy);
      auto dw = out<T>(w_size(s)), db = out<T>(static_cast<std::size_t>(s.out_channels));
      const std::int64_t terms = s.batch * s.out_h() * s.out_w();
      const std::string shape = std::string(" ") + c.name + " " + str_of(s);
      // Weight and bias; weight only (no bias); bias only (a frozen weight with a trainable bias).
      kernels::conv2d_backward_filter<T>(gpu(), s, dx.data(), dgy.data(), dw.data(), db.data());
      expect_close(dw.download(), expected_dw, tolerance<T>(terms),
                   where(str("conv2d_backward_filter dw ", type_name<T>(), shape)));
      expect_close(db.download(), expected_db, tolerance<T>(terms),
                   where(str("conv2d_backward_filter dbias ", type_name<T>(), shape)));
      dw.poison();
      kernels::conv2d_backward_filter<T>(gpu(), s, dx.data(), dgy.data(), dw.data(),
                                         static_cast<T*>(nullptr));
      expect_close(dw.download(), expected_dw, tolerance<T>(terms),
                   where(str("conv2d_backward_filter dw (no dbias) ", type_name<T>(), shape)));
      db.poison();
      kernels::conv2d_backward_filter<T>(gpu(), s, dx.data(), dgy.data(), static_cast<T*>(nullptr),
                                         db.data());
      expect_close(db.download(), expected_db, tolerance<T>(terms),
                   where(str("conv2d_backward_filter dbias (no dw) ", type_name<T>(), shape)));
    }
  });
}

// ---- linear -----------------------------------------------------------------------------------------------

struct LinearCase {
  std::int64_t rows, in, out;
};

TEST_P(GpuKernels, LinearForwardAndBackward) {
  // Small and odd; one row; a classifier head (512 -> 1000 at batch 32); few inputs, many rows.
  const LinearCase cases[] = {{3, 5, 4}, {1, 7, 2}, {32, 512, 1000}, {200, 3, 17}};
  for_float_and_double([&]<typename T>() {
    for (const LinearCase& c : cases) {
      const std::string shape = str(" ", type_name<T>(), " rows ", c.rows, " in ", c.in, " out ", c.out);
      const auto x = rng_.uniform<T>(c.rows * c.in), w = rng_.uniform<T>(c.out * c.in),
                 b = rng_.uniform<T>(c.out), gy = rng_.uniform<T>(c.rows * c.out);
      const auto x64 = widen(x), w64 = widen(w), b64 = widen(b), gy64 = widen(gy);
      auto dx_in = put(x), dw_in = put(w), db_in = put(b), dgy = put(gy);

      auto y = out<T>(c.rows * c.out);
      for (const bool with_bias : {true, false}) {
        std::vector<double> expected(c.rows * c.out, kNaN);
        kernels::linear_forward<double>(reference(), c.rows, c.in, c.out, x64.data(), w64.data(),
                                        with_bias ? b64.data() : nullptr, expected.data());
        y.poison();
        kernels::linear_forward<T>(gpu(), c.rows, c.in, c.out, dx_in.data(), dw_in.data(),
                                   with_bias ? db_in.data() : nullptr, y.data());
        expect_close(y.download(), expected, tolerance<T>(c.in),
                     where(str("linear_forward", with_bias ? " +bias" : "", shape)));
      }

      std::vector<double> ex(c.rows * c.in, kNaN), ew(c.out * c.in, kNaN), eb(c.out, kNaN);
      kernels::linear_backward<double>(reference(), c.rows, c.in, c.out, x64.data(), w64.data(), gy64.data(),
                                       ex.data(), ew.data(), eb.data());
      auto gx = out<T>(c.rows * c.in), gw = out<T>(c.out * c.in), gb = out<T>(c.out);
      // Every subset a layer asks for: all; no input gradient (first layer); frozen weight; no bias.
      const std::array<std::array<bool, 3>, 5> wanted{{{true, true, true},
                                                       {false, true, true},
                                                       {true, false, false},
                                                       {true, true, false},
                                                       {false, false, true}}};
      for (const auto& want : wanted) {
        gx.poison(), gw.poison(), gb.poison();
        kernels::linear_backward<T>(gpu(), c.rows, c.in, c.out, dx_in.data(), dw_in.data(), dgy.data(),
                                    want[0] ? gx.data() : nullptr, want[1] ? gw.data() : nullptr,
                                    want[2] ? gb.data() : nullptr);
        const std::string which = str(" (dx ", want[0], " dw ", want[1], " db ", want[2], ")");
        if (want[0])
          expect_close(gx.download(), ex, tolerance<T>(c.out), where("linear_backward dx" + which + shape));
        if (want[1])
          expect_close(gw.download(), ew, tolerance<T>(c.rows), where("linear_backward dw" + which + shape));
        if (want[2])
          expect_close(gb.download(), eb, tolerance<T>(c.rows), where("linear_backward db" + which + shape));
      }
    }
  });
}

// ---- batch norm -------------------------------------------------------------------------------------------

struct BatchNormCase {
  BatchNormShape shape;
  double eps, momentum;
};

// NCHW activations, a batch of one, the 2-D case (spatial 1), and a large layer (6272 values per channel).
const BatchNormCase kBatchNormCases[] = {
    {{4, 8, 49}, 1e-5, 0.1}, {{1, 3, 6}, 1e-3, 0.1}, {{16, 32, 1}, 1e-5, 0.5}, {{8, 64, 784}, 1e-5, 0.1}};

std::string str_of(const BatchNormShape& s) {
  return str("[", s.batch, ", ", s.channels, ", ", s.spatial, "]");
}

TEST_P(GpuKernels, BatchNormTrainingForwardAndBackward) {
  for_float_and_double([&]<typename T>() {
    for (const BatchNormCase& c : kBatchNormCases) {
      const BatchNormShape& s = c.shape;
      const std::size_t n = s.batch * s.channels * s.spatial, C = s.channels;
      const std::int64_t terms = s.batch * s.spatial;
      const std::string shape = str(" ", type_name<T>(), " ", str_of(s), " eps ", c.eps);
      // Activations with a mean away from zero, as after a ReLU.
      const auto x = rng_.uniform<T>(n, -2, 3), gamma = rng_.uniform<T>(C, 0.5, 1.5),
                 beta = rng_.uniform<T>(C), rmean = rng_.uniform<T>(C, -0.5, 0.5),
                 rvar = rng_.uniform<T>(C, 0.5, 2.0), gy = rng_.uniform<T>(n);
      const auto x64 = widen(x), g64 = widen(gamma), b64 = widen(beta), gy64 = widen(gy);
      std::vector<double> ey(n, kNaN), emean(C, kNaN), einvstd(C, kNaN), ermean = widen(rmean),
                                                                         ervar = widen(rvar);
      kernels::batch_norm_forward_train<double>(reference(), s, x64.data(), g64.data(), b64.data(), c.eps,
                                                c.momentum, ermean.data(), ervar.data(), ey.data(),
                                                emean.data(), einvstd.data());

      auto dx = put(x), dgamma = put(gamma), dbeta = put(beta);
      auto y = out<T>(n), save_mean = out<T>(C), save_invstd = out<T>(C);
      for (const bool running : {true, false}) {
        auto drmean = put(rmean), drvar = put(rvar);
        y.poison(), save_mean.poison(), save_invstd.poison();
        kernels::batch_norm_forward_train<T>(gpu(), s, dx.data(), dgamma.data(), dbeta.data(), c.eps,
                                             c.momentum, running ? drmean.data() : nullptr,
                                             running ? drvar.data() : nullptr, y.data(), save_mean.data(),
                                             save_invstd.data());
        const std::string which = running ? " (with running stats)" : " (no running stats)";
        expect_close(y.download(), ey, tolerance<T>(terms),
                     where("batch_norm_forward_train y" + which + shape));
        expect_close(save_mean.download(), emean, tolerance<T>(terms),
                     where("batch_norm_forward_train save_mean" + which + shape));
        expect_close(save_invstd.download(), einvstd, tolerance<T>(terms),
                     where("batch_norm_forward_train save_invstd" + which + shape));
        if (running) {  // updated in place, with the unbiased variance
          expect_close(drmean.download(), ermean, tolerance<T>(terms),
                       where("batch_norm_forward_train running_mean" + shape));
          expect_close(drvar.download(), ervar, tolerance<T>(terms),
                       where("batch_norm_forward_train running_var" + shape));
        }
      }

      // Backward from the reference's saved statistics (rounded to T), so it is tested on its own inputs.
      const auto mean_t = round_to<T>(emean), invstd_t = round_to<T>(einvstd);
      const auto mean64 = widen(mean_t), invstd64 = widen(invstd_t);
      std::vector<double> egx(n, kNaN), egg(C, kNaN), egb(C, kNaN);
      kernels::batch_norm_backward_train<double>(reference(), s, x64.data(), gy64.data(), g64.data(),
                                                 mean64.data(), invstd64.data(), egx.data(), egg.data(),
                                                 egb.data());
      auto dgy = put(gy), dmean = put(mean_t), dinvstd = put(invstd_t);
      auto gx = out<T>(n), gg = out<T>(C), gb = out<T>(C);
      // All; input gradient only (frozen affine); parameters only (no input gradient).
      for (const auto& want : {std::array<bool, 2>{true, true}, {true, false}, {false, true}}) {
        gx.poison(), gg.poison(), gb.poison();
        kernels::batch_norm_backward_train<T>(gpu(), s, dx.data(), dgy.data(), dgamma.data(), dmean.data(),
                                              dinvstd.data(), want[0] ? gx.data() : nullptr,
                                              want[1] ? gg.data() : nullptr, want[1] ? gb.data() : nullptr);
        const std::string which = str(" (dx ", want[0], " dgamma/dbeta ", want[1], ")");
        if (want[0])
          expect_close(gx.download(), egx, tolerance<T>(terms),
                       where("batch_norm_backward_train dx" + which + shape));
        if (want[1]) {
          expect_close(gg.download(), egg, tolerance<T>(terms),
                       where("batch_norm_backward_train dgamma" + which + shape));
          expect_close(gb.download(), egb, tolerance<T>(terms),
                       where("batch_norm_backward_train dbeta" + which + shape));
        }
      }
    }
  });
}

TEST_P(GpuKernels, BatchNormEvalForwardAndBackward) {
  for_float_and_double([&]<typename T>() {
    for (const BatchNormCase& c : kBatchNormCases) {
      const BatchNormShape& s = c.shape;
      const std::size_t n = s.batch * s.channels * s.spatial, C = s.channels;
      const std::int64_t terms = s.batch * s.spatial;
      const std::string shape = str(" ", type_name<T>(), " ", str_of(s), " eps ", c.eps);
      const auto x = rng_.uniform<T>(n, -2, 3), gamma = rng_.uniform<T>(C, 0.5, 1.5),
                 beta = rng_.uniform<T>(C), rmean = rng_.uniform<T>(C, -0.5, 0.5),
                 rvar = rng_.uniform<T>(C, 0.5, 2.0), gy = rng_.uniform<T>(n);
      const auto x64 = widen(x), g64 = widen(gamma), b64 = widen(beta), m64 = widen(rmean), v64 = widen(rvar),
                 gy64 = widen(gy);
      std::vector<double> ey(n, kNaN), egx(n, kNaN), egg(C, kNaN), egb(C, kNaN);
      kernels::batch_norm_forward_eval<double>(reference(), s, x64.data(), g64.data(), b64.data(), m64.data(),
                                               v64.data(), c.eps, ey.data());
      kernels::batch_norm_backward_eval<double>(reference(), s, x64.data(), gy64.data(), g64.data(),
                                                m64.data(), v64.data(), c.eps, egx.data(), egg.data(),
                                                egb.data());
      auto dx = put(x), dgamma = put(gamma), dbeta = put(beta), dmean = put(rmean), dvar = put(rvar),
           dgy = put(gy);
      auto y = out<T>(n);
      kernels::batch_norm_forward_eval<T>(gpu(), s, dx.data(), dgamma.data(), dbeta.data(), dmean.data(),
                                          dvar.data(), c.eps, y.data());
      expect_close(y.download(), ey, tolerance<T>(), where("batch_norm_forward_eval y" + shape));
      // The running statistics are constants: eval must not change them.
      expect_bitwise_equal(dmean.download(), rmean,
                           where("batch_norm_forward_eval leaves running_mean" + shape));
      expect_bitwise_equal(dvar.download(), rvar,
                           where("batch_norm_forward_eval leaves running_var" + shape));

      auto gx = out<T>(n), gg = out<T>(C), gb = out<T>(C);
      for (const auto& want : {std::array<bool, 2>{true, true}, {true, false}, {false, true}}) {
        gx.poison(), gg.poison(), gb.poison();
        kernels::batch_norm_backward_eval<T>(gpu(), s, dx.data(), dgy.data(), dgamma.data(), dmean.data(),
                                             dvar.data(), c.eps, want[0] ? gx.data() : nullptr,
                                             want[1] ? gg.data() : nullptr, want[1] ? gb.data() : nullptr);
        const std::string which = str(" (dx ", want[0], " dgamma/dbeta ", want[1], ")");
        if (want[0])
          expect_close(gx.download(), egx, tolerance<T>(),
                       where("batch_norm_backward_eval dx" + which + shape));
        if (want[1]) {
          expect_close(gg.download(), egg, tolerance<T>(terms),
                       where("batch_norm_backward_eval dgamma" + which + shape));
          expect_close(gb.download(), egb, tolerance<T>(terms),
                       where("batch_norm_backward_eval dbeta" + which + shape));
        }
      }
    }
  });
}

// ---- element-wise -----------------------------------------------------------------------------------------

// Odd sizes (a vectorised kernel's tail), one element, and more than 65535 blocks of 256 threads (the grid
// cap of kernels/cuda/runtime.h, so the grid-stride loop must cover the rest).
constexpr std::int64_t kOddSize = 10007, kHugeSize = (std::int64_t{1} << 24) + 12345;

TEST_P(GpuKernels, ActivationsForwardAndBackward) {
  for_float_and_double([&]<typename T>() {
    for (const Activation a : {Activation::ReLU, Activation::ReLU6, Activation::HardSwish,
                               Activation::HardSigmoid, Activation::Sigmoid, Activation::SiLU}) {
      for (const std::int64_t n : {std::int64_t{1}, kOddSize}) {
        const std::string what = str(" ", kernels::activation_name(a), " ", type_name<T>(), " n ", n);
        // [-7, 7] crosses every kink and saturation (0, +-3, 6) with random, never exactly-on-the-kink
        // values.
        const auto x = rng_.uniform<T>(n, -7, 7), gy = rng_.uniform<T>(n);
        const auto x64 = widen(x), gy64 = widen(gy);
        std::vector<double> ey(n, kNaN), egx(n, kNaN);
        kernels::activation_forward<double>(reference(), a, n, x64.data(), ey.data());
        kernels::activation_backward<double>(reference(), a, n, x64.data(), gy64.data(), egx.data());

        auto dx = put(x), dgy = put(gy);
        auto y = out<T>(n), gx = out<T>(n);
        kernels::activation_forward<T>(gpu(), a, n, dx.data(), y.data());
        expect_close(y.download(), ey, tolerance<T>(), where("activation_forward" + what));
        kernels::activation_backward<T>(gpu(), a, n, dx.data(), dgy.data(), gx.data());
        expect_close(gx.download(), egx, tolerance<T>(), where("activation_backward" + what));
        // In place (y == x), as the contract allows.
        kernels::activation_forward<T>(gpu(), a, n, dx.data(), dx.data());
        expect_close(dx.download(), ey, tolerance<T>(), where("activation_forward in place" + what));
      }
    }
  });
}

TEST_P(GpuKernels, BinaryOps) {
  const std::pair<BinaryOp, const char*> ops[] = {
      {BinaryOp::Add, "add"}, {BinaryOp::Sub, "sub"}, {BinaryOp::Mul, "mul"}, {BinaryOp::Div, "div"}};
  for_float_and_double([&]<typename T>() {
    for (const auto& [op, name] : ops) {
      for (const std::int64_t n : {std::int64_t{1}, kOddSize}) {
        const std::string what = str(" ", name, " ", type_name<T>(), " n ", n);
        const auto a = rng_.uniform<T>(n),
                   b = op == BinaryOp::Div ? rng_.uniform<T>(n, 0.5, 2.0) : rng_.uniform<T>(n);
        const auto a64 = widen(a), b64 = widen(b);
        std::vector<double> expected(n, kNaN);
        kernels::binary<double>(reference(), op, n, a64.data(), b64.data(), expected.data());
        auto da = put(a), db = put(b);
        auto y = out<T>(n);
        kernels::binary<T>(gpu(), op, n, da.data(), db.data(), y.data());
        expect_close(y.download(), expected, tolerance<T>(), where("binary" + what));
        kernels::binary<T>(gpu(), op, n, da.data(), db.data(), da.data());  // in place: y == a
        expect_close(da.download(), expected, tolerance<T>(), where("binary in place" + what));
      }
    }
  });
  // One launch larger than the grid cap.
  const auto a = rng_.uniform<float>(kHugeSize), b = rng_.uniform<float>(kHugeSize);
  std::vector<double> expected(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) expected[i] = static_cast<double>(a[i]) + b[i];
  auto da = put(a), db = put(b);
  auto y = out<float>(a.size());
  kernels::binary<float>(gpu(), BinaryOp::Add, kHugeSize, da.data(), db.data(), y.data());
  expect_close(y.download(), expected, tolerance<float>(), where(str("binary add float32 n ", kHugeSize)));
}

TEST_P(GpuKernels, Affine) {
  for_float_and_double([&]<typename T>() {
    for (const std::int64_t n : {std::int64_t{1}, kOddSize}) {
      const std::string what = str(" ", type_name<T>(), " n ", n);
      const auto x = rng_.uniform<T>(n);
      const auto x64 = widen(x);
      std::vector<double> expected(n, kNaN);
      kernels::affine<double>(reference(), n, x64.data(), 2.5, -0.75, expected.data());
      auto dx = put(x);
      auto y = out<T>(n);
      kernels::affine<T>(gpu(), n, dx.data(), T(2.5), T(-0.75), y.data());
      expect_close(y.download(), expected, tolerance<T>(), where("affine" + what));
      kernels::affine<T>(gpu(), n, dx.data(), T(2.5), T(-0.75), dx.data());
      expect_close(dx.download(), expected, tolerance<T>(), where("affine in place" + what));
    }
  });
}

TEST_P(GpuKernels, Axpby) {
  for_float_and_double([&]<typename T>() {
    for (const std::int64_t n : {std::int64_t{1}, kOddSize}) {
      const std::string what = str(" ", type_name<T>(), " n ", n);
      const auto x = rng_.uniform<T>(n), y0 = rng_.uniform<T>(n);
      const auto x64 = widen(x);
      auto dx = put(x);
      {  // y = 1.5 x + 0.25 y
        std::vector<double> expected = widen(y0);
        kernels::axpby<double>(reference(), n, 1.5, x64.data(), 0.25, expected.data());
        auto y = put(y0);
        kernels::axpby<T>(gpu(), n, T(1.5), dx.data(), T(0.25), y.data());
        expect_close(y.download(), expected, tolerance<T>(), where("axpby beta 0.25" + what));
      }
      {  // beta == 0: y is not read, so NaN in it must not leak (0 * NaN is NaN)
        std::vector<double> expected(n, kNaN);
        kernels::axpby<double>(reference(), n, -0.5, x64.data(), 0.0, expected.data());
        auto y = out<T>(n);
        kernels::axpby<T>(gpu(), n, T(-0.5), dx.data(), T(0), y.data());
        expect_close(y.download(), expected, tolerance<T>(), where("axpby beta 0 over NaN" + what));
      }
    }
  });
}

TEST_P(GpuKernels, FillFloatDoubleAndInt64) {
  for (const std::int64_t n : {std::int64_t{1}, kOddSize, kHugeSize}) {
    {
      auto y = out<float>(n);
      kernels::fill<float>(gpu(), n, 3.25f, y.data());
      expect_bitwise_equal(y.download(), std::vector<float>(n, 3.25f), where(str("fill float32 n ", n)));
    }
    {
      auto y = out<double>(n);
      kernels::fill<double>(gpu(), n, -1.0 / 3.0, y.data());
      expect_bitwise_equal(y.download(), std::vector<double>(n, -1.0 / 3.0),
                           where(str("fill float64 n ", n)));
    }
    {  // a value that needs all 64 bits
      constexpr std::int64_t v = (std::int64_t{1} << 40) + 7 - (std::int64_t{1} << 62);
      auto y = out<std::int64_t>(n);
      kernels::fill<std::int64_t>(gpu(), n, v, y.data());
      expect_bitwise_equal(y.download(), std::vector<std::int64_t>(n, v), where(str("fill int64 n ", n)));
    }
  }
}

TEST_P(GpuKernels, ChannelMulForwardAndBackward) {
  struct Case {
    std::int64_t planes, spatial;
  };
  // A squeeze-excitation block's planes, spatial 1, and long planes (a 3000-term reduction for dscale).
  const Case cases[] = {{6, 49}, {64, 1}, {2, 3000}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::size_t n = c.planes * c.spatial;
      const std::string what = str(" ", type_name<T>(), " planes ", c.planes, " spatial ", c.spatial);
      const auto x = rng_.uniform<T>(n), scale = rng_.uniform<T>(c.planes), gy = rng_.uniform<T>(n);
      const auto x64 = widen(x), s64 = widen(scale), gy64 = widen(gy);
      std::vector<double> ey(n, kNaN), egx(n, kNaN), egs(c.planes, kNaN);
      kernels::channel_mul_forward<double>(reference(), c.planes, c.spatial, x64.data(), s64.data(),
                                           ey.data());
      kernels::channel_mul_backward<double>(reference(), c.planes, c.spatial, x64.data(), s64.data(),
                                            gy64.data(), egx.data(), egs.data());
      auto dx = put(x), ds = put(scale), dgy = put(gy);
      auto y = out<T>(n);
      kernels::channel_mul_forward<T>(gpu(), c.planes, c.spatial, dx.data(), ds.data(), y.data());
      expect_close(y.download(), ey, tolerance<T>(), where("channel_mul_forward" + what));
      auto gx = out<T>(n), gs = out<T>(c.planes);
      for (const auto& want : {std::array<bool, 2>{true, true}, {true, false}, {false, true}}) {
        gx.poison(), gs.poison();
        kernels::channel_mul_backward<T>(gpu(), c.planes, c.spatial, dx.data(), ds.data(), dgy.data(),
                                         want[0] ? gx.data() : nullptr, want[1] ? gs.data() : nullptr);
        const std::string which = str(" (dx ", want[0], " dscale ", want[1], ")");
        if (want[0])
          expect_close(gx.download(), egx, tolerance<T>(), where("channel_mul_backward dx" + which + what));
        if (want[1])
          expect_close(gs.download(), egs, tolerance<T>(c.spatial),
                       where("channel_mul_backward dscale" + which + what));
      }
    }
  });
}

// ---- copies and casts -------------------------------------------------------------------------------------

struct StridedCase {
  const char* name;
  std::vector<std::int64_t> sizes, src_strides, dst_strides;
  std::int64_t src_offset = 0, dst_offset = 0;  // elements before the first one of the view
};

// Elements a strided view can reach: 1 + sum of (size - 1) * |stride|, after its offset.
std::size_t extent(const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides,
                   std::int64_t offset) {
  std::int64_t last = offset;
  for (std::size_t d = 0; d < sizes.size(); ++d) last += (sizes[d] - 1) * strides[d];
  return static_cast<std::size_t>(last + 1);
}

TEST_P(GpuKernels, CopyStrided) {
  const std::vector<StridedCase> cases{
      // [2, 3, 4, 5] permuted (3, 1, 0, 2) into a dense [5, 3, 2, 4]
      {"permute_4d", {5, 3, 2, 4}, {1, 20, 60, 5}, {24, 8, 4, 1}},
      // a dense [4, 6] into a transposed destination (strides (1, 4)): dst is the strided side
      {"transpose_into_dst", {4, 6}, {6, 1}, {1, 4}},
      // broadcast: a [1, 4, 5] expanded to [3, 4, 5] (stride 0)
      {"expand", {3, 4, 5}, {0, 5, 1}, {20, 5, 1}},
      // a narrowed view that starts inside its storage, into a destination with gaps between rows
      {"narrow_offset", {2, 3}, {10, 2}, {4, 1}, 7, 1},
      // one dimension, strided both ways
      {"strided_1d", {100}, {3}, {2}},
      // eight dimensions (the native kernel's limit), reversed
      {"reversed_8d", {2, 2, 2, 2, 2, 2, 2, 2}, {1, 2, 4, 8, 16, 32, 64, 128}, {128, 64, 32, 16, 8, 4, 2, 1}},
      // NCHW -> NHWC of a feature map (the layout change a permute().contiguous() makes)
      {"nchw_to_nhwc", {2, 56, 56, 64}, {200704, 56, 1, 3136}, {200704, 3584, 64, 1}},
  };
  const auto run = [&]<typename U>() {
    for (const StridedCase& c : cases) {
      const std::string what = str(" ", c.name, " element size ", sizeof(U));
      const auto src = rng_.bits<U>(extent(c.sizes, c.src_strides, c.src_offset));
      // The destination starts as a known pattern: elements outside the view must keep it.
      const auto dst0 = rng_.bits<U>(extent(c.sizes, c.dst_strides, c.dst_offset));
      const auto ndim = static_cast<std::int64_t>(c.sizes.size());
      std::vector<U> expected = dst0;
      kernels::copy_strided(reference(), sizeof(U), ndim, c.sizes.data(), c.src_strides.data(),
                            src.data() + c.src_offset, c.dst_strides.data(), expected.data() + c.dst_offset);
      auto dsrc = put(src), ddst = put(dst0);
      kernels::copy_strided(gpu(), sizeof(U), ndim, c.sizes.data(), c.src_strides.data(),
                            dsrc.data() + c.src_offset, c.dst_strides.data(), ddst.data() + c.dst_offset);
      expect_bitwise_equal(ddst.download(), expected, where("copy_strided" + what));
    }
  };
  run.template operator()<std::uint32_t>();
  run.template operator()<std::uint64_t>();
}

// Values of each dtype that exercise its conversions: fractions of both signs (float to int64 truncates
// toward zero), doubles that float must round, and int64 beyond 2^24 and 2^53 (rounded by float and double).
template <typename T>
std::vector<T> cast_inputs(Random& rng, std::size_t n) {
  if constexpr (std::is_same_v<T, std::int64_t>) {
    auto v = rng.bits<std::uint64_t>(n);
    std::vector<std::int64_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
      const int shift = static_cast<int>(i % 4) * 20;  // magnitudes up to 2^3, 2^23, 2^43 and 2^63
      out[i] = static_cast<std::int64_t>(v[i]) >> shift;
    }
    return out;
  } else {
    auto v = rng.uniform<T>(n, -1e6, 1e6);
    for (std::size_t i = 0; i < n; i += 3) v[i] = static_cast<T>(v[i] * 1e-6 * 3.7);  // |v| < 4, fractional
    return v;
  }
}

TEST_P(GpuKernels, CastEveryDtypePair) {
  constexpr std::size_t n = 1001;
  const auto run = [&]<typename From, typename To>() {
    const DType from = dtype_of<From>(), to = dtype_of<To>();
    const auto src = cast_inputs<From>(rng_, n);
    std::vector<To> expected(n);
    kernels::cast(reference(), n, from, src.data(), to, expected.data());
    auto dsrc = put(src);
    auto dst = out<To>(n);
    kernels::cast(gpu(), n, from, dsrc.data(), to, dst.data());
    expect_bitwise_equal(dst.download(), expected,
                         where(str("cast ", dtype_name(from), " -> ", dtype_name(to))));
  };
  const auto for_targets = [&]<typename From>() {
    run.template operator()<From, float>();
    run.template operator()<From, double>();
    run.template operator()<From, std::int64_t>();
  };
  for_targets.template operator()<float>();
  for_targets.template operator()<double>();
  for_targets.template operator()<std::int64_t>();
}

// ---- reductions -------------------------------------------------------------------------------------------

TEST_P(GpuKernels, Sum) {
  for_float_and_double([&]<typename T>() {
    for (const std::int64_t n :
         {std::int64_t{1}, std::int64_t{1000}, (std::int64_t{1} << 20) + 7, kHugeSize}) {
      // Mostly positive values: a sum near zero would make its relative error meaningless.
      const auto x = rng_.uniform<T>(n, -1.0, 2.0);
      const auto x64 = widen(x);
      const double expected = kernels::sum<double>(reference(), n, x64.data());
      auto dx = put(x);
      const T actual = kernels::sum<T>(gpu(), n, dx.data());
      expect_close(std::vector<T>{actual}, std::vector<double>{expected}, tolerance<T>(n),
                   where(str("sum ", type_name<T>(), " n ", n)));
    }
  });
}

TEST_P(GpuKernels, SumDim) {
  struct Case {
    std::int64_t outer, reduced, inner;
  };
  // General; all of a vector; spatial sums of NCHW planes; a batch of rows (a linear layer's bias gradient);
  // reduced == 1; a long reduction with a short inner stride.
  const Case cases[] = {{3, 5, 7}, {1, 1000, 1}, {64, 49, 1}, {1, 256, 512}, {7, 1, 3}, {2, 3000, 5}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::size_t n = c.outer * c.reduced * c.inner, m = c.outer * c.inner;
      const auto x = rng_.uniform<T>(n, -1.0, 2.0);
      const auto x64 = widen(x);
      std::vector<double> expected(m, kNaN);
      kernels::sum_dim<double>(reference(), c.outer, c.reduced, c.inner, x64.data(), expected.data());
      auto dx = put(x);
      auto y = out<T>(m);
      kernels::sum_dim<T>(gpu(), c.outer, c.reduced, c.inner, dx.data(), y.data());
      expect_close(
          y.download(), expected, tolerance<T>(c.reduced),
          where(str("sum_dim ", type_name<T>(), " [", c.outer, ", ", c.reduced, ", ", c.inner, "]")));
    }
  });
}

// ---- pooling ----------------------------------------------------------------------------------------------

Pool2dShape pool_shape(std::int64_t planes, std::int64_t h, std::int64_t w, std::int64_t kh, std::int64_t kw,
                       std::int64_t sh, std::int64_t sw, std::array<std::int64_t, 4> pad) {
  Pool2dShape s;
  s.planes = planes, s.in_h = h, s.in_w = w, s.kernel_h = kh, s.kernel_w = kw, s.stride_h = sh,
  s.stride_w = sw;
  s.pad_top = pad[0], s.pad_bottom = pad[1], s.pad_left = pad[2], s.pad_right = pad[3];
  return s;
}

// ResNet's stem pool on an odd plane; a 2x2 pool that drops the last column; overlapping stride-1 windows;
// Keras-style (0, 1) padding; a non-square kernel and stride with padding on some sides only; a large layer.
const std::vector<Pool2dShape>& pool_cases() {
  static const std::vector<Pool2dShape> cases{
      pool_shape(6, 7, 13, 3, 3, 2, 2, {1, 1, 1, 1}), pool_shape(4, 6, 5, 2, 2, 2, 2, {0, 0, 0, 0}),
      pool_shape(3, 8, 8, 3, 3, 1, 1, {1, 1, 1, 1}),  pool_shape(4, 8, 8, 3, 3, 2, 2, {0, 1, 0, 1}),
      pool_shape(2, 5, 9, 2, 3, 1, 2, {1, 0, 1, 1}),  pool_shape(128, 56, 56, 3, 3, 2, 2, {1, 1, 1, 1}),
  };
  return cases;
}

std::size_t pool_in(const Pool2dShape& s) {
  return static_cast<std::size_t>(s.planes * s.in_h * s.in_w);
}
std::size_t pool_out(const Pool2dShape& s) {
  return static_cast<std::size_t>(s.planes * s.out_h() * s.out_w());
}

TEST_P(GpuKernels, MaxPoolForwardAndBackward) {
  for_float_and_double([&]<typename T>() {
    for (const Pool2dShape& s : pool_cases()) {
      const std::string what = str(" ", type_name<T>(), " ", str_of(s));
      const auto x = rng_.uniform<T>(pool_in(s)), gy = rng_.uniform<T>(pool_out(s));
      const auto x64 = widen(x), gy64 = widen(gy);
      std::vector<double> ey(pool_out(s), kNaN), egx(pool_in(s), kNaN);
      std::vector<std::int64_t> eargmax(pool_out(s), -1);
      kernels::max_pool2d_forward<double>(reference(), s, x64.data(), ey.data(), eargmax.data());
      kernels::max_pool2d_backward<double>(reference(), s, gy64.data(), eargmax.data(), egx.data());

      auto dx = put(x);
      auto y = out<T>(pool_out(s));
      auto argmax = out<std::int64_t>(pool_out(s));
      kernels::max_pool2d_forward<T>(gpu(), s, dx.data(), y.data(), argmax.data());
      expect_close(y.download(), ey, tolerance<T>(), where("max_pool2d_forward" + what));
      // The chosen element holds the window's maximum: the reference's element, or (a float32 tie, which
      // random values in 100k windows can produce, broken another way) one with the same value.
      {
        const auto chosen = argmax.download();
        const std::int64_t plane = s.in_h * s.in_w, per_plane = s.out_h() * s.out_w();
        std::size_t wrong = 0, first = 0;
        for (std::size_t o = 0; o < chosen.size(); ++o) {
          const std::int64_t base = static_cast<std::int64_t>(o) / per_plane * plane;
          const bool ok = chosen[o] == eargmax[o] || (chosen[o] >= 0 && chosen[o] < plane &&
                                                      x[base + chosen[o]] == x[base + eargmax[o]]);
          if (!ok && wrong++ == 0) first = o;
        }
        EXPECT_EQ(wrong, 0u) << where("max_pool2d_forward argmax" + what) << ": output " << first << " chose "
                             << chosen[first] << ", the maximum is at " << eargmax[first];
      }
      y.poison();
      kernels::max_pool2d_forward<T>(gpu(), s, dx.data(), y.data(), nullptr);  // inference: no argmax
      expect_close(y.download(), ey, tolerance<T>(), where("max_pool2d_forward (no argmax)" + what));

      // Backward from the reference's argmax; overlapping windows accumulate into the same input.
      auto dgy = put(gy), dargmax = put(eargmax);
      auto gx = out<T>(pool_in(s));
      kernels::max_pool2d_backward<T>(gpu(), s, dgy.data(), dargmax.data(), gx.data());
      expect_close(gx.download(), egx, tolerance<T>(), where("max_pool2d_backward" + what));
    }
  });
}

TEST_P(GpuKernels, AvgPoolForwardAndBackward) {
  for_float_and_double([&]<typename T>() {
    for (const Pool2dShape& s : pool_cases()) {
      for (const bool include_pad : {true, false}) {
        const std::string what =
            str(" ", type_name<T>(), " ", str_of(s), include_pad ? " count_include_pad" : " exclude_pad");
        const auto x = rng_.uniform<T>(pool_in(s)), gy = rng_.uniform<T>(pool_out(s));
        const auto x64 = widen(x), gy64 = widen(gy);
        std::vector<double> ey(pool_out(s), kNaN), egx(pool_in(s), kNaN);
        kernels::avg_pool2d_forward<double>(reference(), s, include_pad, x64.data(), ey.data());
        kernels::avg_pool2d_backward<double>(reference(), s, include_pad, gy64.data(), egx.data());
        auto dx = put(x), dgy = put(gy);
        auto y = out<T>(pool_out(s)), gx = out<T>(pool_in(s));
        kernels::avg_pool2d_forward<T>(gpu(), s, include_pad, dx.data(), y.data());
        expect_close(y.download(), ey, tolerance<T>(), where("avg_pool2d_forward" + what));
        kernels::avg_pool2d_backward<T>(gpu(), s, include_pad, dgy.data(), gx.data());
        expect_close(gx.download(), egx, tolerance<T>(), where("avg_pool2d_backward" + what));
      }
    }
  });
}

TEST_P(GpuKernels, AdaptiveAvgPoolForwardAndBackward) {
  struct Case {
    std::int64_t planes, in_h, in_w, out_h, out_w;
  };
  // Global pooling (ResNet's and MobileNet's heads); uneven windows; an exact division; overlapping windows;
  // more outputs than inputs.
  const Case cases[] = {{6, 7, 7, 1, 1}, {4, 5, 7, 3, 2}, {3, 14, 14, 7, 7},
                        {2, 6, 6, 4, 4}, {2, 3, 2, 5, 4}, {256, 7, 7, 1, 1}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::size_t n_in = c.planes * c.in_h * c.in_w, n_out = c.planes * c.out_h * c.out_w;
      const std::string what = str(" ", type_name<T>(), " planes ", c.planes, " ", c.in_h, "x", c.in_w,
                                   " -> ", c.out_h, "x", c.out_w);
      const auto x = rng_.uniform<T>(n_in), gy = rng_.uniform<T>(n_out);
      const auto x64 = widen(x), gy64 = widen(gy);
      std::vector<double> ey(n_out, kNaN), egx(n_in, kNaN);
      kernels::adaptive_avg_pool2d_forward<double>(reference(), c.planes, c.in_h, c.in_w, c.out_h, c.out_w,
                                                   x64.data(), ey.data());
      kernels::adaptive_avg_pool2d_backward<double>(reference(), c.planes, c.in_h, c.in_w, c.out_h, c.out_w,
                                                    gy64.data(), egx.data());
      auto dx = put(x), dgy = put(gy);
      auto y = out<T>(n_out), gx = out<T>(n_in);
      kernels::adaptive_avg_pool2d_forward<T>(gpu(), c.planes, c.in_h, c.in_w, c.out_h, c.out_w, dx.data(),
                                              y.data());
      expect_close(y.download(), ey, tolerance<T>(c.in_h * c.in_w),
                   where("adaptive_avg_pool2d_forward" + what));
      kernels::adaptive_avg_pool2d_backward<T>(gpu(), c.planes, c.in_h, c.in_w, c.out_h, c.out_w, dgy.data(),
                                               gx.data());
      expect_close(gx.download(), egx, tolerance<T>(), where("adaptive_avg_pool2d_backward" + what));
    }
  });
}

// ---- cross-entropy ----------------------------------------------------------------------------------------

TEST_P(GpuKernels, CrossEntropyForwardAndBackward) {
  struct Case {
    std::int64_t rows, classes;
    double smoothing, low, high;  // logits uniform in [low, high)
  };
  // Small; smoothed; one row; ImageNet's 1000 classes; many rows; logits so large that exp overflows float
  // without the max subtraction.
  const Case cases[] = {{5, 7, 0.0, -3, 3},     {6, 7, 0.1, -3, 3},    {1, 3, 0.0, -3, 3},
                        {64, 1000, 0.1, -5, 5}, {300, 10, 0.0, -3, 3}, {8, 10, 0.2, 60, 100}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::size_t n = c.rows * c.classes;
      const std::string what =
          str(" ", type_name<T>(), " rows ", c.rows, " classes ", c.classes, " smoothing ", c.smoothing);
      const auto logits = rng_.uniform<T>(n, c.low, c.high);
      const auto labels = rng_.labels(c.rows, c.classes);
      const auto l64 = widen(logits);
      std::vector<double> eprobs(n, kNaN);
      const double eloss = kernels::cross_entropy_forward<double>(reference(), c.rows, c.classes, l64.data(),
                                                                  labels.data(), c.smoothing, eprobs.data());
      auto dlogits = put(logits);
      auto dlabels = put(labels);
      auto probs = out<T>(n);
      const T loss = kernels::cross_entropy_forward<T>(gpu(), c.rows, c.classes, dlogits.data(),
                                                       dlabels.data(), c.smoothing, probs.data());
      expect_close(std::vector<T>{loss}, std::vector<double>{eloss}, tolerance<T>(c.classes),
                   where("cross_entropy_forward loss" + what));
      expect_close(probs.download(), eprobs, tolerance<T>(c.classes),
                   where("cross_entropy_forward probs" + what));

      // Backward from the reference's probabilities (rounded to T).
      const auto probs_t = round_to<T>(eprobs);
      const auto p64 = widen(probs_t);
      auto dprobs = put(probs_t);
      auto grad = out<T>(n);
      for (const double dloss : {1.0, 0.5}) {
        std::vector<double> expected(n, kNaN);
        kernels::cross_entropy_backward<double>(reference(), c.rows, c.classes, p64.data(), labels.data(),
                                                c.smoothing, dloss, expected.data());
        grad.poison();
        kernels::cross_entropy_backward<T>(gpu(), c.rows, c.classes, dprobs.data(), dlabels.data(),
                                           c.smoothing, static_cast<T>(dloss), grad.data());
        expect_close(grad.download(), expected, tolerance<T>(),
                     where(str("cross_entropy_backward dloss ", dloss, what)));
      }
    }
  });
}

TEST_P(GpuKernels, CrossEntropyRejectsOutOfRangeLabels) {
  constexpr std::int64_t rows = 5, classes = 7;
  const auto logits = rng_.uniform<float>(rows * classes);
  auto dlogits = put(logits);
  auto probs = out<float>(rows * classes);
  // One label == classes at row 3 (and a later negative one): the error names the first bad row and label.
  for (const auto& [labels, bad_row, bad_label] :
       {std::tuple{std::vector<std::int64_t>{0, 1, 2, 7, -1}, 3, 7},
        std::tuple{std::vector<std::int64_t>{6, -1, 0, 1, 2}, 1, -1}}) {
    auto dlabels = put(labels);
    try {
      kernels::cross_entropy_forward<float>(gpu(), rows, classes, dlogits.data(), dlabels.data(), 0.0,
                                            probs.data());
      ADD_FAILURE() << where("cross_entropy_forward accepted label " + std::to_string(bad_label));
    } catch (const ValueError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(std::to_string(bad_label)), std::string::npos)
          << "does not name the label: " << message;
      EXPECT_NE(message.find("row " + std::to_string(bad_row)), std::string::npos)
          << "does not name the row: " << message;
    }
  }
  // The device is still usable after the error (it was reported, not left in the stream).
  const std::vector<std::int64_t> good{0, 1, 2, 3, 4};
  auto dgood = put(good);
  const float loss = kernels::cross_entropy_forward<float>(gpu(), rows, classes, dlogits.data(), dgood.data(),
                                                           0.0, probs.data());
  EXPECT_TRUE(std::isfinite(loss)) << where("cross_entropy_forward after a rejected call");
}

// ---- randomness: the same Philox streams as the CPU, value for value --------------------------------------

TEST_P(GpuKernels, DropoutMatchesCpuExactly) {
  const Context cpu{Device::cpu(), Policy::Reference};
  for_float_and_double([&]<typename T>() {
    for (const std::int64_t n : {std::int64_t{4099}, (std::int64_t{1} << 20) + 1})
      for (const double p : {0.0, 0.3, 0.5, 0.9, 1.0})
        for (const std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{4000}}) {
          const std::uint64_t seed = 0x9E3779B97F4A7C15ULL ^ static_cast<std::uint64_t>(n);
          const std::string what = str(" ", type_name<T>(), " n ", n, " p ", p, " offset ", offset);
          const auto x = rng_.uniform<T>(n), gy = rng_.uniform<T>(n);
          std::vector<T> ey(n), egx(n);
          kernels::dropout_forward<T>(cpu, n, p, seed, offset, x.data(), ey.data());
          kernels::dropout_backward<T>(cpu, n, p, seed, offset, gy.data(), egx.data());
          auto dx = put(x), dgy = put(gy);
          auto y = out<T>(n), gx = out<T>(n);
          kernels::dropout_forward<T>(gpu(), n, p, seed, offset, dx.data(), y.data());
          kernels::dropout_backward<T>(gpu(), n, p, seed, offset, dgy.data(), gx.data());
          expect_same_values(y.download(), ey, where("dropout_forward" + what));
          expect_same_values(gx.download(), egx, where("dropout_backward" + what));
        }
  });
}

TEST_P(GpuKernels, RandomFillsMatchCpu) {
  const Context cpu{Device::cpu(), Policy::Reference};
  for_float_and_double([&]<typename T>() {
    for (const std::int64_t n : {std::int64_t{1}, std::int64_t{4099}, (std::int64_t{1} << 16) + 3})
      for (const std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{8}, std::uint64_t{1} << 33}) {
        const std::uint64_t seed = 0x0123456789ABCDEFULL + static_cast<std::uint64_t>(n);
        const std::string what = str(" ", type_name<T>(), " n ", n, " offset ", offset);
        std::vector<T> eu(n), en(n);
        kernels::fill_uniform<T>(cpu, n, seed, offset, -2.0, 3.0, eu.data());
        kernels::fill_normal<T>(cpu, n, seed, offset, 0.5, 2.0, en.data());
        auto u = out<T>(n), z = out<T>(n);
        kernels::fill_uniform<T>(gpu(), n, seed, offset, -2.0, 3.0, u.data());
        kernels::fill_normal<T>(gpu(), n, seed, offset, 0.5, 2.0, z.data());
        expect_bitwise_equal(u.download(), eu, where("fill_uniform" + what));
        if constexpr (std::is_same_v<T, float>) {
          // Normals are computed in double (Box-Muller) and rounded: the float results match bit for bit.
          expect_bitwise_equal(z.download(), en, where("fill_normal" + what));
        } else {
          // In float64 the last bits come from log, cos and sin, which CUDA's libdevice and glibc round
          // within an ulp or two of each other: held to a few ulps instead of bit-identity.
          expect_close(z.download(), en, 1e-14, where("fill_normal" + what));
        }
      }
  });
}

// ---- optimizer updates ------------------------------------------------------------------------------------

// A parameter update compared three ways: the new parameter and state by normalised error, and the change of
// the parameter (new - old) by normalised error, which is what the update computes (a wrong step hides in
// the parameter itself, whose norm is far larger than the step's).
template <typename T>
void expect_update_close(const std::vector<T>& before, const std::vector<T>& after,
                         const std::vector<double>& expected, const std::string& what) {
  expect_close(after, expected, tolerance<T>(), what + " param");
  std::vector<double> step(after.size()), expected_step(after.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    step[i] = static_cast<double>(after[i]) - static_cast<double>(before[i]);
    expected_step[i] = expected[i] - static_cast<double>(before[i]);
  }
  // float32: the parameter's own rounding (half an ulp of |p| ~ 1) is ~3e-7 of a step of 0.1.
  expect_close(step, expected_step, std::is_same_v<T, float> ? 1e-5 : 1e-11, what + " step (new - old)");
}

TEST_P(GpuKernels, SgdUpdate) {
  struct Case {
    const char* name;
    SgdStep step;
  };
  const auto sgd = [](double momentum, double dampening, double wd, bool nesterov, bool first) {
    SgdStep s;
    s.lr = 0.1, s.momentum = momentum, s.dampening = dampening, s.weight_decay = wd, s.nesterov = nesterov;
    s.first_step = first;
    return s;
  };
  const Case cases[] = {{"plain", sgd(0, 0, 0, false, false)},
                        {"weight_decay", sgd(0, 0, 1e-2, false, false)},
                        {"momentum_first_step", sgd(0.9, 0, 0, false, true)},
                        {"momentum_dampening_wd", sgd(0.9, 0.1, 1e-2, false, false)},
                        {"nesterov_wd", sgd(0.9, 0, 5e-3, true, false)},
                        {"nesterov_first_step", sgd(0.9, 0, 0, true, true)}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::int64_t n = kOddSize;
      const std::string what = where(str("sgd_update ", c.name, " ", type_name<T>()));
      const auto p = rng_.uniform<T>(n), g = rng_.uniform<T>(n), buf = rng_.uniform<T>(n, -0.5, 0.5);
      const bool momentum = c.step.momentum != 0;
      std::vector<double> ep = widen(p), ebuf = widen(buf);
      const auto g64 = widen(g);
      kernels::sgd_update<double>(reference(), c.step, n, ep.data(), g64.data(),
                                  momentum ? ebuf.data() : nullptr);
      auto dp = put(p), dg = put(g);
      // On the first step the buffer is only written: it starts as NaN, which must not leak.
      auto dbuf = c.step.first_step ? out<T>(n) : put(buf);
      kernels::sgd_update<T>(gpu(), c.step, n, dp.data(), dg.data(), momentum ? dbuf.data() : nullptr);
      expect_update_close(p, dp.download(), ep, what);
      if (momentum) expect_close(dbuf.download(), ebuf, tolerance<T>(), what + " momentum_buffer");
    }
  });
}

TEST_P(GpuKernels, AdamUpdate) {
  struct Case {
    const char* name;
    AdamStep step;
  };
  const auto adam = [](double wd, bool decoupled, std::int64_t step) {
    AdamStep s;
    s.lr = 0.1, s.weight_decay = wd, s.decoupled = decoupled, s.step = step;
    return s;
  };
  const Case cases[] = {{"adam_step1", adam(0, false, 1)},
                        {"adam_l2_step7", adam(1e-2, false, 7)},
                        {"adamw_step1", adam(1e-2, true, 1)},
                        {"adamw_step30", adam(5e-2, true, 30)}};
  for_float_and_double([&]<typename T>() {
    for (const Case& c : cases) {
      const std::int64_t n = kOddSize;
      const std::string what = where(str("adam_update ", c.name, " ", type_name<T>()));
      const auto p = rng_.uniform<T>(n), g = rng_.uniform<T>(n), m = rng_.uniform<T>(n, -0.1, 0.1),
                 v = rng_.uniform<T>(n, 0.0, 0.01);
      std::vector<double> ep = widen(p), em = widen(m), ev = widen(v);
      const auto g64 = widen(g);
      kernels::adam_update<double>(reference(), c.step, n, ep.data(), g64.data(), em.data(), ev.data());
      auto dp = put(p), dg = put(g), dm = put(m), dv = put(v);
      kernels::adam_update<T>(gpu(), c.step, n, dp.data(), dg.data(), dm.data(), dv.data());
      expect_update_close(p, dp.download(), ep, what);
      expect_close(dm.download(), em, tolerance<T>(), what + " exp_avg");
      expect_close(dv.download(), ev, tolerance<T>(), what + " exp_avg_sq");
    }
  });
}

// ---- TF32 -------------------------------------------------------------------------------------------------

// With TF32 allowed, the vendor convolution and GEMM may use tensor cores (10-bit mantissas): they must stay
// within 1e-3 of the float64 reference. The native path never uses TF32, so it keeps float32 accuracy. The
// setting is restored afterwards, also on failure.
TEST_P(GpuKernels, Tf32KeepsVendorWithin1e3AndLeavesNativeAlone) {
  const double tol = GetParam() == Policy::Vendor && device().is_cuda() ? 1e-3 : tolerance<float>(1024);
  const bool before = cuda::tf32_allowed();
  {
    Tf32Scope tf32(true);
    const Conv2dShape s = conv_shape(4, 64, 28, 28, 64, 3, 3, 1, 1, {1, 1, 1, 1});
    const auto x = rng_.uniform<float>(x_size(s)), w = rng_.uniform<float>(w_size(s));
    const auto x64 = widen(x), w64 = widen(w);
    std::vector<double> ey(y_size(s), kNaN);
    kernels::conv2d_forward<double>(reference(), s, x64.data(), w64.data(), nullptr, ey.data());
    auto dx = put(x), dw = put(w);
    auto y = out<float>(y_size(s));
    kernels::conv2d_forward<float>(gpu(), s, dx.data(), dw.data(), nullptr, y.data());
    expect_close(y.download(), ey, tol, where("conv2d_forward float32 with TF32 allowed " + str_of(s)));

    constexpr std::int64_t M = 512, N = 384, K = 640;
    const auto A = rng_.uniform<float>(M * K), B = rng_.uniform<float>(K * N);
    const auto A64 = widen(A), B64 = widen(B);
    std::vector<double> ec(M * N, kNaN);
    kernels::gemm<double>(reference(), false, false, M, N, K, 1.0, A64.data(), K, B64.data(), N, 0.0,
                          ec.data(), N);
    auto dA = put(A), dB = put(B);
    auto C = out<float>(M * N);
    kernels::gemm<float>(gpu(), false, false, M, N, K, 1.0f, dA.data(), K, dB.data(), N, 0.0f, C.data(), N);
    expect_close(C.download(), ec, tol, where("gemm float32 with TF32 allowed 512x384x640"));
  }
  EXPECT_EQ(cuda::tf32_allowed(), before) << "the TF32 setting was not restored";
}

INSTANTIATE_TEST_SUITE_P(Paths, GpuKernels, ::testing::Values(Policy::Native, Policy::Vendor),
                         [](const ::testing::TestParamInfo<Policy>& info) {
                           return std::string(kernels::policy_name(info.param));
                         });

}  // namespace
}  // namespace tl::testing
