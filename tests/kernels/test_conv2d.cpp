// Every CPU convolution path (im2col + our GEMM, im2col + OpenBLAS, the direct depthwise kernel) against the
// reference loops, for the three passes, float and double, on shapes chosen to reach each special case:
// padding on one side only, strides that do not divide the input, groups, dilation, the pointwise and
// depthwise fast paths, and (through the private chunking limits) samples folded into one GEMM or split over
// several.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/im2col.h"
#include "kernels/ops.h"
#include "tests/support/numeric.h"

namespace {

using tl::kernels::Context;
using tl::kernels::Conv2dShape;
using tl::kernels::Policy;
using tl::kernels::cpu::conv2d_detail::ChunkLimits;
using tl::kernels::cpu::conv2d_detail::ChunkPlan;
using tl::kernels::cpu::conv2d_detail::plan_chunks;
using tl::testing::normalized_error;
using tl::testing::poisoned_vector;
using tl::testing::random_vector;

Context context(Policy policy) {
  return Context{tl::Device::cpu(), policy};
}

template <typename T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

template <typename T>
const char* type_name() {
  return std::is_same_v<T, float> ? "float" : "double";
}

std::size_t x_size(const Conv2dShape& s) {
  return s.batch * s.in_channels * s.in_h * s.in_w;
}
std::size_t w_size(const Conv2dShape& s) {
  return s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
}
std::size_t y_size(const Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_h() * s.out_w();
}

std::string describe(const Conv2dShape& s) {
  std::ostringstream out;
  out << "x [" << s.batch << ", " << s.in_channels << ", " << s.in_h << ", " << s.in_w << "], w ["
      << s.out_channels << ", " << s.in_channels / s.groups << ", " << s.kernel_h << ", " << s.kernel_w
      << "], stride " << s.stride_h << "x" << s.stride_w << ", pad (" << s.pad_top << ", " << s.pad_bottom
      << ", " << s.pad_left << ", " << s.pad_right << "), dilation " << s.dilation_h << "x" << s.dilation_w
      << ", groups " << s.groups;
  return out.str();
}

template <typename T>
struct ConvData {
  explicit ConvData(const Conv2dShape& s)
      : x(random_vector<T>(x_size(s), 11)),
        w(random_vector<T>(w_size(s), 12)),
        bias(random_vector<T>(s.out_channels, 13)),
        dy(random_vector<T>(y_size(s), 14)) {}
  std::vector<T> x, w, bias, dy;
};

// Each check runs the reference and `fast` (a callable with the facade's argument list minus the Context) on
// the same data, into NaN-poisoned outputs, so an element the fast path forgets to write fails.

template <typename T, typename Fast>
void expect_forward_matches(const Conv2dShape& s, Fast&& fast) {
  const ConvData<T> d(s);
  for (const bool with_bias : {true, false}) {
    const T* bias = with_bias ? d.bias.data() : nullptr;
    auto expected = poisoned_vector<T>(y_size(s));
    tl::kernels::conv2d_forward(context(Policy::Reference), s, d.x.data(), d.w.data(), bias, expected.data());
    auto actual = poisoned_vector<T>(y_size(s));
    fast(s, d.x.data(), d.w.data(), bias, actual.data());
    EXPECT_LT(normalized_error(actual, expected), tolerance<T>())
        << type_name<T>() << (with_bias ? " with" : " without") << " bias, " << describe(s);
  }
}

template <typename T, typename Fast>
void expect_backward_data_matches(const Conv2dShape& s, Fast&& fast) {
  const ConvData<T> d(s);
  auto expected = poisoned_vector<T>(x_size(s));
  tl::kernels::conv2d_backward_data(context(Policy::Reference), s, d.dy.data(), d.w.data(), expected.data());
  auto actual = poisoned_vector<T>(x_size(s));
  fast(s, d.dy.data(), d.w.data(), actual.data());
  EXPECT_LT(normalized_error(actual, expected), tolerance<T>()) << type_name<T>() << ", " << describe(s);
}

template <typename T, typename Fast>
void expect_backward_filter_matches(const Conv2dShape& s, Fast&& fast) {
  const ConvData<T> d(s);
  auto expected_dw = poisoned_vector<T>(w_size(s));
  auto expected_dbias = poisoned_vector<T>(s.out_channels);
  tl::kernels::conv2d_backward_filter(context(Policy::Reference), s, d.x.data(), d.dy.data(),
                                      expected_dw.data(), expected_dbias.data());
  {
    auto dw = poisoned_vector<T>(w_size(s));
    auto dbias = poisoned_vector<T>(s.out_channels);
    fast(s, d.x.data(), d.dy.data(), dw.data(), dbias.data());
    EXPECT_LT(normalized_error(dw, expected_dw), tolerance<T>()) << type_name<T>() << " dw, " << describe(s);
    EXPECT_LT(normalized_error(dbias, expected_dbias), tolerance<T>())
        << type_name<T>() << " dbias, " << describe(s);
  }
  {  // a bias-free convolution
    auto dw = poisoned_vector<T>(w_size(s));
    fast(s, d.x.data(), d.dy.data(), dw.data(), static_cast<T*>(nullptr));
    EXPECT_LT(normalized_error(dw, expected_dw), tolerance<T>())
        << type_name<T>() << " dw (no dbias), " << describe(s);
  }
  {  // a frozen weight with a trainable bias
    auto dbias = poisoned_vector<T>(s.out_channels);
    fast(s, d.x.data(), d.dy.data(), static_cast<T*>(nullptr), dbias.data());
    EXPECT_LT(normalized_error(dbias, expected_dbias), tolerance<T>())
        << type_name<T>() << " dbias (no dw), " << describe(s);
  }
}

// ---- the facade, Native and Vendor, on named shapes -------------------------------------------------------

// One shape per line: conv(N, C, H, W, K, R, S).stride(2).pad(1).
struct ShapeBuilder {
  ShapeBuilder& stride(int64_t h, int64_t w) {
    shape.stride_h = h, shape.stride_w = w;
    return *this;
  }
  ShapeBuilder& stride(int64_t v) { return stride(v, v); }
  ShapeBuilder& pad(int64_t top, int64_t bottom, int64_t left, int64_t right) {
    shape.pad_top = top, shape.pad_bottom = bottom, shape.pad_left = left, shape.pad_right = right;
    return *this;
  }
  ShapeBuilder& pad(int64_t v) { return pad(v, v, v, v); }
  ShapeBuilder& dilation(int64_t v) {
    shape.dilation_h = shape.dilation_w = v;
    return *this;
  }
  ShapeBuilder& groups(int64_t g) {
    shape.groups = g;
    return *this;
  }
  operator Conv2dShape() const { return shape; }
  Conv2dShape shape;
};

ShapeBuilder conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s) {
  ShapeBuilder b;
  b.shape.batch = n, b.shape.in_channels = c, b.shape.in_h = h, b.shape.in_w = w;
  b.shape.out_channels = k, b.shape.kernel_h = r, b.shape.kernel_w = s;
  return b;
}

