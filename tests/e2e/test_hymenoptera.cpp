// End to end on real photos and real ImageNet weights (label e2e; skipped without ../shared): convert the
// quantized ONNX MobileNetV2 with tl_convert, fine-tune it on the hymenoptera ants-vs-bees photos with
// tl_train — feature extraction and partial fine-tuning — and reach at least 90% validation accuracy with
// each. The same recipes run in PyTorch (bench/peers/pytorch_finetune.py, on the same converted weights) in
// the same test, for comparison.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "tests/support/fixtures.h"
#include "tests/support/run_command.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

using Result = testing::CommandResult;
constexpr auto run = &testing::run_command;

// The last "...accuracy 95.4%..." figure a tool printed, as a fraction.
double accuracy_in(const std::string& output, const std::string& pattern) {
  std::smatch m;
  double value = -1;
  for (auto it = output.cbegin(); std::regex_search(it, output.cend(), m, std::regex(pattern));
       it = m.suffix().first)
    value = std::stod(m[1]);
  return value;
}

class Hymenoptera : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = fs::temp_directory_path() / ("tl_e2e_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  static void TearDownTestSuite() { fs::remove_all(folder_); }

  // tl_convert once for the suite.
  static std::string converted(const std::string& onnx) {
    const std::string h5 = (folder_ / "mobilenet_v2.h5").string();
    if (!fs::exists(h5)) {
      const Result r = run(std::string(TL_TOOLS_DIR) + "/tl_convert " + onnx + " -o " + h5);
      EXPECT_EQ(r.exit_code, 0) << r.output;
    }
    return h5;
  }

  void compare(const std::string& strategy, const std::string& tl_flags, const std::string& peer_flags) {
    TL_REQUIRE_SHARED(onnx, "weights/onnx_mobilenet_v2_quant.onnx");
    TL_REQUIRE_SHARED(data, "data/hymenoptera");
    const std::string weights = converted(onnx);
    const std::string out = (folder_ / strategy).string();
    const auto start = std::chrono::steady_clock::now();
    const Result tl = run(std::string(TL_TOOLS_DIR) + "/tl_train --data " + data + " --weights " + weights +
                          " --reset-head --strategy " + strategy + " " + tl_flags + " --out " + out);
    ASSERT_EQ(tl.exit_code, 0) << tl.output;
    const double tl_best = accuracy_in(tl.output, R"(validation accuracy ([0-9.]+)%)") / 100;
    const double tl_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Result peer =
        run(std::string("/usr/bin/python3 ") + TL_SOURCE_DIR + "/bench/peers/pytorch_finetune.py --weights " +
            weights + " --data " + data + " --strategy " + strategy + " " + peer_flags);
    const double peer_best = accuracy_in(peer.output, R"("best_val_accuracy": ([0-9.]+))");
    const double peer_seconds = accuracy_in(peer.output, R"("seconds": ([0-9.]+))");
    std::printf(
        "%s on hymenoptera: tl %.1f%% in %.0f s, PyTorch %.1f%% in %.0f s (same recipe and weights)\n",
        strategy.c_str(), 100 * tl_best, tl_seconds, 100 * peer_best, peer_seconds);
    EXPECT_GE(tl_best, 0.90) << tl.output;
    EXPECT_EQ(peer.exit_code, 0) << peer.output;
  }

  static fs::path folder_;
};

fs::path Hymenoptera::folder_;

TEST_F(Hymenoptera, FeatureExtractionReachesNinetyPercent) {
  compare("feature-extract", "--no-augment --epochs 5 --batch-size 16", "--epochs 5 --batch-size 16");
}

TEST_F(Hymenoptera, FineTuningReachesNinetyPercent) {
  compare("finetune", "--epochs 3 --batch-size 16 --lr 1e-3 --base-lr 1e-4",
          "--epochs 3 --batch-size 16 --lr 1e-3 --base-lr 1e-4 --augment");
}

}  // namespace
}  // namespace tl
