// MobileNetV2 as torchvision builds it: inverted residuals (expand 1x1, depthwise 3x3, project 1x1), ReLU6,
// a 1280-wide last conv, and a Dropout(0.2) + Linear classifier.
#include <cmath>

#include "models/architectures.h"
#include "models/blocks.h"

namespace tl::models {
namespace {

// The two layouts differ only in padding of stride-2 3x3 convs and in BatchNorm's epsilon.
struct Layout {
  bool keras = false;
  double eps() const { return keras ? 1e-3 : 1e-5; }
  double momentum() const { return keras ? 0.001 : 0.1; }  // Keras momentum 0.999 is PyTorch's 0.001
  ConvNormActConfig conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                         std::int64_t groups) const {
    ConvNormActConfig c;
    c.in = in;
    c.out = out;
    c.kernel = kernel;
    c.stride = stride;
    c.groups = groups;
    c.bn_eps = eps();
    c.bn_momentum = momentum();
    c.activation = Activation::Kind::ReLU6;
    if (keras && stride == 2) c.padding = Padding2d{0, 1, 0, 1};
    return c;
  }
  ConvNormActConfig conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride,
                            std::int64_t groups) const {
    return conv(in, out, 3, stride, groups);
  }
  ConvNormActConfig conv1x1(std::int64_t in, std::int64_t out) const { return conv(in, out, 1, 1, 1); }
};

class InvertedResidual : public Module {
 public:
  InvertedResidual(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t expand_ratio,
                   const Layout& layout, Generator& g)
      : Module("InvertedResidual"), use_residual_(stride == 1 && in == out) {
    const std::int64_t hidden =
        static_cast<std::int64_t>(std::lround(static_cast<double>(in * expand_ratio)));
    auto conv = std::make_shared<Sequential>();
    if (expand_ratio != 1) conv->push_back(conv_norm_activation(layout.conv1x1(in, hidden), g));
    conv->push_back(conv_norm_activation(layout.conv3x3(hidden, hidden, stride, hidden), g));
    conv->push_back(make_conv2d(hidden, out, 1, 1, 0, 1, false, g));
    conv->push_back(std::make_shared<BatchNorm2d>(out, layout.eps(), layout.momentum()));
    conv_ = register_module("conv", conv);
  }
  Tensor forward(const Tensor& x) override {
    const Tensor y = conv_->forward(x);
    return use_residual_ ? add(x, y) : y;
  }

 private:
  bool use_residual_;
  std::shared_ptr<Sequential> conv_;
};

class MobileNetV2 : public Model {
 public:
  MobileNetV2(std::int64_t num_classes, double width_mult, const Layout& layout, Generator& g)
      : Model("MobileNetV2") {
    struct Stage {
      std::int64_t expand, channels, repeats, stride;
    };
    constexpr Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    std::int64_t in = make_divisible(32 * width_mult);
    const std::int64_t last = make_divisible(1280 * std::max(1.0, width_mult));
    auto features = std::make_shared<Sequential>();
    features->push_back(conv_norm_activation(layout.conv3x3(3, in, 2, 1), g));
    for (const Stage& s : stages) {
      const std::int64_t out = make_divisible(static_cast<double>(s.channels) * width_mult);
      for (std::int64_t i = 0; i < s.repeats; ++i) {
        features->push_back(
            std::make_shared<InvertedResidual>(in, out, i == 0 ? s.stride : 1, s.expand, layout, g));
        in = out;
      }
    }
    features->push_back(conv_norm_activation(layout.conv1x1(in, last), g));
    features_ = register_module("features", features);
    dropout_ = std::make_shared<Dropout>(0.2, g.seed());
    register_module("classifier", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                                      dropout_, make_head(last, {num_classes}, g)}));
    init_torchvision(*this, /*linear_std=*/0.01, g);
    Preprocessing preprocessing;
    if (layout.keras) preprocessing.mean = preprocessing.std = {0.5, 0.5, 0.5};  // keras: x / 127.5 - 1
    set_identity(layout.keras ? "mobilenet_v2_keras" : "mobilenet_v2", preprocessing, last, num_classes,
                 "classifier.1");
  }

  Tensor head_input(const Tensor& x) override {
    return adaptive_avg_pool2d(features_->forward(x), 1, 1).flatten(1);
  }
  Dropout* pre_head_dropout() override { return dropout_.get(); }

 private:
  std::shared_ptr<Sequential> features_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace

std::shared_ptr<Model> mobilenet_v2(std::int64_t num_classes, Generator& generator, double width_mult,
                                    bool keras_layout) {
  return std::make_shared<MobileNetV2>(num_classes, width_mult, Layout{keras_layout}, generator);
}

}  // namespace tl::models
