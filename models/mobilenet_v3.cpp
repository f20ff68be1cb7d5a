// MobileNetV3 large and small as torchvision builds them: inverted residuals with optional squeeze-excitation
// (hardsigmoid gate), ReLU or hardswish, BatchNorm eps 1e-3 / momentum 0.01, and a
// Linear-Hardswish-Dropout-Linear classifier.
#include <vector>

#include "models/architectures.h"
#include "models/blocks.h"

namespace tl::models {
namespace {

constexpr double kEps = 1e-3, kMomentum = 0.01;

struct BlockConfig {
  std::int64_t in, kernel, expanded, out;
  bool squeeze_excite, hardswish;
  std::int64_t stride;
};

// torchvision's _mobilenet_v3_conf (width 1.0, no reduced tail, no dilation): input, kernel, expanded,
// output, SE, activation (true = hardswish), stride.
const std::vector<BlockConfig> kLarge = {
    {16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},  {24, 3, 72, 24, false, false, 1},
    {24, 5, 72, 40, true, false, 2},   {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},  {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1}, {160, 5, 960, 160, true, true, 1}};
const std::vector<BlockConfig> kSmall = {
    {16, 3, 16, 16, true, false, 2}, {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
    {24, 5, 96, 40, true, true, 2},  {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1}, {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
    {96, 5, 576, 96, true, true, 1}, {96, 5, 576, 96, true, true, 1}};

ConvNormActConfig v3_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                          std::int64_t groups, std::optional<Activation::Kind> activation) {
  ConvNormActConfig c;
  c.in = in;
  c.out = out;
  c.kernel = kernel;
  c.stride = stride;
  c.groups = groups;
  c.bn_eps = kEps;
  c.bn_momentum = kMomentum;
  c.activation = activation;
  return c;
}

class InvertedResidualV3 : public Module {
 public:
  InvertedResidualV3(const BlockConfig& c, Generator& g)
      : Module("InvertedResidual"), use_residual_(c.stride == 1 && c.in == c.out) {
    const auto act = c.hardswish ? Activation::Kind::Hardswish : Activation::Kind::ReLU;
    auto block = std::make_shared<Sequential>();
    if (c.expanded != c.in)
      block->push_back(conv_norm_activation(v3_conv(c.in, c.expanded, 1, 1, 1, act), g));
    block->push_back(
        conv_norm_activation(v3_conv(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, act), g));
    if (c.squeeze_excite)
      block->push_back(std::make_shared<SqueezeExcitation>(
          c.expanded, make_divisible(static_cast<double>(c.expanded / 4)), g));
    block->push_back(conv_norm_activation(v3_conv(c.expanded, c.out, 1, 1, 1, std::nullopt), g));
    block_ = register_module("block", block);
  }
  Tensor forward(const Tensor& x) override {
    const Tensor y = block_->forward(x);
    return use_residual_ ? add(y, x) : y;
  }

 private:
  bool use_residual_;
  std::shared_ptr<Sequential> block_;
};

class MobileNetV3 : public Model {
 public:
  MobileNetV3(bool large, std::int64_t num_classes, Generator& g) : Model("MobileNetV3") {
    const std::vector<BlockConfig>& blocks = large ? kLarge : kSmall;
    const std::int64_t last_channel = large ? 1280 : 1024;
    auto features = std::make_shared<Sequential>();
    features->push_back(
        conv_norm_activation(v3_conv(3, blocks.front().in, 3, 2, 1, Activation::Kind::Hardswish), g));
    for (const BlockConfig& c : blocks) features->push_back(std::make_shared<InvertedResidualV3>(c, g));
    const std::int64_t last_in = blocks.back().out, last_out = 6 * last_in;
    features->push_back(
        conv_norm_activation(v3_conv(last_in, last_out, 1, 1, 1, Activation::Kind::Hardswish), g));
    features_ = register_module("features", features);
    pre_logits_ = std::make_shared<Linear>(last_out, last_channel, true, g);
    dropout_ = std::make_shared<Dropout>(0.2, g.seed());
    register_module("classifier", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                                      pre_logits_, std::make_shared<Activation>(Activation::Kind::Hardswish),
                                      dropout_, make_head(last_channel, {num_classes}, g)}));
    init_torchvision(*this, /*linear_std=*/0.01, g);
    set_identity(large ? "mobilenet_v3_large" : "mobilenet_v3_small", Preprocessing{}, last_channel,
                 num_classes, "classifier.3");
  }

  // classifier.0 (Linear) and classifier.1 (Hardswish) belong to the backbone side; classifier.2 is the
  // dropout.
  Tensor head_input(const Tensor& x) override {
    return hardswish(pre_logits_->forward(adaptive_avg_pool2d(features_->forward(x), 1, 1).flatten(1)));
  }
  Dropout* pre_head_dropout() override { return dropout_.get(); }

 private:
  std::shared_ptr<Sequential> features_;
  std::shared_ptr<Linear> pre_logits_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace

std::shared_ptr<Model> mobilenet_v3(bool large, std::int64_t num_classes, Generator& generator) {
  return std::make_shared<MobileNetV3>(large, num_classes, generator);
}

}  // namespace tl::models
