// Building blocks shared by the MobileNets: conv-BN-activation stacks, squeeze-excitation, channel rounding.
#pragma once

#include <memory>
#include <optional>

#include "engine/layers.h"

namespace tl::models {

// torchvision's _make_divisible: the nearest multiple of `divisor`, never more than 10% below v.
std::int64_t make_divisible(double v, std::int64_t divisor = 8);

struct ConvNormActConfig {
  std::int64_t in = 0, out = 0, kernel = 3, stride = 1, groups = 1, dilation = 1;
  double bn_eps = 1e-5, bn_momentum = 0.1;
  std::optional<Activation::Kind> activation = Activation::Kind::ReLU;  // nullopt: conv and norm only
  std::optional<Padding2d> padding;  // default: (kernel - 1) / 2 * dilation on every side
};

// torchvision's Conv2dNormActivation: Sequential(conv (no bias, padding (k-1)/2 * dilation), BatchNorm2d,
// activation), children "0", "1", "2".
std::shared_ptr<Sequential> conv_norm_activation(const ConvNormActConfig& config, Generator& generator);

// torchvision's SqueezeExcitation: x * hardsigmoid(fc2(relu(fc1(avgpool(x))))), fc1/fc2 1x1 convs with bias.
class SqueezeExcitation : public Module {
 public:
  SqueezeExcitation(std::int64_t channels, std::int64_t squeeze_channels, Generator& generator);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<Conv2d> fc1_, fc2_;
};

// torchvision's weight init for ResNet and the MobileNets: convs kaiming-normal (fan_out) with zero bias,
// BatchNorm weight 1 and bias 0, and Linear layers N(0, linear_std) with zero bias (ResNet keeps PyTorch's
// default Linear init: pass linear_std = 0).
void init_torchvision(Module& model, double linear_std, Generator& generator);

}  // namespace tl::models
