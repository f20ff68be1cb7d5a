// The op-test harness (tests/support/op_cases) on cuda:0: every case's output and input gradients, computed
// by the engine on the device under the native and under the vendor policy, against the CPU reference in
// float64. Inputs are drawn once in float32 on the CPU (make_inputs) and the reference takes exactly those
// values widened to float64, so the comparison measures only the device's arithmetic. On the device the
// inputs are copied with Tensor::to and made leaves there, so backward runs on the device end to end.
//   float32 on the device: normalised error < 1e-5 (these shapes are small: no long reductions);
//   float64 on the device: < 1e-12.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/random.h"
#include "kernels/policy.h"
#include "tests/gpu/gpu_test.h"
#include "tests/support/numeric.h"
#include "tests/support/op_cases.h"

namespace tl::testing {
namespace {

using kernels::Policy;

struct Evaluation {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;  // one per differentiable input
};

// The fixed random weights of the objective sum(output * weights) (as tests/engine/test_ops.cpp: a plain sum
// would hide errors that cancel), drawn in float32 so every evaluation sees the same values.
Tensor upstream_weights(const OpCase& c, const Tensor& output) {
  Generator g(std::hash<std::string>{}(c.name) ^ 0x5eedULL);
  return uniform(output.shape(), -1.0, 1.0, g, DType::Float32);
}

// Runs case `c` on `device` in `dtype` under `policy`, from the float32 inputs `base` (CPU tensors).
Evaluation evaluate(const OpCase& c, const std::vector<Tensor>& base, DType dtype, Device device,
                    Policy policy) {
  kernels::PolicyGuard guard(policy);
  std::vector<Tensor> inputs;
  for (std::size_t i = 0; i < base.size(); ++i) {
    Tensor t = is_floating(base[i].dtype()) ? base[i].to(dtype) : base[i];
    // Tensor::to is differentiable (its result is not a leaf when its input requires grad): detach makes the
    // device copy itself the leaf whose gradient backward accumulates, on the device.
    t = t.to(device).detach();
    if (c.inputs[i].differentiable) t.set_requires_grad(true);
    inputs.push_back(t);
  }
  const Tensor out = c.run(inputs);
  EXPECT_EQ(out.device(), device) << c.name << ": output on " << out.device().str();
  EXPECT_EQ(out.dtype(), dtype) << c.name;
  Evaluation e{out.to_vector<double>(), {}};
  const Tensor weights = upstream_weights(c, out).to(dtype).to(device);
  sum(mul(out, weights)).backward();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!c.inputs[i].differentiable) continue;
    const Tensor g = inputs[i].grad();
    EXPECT_TRUE(g.defined()) << c.name << ": no gradient for input " << i;
    if (g.defined()) {
      EXPECT_EQ(g.device(), device) << c.name << ": gradient of input " << i << " on " << g.device().str();
    }
    e.grads.push_back(g.defined() ? g.to_vector<double>() : std::vector<double>());
  }
  return e;
}

class GpuOps : public GpuParamTest<std::tuple<OpCase, Policy>> {
 protected:
  void expect_matches_reference(DType dtype, double tolerance) {
    const auto& [c, policy] = GetParam();
    const std::vector<Tensor> base = make_inputs(c, DType::Float32, /*requires_grad=*/false);
    const Evaluation reference = evaluate(c, base, DType::Float64, Device::cpu(), Policy::Reference);
    const Evaluation e = evaluate(c, base, dtype, device(), policy);
    const std::string where =
        str(c.name, " ", dtype_name(dtype), " [", kernels::policy_name(policy), " on ", device().str(), "]");
    expect_close(e.output, reference.output, tolerance, where + " output");
    ASSERT_EQ(e.grads.size(), reference.grads.size()) << where;
    for (std::size_t i = 0; i < e.grads.size(); ++i)
      expect_close(e.grads[i], reference.grads[i], tolerance,
                   str(where, " gradient of differentiable input ", i));
  }
};

TEST_P(GpuOps, Float32MatchesFloat64Reference) {
  expect_matches_reference(DType::Float32, 1e-5);
}

TEST_P(GpuOps, Float64MatchesFloat64Reference) {
  expect_matches_reference(DType::Float64, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Ops, GpuOps,
                         ::testing::Combine(::testing::ValuesIn(op_cases()),
                                            ::testing::Values(Policy::Native, Policy::Vendor)),
                         [](const ::testing::TestParamInfo<std::tuple<OpCase, Policy>>& info) {
                           return std::get<0>(info.param).name + "_" +
                                  kernels::policy_name(std::get<1>(info.param));
                         });

// Tensor::to is differentiable: a CPU leaf moved to the device, used there, gets its gradient back on the
// CPU.
class GpuOpsTransfer : public GpuTest {};

TEST_F(GpuOpsTransfer, GradientFlowsBackThroughTo) {
  Generator g(11);
  const Tensor x = uniform({3, 4}, -1.0, 1.0, g, DType::Float32);
  x.set_requires_grad(true);
  const Tensor w = uniform({3, 4}, -1.0, 1.0, g, DType::Float32);
  // loss = sum(relu(x) * w * 3): d loss / dx = 3 w where x > 0, else 0.
  const Tensor on_device = x.to(device());
  EXPECT_EQ(on_device.device(), device());
  const Tensor loss = sum(mul(relu(on_device), w.to(device())) * 3.0);
  loss.backward();
  ASSERT_TRUE(x.grad().defined()) << "no gradient reached the CPU leaf through Tensor::to";
  EXPECT_EQ(x.grad().device(), Device::cpu());
  const auto xs = x.to_vector<double>(), ws = w.to_vector<double>();
  std::vector<double> expected(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) expected[i] = xs[i] > 0 ? 3.0 * ws[i] : 0.0;
  expect_close(x.grad().to_vector<double>(), expected, 1e-6,
               "gradient through Tensor::to(" + device().str() + ")");
}

}  // namespace
}  // namespace tl::testing