struct ConvCase {
  const char* name;
  Conv2dShape shape;
};

// Small enough that the reference (direct loops) keeps the whole file within seconds. With batch > 1 and
// these small outputs the default limits fold the batch into one GEMM; batch 1 runs one sample in place.
const ConvCase kCases[] = {
    {"batch1_3x3", conv(1, 3, 9, 9, 4, 3, 3).pad(1)},
    {"input_1x1", conv(2, 5, 1, 1, 3, 3, 3).pad(1)},
    {"non_square", conv(2, 3, 7, 11, 4, 3, 5).stride(1, 2).pad(1, 1, 2, 2)},
    {"odd_stride2", conv(2, 3, 9, 7, 5, 3, 3).stride(2).pad(1)},
    {"groups2", conv(2, 4, 6, 6, 6, 3, 3).pad(1).groups(2)},
    {"groups4_stride2", conv(2, 8, 5, 5, 8, 3, 3).stride(2).pad(1).groups(4)},
    {"groups_channel_multiplier2", conv(2, 4, 6, 6, 8, 3, 3).pad(1).groups(4)},  // not depthwise: K != C
    {"dilation2", conv(2, 3, 9, 9, 4, 3, 3).pad(2).dilation(2)},
    {"same_stride2_pad0101", conv(2, 3, 8, 8, 4, 3, 3).stride(2).pad(0, 1, 0, 1)},
    {"pointwise", conv(2, 8, 5, 5, 6, 1, 1)},
    {"pointwise_batch1", conv(1, 8, 5, 5, 6, 1, 1)},
    {"pointwise_groups2", conv(2, 8, 5, 5, 6, 1, 1).groups(2)},
    {"pointwise_stride2", conv(2, 8, 7, 7, 6, 1, 1).stride(2)},
    {"stem_7x7_stride2", conv(2, 3, 16, 16, 4, 7, 7).stride(2).pad(3)},
    {"depthwise_3x3_stride1", conv(2, 6, 8, 8, 6, 3, 3).pad(1).groups(6)},
    {"depthwise_3x3_stride2_odd", conv(2, 6, 9, 9, 6, 3, 3).stride(2).pad(1).groups(6)},
    {"depthwise_3x3_stride2_pad0101", conv(2, 4, 8, 8, 4, 3, 3).stride(2).pad(0, 1, 0, 1).groups(4)},
    {"depthwise_3x3_stride1_pad0211", conv(2, 4, 6, 7, 4, 3, 3).pad(0, 2, 1, 1).groups(4)},
    {"depthwise_5x5_stride2", conv(2, 4, 11, 11, 4, 5, 5).stride(2).pad(2).groups(4)},
    {"depthwise_5x5_stride1_no_pad", conv(1, 3, 9, 12, 3, 5, 5).groups(3)},
    {"depthwise_3x3_dilation2", conv(2, 4, 9, 9, 4, 3, 3).pad(2).dilation(2).groups(4)},
    {"depthwise_3x1_stride2x1", conv(2, 3, 7, 6, 3, 3, 1).stride(2, 1).pad(1, 0, 0, 0).groups(3)},
    {"depthwise_3x3_stride2x1", conv(2, 3, 7, 6, 3, 3, 3).stride(2, 1).pad(1).groups(3)},
    {"depthwise_input_smaller_than_filter", conv(1, 3, 2, 2, 3, 3, 3).pad(1).groups(3)},
    // Rows of 32 outputs or more take the row kernels; shorter ones the flattened-plane kernels.
    {"depthwise_3x3_stride1_wide", conv(1, 2, 5, 40, 2, 3, 3).pad(1).groups(2)},
    {"depthwise_3x3_stride2_wide_pad0101", conv(1, 2, 6, 70, 2, 3, 3).stride(2).pad(0, 1, 0, 1).groups(2)},
    {"depthwise_5x5_stride2_wide", conv(1, 2, 7, 72, 2, 5, 5).stride(2).pad(2).groups(2)},
    // Padding wider than the filter: the rotated filter of backward data sees negative padding.
    {"depthwise_3x3_pad3", conv(1, 2, 5, 6, 2, 3, 3).pad(3).groups(2)},
    {"pad3_3x3", conv(1, 2, 5, 6, 3, 3, 3).pad(3)},
    // Enough work for the loops to run on OpenMP threads (kMinParallelElements), where a race would show.
    {"threaded_3x3", conv(2, 8, 24, 24, 8, 3, 3).pad(1)},
    {"threaded_3x3_stride2", conv(3, 8, 33, 33, 8, 3, 3).stride(2).pad(1)},
    {"threaded_depthwise_3x3", conv(2, 16, 24, 24, 16, 3, 3).pad(1).groups(16)},
    {"threaded_depthwise_3x3_stride2", conv(2, 16, 48, 48, 16, 3, 3).stride(2).pad(1).groups(16)},
};

