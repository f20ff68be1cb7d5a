// Whole models on cuda:0 against the CPU: resnet18 and mobilenet_v2 with the registry's deterministic random
// initialisation, a small input (batch 4 at 64x64, so the suite stays fast), in float32 on the device under
// the auto (cuDNN/cuBLAS where they have the kernel) and the native policy. The reference is the same model
// on the CPU in float64 (the CPU paths are held to the plain reference loops by the unit tests).
//  - eval-mode logits: normalised error <= 1e-3;
//  - two SGD steps (momentum 0.9, cross-entropy, dropout off as in the CPU parity tests): the first in
//    training mode (batch statistics), the second in eval mode, where it reads the momentum buffer the
//    first left. Each step's loss, the parameters after each step (all as one vector) and the BatchNorm
//    running statistics are held to 1e-3. Each step's change of the parameters (new - old: the update
//    itself) is held to 1e-2: in training mode these random-weight networks amplify float32 rounding in
//    their gradients to ~1e-3 of the float64 ones on the CPU too (mobilenet_v2 here: 9e-4; the torchvision
//    parity test finds the same of torch's), and a second training-mode step would amplify the first
//    step's rounding chaotically.
// Module::to(Device) moves the model in place: the parameters stay the same tensor objects.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/layers.h"
#include "engine/optim/optimizer.h"
#include "engine/random.h"
#include "kernels/policy.h"
#include "models/registry.h"
#include "tests/gpu/gpu_test.h"
#include "tests/support/numeric.h"

