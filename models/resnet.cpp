// ResNet-18/34/50/101/152 as torchvision builds them (v1.5: a bottleneck's stride sits on its 3x3 conv).
#include "engine/error.h"
#include "models/architectures.h"
#include "models/blocks.h"

namespace tl::models {
namespace {

std::shared_ptr<Sequential> downsample(std::int64_t in, std::int64_t out, std::int64_t stride, Generator& g) {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      make_conv2d(in, out, 1, stride, 0, 1, false, g), std::make_shared<BatchNorm2d>(out)});
}

class BasicBlock : public Module {
 public:
  static constexpr std::int64_t kExpansion = 1;
  BasicBlock(std::int64_t in, std::int64_t planes, std::int64_t stride, Generator& g) : Module("BasicBlock") {
    conv1_ = register_module("conv1", make_conv2d(in, planes, 3, stride, 1, 1, false, g));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2_ = register_module("conv2", make_conv2d(planes, planes, 3, 1, 1, 1, false, g));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    if (stride != 1 || in != planes)
      downsample_ = register_module("downsample", downsample(in, planes, stride, g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = relu(bn1_->forward(conv1_->forward(x)));
    out = bn2_->forward(conv2_->forward(out));
    return relu(add(out, downsample_ ? downsample_->forward(x) : x));
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<Sequential> downsample_;
};

class Bottleneck : public Module {
 public:
  static constexpr std::int64_t kExpansion = 4;
  Bottleneck(std::int64_t in, std::int64_t planes, std::int64_t stride, Generator& g) : Module("Bottleneck") {
    const std::int64_t out = planes * kExpansion;
    conv1_ = register_module("conv1", make_conv2d(in, planes, 1, 1, 0, 1, false, g));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2_ = register_module("conv2", make_conv2d(planes, planes, 3, stride, 1, 1, false, g));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    conv3_ = register_module("conv3", make_conv2d(planes, out, 1, 1, 0, 1, false, g));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out));
    if (stride != 1 || in != out) downsample_ = register_module("downsample", downsample(in, out, stride, g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = relu(bn1_->forward(conv1_->forward(x)));
    out = relu(bn2_->forward(conv2_->forward(out)));
    out = bn3_->forward(conv3_->forward(out));
    return relu(add(out, downsample_ ? downsample_->forward(x) : x));
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<Sequential> downsample_;
};

class ResNet : public Model {
 public:
  template <typename Block>
  ResNet(int depth, const std::array<int, 4>& blocks, std::int64_t num_classes, Generator& g, Block*)
      : Model("ResNet") {
    conv1_ = register_module("conv1", make_conv2d(3, 64, 7, 2, 3, 1, false, g));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    std::int64_t in = 64;
    for (int stage = 0; stage < 4; ++stage) {
      const std::int64_t planes = 64 << stage;
      auto layer = std::make_shared<Sequential>();
      for (int b = 0; b < blocks[stage]; ++b) {
        layer->push_back(std::make_shared<Block>(in, planes, b == 0 && stage > 0 ? 2 : 1, g));
        in = planes * Block::kExpansion;
      }
      layers_[stage] = register_module("layer" + std::to_string(stage + 1), layer);
    }
    register_module("fc", make_head(in, {num_classes}, g));
    init_torchvision(*this, /*linear_std=*/0.0, g);
    set_identity("resnet" + std::to_string(depth), Preprocessing{}, in, num_classes, "fc");
  }

  Tensor head_input(const Tensor& x) override {
    Pool2dOptions pool;
    pool.kernel_h = pool.kernel_w = 3;
    pool.stride_h = pool.stride_w = 2;
    pool.padding = Padding2d::same_all(1);
    Tensor h = max_pool2d(relu(bn1_->forward(conv1_->forward(x))), pool);
    for (const auto& layer : layers_) h = layer->forward(h);
    return adaptive_avg_pool2d(h, 1, 1).flatten(1);
  }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::array<std::shared_ptr<Sequential>, 4> layers_;
};

}  // namespace

std::shared_ptr<Model> resnet(int depth, std::int64_t num_classes, Generator& generator) {
  switch (depth) {
    case 18:
      return std::make_shared<ResNet>(18, std::array{2, 2, 2, 2}, num_classes, generator,
                                      (BasicBlock*)nullptr);
    case 34:
      return std::make_shared<ResNet>(34, std::array{3, 4, 6, 3}, num_classes, generator,
                                      (BasicBlock*)nullptr);
    case 50:
      return std::make_shared<ResNet>(50, std::array{3, 4, 6, 3}, num_classes, generator,
                                      (Bottleneck*)nullptr);
    case 101:
      return std::make_shared<ResNet>(101, std::array{3, 4, 23, 3}, num_classes, generator,
                                      (Bottleneck*)nullptr);
    case 152:
      return std::make_shared<ResNet>(152, std::array{3, 8, 36, 3}, num_classes, generator,
                                      (Bottleneck*)nullptr);
    default:
      break;
  }
  throw ValueError(str("resnet: no ResNet of depth ", depth, " (18, 34, 50, 101 or 152)"));
}

}  // namespace tl::models