class Conv2dTest : public ::testing::TestWithParam<std::tuple<ConvCase, Policy>> {
 protected:
  const Conv2dShape& shape() const { return std::get<0>(GetParam()).shape; }
  Context ctx() const { return context(std::get<1>(GetParam())); }
};

TEST_P(Conv2dTest, Forward) {
  const auto fast = [ctx = ctx()](const Conv2dShape& s, const auto* x, const auto* w, const auto* b,
                                  auto* y) { tl::kernels::conv2d_forward(ctx, s, x, w, b, y); };
  expect_forward_matches<float>(shape(), fast);
  expect_forward_matches<double>(shape(), fast);
}

TEST_P(Conv2dTest, BackwardData) {
  const auto fast = [ctx = ctx()](const Conv2dShape& s, const auto* dy, const auto* w, auto* dx) {
    tl::kernels::conv2d_backward_data(ctx, s, dy, w, dx);
  };
  expect_backward_data_matches<float>(shape(), fast);
  expect_backward_data_matches<double>(shape(), fast);
}

TEST_P(Conv2dTest, BackwardFilter) {
  const auto fast = [ctx = ctx()](const Conv2dShape& s, const auto* x, const auto* dy, auto* dw,
                                  auto* dbias) {
    tl::kernels::conv2d_backward_filter(ctx, s, x, dy, dw, dbias);
  };
  expect_backward_filter_matches<float>(shape(), fast);
  expect_backward_filter_matches<double>(shape(), fast);
}

