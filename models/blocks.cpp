#include "models/blocks.h"

#include "engine/init.h"

namespace tl::models {

std::int64_t make_divisible(double v, std::int64_t divisor) {
  const std::int64_t rounded =
      static_cast<std::int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor;
  std::int64_t out = std::max(divisor, rounded);
  if (static_cast<double>(out) < 0.9 * v) out += divisor;
  return out;
}

std::shared_ptr<Sequential> conv_norm_activation(const ConvNormActConfig& c, Generator& generator) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = c.stride;
  o.padding = c.padding ? *c.padding : Padding2d::same_all((c.kernel - 1) / 2 * c.dilation);
  o.dilation_h = o.dilation_w = c.dilation;
  o.groups = c.groups;
  auto block = std::make_shared<Sequential>();
  block->push_back(std::make_shared<Conv2d>(c.in, c.out, c.kernel, c.kernel, o, false, generator));
  block->push_back(std::make_shared<BatchNorm2d>(c.out, c.bn_eps, c.bn_momentum));
  if (c.activation) block->push_back(std::make_shared<Activation>(*c.activation));
  return block;
}

SqueezeExcitation::SqueezeExcitation(std::int64_t channels, std::int64_t squeeze_channels,
                                     Generator& generator)
    : Module("SqueezeExcitation") {
  fc1_ = register_module("fc1", make_conv2d(channels, squeeze_channels, 1, 1, 0, 1, true, generator));
  fc2_ = register_module("fc2", make_conv2d(squeeze_channels, channels, 1, 1, 0, 1, true, generator));
}

Tensor SqueezeExcitation::forward(const Tensor& x) {
  const Tensor scale = hardsigmoid(fc2_->forward(relu(fc1_->forward(adaptive_avg_pool2d(x, 1, 1)))));
  return channel_mul(x, scale);
}

void init_torchvision(Module& model, double linear_std, Generator& generator) {
  for (const auto& [_, module] : model.named_modules()) {
    if (auto* conv = dynamic_cast<Conv2d*>(module)) {
      init_kaiming_normal_fan_out(conv->weight(), generator);
      if (conv->bias().defined()) init_constant(conv->bias(), 0.0);
    } else if (auto* bn = dynamic_cast<BatchNorm2d*>(module)) {
      init_constant(bn->weight(), 1.0);
      init_constant(bn->bias(), 0.0);
    } else if (auto* fc = dynamic_cast<Linear*>(module); fc && linear_std > 0) {
      init_normal(fc->weight(), 0.0, linear_std, generator);
      if (fc->bias().defined()) init_constant(fc->bias(), 0.0);
    }
  }
}

}  // namespace tl::models
