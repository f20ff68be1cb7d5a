// tl_train as a user runs it: a config file, --compare-scratch, bad flags and data, and the kill tests — a
// run killed with SIGKILL mid-epoch and resumed ends with the same weights as an uninterrupted one, and
// SIGINT stops cleanly with last.h5 written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/run_command.h"
#include "weights/weights_file.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

using Result = testing::CommandResult;
constexpr auto run = &testing::run_command;
using testing::wait_for;

const std::string kTrain = std::string(TL_TOOLS_DIR) + "/tl_train";

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_train_cli_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }
  std::string path(const std::string& name) const { return (folder_ / name).string(); }

  void expect_failure(const std::string& args, const std::string& fragment) {
    const Result r = run(kTrain + " " + args);
    EXPECT_FALSE(r.crashed) << args << "\n" << r.output;
    EXPECT_NE(r.exit_code, 0) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(fragment), std::string::npos) << args << "\n" << r.output;
  }

  // Starts tl_train in the background and returns its pid.
  static pid_t start(const std::string& args, const std::string& log) {
    return testing::start_command(kTrain + " " + args, log);
  }

  static bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

  fs::path folder_;
};

// Epochs of about a second each, so a kill lands mid-epoch.
std::string slow_recipe(const std::string& data, const std::string& out) {
  return "--data " + data +
         " --model resnet18 --image-size 64 --epochs 4 --batch-size 4 --workers 2 --optimizer sgd "
         "--lr 0.003 --seed 3 --out " +
         out;
}

TEST_F(TrainCli, AKilledRunResumesToTheSameWeights) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const Result straight = run(kTrain + " " + slow_recipe(shapes, path("straight")));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  const pid_t pid = start(slow_recipe(shapes, path("killed")), path("killed.log"));
  ASSERT_TRUE(wait_for([&] { return fs::exists(path("killed/last.h5")); }, 120)) << "no epoch finished";
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // into the next epoch
  ASSERT_TRUE(alive(pid)) << "finished before it could be killed";
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(wait_for([&] { return !alive(pid); }, 30));
  EXPECT_GE(weights::load_weights(path("killed/last.h5")).metadata.training_state.size(), 1u);

  const Result resumed = run(kTrain + " --resume " + path("killed"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming"), std::string::npos) << resumed.output;
  const weights::WeightsFile a = weights::load_weights(path("straight/last.h5"));
  const weights::WeightsFile b = weights::load_weights(path("killed/last.h5"));
  for (const auto& [name, t] : a.tensors)
    EXPECT_EQ(t.to_vector<double>(), b.tensors.at(name).to_vector<double>()) << name;
}

TEST_F(TrainCli, SigintStopsCleanlyAfterTheLastFinishedEpoch) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const pid_t pid = start(slow_recipe(shapes, path("stopped")), path("stopped.log"));
  ASSERT_TRUE(wait_for([&] { return fs::exists(path("stopped/last.h5")); }, 120));
  ::kill(pid, SIGINT);
  ASSERT_TRUE(wait_for([&] { return !alive(pid); }, 60)) << "did not stop";
  std::ifstream log(path("stopped.log"));
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("interrupted during epoch"), std::string::npos) << text;
  EXPECT_FALSE(weights::load_weights(path("stopped/last.h5")).metadata.training_state.empty());
}

TEST_F(TrainCli, AConfigFileAndCompareScratch) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  {
    const auto model = models::create_model("resnet18", 10, 5);
    weights::Metadata m;
    m.architecture = "resnet18";
    m.num_classes = 10;
    weights::save_weights(path("pretrained.h5"), model->state_dict(), m);
  }
  std::ofstream(path("recipe.ini"))
      << "data = \"" << shapes << "\"\nweights = \"" << path("pretrained.h5")
      << "\"\nreset-head = true\nstrategy = \"feature-extract\"\nimage-size = 32\n"
         "epochs = 1\nbatch-size = 8\nout = \""
      << path("config_run") << "\"\n";
  const Result r = run(kTrain + " --config " + path("recipe.ini") + " --compare-scratch");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("strategy feature-extract"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("from scratch (full)"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(path("config_run/best.h5")));
  EXPECT_TRUE(fs::exists(path("config_run-scratch/best.h5")));
  // The scratch run trains at the pre-trained run's input size, not the architecture's default 224.
  std::size_t at_32 = 0;
  for (std::size_t at = r.output.find("images 32 px"); at != std::string::npos;
       at = r.output.find("images 32 px", at + 1))
    ++at_32;
  EXPECT_EQ(at_32, 2u) << r.output;

  // tl_predict takes the run's best.h5 and names the user's own classes.
  const Result p = run(std::string(TL_TOOLS_DIR) + "/tl_predict --weights " + path("config_run/best.h5") +
                       " " + shapes + "/val/red --topk 3");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  for (const char* name : {"  red\n", "  green\n", "  blue\n"})
    EXPECT_NE(p.output.find(name), std::string::npos) << p.output;
}

TEST_F(TrainCli, BadFlagsAndDataAreRefusedWithTheirNames) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  TL_REQUIRE_FIXTURE(one, "train/one_class");
  TL_REQUIRE_FIXTURE(empty, "train/empty_class");
  const std::string base = "--model resnet18 --image-size 32 --out " + path("bad");
  expect_failure("--data " + shapes + " " + base + " --epochs 0", "--epochs");
  expect_failure("--data " + shapes + " " + base + " --batch-size 0", "--batch-size");
  expect_failure("--data " + shapes + " " + base + " --lr -1", "--lr");
  expect_failure("--data " + shapes + " " + base + " --image-size 1", "--image-size");
  expect_failure("--data " + shapes + " " + base + " --strategy partial", "--strategy");
  expect_failure("--data " + shapes + " " + base + " --scheduler step:0:0.1", "--scheduler");
  expect_failure("--data " + shapes + " " + base + " --group-lr layer4", "--group-lr");
  expect_failure("--data " + shapes + " --model resnet51 --out " + path("bad"),
                 "--model: unknown architecture");
  expect_failure("--data " + path("absent") + " " + base, path("absent"));
  expect_failure("--data " + one + " " + base, "only one class");
  expect_failure("--data " + empty + " " + base, "is empty");
  expect_failure("--data " + shapes + " --weights " + path("absent.h5") + " --out " + path("bad"),
                 "no such file");
  expect_failure("--resume " + path("never"), "no last.h5");
}

}  // namespace
}  // namespace tl