INSTANTIATE_TEST_SUITE_P(Conv2d, Conv2dTest,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(Policy::Native, Policy::Vendor)),
                         [](const ::testing::TestParamInfo<Conv2dTest::ParamType>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  tl::kernels::policy_name(std::get<1>(info.param));
                         });

// ---- chunking: samples folded into one GEMM, samples split by output rows ---------------------------------

struct ChunkCase {
  const char* name;
  Conv2dShape shape;
  ChunkLimits limits;  // for float; double gets twice the bytes, so both make the same plan
  ChunkPlan plan;      // what the limits must produce
  int64_t chunk_count;
};

ChunkLimits chunk_limits(int64_t scratch_bytes, int64_t target_columns) {
  return {scratch_bytes, target_columns};
}
ChunkPlan chunk_plan(int64_t sample_groups, int64_t rows_per_chunk) {
  return {sample_groups, rows_per_chunk};
}

const ChunkCase kChunkCases[] = {
    // 5 samples of 4x4 outputs, at most 2 per GEMM: groups of 1, 2 and 2 samples.
    {"fold_by_target_columns", conv(5, 4, 4, 4, 6, 3, 3).pad(1), chunk_limits(1 << 20, 32), chunk_plan(3, 4),
     3},
    // The scratch bound, not the column target, limits the fold to 3: (36 + 6) rows x 16 columns x 4 bytes
    // x 3.
    // 7 samples in groups of 2, 2 and 3.
    {"fold_by_scratch", conv(7, 4, 4, 4, 6, 3, 3).pad(1), chunk_limits((36 + 6) * 16 * 4 * 3, 4096),
     chunk_plan(3, 4), 3},
    // Folded pointwise convolutions go through im2col instead of reading x in place (groups of 1 and 2).
    {"fold_pointwise_groups2", conv(3, 6, 3, 3, 4, 1, 1).groups(2), chunk_limits(1 << 20, 18),
     chunk_plan(2, 3), 2},
    // One sample per GEMM, written in place: pointwise ones straight from x (no column matrix), others whole.
    {"pointwise_in_place_groups2", conv(3, 6, 4, 4, 4, 1, 1).groups(2), chunk_limits(1 << 20, 1),
     chunk_plan(3, 4), 3},
    {"in_place_stride2", conv(3, 3, 7, 8, 5, 3, 3).stride(2).pad(1), chunk_limits(1 << 20, 1),
     chunk_plan(3, 4), 3},
    // Rows of 27 x 10 floats, 3 rows per chunk: each sample in pieces of 3, 3, 3 and 1 output rows, whose
    // input rows overlap (col2im adds across chunks).
    {"split_rows_3x3", conv(2, 3, 10, 10, 4, 3, 3).pad(1), chunk_limits(27 * 10 * 4 * 3, 1), chunk_plan(2, 3),
     8},
    // 5 x 4 outputs from 11 x 9 inputs, 2 rows of 36 x 4 floats per chunk.
    {"split_rows_stride2_pad0101_groups2", conv(2, 4, 11, 9, 4, 3, 3).stride(2).pad(0, 1, 0, 1).groups(2),
     chunk_limits(36 * 4 * 4 * 2, 1), chunk_plan(2, 2), 6},
};

