// The op-test harness over tests/support/op_cases: for every case,
//  (1) each kernel path (native, vendor) gives the reference path's output and input gradients, in float32
//  and
//      float64, by normalised error;
//  (2) the analytic gradients of every differentiable input match central finite differences in float64.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/random.h"
#include "kernels/policy.h"
#include "tests/support/numeric.h"
#include "tests/support/op_cases.h"

namespace tl::testing {
namespace {

using kernels::Policy;

// A fixed random upstream gradient: the objective is sum(output * weights), so every output element matters
// with a different weight (a plain sum would hide errors that cancel).
Tensor upstream_weights(const OpCase& c, const Tensor& output) {
  Generator g(std::hash<std::string>{}(c.name) ^ 0x5eedULL);
  return uniform(output.shape(), -1.0, 1.0, g, output.dtype());
}

struct Evaluation {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;  // one per differentiable input
};

Evaluation evaluate(const OpCase& c, DType dtype, Policy policy) {
  kernels::PolicyGuard guard(policy);
  std::vector<Tensor> inputs = make_inputs(c, dtype, /*requires_grad=*/true);
  const Tensor out = c.run(inputs);
  Evaluation e{out.to_vector<double>(), {}};
  sum(mul(out, upstream_weights(c, out))).backward();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!c.inputs[i].differentiable) continue;
    const Tensor g = inputs[i].grad();
    EXPECT_TRUE(g.defined()) << c.name << ": no gradient for input " << i;
    e.grads.push_back(g.defined() ? g.to_vector<double>() : std::vector<double>());
  }
  return e;
}

class OpPaths : public ::testing::TestWithParam<OpCase> {};

void expect_paths_match(const OpCase& c, DType dtype, double tolerance) {
  const Evaluation reference = evaluate(c, dtype, Policy::Reference);
  for (Policy policy : {Policy::Native, Policy::Vendor}) {
    const Evaluation e = evaluate(c, dtype, policy);
    const char* path = kernels::policy_name(policy);
    EXPECT_LT(normalized_error(e.output, reference.output), tolerance) << c.name << " output, " << path;
    ASSERT_EQ(e.grads.size(), reference.grads.size());
    for (std::size_t i = 0; i < e.grads.size(); ++i) {
      ASSERT_EQ(e.grads[i].size(), reference.grads[i].size());
      EXPECT_LT(normalized_error(e.grads[i], reference.grads[i]), tolerance)
          << c.name << " gradient of differentiable input " << i << ", " << path;
    }
  }
}

TEST_P(OpPaths, Float32MatchesReference) {
  expect_paths_match(GetParam(), DType::Float32, 1e-5);
}
TEST_P(OpPaths, Float64MatchesReference) {
  expect_paths_match(GetParam(), DType::Float64, 1e-12);
}

// Central differences, h = 1e-6, on every element of every differentiable input, through the native path.
TEST_P(OpPaths, GradientsMatchFiniteDifferences) {
  const OpCase& c = GetParam();
  kernels::PolicyGuard guard(Policy::Native);
  std::vector<Tensor> inputs = make_inputs(c, DType::Float64, /*requires_grad=*/true);
  const Tensor out = c.run(inputs);
  const Tensor weights = upstream_weights(c, out);
  sum(mul(out, weights)).backward();

  const auto objective = [&] {
    NoGradGuard no_grad;
    return sum(mul(c.run(inputs), weights)).item<double>();
  };
  constexpr double h = 1e-6;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!c.inputs[i].differentiable) continue;
    const std::vector<double> analytic = inputs[i].grad().to_vector<double>();
    double* x = inputs[i].data<double>();
    std::vector<double> numeric(analytic.size());
    for (std::size_t j = 0; j < analytic.size(); ++j) {
      const double saved = x[j];
      x[j] = saved + h;
      const double up = objective();
      x[j] = saved - h;
      const double down = objective();
      x[j] = saved;
      numeric[j] = (up - down) / (2 * h);
    }
    EXPECT_LT(normalized_error(analytic, numeric), 1e-6) << c.name << ": input " << i;
    for (std::size_t j = 0; j < analytic.size(); ++j)
      ASSERT_NEAR(analytic[j], numeric[j], 1e-6 + 1e-5 * std::abs(numeric[j]))
          << c.name << ": input " << i << ", element " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpPaths, ::testing::ValuesIn(op_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; });

}  // namespace
}  // namespace tl::testing
