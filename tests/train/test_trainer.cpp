// The trainer on small generated image folders: what it writes, what trains and what stays frozen, resuming
// bit for bit, cached features equal to the uncached loop, gradual unfreezing, and the failures it must
// report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/train/config.h"
#include "engine/train/metrics.h"
#include "engine/train/strategy.h"
#include "engine/train/trainer.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "weights/weights_file.h"

namespace tl::train {
namespace {

namespace fs = std::filesystem;

class Trainer : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_trainer_test_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }

  std::string path(const std::string& name) const { return (folder_ / name).string(); }

  // A small, quick recipe on the shapes folders.
  TrainConfig recipe(const std::string& data, const std::string& out) const {
    TrainConfig c;
    c.data = data;
    c.model = "resnet18";
    c.image_size = 32;
    c.batch_size = 8;
    c.epochs = 2;
    c.workers = 2;
    c.lr = 3e-3;
    c.out = path(out);
    return c;
  }

  // "Pre-trained" weights: a seeded resnet18 with a 10-class head, saved as tl_convert would.
  std::string pretrained() const {
    const std::string file = path("pretrained.h5");
    if (!fs::exists(file)) {
      const auto model = models::create_model("resnet18", 10, 11);
      weights::Metadata m;
      m.architecture = "resnet18";
      m.num_classes = 10;
      weights::save_weights(file, model->state_dict(), m);
    }
    return file;
  }

  static RunOptions quiet() {
    RunOptions o;
    o.quiet = true;
    return o;
  }

  fs::path folder_;
};

TEST(Strategy, AutoFollowsTheTrainingSetSize) {
  const auto model = models::create_model("resnet18", 2);
  TrainConfig c;
  EXPECT_EQ(plan_strategy(c, *model, 999, true).strategy, "feature-extract");
  EXPECT_EQ(plan_strategy(c, *model, 1000, true).strategy, "finetune");
  EXPECT_EQ(plan_strategy(c, *model, 10000, true).strategy, "finetune");
  EXPECT_EQ(plan_strategy(c, *model, 10001, true).strategy, "full");
  EXPECT_EQ(plan_strategy(c, *model, 50, false).strategy, "full");  // random weights: everything trains
  const StrategyPlan finetune = plan_strategy(c, *model, 5000, true);
  EXPECT_EQ(finetune.trainable, (std::vector<std::string>{"fc", "layer4"}));
  EXPECT_NE(finetune.reason.find("5000 training images"), std::string::npos) << finetune.reason;
  c.strategy = "feature-extract";
  EXPECT_THROW(plan_strategy(c, *model, 50, false), ValueError);
  c.strategy = "finetune";
  c.unfreeze = {"layer3", "layer4"};
  EXPECT_EQ(plan_strategy(c, *model, 50, true).trainable,
            (std::vector<std::string>{"fc", "layer3", "layer4"}));
  EXPECT_EQ(last_stage(*models::create_model("mobilenet_v2", 2)),
            (std::vector<std::string>{"features.17", "features.18"}));
}

TEST(Strategy, UnfreezeSchedules) {
  const auto model = models::create_model("mobilenet_v2", 2);
  const auto steps = parse_unfreeze_schedule("0:head,2:features.18,4:all", *model);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].pattern, "classifier.1");
  EXPECT_EQ(steps[1].epoch, 2);
  EXPECT_EQ(steps[2].pattern, "*");
  EXPECT_THROW(parse_unfreeze_schedule("3:fc,1:layer4", *model), ValueError);
  EXPECT_THROW(parse_unfreeze_schedule("x:fc", *model), ValueError);
  EXPECT_THROW(parse_unfreeze_schedule("0fc", *model), ValueError);
  EXPECT_THROW(parse_unfreeze_schedule("", *model), ValueError);
}

