// The real ImageNet MobileNet (Keras 2.8, alpha 0.25, ../shared/weights) imported by read_keras_h5 into tl's
// mobilenet_v1_0.25, on real photos (../shared/data/hymenoptera/val): tl's logits against
// keras_reference.py's float64 run of the Keras graph straight from the same file. tl cannot decode JPEGs
// yet, so the fixture script (fixture.keras_real) decodes and preprocesses the photos and hands tl the very
// tensors it ran itself. Skips, saying why, on a machine without ../shared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/numeric.h"
#include "weights/importers.h"

namespace tl {
namespace {

template <typename T>
std::vector<T> read_raw(const std::string& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary);
  std::vector<T> out(count);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * sizeof(T)));
  EXPECT_EQ(static_cast<std::size_t>(in.gcount()), count * sizeof(T)) << path << " is short";
  return out;
}

struct Reference {
  Shape input_shape;  // N, C, H, W
  std::int64_t classes = 0;
  std::vector<std::string> images;
};

Reference read_reference(const std::string& path) {
  std::ifstream in(path);
  Reference r;
  std::string line, word;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    fields >> word;
    if (word == "shape") {
      std::int64_t v;
      while (fields >> v) r.input_shape.push_back(v);
    } else if (word == "classes") {
      fields >> r.classes;
    } else if (!line.empty()) {
      r.images.push_back(line);
    }
  }
  return r;
}

std::int64_t argmax(const double* v, std::int64_t n) {
  return std::max_element(v, v + n) - v;
}

TEST(KerasRealWeights, MobileNetV1QuarterMatchesKerasOnPhotos) {
  TL_REQUIRE_SHARED(weights_path, "weights/keras_mobilenet_v1_0.25_224.h5");
  TL_REQUIRE_SHARED(photos, "data/hymenoptera/val");
  const std::string skipped = ::tl::testing::fixture_path("keras_real/skipped.txt");
  if (std::filesystem::exists(skipped)) {
    std::ifstream in(skipped);
    std::string why;
    std::getline(in, why);
    GTEST_SKIP() << "keras_reference.py skipped: " << why;
  }
  TL_REQUIRE_FIXTURE(reference_path, "keras_real/reference.txt");
  const Reference ref = read_reference(reference_path);
  ASSERT_EQ(ref.input_shape.size(), 4u);
  const std::int64_t n = ref.input_shape[0];
  ASSERT_EQ(static_cast<std::int64_t>(ref.images.size()), n);

  const weights::Imported imported = weights::read_keras_h5(weights_path);
  EXPECT_EQ(imported.metadata.architecture, "mobilenet_v1_0.25");
  EXPECT_EQ(imported.metadata.num_classes, ref.classes);
  EXPECT_EQ(imported.metadata.preprocessing.input_size, 224);
  const auto model = models::create_model(imported.metadata.architecture, imported.metadata.num_classes);
  model->load_state_dict(imported.tensors, /*strict=*/true);
  model->set_preprocessing(imported.metadata.preprocessing);
  model->eval();

  const std::vector<float> input = read_raw<float>(::tl::testing::fixture_path("keras_real/input.f32"),
                                                   static_cast<std::size_t>(shape_numel(ref.input_shape)));
  const std::vector<double> expected = read_raw<double>(::tl::testing::fixture_path("keras_real/logits.f64"),
                                                        static_cast<std::size_t>(n * ref.classes));
  NoGradGuard no_grad;
  const Tensor logits = model->forward(tensor(input, ref.input_shape));
  ASSERT_EQ(logits.shape(), (Shape{n, ref.classes}));
  const std::vector<float> got = logits.to_vector<float>();

  // Class names: line 0 of the labels file is "background"; a 1000-class head starts at line 1.
  std::vector<std::string> labels;
  const std::string labels_path = ::tl::testing::shared_path("data/imagenet_labels_1001.txt");
  if (!labels_path.empty()) {
    std::ifstream in(labels_path);
    for (std::string line; std::getline(in, line);) labels.push_back(line);
  }
  const std::int64_t label_offset = ref.classes == 1000 ? 1 : 0;

  double worst = 0, worst_max_abs = 0;
  int hymenoptera = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* a = got.data() + i * ref.classes;
    const double* e = expected.data() + i * ref.classes;
    const double error = ::tl::testing::normalized_error(a, e, static_cast<std::size_t>(ref.classes));
    double diff = 0, scale = 0;
    for (std::int64_t c = 0; c < ref.classes; ++c) {
      diff = std::max(diff, std::abs(static_cast<double>(a[c]) - e[c]));
      scale = std::max(scale, std::abs(e[c]));
    }
    worst = std::max(worst, error);
    worst_max_abs = std::max(worst_max_abs, diff / scale);
    EXPECT_LE(error, 1e-4) << ref.images[static_cast<std::size_t>(i)];

    const std::int64_t top = argmax(e, ref.classes);
    std::vector<float> row(a, a + ref.classes);
    const std::int64_t tl_top = std::max_element(row.begin(), row.end()) - row.begin();
    EXPECT_EQ(tl_top, top) << ref.images[static_cast<std::size_t>(i)];
    const std::size_t line = static_cast<std::size_t>(top + label_offset);
    const std::string label = line < labels.size() ? labels[line] : "?";
    const std::string first_name = label.substr(0, label.find(','));
    const bool is_hymenoptera = first_name == "ant" || first_name == "bee";
    hymenoptera += is_hymenoptera;
    std::cout
        << std::filesystem::path(ref.images[static_cast<std::size_t>(i)]).parent_path().filename().string()
        << "/" << std::filesystem::path(ref.images[static_cast<std::size_t>(i)]).filename().string()
        << ": top-1 " << top << " '" << label << "'" << (is_hymenoptera ? " (ant/bee)" : "")
        << ", normalised error " << error << "\n";
  }
  std::cout << "worst normalised error " << worst << ", worst max|diff| / max|ref| " << worst_max_abs << "; "
            << hymenoptera << " of " << n << " top-1 classes are ant/bee\n";
  EXPECT_LE(worst_max_abs, 1e-4);
}

}  // namespace
}  // namespace tl