namespace tl::testing {
namespace {

using kernels::Policy;

constexpr std::int64_t kClasses = 10, kBatch = 4, kSize = 64, kSteps = 2;
constexpr std::uint64_t kSeed = 7;

struct ModelCase {
  std::string arch;
  Policy policy;
};

void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << c.arch << "_" << kernels::policy_name(c.policy);
}

struct ModelRun {
  std::vector<double> eval_logits;
  std::vector<double> losses;  // one per training step
  // Every parameter as one vector (named_parameters order): before the steps, then after each.
  std::vector<std::vector<double>> params;
  std::vector<double> running_stats;   // every floating-point buffer after the steps
  std::vector<std::int64_t> counters;  // the integer buffers (num_batches_tracked)
};

void append(std::vector<double>& all, const Tensor& t) {
  const auto v = t.to_vector<double>();
  all.insert(all.end(), v.begin(), v.end());
}

std::vector<double> all_parameters(const Module& m) {
  std::vector<double> all;
  for (const auto& [_, p] : m.named_parameters()) append(all, p);
  return all;
}

// The fixed input batch and labels, drawn in float32 so the float64 reference sees the same values.
Tensor input_batch() {
  Generator g(1234);
  return uniform({kBatch, 3, kSize, kSize}, -2.0, 2.0, g, DType::Float32);
}
Tensor label_batch() {
  std::vector<std::int64_t> labels(kBatch);
  for (std::int64_t i = 0; i < kBatch; ++i) labels[static_cast<std::size_t>(i)] = (3 * i + 1) % kClasses;
  return tensor(labels, {kBatch});
}

// Builds the model, moves it to `device` in `dtype`, and runs the evaluation and the training steps there.
ModelRun run_model(const std::string& arch, DType dtype, Device device, Policy policy) {
  kernels::PolicyGuard guard(policy);
  ModelRun run;
  const auto model = models::create_model(arch, kClasses, kSeed);
  model->to(dtype);
  model->to(device);
  const Tensor x = input_batch().to(dtype).to(device), labels = label_batch().to(device);

  model->eval();
  {
    NoGradGuard no_grad;
    const Tensor logits = model->forward(x);
    EXPECT_EQ(logits.device(), device) << arch;
    run.eval_logits = logits.to_vector<double>();
  }

  optim::ParamGroup group;
  group.name = "all";
  group.lr = group.initial_lr = 0.05;
  group.params = model->named_parameters();
  optim::SgdOptions options;
  options.momentum = 0.9;
  const auto optimizer = optim::make_sgd({group}, options);
  run.params.push_back(all_parameters(*model));
  for (std::int64_t step = 0; step < kSteps; ++step) {
    // Training mode, then eval mode (see the file comment).
    model->train(step == 0);
    for (const auto& [_, module] : model->named_modules())
      if (dynamic_cast<Dropout*>(module)) module->eval();
    optimizer->zero_grad();
    const Tensor loss = cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer->step();
    run.losses.push_back(loss.item<double>());
    run.params.push_back(all_parameters(*model));
  }
  for (const auto& [name, b] : model->named_buffers()) {
    if (is_floating(b.dtype())) {
      EXPECT_EQ(b.device(), device) << arch << ": buffer " << name;
      append(run.running_stats, b);
    } else {
      run.counters.push_back(b.item<std::int64_t>());
    }
  }
  return run;
}

// The float64 CPU run of each architecture, computed once and shared by both policies.
const ModelRun& reference_run(const std::string& arch) {
  static std::map<std::string, ModelRun> cache;
  auto it = cache.find(arch);
  if (it == cache.end())
    it = cache.emplace(arch, run_model(arch, DType::Float64, Device::cpu(), Policy::Auto)).first;
  return it->second;
}

class GpuModels : public GpuParamTest<ModelCase> {};

TEST_P(GpuModels, EvalLogitsAndTrainingStepsMatchCpu) {
  const ModelCase& c = GetParam();
  const std::string where = str(c.arch, " [", kernels::policy_name(c.policy), " on ", device().str(), "]");
  const ModelRun& expected = reference_run(c.arch);
  const ModelRun actual = run_model(c.arch, DType::Float32, device(), c.policy);

  expect_close(actual.eval_logits, expected.eval_logits, 1e-3, where + " eval logits");
  ASSERT_EQ(actual.losses.size(), expected.losses.size());
  for (std::size_t i = 0; i < actual.losses.size(); ++i)
    expect_close(std::vector<double>{actual.losses[i]}, std::vector<double>{expected.losses[i]}, 1e-3,
                 str(where, " loss of training step ", i + 1));
  ASSERT_EQ(actual.params.size(), expected.params.size());
  for (std::size_t k = 1; k < actual.params.size(); ++k) {
    expect_close(actual.params[k], expected.params[k], 1e-3, str(where, " parameters after step ", k));
    std::vector<double> change(actual.params[k].size()), expected_change(expected.params[k].size());
    ASSERT_EQ(change.size(), expected_change.size());
    for (std::size_t i = 0; i < change.size(); ++i) {
      change[i] = actual.params[k][i] - actual.params[k - 1][i];
      expected_change[i] = expected.params[k][i] - expected.params[k - 1][i];
    }
    expect_close(change, expected_change, 1e-2, str(where, " parameter change (new - old) of step ", k));
  }
  expect_close(actual.running_stats, expected.running_stats, 1e-3, where + " BatchNorm running statistics");
  EXPECT_EQ(actual.counters, expected.counters) << where << ": num_batches_tracked";
}

INSTANTIATE_TEST_SUITE_P(Models, GpuModels,
                         ::testing::Values(ModelCase{"resnet18", Policy::Auto},
                                           ModelCase{"resnet18", Policy::Native},
                                           ModelCase{"mobilenet_v2", Policy::Auto},
                                           ModelCase{"mobilenet_v2", Policy::Native}),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return info.param.arch + "_" + kernels::policy_name(info.param.policy);
                         });

class GpuModelsMove : public GpuTest {};

// The layers hold their parameters too, so moving must change the data of the same tensors, not swap in
// new ones; the floating-point buffers (running statistics) move with them.
TEST_F(GpuModelsMove, ModuleToMovesParametersInPlace) {
  const auto model = models::create_model("mobilenet_v2", kClasses, kSeed);
  const auto params = model->named_parameters();
  const auto values = all_parameters(*model);
  model->to(device());
  EXPECT_EQ(model->device(), device());
  const auto moved = model->named_parameters();
  ASSERT_EQ(moved.size(), params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(moved[i].second.is_same(params[i].second)) << params[i].first << " is a new tensor";
    EXPECT_EQ(params[i].second.device(), device()) << params[i].first;
    EXPECT_TRUE(params[i].second.requires_grad()) << params[i].first;
  }
  for (const auto& [name, b] : model->named_buffers())
    if (is_floating(b.dtype())) {
      EXPECT_EQ(b.device(), device()) << name;
    }
  expect_bitwise_equal(all_parameters(*model), values,
                       "parameter values after Module::to(" + device().str() + ")");
  // And back: the values survive the round trip exactly.
  model->to(Device::cpu());
  EXPECT_EQ(model->device(), Device::cpu());
  expect_bitwise_equal(all_parameters(*model), values, "parameter values after the round trip");
}

}  // namespace
}  // namespace tl::testing
