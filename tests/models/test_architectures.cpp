// The architectures: parameter counts equal torchvision's published ones, state-dict names and shapes are
// torchvision's keys, outputs have the right shapes at 224 and at a small size, and heads can be replaced.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "models/registry.h"

namespace tl::models {
namespace {

struct Expected {
  const char* name;
  std::int64_t parameters;  // torchvision's documented counts (1000 classes)
  std::int64_t features;
};

class Architectures : public ::testing::TestWithParam<Expected> {};

TEST_P(Architectures, ParameterCountMatchesTorchvision) {
  const Expected e = GetParam();
  const auto model = create_model(e.name);
  EXPECT_EQ(model->parameter_count(), e.parameters) << e.name;
  EXPECT_EQ(model->num_features(), e.features);
  EXPECT_EQ(model->num_classes(), 1000);
  EXPECT_EQ(model->architecture(), e.name);
}

INSTANTIATE_TEST_SUITE_P(
    Torchvision, Architectures,
    ::testing::Values(Expected{"resnet18", 11689512, 512}, Expected{"resnet34", 21797672, 512},
                      Expected{"resnet50", 25557032, 2048}, Expected{"resnet101", 44549160, 2048},
                      Expected{"resnet152", 60192808, 2048}, Expected{"mobilenet_v2", 3504872, 1280},
                      Expected{"mobilenet_v3_small", 2542856, 1024},
                      Expected{"mobilenet_v3_large", 5483032, 1280}),
    [](const auto& info) { return std::string(info.param.name); });

Shape shape_of(const Model& m, const std::string& key) {
  return m.state_dict().at(key).shape();
}

TEST(Architectures, StateDictKeysAreTorchvisions) {
  const auto r50 = create_model("resnet50");
  EXPECT_EQ(shape_of(*r50, "conv1.weight"), Shape({64, 3, 7, 7}));
  EXPECT_EQ(shape_of(*r50, "layer1.0.downsample.0.weight"), Shape({256, 64, 1, 1}));
  EXPECT_EQ(shape_of(*r50, "layer3.0.conv2.weight"), Shape({256, 256, 3, 3}));
  EXPECT_EQ(shape_of(*r50, "layer4.2.bn3.running_var"), Shape({2048}));
  EXPECT_EQ(shape_of(*r50, "layer4.2.bn3.num_batches_tracked"), Shape({}));
  EXPECT_EQ(shape_of(*r50, "fc.weight"), Shape({1000, 2048}));
  EXPECT_EQ(r50->state_dict().size(), 320u);  // torchvision's resnet50 state dict has 320 entries

  const auto v2 = create_model("mobilenet_v2");
  EXPECT_EQ(shape_of(*v2, "features.0.0.weight"), Shape({32, 3, 3, 3}));
  EXPECT_EQ(shape_of(*v2, "features.1.conv.0.0.weight"), Shape({32, 1, 3, 3}));
  EXPECT_EQ(shape_of(*v2, "features.1.conv.1.weight"), Shape({16, 32, 1, 1}));
  EXPECT_EQ(shape_of(*v2, "features.2.conv.0.0.weight"), Shape({96, 16, 1, 1}));
  EXPECT_EQ(shape_of(*v2, "features.18.1.running_mean"), Shape({1280}));
  EXPECT_EQ(shape_of(*v2, "classifier.1.weight"), Shape({1000, 1280}));
  EXPECT_EQ(v2->state_dict().size(), 314u);

  const auto v3l = create_model("mobilenet_v3_large");
  EXPECT_EQ(shape_of(*v3l, "features.1.block.0.0.weight"), Shape({16, 1, 3, 3}));
  EXPECT_EQ(shape_of(*v3l, "features.4.block.2.fc1.weight"), Shape({24, 72, 1, 1}));
  EXPECT_EQ(shape_of(*v3l, "features.4.block.2.fc2.bias"), Shape({72}));
  EXPECT_EQ(shape_of(*v3l, "features.16.0.weight"), Shape({960, 160, 1, 1}));
  EXPECT_EQ(shape_of(*v3l, "classifier.0.weight"), Shape({1280, 960}));
  EXPECT_EQ(shape_of(*v3l, "classifier.3.weight"), Shape({1000, 1280}));

  const auto v3s = create_model("mobilenet_v3_small");
  EXPECT_EQ(shape_of(*v3s, "features.1.block.1.fc1.weight"), Shape({8, 16, 1, 1}));
  EXPECT_EQ(shape_of(*v3s, "classifier.0.weight"), Shape({1024, 576}));
}

TEST(Architectures, MobileNetV1FollowsKerasNames) {
  const auto v1 = create_model("mobilenet_v1_0.25");
  EXPECT_EQ(shape_of(*v1, "conv1.weight"), Shape({8, 3, 3, 3}));
  EXPECT_EQ(shape_of(*v1, "conv1_bn.running_var"), Shape({8}));
  EXPECT_EQ(shape_of(*v1, "conv_dw_2.weight"), Shape({16, 1, 3, 3}));
  EXPECT_EQ(shape_of(*v1, "conv_pw_13.weight"), Shape({256, 256, 1, 1}));
  EXPECT_EQ(shape_of(*v1, "conv_preds.weight"), Shape({1000, 256}));
  EXPECT_EQ(v1->num_features(), 256);
  EXPECT_DOUBLE_EQ(v1->preprocessing().mean[0], 0.5);
  EXPECT_EQ(v1->architecture(), "mobilenet_v1_0.25");
  EXPECT_EQ(create_model("mobilenet_v1")->num_features(), 1024);
  EXPECT_EQ(create_model("mobilenet_v1")->architecture(), "mobilenet_v1");
}

TEST(Architectures, OutputShapesAtSmallAndFullSize) {
  NoGradGuard no_grad;
  for (const std::string& name : architecture_names("*")) {
    if (name == "resnet101" || name == "resnet152") continue;  // same code as resnet50, only deeper
    const auto model = create_model(name, 10);
    model->eval();
    Generator g(1);
    EXPECT_EQ(model->forward(uniform({2, 3, 64, 64}, -1, 1, g)).shape(), Shape({2, 10})) << name;
    if (name == "resnet18" || name == "mobilenet_v2" || name == "mobilenet_v1_0.25") {
      EXPECT_EQ(model->forward(uniform({1, 3, 224, 224}, -1, 1, g)).shape(), Shape({1, 10})) << name;
    }
  }
}

TEST(Architectures, FeatureExtractorAndReplacedHeads) {
  NoGradGuard no_grad;
  Generator g(2);
  const Tensor x = uniform({2, 3, 64, 64}, -1, 1, g);
  const auto features = create_model("resnet18", 0);
  features->eval();
  EXPECT_EQ(features->forward(x).shape(), Shape({2, 512}));
  EXPECT_EQ(features->num_classes(), 0);

  const auto model = create_model("mobilenet_v2");
  model->eval();
  model->replace_head({5}, g);
  EXPECT_EQ(shape_of(*model, "classifier.1.weight"), Shape({5, 1280}));
  EXPECT_EQ(model->forward(x).shape(), Shape({2, 5}));
  model->replace_head({3, 512, 0.3}, g);  // the seed's MLP head
  EXPECT_EQ(shape_of(*model, "classifier.1.0.weight"), Shape({512, 1280}));
  EXPECT_EQ(shape_of(*model, "classifier.1.3.weight"), Shape({3, 512}));
  EXPECT_EQ(model->forward(x).shape(), Shape({2, 3}));
  EXPECT_EQ(model->num_classes(), 3);
}

TEST(Architectures, UnknownNamesAreRefusedWithTheList) {
  try {
    create_model("resnet51");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos) << e.what();
  }
  EXPECT_EQ(architecture_names("resnet*").size(), 5u);
  EXPECT_THROW(create_model("resnet18", -1), ValueError);
}

}  // namespace
}  // namespace tl::models
