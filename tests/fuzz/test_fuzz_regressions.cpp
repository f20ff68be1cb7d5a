// Replays every committed corpus file of every fuzz target (tests/fuzz/corpus/<target>/) through the entry
// function the fuzzer uses, in the normal build: each file must be accepted or refused with a tl::Error.
// A crash kills this binary, and any other exception fails the case naming the file, so a finding fixed once
// stays fixed. The corpus holds the seeds and the inputs of every finding (crash-*, leak-*, ...).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
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