class Conv2dChunkTest : public ::testing::TestWithParam<std::tuple<ChunkCase, Policy>> {
 protected:
  const ChunkCase& chunk_case() const { return std::get<0>(GetParam()); }
  const Conv2dShape& shape() const { return chunk_case().shape; }
  Context ctx() const { return context(std::get<1>(GetParam())); }
  template <typename T>
  ChunkLimits scaled_limits() const {
    ChunkLimits l = chunk_case().limits;
    l.scratch_bytes = l.scratch_bytes / 4 * static_cast<int64_t>(sizeof(T));
    return l;
  }
  // Holds the limits to the plan the case is about, so the comparisons below cannot pass on a trivial plan.
  template <typename T>
  void expect_plan() const {
    const ChunkPlan plan = plan_chunks(shape(), sizeof(T), scaled_limits<T>());
    EXPECT_EQ(plan.sample_groups, chunk_case().plan.sample_groups) << type_name<T>();
    EXPECT_EQ(plan.rows_per_chunk, chunk_case().plan.rows_per_chunk) << type_name<T>();
    EXPECT_EQ(plan.chunk_count(shape()), chunk_case().chunk_count) << type_name<T>();
  }
};

TEST_P(Conv2dChunkTest, Plan) {
  expect_plan<float>();
  expect_plan<double>();
}

TEST_P(Conv2dChunkTest, Forward) {
  const auto run = [&]<typename T>(T) {
    expect_forward_matches<T>(shape(), [&](const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
      tl::kernels::cpu::conv2d_detail::conv2d_forward(ctx(), s, x, w, b, y, scaled_limits<T>());
    });
  };
  run(0.0f);
  run(0.0);
}

TEST_P(Conv2dChunkTest, BackwardData) {
  const auto run = [&]<typename T>(T) {
    expect_backward_data_matches<T>(shape(), [&](const Conv2dShape& s, const T* dy, const T* w, T* dx) {
      tl::kernels::cpu::conv2d_detail::conv2d_backward_data(ctx(), s, dy, w, dx, scaled_limits<T>());
    });
  };
  run(0.0f);
  run(0.0);
}

TEST_P(Conv2dChunkTest, BackwardFilter) {
  const auto run = [&]<typename T>(T) {
    expect_backward_filter_matches<T>(shape(), [&](const Conv2dShape& s, const T* x, const T* dy, T* dw,
                                                   T* db) {
      tl::kernels::cpu::conv2d_detail::conv2d_backward_filter(ctx(), s, x, dy, dw, db, scaled_limits<T>());
    });
  };
  run(0.0f);
  run(0.0);
}

INSTANTIATE_TEST_SUITE_P(Conv2d, Conv2dChunkTest,
                         ::testing::Combine(::testing::ValuesIn(kChunkCases),
                                            ::testing::Values(Policy::Native, Policy::Vendor)),
                         [](const ::testing::TestParamInfo<Conv2dChunkTest::ParamType>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  tl::kernels::policy_name(std::get<1>(info.param));
                         });

