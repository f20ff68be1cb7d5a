// Training parity with PyTorch: tests/fixtures/make_training_fixtures.py trains resnet18 and mobilenet_v2 for
// 20 steps on fixed batches — SGD + momentum, and Adam over two parameter groups with StepLR — and tl, from
// the same .pth, takes the same steps with its own optimizers and schedule. The float64 runs must agree step
// by step and in the final weights (parameters and BatchNorm statistics) to 1e-8: the same algorithm. The
// float32 run is held to the exact (float64) trajectory: its losses within 1e-3 (or within 5 times PyTorch's
// own float32 deviation, should that be larger). The fixture script explains which runs are kept and why
// (some trajectories of these random-weight networks are chaotic).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/layers.h"
#include "engine/npy.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/scheduler.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "weights/importers.h"
#include "weights/weights_file.h"

namespace tl {
namespace {

constexpr std::int64_t kSteps = 20, kStepsPerEpoch = 5;

struct Recipe {
  std::string arch, run;
  bool adam = false, training = true;
  DType dtype = DType::Float64;
  double tolerance = 1e-8;
};

void PrintTo(const Recipe& r, std::ostream* os) {
  *os << r.arch << "_" << r.run;
}

optim::ParamGroup group(std::string name, double lr) {
  optim::ParamGroup g;
  g.name = std::move(name);
  g.lr = g.initial_lr = lr;
  return g;
}

double norm(const Tensor& t) {
  return std::sqrt(sum(mul(t, t)).item<double>());
}

class TrainingParity : public ::testing::TestWithParam<Recipe> {};

TEST_P(TrainingParity, LossesAndFinalWeightsMatchPyTorch) {
  const Recipe recipe = GetParam();
  TL_REQUIRE_FIXTURE(folder, "training/" + recipe.arch);
  const auto model = models::create_model(recipe.arch, 10);
  model->load_state_dict(weights::read_pth(folder + "/model.pth").tensors);
  model->to(recipe.dtype);
  model->train(recipe.training);
  for (const auto& [_, module] : model->named_modules())
    if (dynamic_cast<Dropout*>(module)) module->eval();

  const std::string head = model->head_path() + ".";
  optim::ParamGroup all = group("all", 0.01), head_group = group("head", 1e-3), rest = group("rest", 1e-4);
  all.params = model->named_parameters();
  for (const auto& named : model->named_parameters())
    (named.first.rfind(head, 0) == 0 ? head_group : rest).params.push_back(named);
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::Scheduler> scheduler;
  if (!recipe.adam) {
    optim::SgdOptions o;
    o.momentum = 0.9;
    optimizer = optim::make_sgd({all}, o);
  } else {
    optimizer = optim::make_adam({head_group, rest}, {});
    scheduler = optim::step_schedule(2, 0.5);
  }

  const Tensor inputs = load_npy(folder + "/inputs.npy").to(recipe.dtype),
               labels = load_npy(folder + "/labels.npy");
  const bool float32 = recipe.dtype == DType::Float32;
  // A float32 run is compared with the exact trajectory, PyTorch's float32 one giving the scale of rounding.
  const std::string exact_run =
      float32 ? recipe.run.substr(0, recipe.run.size() - 2) : recipe.run;  // "sgd_eval"
  const std::vector<double> expected = load_npy(folder + "/" + exact_run + "_losses.npy").to_vector<double>();
  const std::vector<double> torch32 =
      float32 ? load_npy(folder + "/" + recipe.run + "_losses.npy").to_vector<double>() : expected;
  ASSERT_EQ(static_cast<std::int64_t>(expected.size()), kSteps);
  double worst_tl = 0, worst_torch = 0;
  for (std::int64_t step = 0; step < kSteps; ++step) {
    if (scheduler) scheduler->apply(*optimizer, step / kStepsPerEpoch);
    const Tensor loss = cross_entropy(model->forward(inputs.narrow(0, step, 1).squeeze(0)),
                                      labels.narrow(0, step, 1).squeeze(0));
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    const double mine = loss.item<double>(), theirs = expected[static_cast<std::size_t>(step)];
    worst_tl = std::max(worst_tl, std::abs(mine - theirs) / std::abs(theirs));
    worst_torch =
        std::max(worst_torch, std::abs(torch32[static_cast<std::size_t>(step)] - theirs) / std::abs(theirs));
    if (!float32) {
      EXPECT_LT(std::abs(mine - theirs) / std::abs(theirs), recipe.tolerance)
          << "step " << step + 1 << ": tl " << mine << ", PyTorch " << theirs;
    }
  }
  if (float32) {
    std::printf("largest loss deviation from the float64 trajectory: tl %.2e, PyTorch %.2e\n", worst_tl,
                worst_torch);
    EXPECT_LT(worst_tl, std::max(recipe.tolerance, 5 * worst_torch));
    return;  // float32 weights after 20 steps are the same comparison again, one step removed
  }

  // Final weights: every tensor within the tolerance of PyTorch's, relative to its norm (floored at 1e-3 of
  // the largest, so tensors that are zero up to rounding compare by absolute error).
  const weights::WeightsFile final = weights::load_weights(folder + "/" + recipe.run + "_final.h5");
  double largest = 0;
  for (const auto& [_, t] : final.tensors)
    if (t.dtype() != DType::Int64) largest = std::max(largest, norm(t));
  const StateDict state = model->state_dict();
  ASSERT_EQ(state.size(), final.tensors.size());
  for (const auto& [name, theirs] : final.tensors) {
    const Tensor& mine = state.at(name);
    if (theirs.dtype() == DType::Int64) {
      EXPECT_EQ(mine.item<std::int64_t>(), theirs.item<std::int64_t>()) << name;
      continue;
    }
    const double error = norm(sub(mine.to(DType::Float64), theirs.to(DType::Float64)));
    EXPECT_LT(error / std::max(norm(theirs), 1e-3 * largest), recipe.tolerance) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    PyTorch, TrainingParity,
    ::testing::Values(Recipe{"resnet18", "sgd"}, Recipe{"resnet18", "adam", true},
                      Recipe{"mobilenet_v2", "adam", true}, Recipe{"mobilenet_v2", "sgd_eval", false, false},
                      Recipe{"mobilenet_v2", "sgd_eval32", false, false, DType::Float32, 1e-3}),
    [](const auto& info) { return info.param.arch + "_" + info.param.run; });

}  // namespace
}  // namespace tl
