// Loading weight files into models: the architecture must match, and a head of another size is re-initialised
// only when asked, keeping the backbone.
#include <gtest/gtest.h>

#include "engine/error.h"
#include "models/registry.h"
#include "weights/pretrained.h"

namespace tl::weights {
namespace {

WeightsFile file_of(const models::Model& model) {
  WeightsFile file;
  for (const auto& [name, t] : model.state_dict()) file.tensors.insert(name, t.detach().clone());
  file.metadata.architecture = model.architecture();
  file.metadata.num_classes = model.num_classes();
  file.metadata.preprocessing.mean = {0.5, 0.5, 0.5};
  return file;
}

TEST(Pretrained, LoadsAndAdoptsThePreprocessing) {
  const auto source = models::create_model("resnet18", 10, 1);
  const auto target = models::create_model("resnet18", 10, 2);
  const LoadReport report = load_pretrained(*target, file_of(*source), "r18.h5");
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(target->state_dict().at("layer4.1.conv2.weight").to_vector<float>(),
            source->state_dict().at("layer4.1.conv2.weight").to_vector<float>());
  EXPECT_DOUBLE_EQ(target->preprocessing().mean[0], 0.5);
}

TEST(Pretrained, ARefusedArchitectureNamesBoth) {
  const auto source = models::create_model("resnet18", 10);
  const auto target = models::create_model("resnet34", 10);
  try {
    load_pretrained(*target, file_of(*source), "r18.h5");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("r18.h5 holds resnet18 weights, but the model is resnet34"), std::string::npos) << m;
  }
}

TEST(Pretrained, ANewHeadOnlyWhenAsked) {
  const auto source = models::create_model("mobilenet_v2", 1000, 1);
  const auto target = models::create_model("mobilenet_v2", 2, 2);
  const auto fresh_head = target->state_dict().at("classifier.1.weight").to_vector<float>();
  try {
    load_pretrained(*target, file_of(*source), "imagenet.h5");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("classifier.1.weight [1000, 1280]"), std::string::npos) << m;
    EXPECT_NE(m.find("reset_head"), std::string::npos) << m;
  }
  load_pretrained(*target, file_of(*source), "imagenet.h5", {.reset_head = true});
  EXPECT_EQ(target->state_dict().at("features.18.0.weight").to_vector<float>(),
            source->state_dict().at("features.18.0.weight").to_vector<float>());
  EXPECT_EQ(target->state_dict().at("classifier.1.weight").to_vector<float>(), fresh_head);
}

TEST(Pretrained, AMissingBackboneTensorIsAnError) {
  const auto source = models::create_model("resnet18", 10);
  WeightsFile file = file_of(*source);
  file.tensors.erase("layer2.0.bn1.running_var");
  const auto target = models::create_model("resnet18", 10);
  try {
    load_pretrained(*target, file, "cut.h5");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cut.h5 does not fit resnet18"), std::string::npos) << m;
    EXPECT_NE(m.find("layer2.0.bn1.running_var"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace tl::weights
