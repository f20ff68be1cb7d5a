// read_safetensors on files laid out by tests/fixtures/make_safetensors_fixtures.py: a torchvision resnet18
// and a file of every dtype, compared bit for bit with what numpy says the values are; DataParallel's prefix;
// and damaged or hostile files, each refused with a message naming the file and the tensor at fault.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/support/expect_tensors.h"
#include "tests/support/fixtures.h"
#include "weights/hdf5.h"
#include "weights/importers.h"

namespace tl::weights {
namespace {

using tl::testing::expect_matches;

TEST(Safetensors, ResnetMatchesTorchvisionBitForBit) {
  TL_REQUIRE_FIXTURE(path, "safetensors/resnet18.safetensors");
  const Imported imported = read_safetensors(path);
  EXPECT_EQ(imported.format, "safetensors");
  EXPECT_EQ(imported.metadata.architecture, "");  // safetensors does not say
  expect_matches(imported.tensors, ::tl::testing::fixture_path("safetensors/expected_resnet18.h5"));
  // The writer's order (the state dict's) is kept.
  ASSERT_FALSE(imported.tensors.empty());
  EXPECT_EQ(imported.tensors.begin()->first, "conv1.weight");
  EXPECT_EQ((imported.tensors.end() - 1)->first, "fc.bias");
  EXPECT_EQ(imported.tensors.at("bn1.num_batches_tracked").item<std::int64_t>(), 7);
}

TEST(Safetensors, EveryDtypeConvertsExactly) {
  TL_REQUIRE_FIXTURE(path, "safetensors/mixed.safetensors");
  const Imported imported = read_safetensors(path);
  expect_matches(imported.tensors, ::tl::testing::fixture_path("safetensors/expected_mixed.h5"));
  EXPECT_EQ(imported.tensors.at("j_scalar").dim(), 0);
  EXPECT_EQ(imported.tensors.at("k_empty").numel(), 0);
}

TEST(Safetensors, StripsModulePrefixOnlyWhenEveryKeyHasIt) {
  TL_REQUIRE_FIXTURE(all, "safetensors/prefixed.safetensors");
  const Imported stripped = read_safetensors(all);
  EXPECT_TRUE(stripped.tensors.contains("fc.weight"));
  EXPECT_TRUE(stripped.tensors.contains("fc.bias"));
  EXPECT_EQ(stripped.tensors.size(), 2u);

  const Imported kept =
      read_safetensors(::tl::testing::fixture_path("safetensors/half_prefixed.safetensors"));
  EXPECT_TRUE(kept.tensors.contains("module.fc.weight"));
  EXPECT_TRUE(kept.tensors.contains("fc.bias"));
}

TEST(Safetensors, DetectedBySniffing) {
  TL_REQUIRE_FIXTURE(path, "safetensors/mixed.safetensors");
  EXPECT_EQ(detect_format(path), SourceFormat::Safetensors);
}

TEST(Safetensors, BrokenFilesFailNamingFileAndTensor) {
  TL_REQUIRE_FIXTURE(list, "safetensors/broken/cases.txt");
  std::ifstream in(list);
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const std::size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string file = ::tl::testing::fixture_path("safetensors/broken/" + line.substr(0, tab));
    const std::string fragment = line.substr(tab + 1);
    SCOPED_TRACE(file);
    ++cases;
    try {
      read_safetensors(file);
      ADD_FAILURE() << "no error for " << file;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(file), std::string::npos) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << message;
    }
  }
  EXPECT_GE(cases, 15);
}

TEST(Safetensors, MissingFileSaysSo) {
  try {
    read_safetensors("/nonexistent/model.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.safetensors: no such file"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tl::weights