// The default limits on real layers of ResNet-50 at batch 32: 7x7 layer4 folds 16 samples per GEMM (two equal
// groups rather than 21 + 11); 56x56 layer1 does not fold; the stem at 224 fits one sample per chunk; at 512
// one sample's columns (147 x 256 x 256 floats, 38.5 MB) exceed the bound and it is split by rows.
TEST(Conv2dChunkPlan, DefaultLimitsOnResNet50) {
  const ChunkLimits defaults;
  const Conv2dShape layer4 = conv(32, 512, 7, 7, 512, 3, 3).pad(1);
  const ChunkPlan layer4_plan = plan_chunks(layer4, sizeof(float), defaults);
  EXPECT_EQ(layer4_plan.sample_groups, 2);
  EXPECT_EQ(layer4_plan.max_samples(layer4), 16);
  EXPECT_EQ(layer4_plan.chunk_count(layer4), 2);

  const Conv2dShape layer1 = conv(32, 64, 56, 56, 64, 3, 3).pad(1);
  const ChunkPlan layer1_plan = plan_chunks(layer1, sizeof(float), defaults);
  EXPECT_FALSE(layer1_plan.folds(layer1));
  EXPECT_EQ(layer1_plan.chunk_count(layer1), 32);

  const Conv2dShape stem = conv(32, 3, 224, 224, 64, 7, 7).stride(2).pad(3);
  const ChunkPlan stem_plan = plan_chunks(stem, sizeof(float), defaults);
  EXPECT_EQ(stem_plan.sample_groups, 32);
  EXPECT_EQ(stem_plan.rows_per_chunk, 112);
  EXPECT_EQ(stem_plan.chunk_count(stem), 32);

  const Conv2dShape big_stem = conv(32, 3, 512, 512, 64, 7, 7).stride(2).pad(3);
  const ChunkPlan big_plan = plan_chunks(big_stem, sizeof(float), defaults);
  EXPECT_EQ(big_plan.sample_groups, 32);
  EXPECT_LT(big_plan.rows_per_chunk, 256);
  EXPECT_LE(147 * big_plan.rows_per_chunk * 256 * 4, defaults.scratch_bytes);
}

// Every sample, and every output row of it, is in exactly one chunk, for folded, whole and split plans.
TEST(Conv2dChunkPlan, ChunksTileTheOutput) {
  const Conv2dShape shapes[] = {conv(7, 4, 4, 4, 6, 3, 3).pad(1), conv(5, 3, 10, 10, 4, 3, 3).pad(1),
                                conv(1, 3, 9, 9, 4, 3, 3).pad(1)};
  for (const Conv2dShape& s : shapes)
    for (const ChunkLimits limits :
         {chunk_limits(1 << 20, 48), chunk_limits(1 << 20, 1), chunk_limits(27 * 10 * 4 * 3, 1)}) {
      const ChunkPlan plan = plan_chunks(s, sizeof(float), limits);
      std::vector<int> covered(s.batch * s.out_h(), 0);
      for (int64_t i = 0; i < plan.chunk_count(s); ++i) {
        const auto c = plan.chunk(s, i);
        ASSERT_LE(c.samples, plan.max_samples(s));
        ASSERT_TRUE(c.samples == 1 || (c.first_row == 0 && c.rows == s.out_h()))
            << "a split chunk folds samples";
        for (int64_t n = c.first_sample; n < c.first_sample + c.samples; ++n)
          for (int64_t p = c.first_row; p < c.first_row + c.rows; ++p) ++covered[n * s.out_h() + p];
      }
      EXPECT_EQ(std::count(covered.begin(), covered.end(), 1), static_cast<long>(covered.size()))
          << describe(s);
    }
}

}  // namespace
