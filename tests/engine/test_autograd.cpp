// The autograd tape: accumulation, frozen parameters, NoGradGuard, detach and graph release.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/functional.h"
#include "engine/random.h"

namespace tl {
namespace {

Tensor leaf(const std::vector<float>& v, const Shape& shape) {
  Tensor t = tensor(v, shape);
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, AValueUsedTwiceAccumulatesBothGradients) {
  const Tensor x = leaf({1, -2, 3}, {3});
  sum(mul(x, x)).backward();  // d/dx sum(x^2) = 2x, through both operands of one mul
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, -4, 6}));

  const Tensor y = leaf({-1, 2}, {2});
  sum(add(relu(y), y)).backward();  // two paths into y: relu'(y) + 1
  EXPECT_EQ(y.grad().to_vector<float>(), (std::vector<float>{1, 2}));
}

TEST(Autograd, RepeatedBackwardAccumulatesIntoGrad) {
  const Tensor x = leaf({1, 2}, {2});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{6, 6}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SharedUpstreamGradientIsNotAliasedBetweenLeaves) {
  // add hands the same gradient tensor to both inputs; each leaf must own its buffer.
  const Tensor a = leaf({1, 1}, {2}), b = leaf({1, 1}, {2});
  sum(add(a, b)).backward();
  EXPECT_NE(a.grad().storage(), b.grad().storage());
  sum(a * 2.0).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST(Autograd, FrozenParametersGetNoGradient) {
  Generator g(1);
  const Tensor x = uniform({2, 3, 5, 5}, -1, 1, g);
  Tensor w = uniform({4, 3, 3, 3}, -1, 1, g);
  Tensor b = uniform({4}, -1, 1, g);
  b.set_requires_grad(true);  // the weight stays frozen
  Conv2dOptions o;
  o.padding = Padding2d::same_all(1);
  const Tensor y = conv2d(x, w, b, o);
  EXPECT_TRUE(y.requires_grad());
  sum(y).backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  // dL/db = number of output positions per channel (every dy is 1).
  EXPECT_EQ(b.grad().to_vector<float>(), std::vector<float>(4, 2 * 5 * 5));

  Tensor lw = uniform({2, 3}, -1, 1, g);
  const Tensor lx = uniform({4, 3}, -1, 1, g);
  lx.autograd_meta().requires_grad = true;
  sum(linear(lx, lw, Tensor())).backward();
  EXPECT_FALSE(lw.grad().defined());
  EXPECT_TRUE(lx.grad().defined());
}

TEST(Autograd, NothingRequiresGradMeansNothingIsRecorded) {
  const Tensor y = relu(zeros({3}));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_THROW(sum(y).backward(), Error);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  const Tensor x = leaf({1, 2, 3}, {3});
  {
    NoGradGuard guard;
    EXPECT_FALSE(GradMode::is_enabled());
    const Tensor y = sum(relu(x * 2.0));
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    { NoGradGuard nested; }
    EXPECT_FALSE(GradMode::is_enabled());  // the nested guard restored "off", not "on"
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_TRUE(sum(x).requires_grad());
}

TEST(Autograd, DetachCutsTheGraph) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor y = x * 2.0;
  const Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.storage(), y.storage());
  sum(add(y, d)).backward();  // only the y path reaches x
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 2}));
}

TEST(Autograd, GraphIsReleasedAfterBackwardUnlessRetained) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor loss = sum(x * x);
  loss.backward({}, /*retain_graph=*/true);
  loss.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{4, 8}));
  EXPECT_THROW(loss.backward(), Error);
}

TEST(Autograd, GradientOfAViewReachesTheBase) {
  const Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  sum(x.transpose(0, 1).narrow(0, 1, 2) * 10.0).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 10, 10, 0, 10, 10}));
}

TEST(Autograd, BackwardNeedsAScalarOrAnExplicitGradient) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor y = x * 3.0;
  EXPECT_THROW(y.backward(), ShapeError);
  y.backward(tensor(std::vector<float>{1, -1}, {2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, -3}));
}

TEST(Autograd, OnlyLeavesChangeRequiresGradAndInPlaceOnThemIsRefused) {
  Tensor x = leaf({1}, {1});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.set_requires_grad(false), Error);
  EXPECT_THROW(x.fill_(0), Error);
  EXPECT_THROW(add_(x, ones({1})), Error);
  {
    NoGradGuard guard;  // as an optimizer step does
    add_(x, ones({1}), -0.5);
  }
  EXPECT_FLOAT_EQ(x.item<float>(), 0.5f);
  EXPECT_THROW(zeros({1}, DType::Int64).set_requires_grad(true), DTypeError);
}

}  // namespace
}  // namespace tl