TEST(Config, BadValuesNameTheFlag) {
  const auto expect_flag = [](TrainConfig c, const std::string& flag) {
    try {
      validate(c);
      ADD_FAILURE() << "expected a ValueError for " << flag;
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  TrainConfig good;
  good.data = "x";
  good.model = "resnet18";
  EXPECT_NO_THROW(validate(good));
  TrainConfig c = good;
  c.epochs = 0;
  expect_flag(c, "--epochs");
  c = good;
  c.batch_size = 0;
  expect_flag(c, "--batch-size");
  c = good;
  c.lr = 0;
  expect_flag(c, "--lr");
  c = good;
  c.image_size = 1;
  expect_flag(c, "--image-size");
  c = good;
  c.strategy = "partial";
  expect_flag(c, "--strategy");
  c = good;
  c.optimizer = "rmsprop";
  expect_flag(c, "--optimizer");
  c = good;
  c.data.clear();
  expect_flag(c, "--data");
  c = good;
  c.model.clear();
  expect_flag(c, "--model");
  c = good;
  c.group_lrs = {{"layer4", -1}};
  expect_flag(c, "--group-lr");
  EXPECT_EQ(to_json(config_from_json(to_json(good))), to_json(good));
}

TEST(Metrics, AccuracyTopFiveAndConfusion) {
  Accumulator acc(6);
  // Row 0: true 2, predicted 2. Row 1: true 0, predicted 5, true class ranked 6th (outside the top 5).
  const Tensor logits = tensor(std::vector<float>{0, 1, 5, 2, 3, 4, /**/ 0, 1, 2, 3, 4, 5}, {2, 6});
  acc.add(logits, tensor(std::vector<std::int64_t>{2, 0}, {2}), 0.5);
  EXPECT_EQ(acc.count(), 2);
  EXPECT_DOUBLE_EQ(acc.accuracy(), 0.5);
  EXPECT_DOUBLE_EQ(acc.top5(), 0.5);
  EXPECT_DOUBLE_EQ(acc.loss(), 0.5);
  EXPECT_EQ(acc.confusion()[2][2], 1);
  EXPECT_EQ(acc.confusion()[0][5], 1);
}

TEST_F(Trainer, ARunLeavesCheckpointsMetricsAndCurves) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "run");
  c.augment = false;  // random crops of 40-pixel images leave too little to learn in two epochs
  const TrainResult r = train(c, quiet());
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.strategy, "full");
  for (const char* file :
       {"best.h5", "last.h5", "metrics.csv", "metrics.jsonl", "curves.svg", "confusion.csv"})
    EXPECT_TRUE(fs::exists(path("run/") + file)) << file;
  std::ifstream csv(path("run/metrics.csv"));
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("epoch,train_loss,train_accuracy,val_loss,val_accuracy", 0), 0u) << header;
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 2);
  const weights::WeightsFile best = weights::load_weights(path("run/best.h5"));
  EXPECT_EQ(best.metadata.class_names, (std::vector<std::string>{"blue", "green", "red"}));
  EXPECT_EQ(best.metadata.architecture, "resnet18");
  EXPECT_EQ(best.metadata.preprocessing.input_size, 32);
  EXPECT_FALSE(weights::load_weights(path("run/last.h5")).metadata.training_state.empty());
  EXPECT_GT(r.best_val_accuracy, 1.0 / 3);  // better than chance on a learnable task
}

TEST_F(Trainer, ResumingContinuesBitForBit) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "straight");
  c.epochs = 3;
  c.optimizer = "sgd";
  c.scheduler = "step:1:0.5";
  train(c, quiet());
  c.out = path("interrupted");
  c.epochs = 2;
  train(c, quiet());
  const TrainResult resumed = resume(path("interrupted"), 3, quiet());
  EXPECT_EQ(resumed.history.size(), 3u);
  const weights::WeightsFile a = weights::load_weights(path("straight/last.h5"));
  const weights::WeightsFile b = weights::load_weights(path("interrupted/last.h5"));
  for (const auto& [name, t] : a.tensors)
    EXPECT_EQ(t.to_vector<double>(), b.tensors.at(name).to_vector<double>()) << name;
  for (const auto& [name, t] : a.extra)
    EXPECT_EQ(t.to_vector<double>(), b.extra.at(name).to_vector<double>()) << "optimizer state " << name;
}

TEST_F(Trainer, FeatureExtractionLeavesTheBackboneAndItsBatchNormUntouched) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "fe");
  c.model.clear();  // taken from the weights
  c.weights = pretrained();
  c.reset_head = true;
  c.strategy = "feature-extract";
  const TrainResult r = train(c, quiet());
  EXPECT_EQ(r.strategy, "feature-extract");
  const weights::WeightsFile before = weights::load_weights(pretrained());
  const weights::WeightsFile after = weights::load_weights(path("fe/last.h5"));
  std::size_t compared = 0;
  for (const auto& [name, t] : before.tensors) {
    if (name.rfind("fc.", 0) == 0) continue;
    // Weights, BatchNorm running statistics and num_batches_tracked: frozen BatchNorm stays in eval mode.
    EXPECT_EQ(t.to_vector<double>(), after.tensors.at(name).to_vector<double>()) << name;
    ++compared;
  }
  EXPECT_GT(compared, 100u);
  EXPECT_EQ(after.tensors.at("fc.weight").shape(), Shape({3, 512}));
}

