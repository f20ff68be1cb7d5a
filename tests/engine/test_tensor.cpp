// Tensor: creation, views sharing storage, copies, dtype conversion, random streams, and the error messages
// that name the shapes at fault.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "engine/allocator.h"
#include "engine/error.h"
#include "engine/functional.h"
#include "engine/random.h"
#include "engine/tensor.h"

namespace tl {
namespace {

std::vector<float> values(const Tensor& t) {
  return t.to_vector<float>();
}

TEST(Tensor, CreationFillsShapeAndValues) {
  const Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.strides(), Strides({3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_EQ(values(z), std::vector<float>(6, 0.0f));
  EXPECT_EQ(values(ones({4})), std::vector<float>(4, 1.0f));
  EXPECT_EQ(full({2}, 2.5, DType::Float64).to_vector<double>(), (std::vector<double>{2.5, 2.5}));
  EXPECT_EQ(arange(4).to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(arange(1, 2, 0.25, DType::Float64).to_vector<double>(),
            (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(3, 0, -1, DType::Int64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{3, 2, 1}));
  EXPECT_EQ(zeros({}).numel(), 1);
  EXPECT_EQ(zeros({0, 3}).numel(), 0);
}

TEST(Tensor, CpuStorageIs64ByteAligned) {
  for (std::int64_t n : {1, 3, 17, 1000}) {
    const Tensor t = empty({n});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data<float>()) % kCpuAlignment, 0u) << n;
  }
}

TEST(Tensor, FromBufferAndTensorCopyTheValues) {
  std::vector<double> source{1, 2, 3, 4, 5, 6};
  const Tensor t = from_buffer(source.data(), {2, 3}, DType::Float64);
  source[0] = 100;  // a copy, not a view of the caller's memory
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(tensor(std::vector<std::int64_t>{7, 8}, {2}).narrow(0, 1, 1).item<std::int64_t>(), 8);
  EXPECT_THROW(tensor(std::vector<float>{1, 2, 3}, {2, 2}), ShapeError);
}

TEST(Tensor, ItemNeedsOneElement) {
  EXPECT_FLOAT_EQ(full({1, 1}, 3.0).item<float>(), 3.0f);
  EXPECT_THROW(zeros({2}).item<float>(), ShapeError);
}

TEST(Tensor, DataChecksTheDtype) {
  const Tensor t = zeros({2});
  EXPECT_NO_THROW(t.data<float>());
  try {
    t.data<double>();
    FAIL() << "expected DTypeError";
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("float32[2]"), std::string::npos) << e.what();
  }
}

TEST(Tensor, ViewsShareStorage) {
  const Tensor base = arange(12).reshape({3, 4});
  const Tensor row = base.narrow(0, 1, 1);
  const Tensor flat = base.view({12});
  EXPECT_EQ(row.storage(), base.storage());
  EXPECT_EQ(flat.storage(), base.storage());
  base.data<float>()[5] = 42;
  EXPECT_EQ(values(row), (std::vector<float>{4, 42, 6, 7}));
  EXPECT_EQ(values(flat)[5], 42);
}

TEST(Tensor, PermuteTransposeAndContiguous) {
  const Tensor t = arange(6).reshape({2, 3});
  const Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), Shape({3, 2}));
  EXPECT_EQ(tt.strides(), Strides({1, 3}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(values(tt), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  const Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage(), t.storage());
  EXPECT_EQ(values(c), values(tt));
  EXPECT_TRUE(t.contiguous().is_same(t));  // already contiguous: no copy

  const Tensor nchw = arange(24).reshape({1, 2, 3, 4});
  const Tensor nhwc = nchw.permute({0, 2, 3, 1});
  EXPECT_EQ(nhwc.shape(), Shape({1, 3, 4, 2}));
  EXPECT_EQ(values(nhwc).at(1), 12);  // (h 0, w 0, c 1)
  EXPECT_THROW(nchw.permute({0, 1, 1, 2}), ShapeError);
  EXPECT_THROW(nchw.permute({0, 1}), ShapeError);
}

TEST(Tensor, ViewNeedsContiguousButReshapeCopies) {
  const Tensor tt = arange(6).reshape({2, 3}).transpose(0, 1);
  EXPECT_THROW(tt.view({6}), ShapeError);
  EXPECT_EQ(values(tt.reshape({6})), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(arange(6).reshape({-1, 2}).shape(), Shape({3, 2}));
  EXPECT_THROW(arange(6).reshape({4, -1}), ShapeError);
  EXPECT_THROW(arange(6).reshape({-1, -1}), ShapeError);
}

TEST(Tensor, FlattenNarrowSqueezeUnsqueezeExpand) {
  const Tensor t = zeros({2, 3, 4, 5});
  EXPECT_EQ(t.flatten(1).shape(), Shape({2, 60}));
  EXPECT_EQ(t.flatten().shape(), Shape({120}));
  EXPECT_EQ(t.flatten(1, 2).shape(), Shape({2, 12, 5}));
  EXPECT_EQ(t.narrow(-1, 1, 3).shape(), Shape({2, 3, 4, 3}));
  EXPECT_THROW(t.narrow(1, 2, 2), ShapeError);
  EXPECT_EQ(t.unsqueeze(0).shape(), Shape({1, 2, 3, 4, 5}));
  EXPECT_EQ(t.unsqueeze(4).shape(), Shape({2, 3, 4, 5, 1}));
  EXPECT_EQ(zeros({2, 1, 3}).squeeze(1).shape(), Shape({2, 3}));
  EXPECT_THROW(t.squeeze(0), ShapeError);
  const Tensor e = arange(3).reshape({3, 1}).expand({3, 2});
  EXPECT_EQ(values(e), (std::vector<float>{0, 0, 1, 1, 2, 2}));
  EXPECT_THROW(arange(3).reshape({3, 1}).expand({2, 2}), ShapeError);
  EXPECT_THROW(t.size(4), ShapeError);
}

TEST(Tensor, CopyIntoAStridedViewAndFill) {
  Tensor t = zeros({3, 3});
  t.narrow(1, 1, 1).copy_(full({3, 1}, 7.0));
  EXPECT_EQ(values(t), (std::vector<float>{0, 7, 0, 0, 7, 0, 0, 7, 0}));
  t.transpose(0, 1).narrow(0, 0, 1).fill_(-1);  // a non-contiguous destination
  EXPECT_EQ(values(t), (std::vector<float>{-1, 7, 0, -1, 7, 0, -1, 7, 0}));
  EXPECT_THROW(t.copy_(zeros({2, 2})), ShapeError);
}

TEST(Tensor, DtypeConversions) {
  const Tensor f = tensor(std::vector<float>{1.75f, -2.5f}, {2});
  EXPECT_EQ(f.to(DType::Float64).to_vector<double>(), (std::vector<double>{1.75, -2.5}));
  EXPECT_EQ(f.to(DType::Int64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, -2}));
  Tensor d = zeros({2}, DType::Float64);
  d.copy_(f);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{1.75, -2.5}));
  EXPECT_TRUE(f.to(DType::Float32).is_same(f));
}

TEST(Tensor, GeneratorStreamsAreSeededAndAdvance) {
  Generator a(123), b(123), c(124);
  const auto first = uniform({1000}, 0, 1, a).to_vector<float>();
  EXPECT_EQ(first, uniform({1000}, 0, 1, b).to_vector<float>());
  EXPECT_NE(first, uniform({1000}, 0, 1, c).to_vector<float>());
  EXPECT_NE(first, uniform({1000}, 0, 1, a).to_vector<float>());  // the stream moved on
  double total = 0;
  for (float v : first) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
    total += v;
  }
  EXPECT_NEAR(total / 1000, 0.5, 0.05);

