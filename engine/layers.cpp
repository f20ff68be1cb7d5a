#include "engine/layers.h"

#include "engine/error.h"
#include "engine/init.h"

namespace tl {

// ---- Conv2d -----------------------------------------------------------------------------------------------

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_h,
               std::int64_t kernel_w, const Conv2dOptions& options, bool bias, Generator& generator)
    : Module("Conv2d"), options_(options) {
  TL_CHECK(options.groups >= 1 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
           ValueError, "Conv2d: ", in_channels, " input and ", out_channels,
           " output channels must be divisible by groups = ", options.groups);
  TL_CHECK(in_channels >= 1 && out_channels >= 1 && kernel_h >= 1 && kernel_w >= 1, ValueError,
           "Conv2d: channels and kernel sizes must be positive, got ", in_channels, " -> ", out_channels,
           ", ", kernel_h, "x", kernel_w);
  weight_ =
      register_parameter("weight", empty({out_channels, in_channels / options.groups, kernel_h, kernel_w}));
  init_default_uniform(weight_, fan_in(weight_), generator);
  if (bias) {
    bias_ = register_parameter("bias", empty({out_channels}));
    init_default_uniform(bias_, fan_in(weight_), generator);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight_, bias_, options_);
}

std::string Conv2d::extra_description() const {
  const Padding2d& p = options_.padding;
  std::string out = str(weight_.size(1) * options_.groups, ", ", weight_.size(0), ", kernel ",
                        weight_.size(2), "x", weight_.size(3));
  if (options_.stride_h != 1 || options_.stride_w != 1)
    out += str(", stride ", options_.stride_h, "x", options_.stride_w);
  if (p.top || p.bottom || p.left || p.right)
    out += str(", padding ", p.top, "/", p.bottom, "/", p.left, "/", p.right);
  if (options_.dilation_h != 1 || options_.dilation_w != 1)
    out += str(", dilation ", options_.dilation_h, "x", options_.dilation_w);
  if (options_.groups != 1) out += str(", groups ", options_.groups);
  if (!bias_.defined()) out += ", no bias";
  return out;
}

std::shared_ptr<Conv2d> make_conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
                                    std::int64_t stride, std::int64_t padding, std::int64_t groups, bool bias,
                                    Generator& generator) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = stride;
  o.padding = Padding2d::same_all(padding);
  o.groups = groups;
  return std::make_shared<Conv2d>(in_channels, out_channels, kernel, kernel, o, bias, generator);
}

// ---- BatchNorm2d ------------------------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(std::int64_t channels, double eps, double momentum)
    : Module("BatchNorm2d"), eps_(eps), momentum_(momentum) {
  TL_CHECK(channels >= 1, ValueError, "BatchNorm2d: needs at least one channel, got ", channels);
  weight_ = register_parameter("weight", ones({channels}));
  bias_ = register_parameter("bias", zeros({channels}));
  running_mean_ = register_buffer("running_mean", zeros({channels}));
  running_var_ = register_buffer("running_var", ones({channels}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::Int64));
}

bool BatchNorm2d::uses_batch_statistics() const {
  return is_training() && (weight_.requires_grad() || bias_.requires_grad() || train_when_frozen_);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  const bool batch_stats = uses_batch_statistics();
  if (batch_stats) ++*num_batches_tracked_.data<std::int64_t>();
  return batch_norm2d(x, weight_, bias_, running_mean_, running_var_, batch_stats, momentum_, eps_);
}

std::string BatchNorm2d::extra_description() const {
  return str(weight_.size(0), ", eps ", eps_, ", momentum ", momentum_);
}

// ---- Linear -----------------------------------------------------------------------------------------------

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator)
    : Module("Linear") {
  TL_CHECK(in_features >= 1 && out_features >= 1, ValueError, "Linear: feature counts must be positive, got ",
           in_features, " -> ", out_features);
  weight_ = register_parameter("weight", empty({out_features, in_features}));
  init_default_uniform(weight_, in_features, generator);
  if (bias) {
    bias_ = register_parameter("bias", empty({out_features}));
    init_default_uniform(bias_, in_features, generator);
  }
}

Tensor Linear::forward(const Tensor& x) {
  return linear(x, weight_, bias_);
}

std::string Linear::extra_description() const {
  return str(weight_.size(1), " -> ", weight_.size(0), bias_.defined() ? "" : ", no bias");
}

// ---- activations, dropout, sequential ---------------------------------------------------------------------

namespace {
const char* activation_type(Activation::Kind kind) {
  switch (kind) {
    case Activation::Kind::ReLU:
      return "ReLU";
    case Activation::Kind::ReLU6:
      return "ReLU6";
    case Activation::Kind::Hardswish:
      return "Hardswish";
    case Activation::Kind::Hardsigmoid:
      return "Hardsigmoid";
    case Activation::Kind::Sigmoid:
      return "Sigmoid";
    case Activation::Kind::SiLU:
      return "SiLU";
  }
  return "?";
}
}  // namespace

Activation::Activation(Kind kind) : Module(activation_type(kind)), kind_(kind) {}

Tensor Activation::forward(const Tensor& x) {
  switch (kind_) {
    case Kind::ReLU:
      return relu(x);
    case Kind::ReLU6:
      return relu6(x);
    case Kind::Hardswish:
      return hardswish(x);
    case Kind::Hardsigmoid:
      return hardsigmoid(x);
    case Kind::Sigmoid:
      return sigmoid(x);
    case Kind::SiLU:
      return silu(x);
  }
  return x;
}

Dropout::Dropout(double p, std::uint64_t seed) : Module("Dropout"), p_(p), generator_(seed) {
  TL_CHECK(p >= 0 && p < 1, ValueError, "Dropout: probability must be in [0, 1), got ", p);
}

std::string Dropout::extra_description() const {
  return str("p ", p_);
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) : Module("Sequential") {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(named_children().size()), std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [_, child] : named_children()) h = child->forward(h);
  return h;
}

}  // namespace tl