TEST_F(Trainer, CachedFeaturesTrainTheSameHeadAsTheUncachedLoop) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "cached");
  c.model.clear();
  c.weights = pretrained();
  c.reset_head = true;
  c.strategy = "feature-extract";
  c.augment = false;
  c.cache_features = "on";
  const TrainResult cached = train(c, quiet());
  c.cache_features = "off";
  c.out = path("uncached");
  const TrainResult uncached = train(c, quiet());
  const auto a = weights::load_weights(path("cached/last.h5")).tensors.at("fc.weight").to_vector<double>();
  const auto b = weights::load_weights(path("uncached/last.h5")).tensors.at("fc.weight").to_vector<double>();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ(cached.history.back().val_accuracy, uncached.history.back().val_accuracy);
}

TEST_F(Trainer, GradualUnfreezingTrainsBlocksFromTheirEpoch) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "gradual");
  c.model.clear();
  c.weights = pretrained();
  c.reset_head = true;
  c.strategy = "finetune";
  c.unfreeze_schedule = "0:fc,1:layer4";
  c.group_lrs = {{"layer4", 1e-4}};
  train(c, quiet());
  const weights::WeightsFile before = weights::load_weights(pretrained());
  const weights::WeightsFile after = weights::load_weights(path("gradual/last.h5"));
  EXPECT_NE(before.tensors.at("layer4.1.conv2.weight").to_vector<float>(),
            after.tensors.at("layer4.1.conv2.weight").to_vector<float>());
  EXPECT_EQ(before.tensors.at("layer3.1.conv2.weight").to_vector<float>(),
            after.tensors.at("layer3.1.conv2.weight").to_vector<float>());
  EXPECT_TRUE(after.extra.contains("group.layer4.lr")) << "layer4 joined the optimizer in its own group";
}

TEST_F(Trainer, AHeadOfAnotherSizeNeedsToBeAskedFor) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "refused");
  c.model.clear();
  c.weights = pretrained();
  try {
    train(c, quiet());
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("--reset-head"), std::string::npos) << e.what();
  }
  c.model = "resnet34";
  EXPECT_THROW(train(c, quiet()), ValueError);  // the weights are resnet18's
}

TEST_F(Trainer, ADivergingLossStopsTheRunNamingTheStep) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TrainConfig c = recipe(shapes, "diverged");
  c.optimizer = "sgd";
  c.momentum = 0;
  c.lr = 1e30;
  try {
    train(c, quiet());
    FAIL() << "expected DivergedError";
  } catch (const DivergedError& e) {
    EXPECT_NE(std::string(e.what()).find("epoch 1, step"), std::string::npos) << e.what();
  }
}

TEST_F(Trainer, UnreadableFilesAreSkippedAndListed) {
  TL_REQUIRE_FIXTURE(bad, "train/bad");
  TrainConfig c = recipe(bad, "bad");
  c.val_fraction = 0.25;
  c.epochs = 1;
  const TrainResult r = train(c, quiet());
  std::vector<std::string> names;
  for (const auto& b : r.bad_samples) names.push_back(fs::path(b.name).filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"animated.gif", "corrupt.jpg", "notes.jpg", "zero_bytes.jpg"}));
  c.strict_data = true;
  c.out = path("strict");
  EXPECT_THROW(train(c, quiet()), Error);
}

TEST_F(Trainer, OneClassOrAnEmptyClassIsRefused) {
  TL_REQUIRE_FIXTURE(one, "train/one_class");
  TL_REQUIRE_FIXTURE(empty, "train/empty_class");
  EXPECT_THROW(train(recipe(one, "one"), quiet()), ValueError);
  EXPECT_THROW(train(recipe(empty, "empty"), quiet()), ValueError);
  EXPECT_THROW(train(recipe(path("no-such-folder"), "none"), quiet()), ValueError);
}

}  // namespace
}  // namespace tl::train