  Generator restored(0);
  restored.set_state(a.seed(), a.offset());
  EXPECT_EQ(uniform({10}, 0, 1, a).to_vector<float>(), uniform({10}, 0, 1, restored).to_vector<float>());
}

TEST(Tensor, NormalHasTheRequestedMoments) {
  Generator g(5);
  const auto v = normal({20000}, 2.0, 3.0, g, DType::Float64).to_vector<double>();
  double mean = 0, var = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  for (double x : v) var += (x - mean) * (x - mean);
  var /= v.size() - 1;
  EXPECT_NEAR(mean, 2.0, 0.1);
  EXPECT_NEAR(std::sqrt(var), 3.0, 0.1);
}

TEST(Tensor, ShapeMismatchErrorsNameBothShapes) {
  try {
    add(zeros({2, 3}), zeros({3, 2}));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("[2, 3]"), std::string::npos) << message;
    EXPECT_NE(message.find("[3, 2]"), std::string::npos) << message;
  }
  EXPECT_THROW(add(zeros({2}), zeros({2}, DType::Float64)), DTypeError);
  EXPECT_THROW(relu(zeros({2}, DType::Int64)), DTypeError);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(empty({2}, DType::Float32, Device::cuda(0)), DeviceError);
  EXPECT_THROW(Device::parse("gpu"), ValueError);
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
}

}  // namespace
}  // namespace tl
