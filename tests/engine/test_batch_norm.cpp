// BatchNorm statistics against values worked out by hand (not by the code under test): the normalised output
// in training mode, the running mean and unbiased running variance after several steps, and eval mode using
// them.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/functional.h"

namespace tl {
namespace {

TEST(BatchNorm, TrainingNormalisesWithBatchStatistics) {
  // One channel, values 1, 2, 3, 4: mean 2.5, biased variance 1.25.
  const Tensor x = tensor(std::vector<double>{1, 2, 3, 4}, {2, 1, 1, 2});
  const Tensor gamma = tensor(std::vector<double>{2}, {1}), beta = tensor(std::vector<double>{0.5}, {1});
  const Tensor y = batch_norm2d(x, gamma, beta, Tensor(), Tensor(), true, 0.1, 1e-5);
  const double s = std::sqrt(1.25 + 1e-5);
  const std::vector<double> expected{2 * -1.5 / s + 0.5, 2 * -0.5 / s + 0.5, 2 * 0.5 / s + 0.5,
                                     2 * 1.5 / s + 0.5};
  const auto got = y.to_vector<double>();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], expected[i], 1e-12) << i;
}

TEST(BatchNorm, RunningStatisticsFollowMomentumWithUnbiasedVariance) {
  Tensor running_mean = zeros({2}, DType::Float64), running_var = ones({2}, DType::Float64);
  const Tensor gamma = ones({2}, DType::Float64), beta = zeros({2}, DType::Float64);
  // Channel 0 sees {1, 2, 3, 4} then {2, 4, 6, 8}; channel 1 sees {0, 0, 0, 4} then {-1, -1, -1, -1}.
  const Tensor step1 = tensor(std::vector<double>{1, 2, 0, 0, 3, 4, 0, 4}, {2, 2, 1, 2});
  const Tensor step2 = tensor(std::vector<double>{2, 4, -1, -1, 6, 8, -1, -1}, {2, 2, 1, 2});
  batch_norm2d(step1, gamma, beta, running_mean, running_var, true, 0.1);
  // Channel 0: mean 2.5, unbiased var 5/3. Channel 1: mean 1, unbiased var (1+1+1+9)/3 = 4.
  EXPECT_NEAR(running_mean.to_vector<double>()[0], 0.25, 1e-12);
  EXPECT_NEAR(running_var.to_vector<double>()[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-12);
  EXPECT_NEAR(running_mean.to_vector<double>()[1], 0.1, 1e-12);
  EXPECT_NEAR(running_var.to_vector<double>()[1], 0.9 + 0.4, 1e-12);

  batch_norm2d(step2, gamma, beta, running_mean, running_var, true, 0.1);
  // Channel 0: mean 5, unbiased var 20/3. Channel 1: mean -1, var 0.
  const double mean0 = 0.9 * 0.25 + 0.1 * 5, var0 = 0.9 * (0.9 + 0.1 * 5.0 / 3.0) + 0.1 * 20.0 / 3.0;
  const double mean1 = 0.9 * 0.1 + 0.1 * -1, var1 = 0.9 * 1.3;
  EXPECT_NEAR(running_mean.to_vector<double>()[0], mean0, 1e-12);
  EXPECT_NEAR(running_var.to_vector<double>()[0], var0, 1e-12);
  EXPECT_NEAR(running_mean.to_vector<double>()[1], mean1, 1e-12);
  EXPECT_NEAR(running_var.to_vector<double>()[1], var1, 1e-12);

  // Eval mode normalises with those statistics and leaves them alone.
  const Tensor probe = tensor(std::vector<double>{10, 0, 1, -2}, {1, 2, 1, 2});
  const Tensor g2 = tensor(std::vector<double>{2, 3}, {2}), b2 = tensor(std::vector<double>{1, -1}, {2});
  const auto y = batch_norm2d(probe, g2, b2, running_mean, running_var, false, 0.1, 1e-5).to_vector<double>();
  const double s0 = std::sqrt(var0 + 1e-5), s1 = std::sqrt(var1 + 1e-5);
  EXPECT_NEAR(y[0], 2 * (10 - mean0) / s0 + 1, 1e-12);
  EXPECT_NEAR(y[1], 2 * (0 - mean0) / s0 + 1, 1e-12);
  EXPECT_NEAR(y[2], 3 * (1 - mean1) / s1 - 1, 1e-12);
  EXPECT_NEAR(y[3], 3 * (-2 - mean1) / s1 - 1, 1e-12);
  EXPECT_NEAR(running_mean.to_vector<double>()[0], mean0, 1e-12);
  EXPECT_NEAR(running_var.to_vector<double>()[1], var1, 1e-12);
}

TEST(BatchNorm, RunningStatisticsConvergeGeometricallyOverManySteps) {
  // The same batch k times, from (mean 0, var 1): running_mean = mu (1 - 0.9^k) and
  // running_var = s2 + (1 - s2) 0.9^k, with mu = 3 and unbiased s2 = var{1, 3, 5} = 4.
  Tensor running_mean = zeros({1}, DType::Float64), running_var = ones({1}, DType::Float64);
  const Tensor x = tensor(std::vector<double>{1, 3, 5}, {3, 1});
  const Tensor gamma = ones({1}, DType::Float64), beta = zeros({1}, DType::Float64);
  for (int k = 1; k <= 5; ++k) {
    batch_norm2d(x, gamma, beta, running_mean, running_var, true, 0.1);
    EXPECT_NEAR(running_mean.item<double>(), 3 * (1 - std::pow(0.9, k)), 1e-12) << "step " << k;
    EXPECT_NEAR(running_var.item<double>(), 4 + (1 - 4) * std::pow(0.9, k), 1e-12) << "step " << k;
  }
}

TEST(BatchNorm, EvalModeGradientTreatsStatisticsAsConstants) {
  // y = gamma * (x - m) / sqrt(v + eps) + beta, so dy/dx = gamma / sqrt(v + eps) exactly.
  Tensor x = tensor(std::vector<double>{1, 2, 3, 4}, {1, 1, 2, 2});
  x.set_requires_grad(true);
  const Tensor gamma = tensor(std::vector<double>{3}, {1}), beta = zeros({1}, DType::Float64);
  const Tensor m = tensor(std::vector<double>{1}, {1}), v = tensor(std::vector<double>{4}, {1});
  sum(batch_norm2d(x, gamma, beta, m, v, false, 0.1, 1e-5)).backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_NEAR(g, 3 / std::sqrt(4 + 1e-5), 1e-12);
}

TEST(BatchNorm, TrainingRefusesOneValuePerChannel) {
  const Tensor x = ones({1, 2, 1, 1});
  EXPECT_THROW(batch_norm2d(x, ones({2}), zeros({2}), Tensor(), Tensor(), true), ShapeError);
  EXPECT_NO_THROW(batch_norm2d(x, ones({2}), zeros({2}), zeros({2}), ones({2}), false));
}

}  // namespace
}  // namespace tl
