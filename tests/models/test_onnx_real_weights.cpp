// The real ImageNet MobileNetV2 (torchvision, exported to ONNX and quantized to uint8; ../shared/weights)
// imported by read_onnx into tl's mobilenet_v2, on real photos (../shared/data/hymenoptera/val): tl's logits
// against onnx_reference.py's float64 run of the graph straight from the same file, with the weights
// dequantized (what the conversion means). The uint8 model's own arithmetic (the script's emulation) is
// reported beside it. tl cannot decode JPEGs yet, so the script (fixture.onnx_real) decodes and preprocesses
// the photos and hands tl the very tensors it ran itself. Skips, saying why, on a machine without ../shared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/autograd.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/numeric.h"
#include "weights/importers.h"

namespace tl {
namespace {

// onnx_reference.write_arrays: <prefix>.txt lines "name offset ndim dims...", <prefix>.bin float64 values.
std::unordered_map<std::string, std::pair<Shape, std::vector<double>>> read_arrays(
    const std::string& prefix) {
  std::unordered_map<std::string, std::pair<Shape, std::vector<double>>> out;
  std::ifstream index(prefix + ".txt"), bin(prefix + ".bin", std::ios::binary);
  std::string line;
  while (std::getline(index, line)) {
    std::istringstream in(line);
    std::string name;
    std::int64_t offset = 0, ndim = 0;
    in >> name >> offset >> ndim;
    Shape shape(static_cast<std::size_t>(ndim));
    for (auto& d : shape) in >> d;
    std::vector<double> values(static_cast<std::size_t>(shape_numel(shape)));
    bin.seekg(offset * 8);
    bin.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * 8));
    EXPECT_TRUE(bin) << prefix << ".bin is short for " << name;
    out[name] = {shape, values};
  }
  return out;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::int64_t argmax(const std::vector<double>& v, std::int64_t row, std::int64_t n) {
  const auto begin = v.begin() + row * n;
  return std::max_element(begin, begin + n) - begin;
}

TEST(OnnxRealWeights, QuantizedMobileNetV2MatchesTheDequantizedReferenceOnPhotos) {
  TL_REQUIRE_SHARED(onnx_file, "weights/onnx_mobilenet_v2_quant.onnx");
  TL_REQUIRE_FIXTURE(folder, "onnx_real");
  if (std::filesystem::exists(folder + "/SKIPPED"))
    GTEST_SKIP() << "onnx_reference.py: " << read_lines(folder + "/SKIPPED").at(0);
  const auto arrays = read_arrays(folder + "/real");
  const auto& [input_shape, input] = arrays.at("input");
  const std::vector<double>& reference = arrays.at("logits").second;
  const std::vector<double>& uint8 = arrays.at("logits_uint8").second;
  const std::vector<std::string> images = read_lines(folder + "/images.txt");
  ASSERT_EQ(static_cast<std::int64_t>(images.size()), input_shape[0]);

  const weights::Imported imported = weights::read_onnx(onnx_file);
  EXPECT_EQ(imported.format, "ONNX (quantized uint8)");
  EXPECT_EQ(imported.metadata.architecture, "mobilenet_v2");
  const std::int64_t classes = imported.metadata.num_classes;
  EXPECT_EQ(classes, 1000);  // torchvision's head; the labels file's line 0 (background) is not a class
  EXPECT_EQ(imported.metadata.preprocessing.input_size, 224);

  const auto model = models::create_model("mobilenet_v2", classes);
  model->load_state_dict(imported.tensors, /*strict=*/true);
  model->eval();
  NoGradGuard no_grad;
  const std::vector<double> logits =
      model->forward(tensor(std::vector<float>(input.begin(), input.end()), input_shape)).to_vector<double>();
  ASSERT_EQ(logits.size(), reference.size());

  const double error = testing::normalized_error(logits, reference);
  double max_diff = 0, max_ref = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(logits[i] - reference[i]));
    max_ref = std::max(max_ref, std::abs(reference[i]));
  }
  EXPECT_LE(error, 1e-4);
  EXPECT_LE(max_diff / max_ref, 1e-4);

  std::vector<std::string> labels;
  if (const std::string path = testing::shared_path("data/imagenet_labels_1001.txt"); !path.empty())
    labels = read_lines(path);
  const auto label = [&](std::int64_t c) {
    return labels.size() == static_cast<std::size_t>(classes) + 1 ? labels[static_cast<std::size_t>(c) + 1]
                                                                  : "";
  };
  const std::int64_t n = input_shape[0];
  int insects = 0, agree_uint8 = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t mine = argmax(logits, i, classes), ref = argmax(reference, i, classes);
    const std::int64_t q = argmax(uint8, i, classes);
    EXPECT_EQ(mine, ref) << images[static_cast<std::size_t>(i)];
    insects += mine == 309 || mine == 310;  // torchvision's "bee" and "ant"
    agree_uint8 += mine == q;
    std::cout << "  " << images[static_cast<std::size_t>(i)] << ": top-1 " << mine << " '" << label(mine)
              << "' (uint8 model: " << q << ")\n";
  }
  std::cout << "  tl vs float64 reference: normalised error " << error << ", max relative "
            << max_diff / max_ref << "; ant/bee top-1: " << insects << " of " << n
            << "; uint8 model: normalised error " << testing::normalized_error(uint8, reference)
            << " against the reference, top-1 agrees with tl on " << agree_uint8 << " of " << n << "\n";
  // A sanity check on real weights: most of these ant and bee photos are classified as ants or bees.
  EXPECT_GE(insects, n / 2);
}

}  // namespace
}  // namespace tl
