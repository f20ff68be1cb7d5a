// Crash safety: nothing tl has written is lost when it is killed or the disk fills up. A writer killed in the
// middle of a write leaves the previous file loadable; a tl_train run killed at random moments (during steps,
// evaluation or checkpoint writes) and resumed each time ends with the weights of an uninterrupted run; a
// write that fails for lack of room stops the run with a message and leaves the earlier checkpoints intact; a
// new run does not overwrite an earlier run's checkpoints unless asked.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

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

class CrashSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_crash_safety_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }
  std::string path(const std::string& name) const { return (folder_ / name).string(); }

  // The temporary files AtomicFile leaves beside `target` ("<target>.tmp-<pid>-<n>").
  static std::vector<fs::path> temporaries_of(const std::string& target) {
    std::vector<fs::path> found;
    const std::string prefix = fs::path(target).filename().string() + ".tmp-";
    for (const auto& entry : fs::directory_iterator(fs::path(target).parent_path()))
      if (entry.path().filename().string().rfind(prefix, 0) == 0) found.push_back(entry.path());
    return found;
  }

  fs::path folder_;
};

StateDict one_tensor(const Tensor& t) {
  StateDict sd;
  sd.insert("w", t);
  return sd;
}

weights::Metadata small_metadata(const std::string& source) {
  weights::Metadata m;
  m.architecture = "resnet18";
  m.num_classes = 10;
  m.source = source;
  return m;
}

TEST_F(CrashSafety, AWriterKilledMidWriteLeavesThePreviousFile) {
  const std::string target = path("weights.h5");
  weights::save_weights(target, one_tensor(tensor(std::vector<float>{1, 2, 3}, {3})), small_metadata("old"));
  // 256 MiB, built before the fork (the child then only writes): long enough to write that the parent catches
  // the temporary file growing.
  const Tensor big = tensor(std::vector<float>(std::size_t{64} << 20, 0.5f), {64, 1024, 1024});

  bool killed_mid_write = false;
  for (int attempt = 0; attempt < 5 && !killed_mid_write; ++attempt) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      weights::save_weights(target, one_tensor(big), small_metadata("new"));
      ::_exit(0);
    }
    wait_for(
        [&] {
          for (const auto& t : temporaries_of(target))
            if (std::error_code e; fs::file_size(t, e) > 0 && !e) return true;
          return false;
        },
        60);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    // The temporary file still there means the kill came before the rename, in the middle of the write.
    const std::vector<fs::path> left = temporaries_of(target);
    killed_mid_write = WIFSIGNALED(status) && !left.empty();
    for (const auto& t : left) fs::remove(t);
    if (!killed_mid_write) {  // the write completed first: start again from the old file
      weights::save_weights(target, one_tensor(tensor(std::vector<float>{1, 2, 3}, {3})),
                            small_metadata("old"));
      continue;
    }
    const weights::WeightsFile survivor = weights::load_weights(target);
    EXPECT_EQ(survivor.metadata.source, "old");
    EXPECT_EQ(survivor.tensors.at("w").to_vector<float>(), (std::vector<float>{1, 2, 3}));
  }
  EXPECT_TRUE(killed_mid_write) << "no kill landed in the middle of a write in 5 attempts";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The live progress lines in tl_train's output ("epoch 2/4 train   3/12 ...", one per tenth of a phase off a
// terminal).
std::int64_t count_progress_lines(const std::string& output) {
  std::int64_t n = 0;
  for (std::size_t at = output.find("\nepoch "); at != std::string::npos;
       at = output.find("\nepoch ", at + 1))
    ++n;
  return n;
}

// Epochs a run folder's metrics.csv records (0 without one).
std::int64_t epochs_done(const std::string& out) {
  std::ifstream csv(out + "/metrics.csv");
  std::int64_t lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  return std::max<std::int64_t>(lines - 1, 0);
}

// A run of 4 short epochs with fixed seed and two workers (the loader's order does not depend on their
// timing).
std::string recipe(const std::string& data, const std::string& out) {
  return "--data " + data +
         " --model resnet18 --image-size 48 --epochs 4 --batch-size 4 --workers 2 --optimizer sgd --lr 0.003 "
         "--seed 5 --out " +
         out;
}

