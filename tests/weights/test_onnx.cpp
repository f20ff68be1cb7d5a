// read_onnx on torch.onnx exports of a seeded torchvision MobileNetV2 (tests/fixtures/make_onnx_fixtures.py):
// BatchNorm folded and unfolded, quantized (QLinearConv per tensor and per channel, QDQ), each converted
// entry against values computed by the script, tl's converted model against torch's logits, and clear errors
// for files that are broken or not a torchvision MobileNetV2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unordered_map>

#include "engine/autograd.h"
#include "engine/error.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/numeric.h"
#include "weights/importers.h"

namespace tl::weights {
namespace {

// The script's arrays: <prefix>.txt lines "name offset ndim dims...", <prefix>.bin float64 values.
class Arrays {
 public:
  explicit Arrays(const std::string& prefix) : bin_(prefix + ".bin") {
    std::ifstream index(prefix + ".txt");
    if (!index) throw Error(prefix + ".txt: cannot read");
    std::string line;
    while (std::getline(index, line)) {
      std::istringstream in(line);
      Entry e;
      std::int64_t ndim = 0;
      in >> e.name >> e.offset >> ndim;
      e.shape.resize(static_cast<std::size_t>(ndim));
      for (auto& d : e.shape) in >> d;
      entries_[e.name] = e;
    }
  }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  Shape shape(const std::string& name) const { return entry(name).shape; }
  std::vector<double> values(const std::string& name) const {
    const Entry& e = entry(name);
    std::vector<double> out(static_cast<std::size_t>(shape_numel(e.shape)));
    std::ifstream in(bin_, std::ios::binary);
    in.seekg(e.offset * 8);
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * 8));
    if (!in) throw Error(bin_ + ": cannot read " + name);
    return out;
  }
  Tensor tensor(const std::string& name) const {
    const std::vector<double> v = values(name);
    return tl::tensor(std::vector<float>(v.begin(), v.end()), entry(name).shape);
  }

 private:
  struct Entry {
    std::string name;
    std::int64_t offset = 0;
    Shape shape;
  };
  const Entry& entry(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end()) throw Error(bin_ + ": no array " + name);
    return it->second;
  }
  std::string bin_;
  std::unordered_map<std::string, Entry> entries_;
};

double relative_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  EXPECT_EQ(actual.size(), expected.size());
  return actual.size() == expected.size() ? ::tl::testing::normalized_error(actual, expected) : INFINITY;
}

// Every entry of `imported` is named, ordered and shaped as tl's mobilenet_v2 has it, and equals
// <prefix><name> (float32 of the script's float64) to `tolerance` (normalised error).
void expect_entries(const StateDict& imported, const Arrays& expected, const std::string& prefix,
                    double tolerance) {
  const StateDict mine = models::create_model("mobilenet_v2", 10)->state_dict();
  ASSERT_EQ(imported.size(), mine.size());
  auto it = imported.begin();
  for (const auto& [name, t] : mine) {
    const auto& [got_name, got] = *it++;
    ASSERT_EQ(got_name, name);
    ASSERT_EQ(got.shape(), t.shape()) << name;
    ASSERT_EQ(got.dtype(), t.dtype()) << name;
    if (name.ends_with("num_batches_tracked")) {
      EXPECT_EQ(got.item<std::int64_t>(), 0) << name;
      continue;
    }
    EXPECT_LE(relative_error(got.to_vector<double>(), expected.values(prefix + name)), tolerance) << name;
  }
}

// tl's mobilenet_v2 loaded strictly with `imported`, in eval mode, on the script's input, against `logits`.
void expect_logits(const Imported& imported, const Arrays& expected, const std::string& logits) {
  const auto model = models::create_model("mobilenet_v2", imported.metadata.num_classes);
  model->load_state_dict(imported.tensors, /*strict=*/true);
  model->eval();
  NoGradGuard no_grad;
  const double error =
      relative_error(model->forward(expected.tensor("input")).to_vector<double>(), expected.values(logits));
  std::cout << "  tl's logits against " << logits << ": normalised error " << error << "\n";
  EXPECT_LE(error, 1e-4);
}

TEST(OnnxFloat, FoldedBatchNormBecomesAnIdentityBatchNormWithBias) {
  TL_REQUIRE_FIXTURE(file, "onnx/float.onnx");
  const Arrays expected(::tl::testing::fixture_path("onnx/expected"));
  const Imported imported = read_onnx(file);
  EXPECT_EQ(imported.format, "ONNX");
  EXPECT_EQ(imported.metadata.architecture, "mobilenet_v2");
  EXPECT_EQ(imported.metadata.num_classes, 10);
  EXPECT_EQ(imported.metadata.preprocessing.input_size, 64);  // from the graph input [2, 3, 64, 64]
  EXPECT_EQ(imported.metadata.preprocessing.mean, (std::array<double, 3>{0.485, 0.456, 0.406}));
  EXPECT_EQ(imported.metadata.preprocessing.std, (std::array<double, 3>{0.229, 0.224, 0.225}));
  EXPECT_NE(imported.metadata.source.find("float.onnx"), std::string::npos) << imported.metadata.source;
  // torch folds in float32; the script folds in float64.
  expect_entries(imported.tensors, expected, "folded.", 1e-5);
  // Exactly the identity: sqrt(running_var + eps) = 1 and no shift.
  const auto var = imported.tensors.at("features.4.conv.1.1.running_var").to_vector<float>();
  EXPECT_TRUE(
      std::all_of(var.begin(), var.end(), [](float v) { return v == static_cast<float>(1.0 - 1e-5); }));
  const auto mean = imported.tensors.at("features.18.1.running_mean").to_vector<float>();
  EXPECT_TRUE(std::all_of(mean.begin(), mean.end(), [](float v) { return v == 0.0f; }));
}

