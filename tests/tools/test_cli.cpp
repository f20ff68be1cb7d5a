// The command-line tools as a user runs them: tl_convert, tl_predict and tl_models on good and bad input.
// Every bad input must give a message naming the file or flag, a non-zero exit (never a signal), and leave
// any earlier output untouched.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/npy.h"
#include "tests/support/fixtures.h"
#include "tests/support/numeric.h"
#include "tests/support/run_command.h"
#include "weights/weights_file.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

using Result = testing::CommandResult;
constexpr auto run = &testing::run_command;

std::string tool(const char* name) {
  return std::string(TL_TOOLS_DIR) + "/" + name;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_cli_test_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }
  std::string out(const std::string& name) const { return (folder_ / name).string(); }

  // Runs a command that must fail cleanly with `fragment` in its message.
  void expect_failure(const std::string& command, const std::string& fragment) {
    const Result r = run(command);
    EXPECT_FALSE(r.crashed) << command << "\n" << r.output;
    EXPECT_NE(r.exit_code, 0) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(fragment), std::string::npos) << command << "\n" << r.output;
  }

  fs::path folder_;
};

TEST_F(Cli, ConvertRefusesBadInputAndLeavesNothingBehind) {
  TL_REQUIRE_FIXTURE(pth, "pth");
  TL_REQUIRE_FIXTURE(resnet18, "torchvision/resnet18/model.pth");
  const std::string target = out("w.h5");
  expect_failure(tool("tl_convert") + " " + pth + "/evil_system_zip.pth -o " + target, "refusing");
  expect_failure(tool("tl_convert") + " " + pth + "/truncated_zip_2859.pth -o " + target,
                 "truncated_zip_2859.pth");
  expect_failure(tool("tl_convert") + " " + pth + "/whole_model_zip.pth -o " + target, "state_dict");
  expect_failure(tool("tl_convert") + " " + resnet18 + " --arch resnet50 -o " + target,
                 "does not fit resnet50");
  expect_failure(tool("tl_convert") + " " + resnet18 + " --arch resnet51 -o " + target,
                 "--arch: unknown architecture");
  expect_failure(tool("tl_convert") + " " + out("absent.pth") + " -o " + target, "no such file");
  expect_failure(tool("tl_convert") + " " + resnet18 + " -o " + out("no-such-folder/w.h5"), "does not exist");
  std::ofstream(out("labels.txt")) << "a\nb\nc\n";
  expect_failure(tool("tl_convert") + " " + resnet18 + " --classes " + out("labels.txt") + " -o " + target,
                 "3 class names for a head with 10 outputs");
  expect_failure(tool("tl_convert"), "required");
  for (const auto& entry : fs::directory_iterator(folder_))
    EXPECT_EQ(entry.path().filename(), "labels.txt") << "left behind: " << entry.path();
}

TEST_F(Cli, AFailedConversionKeepsTheEarlierOutput) {
  TL_REQUIRE_FIXTURE(pth, "pth");
  TL_REQUIRE_FIXTURE(resnet18, "torchvision/resnet18/model.pth");
  const std::string target = out("w.h5");
  const Result good = run(tool("tl_convert") + " " + resnet18 + " -o " + target);
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_NE(good.output.find("architecture resnet18 (detected: basic blocks 2-2-2-2)"), std::string::npos)
      << good.output;
  EXPECT_NE(good.output.find("11,181,642 parameters, 10 classes"), std::string::npos) << good.output;
  const auto size = fs::file_size(target);
  expect_failure(tool("tl_convert") + " " + pth + "/truncated_legacy_1053.pth -o " + target, "truncated");
  EXPECT_EQ(fs::file_size(target), size);
  EXPECT_EQ(weights::load_weights(target).metadata.architecture, "resnet18");
}

TEST_F(Cli, PredictOnATensorReproducesTorchvisionsLogits) {
  TL_REQUIRE_FIXTURE(resnet18, "torchvision/resnet18");
  const std::string h5 = out("r18.h5"), logits = out("logits.npy");
  ASSERT_EQ(run(tool("tl_convert") + " " + resnet18 + "/model.pth -o " + h5).exit_code, 0);
  const Result r = run(tool("tl_predict") + " --weights " + h5 + " --tensor " + resnet18 +
                       "/size_64/input.npy --topk 3 --logits " + logits);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("input.npy[1]"), std::string::npos) << r.output;
  const auto mine = load_npy(logits).to_vector<double>();
  const auto torch = load_npy(resnet18 + "/size_64/eval_logits.npy").to_vector<double>();
  EXPECT_LT(testing::normalized_error(mine, torch), 1e-4);

  expect_failure(tool("tl_predict") + " --weights " + h5 + " --tensor " + resnet18 + "/size_64/labels.npy",
                 "expected an NCHW float32 array");
  expect_failure(tool("tl_predict") + " --weights " + out("absent.h5") + " " + resnet18, "no such file");
  expect_failure(tool("tl_predict") + " --weights " + resnet18 + "/model.pth " + resnet18,
                 "is a torchvision .pth checkpoint, not a tl weight file: convert it first");
  expect_failure(tool("tl_predict") + " --weights " + h5 + " --topk 0 " + resnet18, "--topk");
  expect_failure(tool("tl_predict") + " --weights " + h5, "give either images");
}

// The README's flow on real ImageNet weights: convert the quantized ONNX MobileNetV2 with ImageNet's class
// names, then classify real bee photos.
TEST_F(Cli, ConvertThenPredictOnRealPhotos) {
  TL_REQUIRE_SHARED(onnx, "weights/onnx_mobilenet_v2_quant.onnx");
  TL_REQUIRE_SHARED(labels, "data/imagenet_labels_1001.txt");
  TL_REQUIRE_SHARED(bees, "data/hymenoptera/val/bees");
  const std::string h5 = out("v2.h5");
  const Result converted = run(tool("tl_convert") + " " + onnx + " -o " + h5 + " --classes " + labels);
  ASSERT_EQ(converted.exit_code, 0) << converted.output;
  EXPECT_NE(converted.output.find("dropping line 1 ('background')"), std::string::npos) << converted.output;
  const Result r = run(tool("tl_predict") + " --weights " + h5 + " --topk 1 " + bees);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::size_t images = 0, bee = 0;
  for (std::size_t at = 0; (at = r.output.find("\n   1  ", at)) != std::string::npos; ++at) {
    ++images;
    const std::size_t end = r.output.find('\n', at + 1);
    bee += r.output.substr(at, end - at).ends_with("  bee");
  }
  EXPECT_EQ(images, 83u);
  EXPECT_GE(bee, 60u) << r.output;  // 70 of 83 when measured; a broken conversion gets almost none
}

TEST_F(Cli, ModelsListsTheRegistry) {
  const Result all = run(tool("tl_models"));
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_NE(all.output.find("resnet50"), std::string::npos);
  EXPECT_NE(all.output.find("25,557,032"), std::string::npos);
  const Result names = run(tool("tl_models") + " 'mobilenet_v3*' --names");
  EXPECT_EQ(names.output, "mobilenet_v3_small\nmobilenet_v3_large\n");
  expect_failure(tool("tl_models") + " 'vgg*'", "no architecture matches");
}

}  // namespace
}  // namespace tl
