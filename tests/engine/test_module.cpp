// Modules: torchvision-style names, state dicts, strict and non-strict loading, freezing by glob, and the
// rule that a frozen BatchNorm keeps its running statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/layers.h"

namespace tl {
namespace {

// conv -> bn -> relu, then a "head" Sequential holding a Linear: names like torchvision's.
class TinyNet : public Module {
 public:
  explicit TinyNet(Generator& g) : Module("TinyNet") {
    conv = register_module("conv1", make_conv2d(3, 4, 3, 1, 1, 1, false, g));
    bn = register_module("bn1", std::make_shared<BatchNorm2d>(4));
    register_module("relu", std::make_shared<Activation>(Activation::Kind::ReLU));
    head = register_module(
        "head", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                    std::make_shared<Flatten>(), std::make_shared<Linear>(4 * 2 * 2, 3, true, g)}));
  }
  Tensor forward(const Tensor& x) override {
    return submodule("head").forward(relu(bn->forward(conv->forward(x))));
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Sequential> head;
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& [n, _] : named) out.push_back(n);
  return out;
}

TEST(Module, NamesAreDotSeparatedPaths) {
  Generator g(0);
  TinyNet net(g);
  EXPECT_EQ(names(net.named_parameters()), (std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias",
                                                                     "head.1.weight", "head.1.bias"}));
  EXPECT_EQ(names(net.named_buffers()),
            (std::vector<std::string>{"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"}));
  std::vector<std::string> keys;
  for (const auto& [k, _] : net.state_dict()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                            "bn1.running_var", "bn1.num_batches_tracked", "head.1.weight",
                                            "head.1.bias"}));
  EXPECT_EQ(net.parameter_count(), 4 * 3 * 9 + 4 + 4 + 16 * 3 + 3);
  EXPECT_EQ(net.submodule("head.1").type_name(), "Linear");
  EXPECT_THROW(net.submodule("head.7"), ValueError);
  EXPECT_NE(net.describe().find("conv1: Conv2d(3, 4, kernel 3x3, padding 1/1/1/1, no bias)"),
            std::string::npos)
      << net.describe();
}

TEST(Module, StateDictSharesTheModuleTensors) {
  Generator g(0);
  TinyNet net(g);
  const StateDict sd = net.state_dict();
  EXPECT_EQ(sd.at("conv1.weight").storage(), net.conv->weight().storage());
  EXPECT_EQ(sd.at("bn1.num_batches_tracked").dtype(), DType::Int64);
  EXPECT_EQ(sd.at("bn1.num_batches_tracked").shape(), Shape{});
}

TEST(Module, LoadStateDictCopiesValuesAndConvertsDtype) {
  Generator g1(1), g2(2);
  TinyNet source(g1), target(g2);
  StateDict sd;
  for (const auto& [k, t] : source.state_dict())
    sd.insert(k, t.to(t.dtype() == DType::Int64 ? DType::Int64 : DType::Float64));
  const LoadReport report = target.load_state_dict(sd);
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(report.loaded, sd.size());
  EXPECT_EQ(target.conv->weight().to_vector<float>(), source.conv->weight().to_vector<float>());
  EXPECT_EQ(target.conv->weight().dtype(), DType::Float32);
}

TEST(Module, StrictLoadReportsEveryProblemAndChangesNothing) {
  Generator g1(1), g2(2);
  TinyNet source(g1), target(g2);
  StateDict sd = source.state_dict();
  sd.erase("bn1.bias");
  sd.insert("fc.weight", zeros({2, 2}));
  sd.set("head.1.weight", zeros({5, 16}));
  const auto before = target.conv->weight().to_vector<float>();
  try {
    target.load_state_dict(sd);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing from the state dict: bn1.bias"), std::string::npos) << m;
    EXPECT_NE(m.find("not in the model: fc.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("head.1.weight is [3, 16] in the model, [5, 16] in the state dict"), std::string::npos)
        << m;
  }
  EXPECT_EQ(target.conv->weight().to_vector<float>(), before);

  const LoadReport report = target.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"bn1.bias"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"fc.weight"});
  ASSERT_EQ(report.mismatched.size(), 1u);
  EXPECT_EQ(report.mismatched[0].name, "head.1.weight");
  EXPECT_EQ(target.conv->weight().to_vector<float>(), source.conv->weight().to_vector<float>());
}