TEST(OnnxFloat, ConvertedModelReproducesTorchLogits) {
  TL_REQUIRE_FIXTURE(file, "onnx/float.onnx");
  const Arrays expected(::tl::testing::fixture_path("onnx/expected"));
  expect_logits(read_onnx(file), expected, "logits");
}

TEST(OnnxUnfolded, BatchNormalizationNodesGiveTheirParameters) {
  TL_REQUIRE_FIXTURE(file, "onnx/unfolded.onnx");
  const Arrays expected(::tl::testing::fixture_path("onnx/expected"));
  const Imported imported = read_onnx(file);
  EXPECT_EQ(imported.format, "ONNX");
  // ONNX has no num_batches_tracked (read as 0); everything else is torchvision's state dict as it was.
  expect_entries(imported.tensors, expected, "torch.", 1e-6);
  expect_logits(imported, expected, "logits");
}

TEST(OnnxQuantized, DequantizesPerTensorAndPerChannelWeightsAndInt32Biases) {
  TL_REQUIRE_FIXTURE(file, "onnx/quant.onnx");
  const Arrays expected(::tl::testing::fixture_path("onnx/expected"));
  const Imported imported = read_onnx(file);
  EXPECT_EQ(imported.format, "ONNX (quantized int8+uint8)");
  EXPECT_EQ(imported.metadata.num_classes, 10);
  // Convs alternate per-channel int8 (even) and per-tensor uint8 (odd); the head is per-column uint8 and its
  // bias a uint8 QLinearAdd operand.
  expect_entries(imported.tensors, expected, "quant.", 1e-6);
  expect_logits(imported, expected, "quant_logits");
}

TEST(OnnxQuantized, DequantizeLinearWeightsOfAQdqGraph) {
  TL_REQUIRE_FIXTURE(file, "onnx/qdq.onnx");
  const Arrays expected(::tl::testing::fixture_path("onnx/expected"));
  const Imported imported = read_onnx(file);
  EXPECT_EQ(imported.format, "ONNX (quantized int8)");
  expect_entries(imported.tensors, expected, "qdq.", 1e-5);
  expect_logits(imported, expected, "qdq_logits");
}

struct Broken {
  const char* file;
  std::vector<std::string> says;  // substrings of the message, besides the file's path
};

void PrintTo(const Broken& b, std::ostream* out) {
  *out << b.file;
}  // names the case in gtest's and ctest's output

class OnnxBroken : public ::testing::TestWithParam<Broken> {};

TEST_P(OnnxBroken, RefusedWithAMessageNamingTheFileAndTheFault) {
  const Broken& b = GetParam();
  const std::string file = ::tl::testing::fixture_path(std::string("onnx/") + b.file);
  if (std::string(b.file) != "absent.onnx") {
    TL_REQUIRE_FIXTURE(present, std::string("onnx/") + b.file);
  }
  try {
    read_onnx(file);
    FAIL() << b.file << " was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    std::cout << "  " << message << "\n";
    EXPECT_NE(message.find(file), std::string::npos) << message;
    for (const std::string& s : b.says)
      EXPECT_NE(message.find(s), std::string::npos) << s << " | " << message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, OnnxBroken,
    ::testing::Values(
        Broken{"absent.onnx", {"cannot read"}}, Broken{"truncated.onnx", {"not an ONNX model"}},
        Broken{"random.onnx", {"not an ONNX model"}},
        Broken{"resnet18.onnx", {"(Conv '/conv1/Conv')", "features.0.0", "not a torchvision MobileNetV2"}},
        Broken{"wrong_classifier.onnx", {"(Gemm", "1000 inputs", "1280 pooled features"}},
        Broken{"hardswish.onnx", {"(HardSwish", "is not part of a torchvision MobileNetV2"}},
        Broken{"no_residual.onnx",
               {"(Conv", "features.4.conv.0.0", "the residual sum after features.3.conv.2"}},
        Broken{"bad_dims.onnx", {"initializer 'w'", "[32, 3, 3, 4]", "raw_data holds 3456 bytes"}},
        Broken{"huge_dims.onnx", {"initializer 'w'", "more elements"}},
        Broken{"external.onnx", {"initializer 'w'", "external"}}),
    [](const auto& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      name.erase(std::remove(name.begin(), name.end(), '_'), name.end());
      return name;
    });

}  // namespace
}  // namespace tl::weights
