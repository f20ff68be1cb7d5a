// Replays every committed corpus file of every fuzz target (tests/fuzz/corpus/<target>/) through the entry
// function the fuzzer uses, in the normal build: each file must be accepted or refused with a tl::Error.
// A crash kills this binary, and any other exception fails the case naming the file, so a finding fixed once
// stays fixed. The corpus holds the seeds and the inputs of every finding (crash-*, leak-*, ...).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "tests/fuzz/fuzz_entries.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class FuzzCorpus : public ::testing::TestWithParam<const tl::fuzz::Target*> {};

TEST_P(FuzzCorpus, EveryFileIsAcceptedOrRefusedWithATlError) {
  const tl::fuzz::Target& target = *GetParam();
  const fs::path folder = fs::path(TL_FUZZ_CORPUS_DIR) / target.corpus;
  ASSERT_TRUE(fs::is_directory(folder)) << folder << " is missing: run tests/fuzz/make_corpus.py";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << folder << " holds no corpus files";
  int accepted = 0;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const std::vector<std::uint8_t> bytes = read_bytes(file);
    try {
      accepted += tl::fuzz::run(target, bytes.data(), bytes.size()) ? 1 : 0;
    } catch (const std::exception& e) {
      ADD_FAILURE() << target.name << ": " << file.filename()
                    << " threw an exception outside tl::Error: " << e.what();
    } catch (...) {
      ADD_FAILURE() << target.name << ": " << file.filename() << " threw a non-std exception";
    }
  }
  std::printf("%s: %d of %zu corpus files read, the others refused with a tl::Error\n", target.name, accepted,
              files.size());
  // The seeds include valid files (make_corpus.py), so a reader that refuses them all is broken too; except
  // Keras and ONNX, whose smallest valid files are megabytes (README.md).
  const std::string corpus = target.corpus;
  if (corpus != "keras" && corpus != "onnx") {
    EXPECT_GT(accepted, 0) << target.name << " accepted no corpus file";
  }
}

// What a target does with one input: "read", or the message of the tl::Error that refused it.
std::string outcome(const tl::fuzz::Target& target, const std::vector<std::uint8_t>& bytes) {
  try {
    target.entry(bytes.data(), bytes.size());
    return "read";
  } catch (const tl::Error& e) {
    return e.what();
  }
}

// The sandbox must change nothing but where libhdf5 runs: on every committed HDF5 input the sandboxed reader
// reads what the in-process one reads and refuses the rest with the same message (a sandbox that cannot run
// in some build, or a result that loses a field, shows here). The inputs are written under each target's own
// name, so the file name in the messages is replaced.
TEST(FuzzCorpus, TheSandboxedHdf5ReadersDoWhatTheInProcessOnesDo) {
  for (const auto& [sandboxed, in_process] : {std::pair{"weights_file", "weights_file_inprocess"},
                                              std::pair{"keras", "keras_inprocess"}}) {
    const tl::fuzz::Target& a = tl::fuzz::target(sandboxed);
    const tl::fuzz::Target& b = tl::fuzz::target(in_process);
    for (const auto& entry : fs::directory_iterator(fs::path(TL_FUZZ_CORPUS_DIR) / a.corpus)) {
      SCOPED_TRACE(entry.path().string());
      const std::vector<std::uint8_t> bytes = read_bytes(entry.path());
      std::string from_a = outcome(a, bytes), from_b = outcome(b, bytes);
      for (std::string* m : {&from_a, &from_b})
        for (const char* name : {sandboxed, in_process})
          for (std::size_t at; (at = m->find(std::string("_") + name + ".h5")) != std::string::npos;)
            m->replace(at, std::strlen(name) + 4, "_TARGET.h5");
      EXPECT_EQ(from_a, from_b) << sandboxed << " against " << in_process;
    }
  }
}

std::vector<const tl::fuzz::Target*> all_targets() {
  std::vector<const tl::fuzz::Target*> out;
  for (const tl::fuzz::Target& t : tl::fuzz::targets()) out.push_back(&t);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn(all_targets()),
                         [](const auto& info) { return std::string(info.param->name); });

TEST(FuzzTargets, UnknownNameIsRefusedNamingTheKnownOnes) {
  try {
    (void)tl::fuzz::target("gif");
    FAIL() << "no error";
  } catch (const tl::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("pickle"), std::string::npos) << e.what();
  }
}

}  // namespace
