// read_keras_h5 on files laid out by tests/fixtures/make_keras_fixtures.py as Keras 2.8 writes them (full
// models and weights-only, MobileNet V1 at alphas 0.25 / 0.5 and MobileNetV2 1.0, random weights): every
// tensor equals what numpy's transposes give, the state dict loads strictly into tl's model of the detected
// architecture, and that model computes what the Keras graph computes (keras_reference.py's float64
// interpreter). Damaged or foreign files are refused with a message naming the file and the layer at fault.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "models/registry.h"
#include "tests/support/expect_tensors.h"
#include "tests/support/fixtures.h"
#include "tests/support/numeric.h"
#include "weights/hdf5.h"
#include "weights/importers.h"

namespace tl::weights {
namespace {

using tl::testing::expect_matches;

std::string fixture(const std::string& name) {
  return ::tl::testing::fixture_path("keras/" + name);
}

struct GoodFile {
  const char* name;
  const char* architecture;
  std::int64_t num_classes;
  std::int64_t input_size;
  bool has_io;  // a full model: the fixture holds an input and the Keras graph's logits
};

// gtest names the case in its output.
void PrintTo(const GoodFile& g, std::ostream* out) {
  *out << g.name;
}

class KerasGoodFile : public ::testing::TestWithParam<GoodFile> {};

TEST_P(KerasGoodFile, ConvertsExactlyWithMetadata) {
  const GoodFile& g = GetParam();
  TL_REQUIRE_FIXTURE(path, "keras/" + std::string(g.name) + ".h5");
  const Imported imported = read_keras_h5(path);
  EXPECT_EQ(imported.format, "Keras .h5");
  const Metadata& m = imported.metadata;
  EXPECT_EQ(m.architecture, g.architecture);
  EXPECT_EQ(m.num_classes, g.num_classes);
  EXPECT_EQ(m.preprocessing.input_size, g.input_size);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(m.preprocessing.mean[static_cast<std::size_t>(c)], 0.5);
    EXPECT_EQ(m.preprocessing.std[static_cast<std::size_t>(c)], 0.5);
  }
  EXPECT_TRUE(m.class_names.empty());
  expect_matches(imported.tensors, fixture("expected_" + std::string(g.name) + ".h5"));
  EXPECT_EQ(detect_format(path), SourceFormat::KerasH5);
}

TEST_P(KerasGoodFile, LoadsStrictlyAndComputesWhatKerasComputes) {
  const GoodFile& g = GetParam();
  TL_REQUIRE_FIXTURE(path, "keras/" + std::string(g.name) + ".h5");
  const Imported imported = read_keras_h5(path);
  const auto model = models::create_model(g.architecture, g.num_classes);
  const LoadReport report = model->load_state_dict(imported.tensors, /*strict=*/true);
  EXPECT_TRUE(report.complete()) << report.summary();
  if (!g.has_io) return;

  const h5::File io = h5::File::open_read(fixture(std::string(g.name) + ".io.h5"));
  const h5::DatasetInfo input_info = io.dataset_info("input");
  const std::vector<float> input = io.read_floats("input");
  const std::vector<float> expected =
      io.read_floats("logits");  // float64 in the file; float32 is plenty here
  model->eval();
  NoGradGuard no_grad;
  const Tensor logits = model->forward(tensor(input, input_info.shape));
  ASSERT_EQ(logits.shape(), (Shape{input_info.shape[0], g.num_classes}));
  const std::vector<float> got = logits.to_vector<float>();
  const double error = ::tl::testing::normalized_error(got, expected);
  EXPECT_LE(error, 1e-4) << g.name;
  std::cout << g.name << ": normalised error of the logits vs the Keras graph in float64: " << error << "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, KerasGoodFile,
    ::testing::Values(GoodFile{"v1_0.25_full", "mobilenet_v1_0.25", 1000, 224, true},
                      GoodFile{"v1_0.25_dense_weights", "mobilenet_v1_0.25", 10, 224, false},
                      GoodFile{"v1_0.5_notop_weights", "mobilenet_v1_0.5", 0, 224, false},
                      GoodFile{"v2_full", "mobilenet_v2_keras", 1000, 96, true}),
    [](const ::testing::TestParamInfo<GoodFile>& info) {
      std::string name = info.param.name;
      for (char& c : name)
        if (c == '.') c = '_';
      return name;
    });

TEST(Keras, BrokenFilesFailNamingFileAndLayer) {
  TL_REQUIRE_FIXTURE(list, "keras/broken/cases.txt");
  std::ifstream in(list);
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const std::size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string file = fixture("broken/" + line.substr(0, tab));
    const std::string fragment = line.substr(tab + 1);
    SCOPED_TRACE(file);
    ++cases;
    try {
      read_keras_h5(file);
      ADD_FAILURE() << "no error for " << file;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(file), std::string::npos) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << message;
    }
  }
  EXPECT_GE(cases, 15);
}

TEST(Keras, MissingFileSaysSo) {
  EXPECT_THROW(read_keras_h5("/nonexistent/model.h5"), Error);
}

}  // namespace
}  // namespace tl::weights