TEST(Module, FreezeAndUnfreezeByGlobOrPath) {
  Generator g(0);
  TinyNet net(g);
  EXPECT_EQ(net.freeze("*"), 5u);
  EXPECT_EQ(net.parameter_count(true), 0);
  EXPECT_EQ(net.unfreeze("head"), 2u);  // a module path means everything below it
  EXPECT_TRUE(net.head->parameters()[0].requires_grad());
  EXPECT_FALSE(net.conv->weight().requires_grad());
  EXPECT_EQ(net.unfreeze("bn1.*"), 2u);
  EXPECT_EQ(net.freeze("*.bias"), 2u);
  EXPECT_TRUE(net.bn->weight().requires_grad());
  EXPECT_FALSE(net.bn->bias().requires_grad());
  EXPECT_THROW(net.freeze("layer4"), ValueError);
}

TEST(Module, GlobMatching) {
  EXPECT_TRUE(glob_match("*", "layer4.1.conv2.weight"));
  EXPECT_TRUE(glob_match("layer4.*", "layer4.1.conv2.weight"));
  EXPECT_FALSE(glob_match("layer4.*", "layer3.1.conv2.weight"));
  EXPECT_TRUE(glob_match("*.bn?.weight", "layer1.0.bn2.weight"));
  EXPECT_FALSE(glob_match("fc.*", "fc"));
  EXPECT_TRUE(glob_match("a*b*c", "axxbyyc"));
  EXPECT_FALSE(glob_match("a*b*c", "axxbyy"));
}

TEST(Module, FrozenBatchNormKeepsRunningStatisticsInTrainingMode) {
  Generator g(3);
  const Tensor x = uniform({4, 2, 3, 3}, 2.0, 5.0, g);  // far from the initial running mean 0 / var 1
  BatchNorm2d bn(2);
  bn.train();
  bn.freeze("*");
  EXPECT_FALSE(bn.uses_batch_statistics());
  const Tensor y = bn.forward(x);
  EXPECT_EQ(bn.running_mean().to_vector<float>(), std::vector<float>(2, 0.0f));
  EXPECT_EQ(bn.num_batches_tracked().item<std::int64_t>(), 0);
  // Eval-mode output: (x - 0) / sqrt(1 + eps).
  EXPECT_NEAR(y.to_vector<float>()[0], x.to_vector<float>()[0] / std::sqrt(1 + 1e-5), 1e-5);

  bn.set_train_when_frozen(true);  // the explicit opt-in
  bn.forward(x);
  EXPECT_GT(bn.running_mean().to_vector<float>()[0], 0.2f);
  EXPECT_EQ(bn.num_batches_tracked().item<std::int64_t>(), 1);

  BatchNorm2d trainable(2);
  trainable.forward(x);
  EXPECT_TRUE(trainable.uses_batch_statistics());
  EXPECT_GT(trainable.running_mean().to_vector<float>()[0], 0.2f);
  trainable.eval();
  EXPECT_FALSE(trainable.uses_batch_statistics());
}

TEST(Module, ReplaceSwapsTheHeadAndKeepsTheMode) {
  Generator g(0);
  TinyNet net(g);
  net.eval();
  net.replace("head.1", std::make_shared<Linear>(16, 7, true, g));
  EXPECT_FALSE(net.submodule("head.1").is_training());
  EXPECT_EQ(net.forward(zeros({2, 3, 2, 2})).shape(), Shape({2, 7}));
  EXPECT_THROW(net.replace("head.9", std::make_shared<Identity>()), ValueError);
}

TEST(Module, DropoutIsTheIdentityInEvalMode) {
  Dropout d(0.5, 1);
  const Tensor x = ones({100});
  d.eval();
  EXPECT_TRUE(d.forward(x).is_same(x));
  d.train();
  const auto y = d.forward(x).to_vector<float>();
  int zeros_seen = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.0f || v == 2.0f);
    zeros_seen += v == 0.0f;
  }
  EXPECT_GT(zeros_seen, 25);
  EXPECT_LT(zeros_seen, 75);
}

}  // namespace
}  // namespace tl
