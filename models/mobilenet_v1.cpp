// MobileNetV1 as keras.applications builds it, so that Keras checkpoints load one-to-one: a 3x3/2 conv with
// TensorFlow 'same' padding, 13 depthwise-separable blocks (stride-2 ones pad (0, 1) explicitly, as Keras'
// ZeroPadding2D does), BatchNorm eps 1e-3 (Keras momentum 0.99 = PyTorch 0.01), ReLU6, global average pool,
// dropout, and the 1x1 "conv_preds" classifier held as a Linear. Names are Keras' layer names
// (conv1, conv1_bn, conv_dw_1, conv_dw_1_bn, conv_pw_1, ..., conv_preds).
#include <string>
#include <vector>

#include "models/architectures.h"
#include "models/blocks.h"

namespace tl::models {
namespace {

constexpr double kEps = 1e-3, kMomentum = 0.01, kDropout = 1e-3;

class MobileNetV1 : public Model {
 public:
  MobileNetV1(double alpha, std::int64_t num_classes, Generator& g) : Model("MobileNetV1") {
    const auto width = [alpha](std::int64_t filters) { return static_cast<std::int64_t>(filters * alpha); };
    Conv2dOptions stem;
    stem.stride_h = stem.stride_w = 2;
    stem.tf_same = true;
    std::int64_t in = width(32);
    add_conv_bn("conv1", std::make_shared<Conv2d>(3, in, 3, 3, stem, false, g));
    constexpr std::pair<std::int64_t, std::int64_t> blocks[] = {
        {64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
        {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
    int id = 1;
    for (const auto& [filters, stride] : blocks) {
      Conv2dOptions dw;
      dw.stride_h = dw.stride_w = stride;
      dw.padding = stride == 1 ? Padding2d::same_all(1) : Padding2d{0, 1, 0, 1};
      dw.groups = in;
      add_conv_bn("conv_dw_" + std::to_string(id), std::make_shared<Conv2d>(in, in, 3, 3, dw, false, g));
      const std::int64_t out = width(filters);
      add_conv_bn("conv_pw_" + std::to_string(id), make_conv2d(in, out, 1, 1, 0, 1, false, g));
      in = out;
      ++id;
    }
    dropout_ = register_module("dropout", std::make_shared<Dropout>(kDropout, g.seed()));
    register_module("conv_preds", make_head(in, {num_classes}, g));
    init_torchvision(*this, /*linear_std=*/0.0, g);
    Preprocessing preprocessing;  // keras' preprocess_input: x / 127.5 - 1
    preprocessing.mean = {0.5, 0.5, 0.5};
    preprocessing.std = {0.5, 0.5, 0.5};
    set_identity(alpha == 1.0 ? "mobilenet_v1" : "mobilenet_v1_" + alpha_name(alpha), preprocessing, in,
                 num_classes, "conv_preds");
  }

  Tensor head_input(const Tensor& x) override {
    Tensor h = x;
    for (const auto& [conv, bn] : stack_) h = relu6(bn->forward(conv->forward(h)));
    return adaptive_avg_pool2d(h, 1, 1).flatten(1);
  }
  Dropout* pre_head_dropout() override { return dropout_.get(); }

  static std::string alpha_name(double alpha) {
    std::string s = std::to_string(alpha);
    while (s.size() > 3 && s.back() == '0') s.pop_back();  // 0.250000 -> 0.25, 1.000000 -> 1.0
    return s;
  }

 private:
  void add_conv_bn(const std::string& name, std::shared_ptr<Conv2d> conv) {
    const std::int64_t channels = conv->weight().size(0);
    auto bn = std::make_shared<BatchNorm2d>(channels, kEps, kMomentum);
    stack_.emplace_back(register_module(name, conv), register_module(name + "_bn", bn));
  }

  std::vector<std::pair<std::shared_ptr<Conv2d>, std::shared_ptr<BatchNorm2d>>> stack_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace

std::shared_ptr<Model> mobilenet_v1(double alpha, std::int64_t num_classes, Generator& generator) {
  return std::make_shared<MobileNetV1>(alpha, num_classes, generator);
}

}  // namespace tl::models