TEST_F(CrashSafety, RandomKillsAndResumesEndAtTheWeightsOfAnUninterruptedRun) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const Result straight = run(kTrain + " " + recipe(shapes, path("straight")));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  const std::int64_t progress_lines = count_progress_lines(straight.output);
  ASSERT_GT(progress_lines, 8) << straight.output;

  // Kill moments drawn from a fixed seed, counted in the run's own progress lines rather than in seconds, so
  // they fall inside the run however fast or loaded the machine is: after a random number of the progress
  // lines still to come, plus a random 0-40 ms, a kill lands in a step, an evaluation or a checkpoint write.
  // A kill before the first epoch finished leaves nothing to resume: that attempt starts again.
  std::mt19937 rng(20261201);
  std::uniform_int_distribution<int> extra_ms(0, 40);
  const std::string out = path("killed"), log = path("log");
  const auto command = [&] {
    return kTrain + " " +
           (fs::exists(out + "/last.h5") ? "--resume " + out : recipe(shapes, out) + " --overwrite");
  };
  int kills = 0;
  for (int attempt = 0; attempt < 8 && kills < 4; ++attempt) {
    const std::int64_t to_come = progress_lines * (4 - epochs_done(out)) / 4;
    const std::int64_t wait_lines =
        std::uniform_int_distribution<std::int64_t>(1, std::max<std::int64_t>(to_come * 3 / 4, 1))(rng);
    fs::remove(log);
    const pid_t pid = testing::start_command(command(), log);
    const auto finished = [&] { return ::kill(pid, 0) != 0; };
    ASSERT_TRUE(
        wait_for([&] { return finished() || count_progress_lines(read_file(log)) >= wait_lines; }, 300));
    std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms(rng)));
    if (finished()) break;  // it completed before this kill: nothing left to interrupt
    ::kill(pid, SIGKILL);
    ASSERT_TRUE(wait_for(finished, 30));
    ++kills;
    if (fs::exists(out + "/last.h5")) {
      EXPECT_NO_THROW(weights::load_weights(out + "/last.h5"));
    }
  }
  EXPECT_GE(kills, 2) << "the kills all came too late to interrupt anything";
  const Result finish = run(command());
  ASSERT_EQ(finish.exit_code, 0) << finish.output;

  const weights::WeightsFile a = weights::load_weights(path("straight/last.h5"));
  const weights::WeightsFile b = weights::load_weights(out + "/last.h5");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors)
    EXPECT_EQ(t.to_vector<double>(), b.tensors.at(name).to_vector<double>()) << name;
  EXPECT_EQ(weights::load_weights(path("straight/best.h5")).tensors.at("fc.weight").to_vector<double>(),
            weights::load_weights(out + "/best.h5").tensors.at("fc.weight").to_vector<double>());
}

TEST_F(CrashSafety, AFullDiskStopsTheRunAndKeepsTheEarlierCheckpoints) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const std::string out = path("run");
  const Result first = run(kTrain + " --data " + shapes +
                           " --model resnet18 --image-size 32 --epochs 1 --batch-size 8 --out " + out);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto before = weights::load_weights(out + "/last.h5").tensors.at("fc.weight").to_vector<double>();

  // A 10 MB limit on the size of any file (RLIMIT_FSIZE) stands in for a full disk: writing last.h5 (over 100
  // MB with the optimizer state) fails with EFBIG as it would with ENOSPC. SIGXFSZ is ignored, so the write
  // fails instead of killing the process.
  const Result full = run("bash -c 'trap \"\" XFSZ; ulimit -f 10000; exec " + kTrain + " --resume " + out +
                          " --resume-epochs 2'");
  EXPECT_FALSE(full.crashed) << full.output;
  EXPECT_EQ(full.exit_code, 1) << full.output;
  EXPECT_NE(full.output.find("cannot write " + out + "/last.h5"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("File too large"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("continue with --resume"), std::string::npos) << full.output;
  EXPECT_EQ(full.output.find("HDF5-DIAG"), std::string::npos)
      << "the HDF5 library's own error stack leaked out";

  EXPECT_EQ(weights::load_weights(out + "/last.h5").tensors.at("fc.weight").to_vector<double>(), before);
  EXPECT_NO_THROW(weights::load_weights(out + "/best.h5"));
  EXPECT_TRUE(temporaries_of(out + "/last.h5").empty()) << "a temporary file was left behind";

  // With room again the run continues.
  const Result resumed = run(kTrain + " --resume " + out + " --resume-epochs 2");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
}

TEST_F(CrashSafety, ANewRunDoesNotOverwriteAnEarlierOne) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const std::string out = path("run");
  const std::string args =
      " --data " + shapes + " --model resnet18 --image-size 32 --epochs 1 --batch-size 8 --out " + out;
  ASSERT_EQ(run(kTrain + args).exit_code, 0);
  const auto before = fs::last_write_time(out + "/best.h5");
  const Result again = run(kTrain + args);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already holds a run"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("--resume " + out), std::string::npos) << again.output;
  EXPECT_EQ(fs::last_write_time(out + "/best.h5"), before);
  EXPECT_EQ(run(kTrain + args + " --overwrite").exit_code, 0);
}

}  // namespace
}  // namespace tl
