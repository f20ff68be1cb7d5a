// tl's HDF5 weight files: a round trip of tensors and metadata, atomic replacement, and clear errors for
// files that are not weights, are truncated, or hold NaN.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/random.h"
#include "weights/hdf5.h"
#include "weights/weights_file.h"

namespace tl::weights {
namespace {

namespace fs = std::filesystem;

class WeightsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_weights_test_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }
  std::string file(const std::string& name) const { return (folder_ / name).string(); }

  fs::path folder_;
};

StateDict sample_tensors() {
  Generator g(4);
  StateDict sd;
  sd.insert("conv1.weight", uniform({4, 3, 3, 3}, -1, 1, g));
  sd.insert("layer1.0.bn1.running_var", uniform({4}, 0.5, 2, g));
  sd.insert("layer1.0.bn1.num_batches_tracked", tensor(std::vector<std::int64_t>{17}, {}));
  sd.insert("fc.bias", uniform({2}, -1, 1, g, DType::Float64));  // stored as float32
  return sd;
}

Metadata sample_metadata() {
  Metadata m;
  m.architecture = "resnet18";
  m.num_classes = 2;
  m.preprocessing.input_size = 192;
  m.preprocessing.mean = {0.5, 0.25, 0.125};
  m.preprocessing.std = {0.1, 0.2, 0.3};
  m.preprocessing.interpolation = "bicubic";
  m.preprocessing.crop_fraction = 0.9;
  m.class_names = {"ants", "bees — Apis"};
  m.source = "unit test";
  return m;
}

TEST_F(WeightsFileTest, RoundTripKeepsTensorsAndMetadata) {
  const StateDict sd = sample_tensors();
  save_weights(file("w.h5"), sd, sample_metadata());
  EXPECT_TRUE(is_hdf5_file(file("w.h5")));
  const WeightsFile loaded = load_weights(file("w.h5"));
  ASSERT_EQ(loaded.tensors.size(), sd.size());
  for (const auto& [name, t] : sd) {
    const Tensor& back = loaded.tensors.at(name);
    EXPECT_EQ(back.shape(), t.shape()) << name;
    if (t.dtype() == DType::Int64) {
      EXPECT_EQ(back.dtype(), DType::Int64);
      EXPECT_EQ(back.item<std::int64_t>(), 17);
    } else {
      EXPECT_EQ(back.dtype(), DType::Float32);
      EXPECT_EQ(back.to_vector<float>(), t.to(DType::Float32).to_vector<float>()) << name;
    }
  }
  const Metadata m = loaded.metadata;
  EXPECT_EQ(m.architecture, "resnet18");
  EXPECT_EQ(m.num_classes, 2);
  EXPECT_EQ(m.preprocessing.input_size, 192);
  EXPECT_EQ(m.preprocessing.mean, (std::array<double, 3>{0.5, 0.25, 0.125}));
  EXPECT_EQ(m.preprocessing.std, (std::array<double, 3>{0.1, 0.2, 0.3}));
  EXPECT_EQ(m.preprocessing.interpolation, "bicubic");
  EXPECT_DOUBLE_EQ(m.preprocessing.crop_fraction, 0.9);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"ants", "bees — Apis"}));
  EXPECT_EQ(m.source, "unit test");
}

TEST_F(WeightsFileTest, UnknownClassNamesRoundTripAsEmpty) {
  Metadata m = sample_metadata();
  m.class_names.clear();
  save_weights(file("w.h5"), sample_tensors(), m);
  EXPECT_TRUE(load_weights(file("w.h5")).metadata.class_names.empty());
}

TEST_F(WeightsFileTest, CheckpointExtrasStayApartFromTheModel) {
  Metadata m = sample_metadata();
  m.training_state = R"({"epoch": 3})";
  StateDict extra;
  extra.insert("conv1.weight.momentum_buffer", ones({4, 3, 3, 3}));
  extra.insert("optimizer.step", tensor(std::vector<std::int64_t>{12}, {}));
  extra.insert("group.head.lr", tensor(std::vector<double>{0.1 / 3}, {}));
  save_weights(file("ckpt.h5"), sample_tensors(), m, extra);
  const WeightsFile loaded = load_weights(file("ckpt.h5"));
  EXPECT_EQ(loaded.tensors.size(), 4u);  // the model's entries only
  EXPECT_FALSE(loaded.tensors.contains("conv1.weight.momentum_buffer"));
  ASSERT_EQ(loaded.extra.size(), 3u);
  EXPECT_EQ(loaded.extra.at("group.head.lr").item<double>(), 0.1 / 3);  // float64 survives exactly
  EXPECT_EQ(loaded.extra.at("conv1.weight.momentum_buffer").shape(), Shape({4, 3, 3, 3}));
  EXPECT_EQ(loaded.extra.at("optimizer.step").item<std::int64_t>(), 12);
  EXPECT_EQ(loaded.metadata.training_state, R"({"epoch": 3})");
  StateDict reserved;
  reserved.insert("_extra.x", zeros({1}));
  EXPECT_THROW(save_weights(file("bad.h5"), reserved, m), ValueError);
}

TEST_F(WeightsFileTest, DatasetsSitAtTheDottedPath) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  const h5::File f = h5::File::open_read(file("w.h5"));
  EXPECT_TRUE(f.exists("/layer1/0/bn1/running_var"));
  EXPECT_EQ(f.dataset_info("conv1/weight").shape, Shape({4, 3, 3, 3}));
  EXPECT_EQ(f.read_string_attribute("/", "format"), std::vector<std::string>{"tl-weights"});
}

TEST_F(WeightsFileTest, AFailedSaveLeavesTheOldFileIntact) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  StateDict bad = sample_tensors();
  bad.insert("bad..name", zeros({1}));
  EXPECT_THROW(save_weights(file("w.h5"), bad, sample_metadata()), ValueError);
  EXPECT_EQ(load_weights(file("w.h5")).tensors.size(), 4u);
  for (const auto& entry : fs::directory_iterator(folder_))
    EXPECT_EQ(entry.path().filename(), "w.h5") << "temporary file left behind";
  EXPECT_THROW(save_weights(file("missing-folder/w.h5"), sample_tensors(), sample_metadata()), Error);
}

TEST_F(WeightsFileTest, BadFilesGiveMessagesNamingThem) {
  const auto expect_error = [](const std::string& path, const std::string& fragment) {
    try {
      load_weights(path);
      ADD_FAILURE() << "expected an error for " << path;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(fragment), std::string::npos) << m;
    }
  };
  expect_error(file("absent.h5"), "no such file");
  std::ofstream(file("text.h5")) << "not hdf5 at all";
  expect_error(file("text.h5"), "not an HDF5 file");

  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  const auto size = fs::file_size(file("w.h5"));
  for (double fraction : {0.3, 0.6, 0.95}) {
    fs::copy_file(file("w.h5"), file("cut.h5"), fs::copy_options::overwrite_existing);
    fs::resize_file(file("cut.h5"), static_cast<std::uintmax_t>(size * fraction));
    EXPECT_THROW(load_weights(file("cut.h5")), Error) << "truncated to " << fraction;
  }

  h5::File plain = h5::File::create(file("plain.h5"));
  const float one = 1;
  plain.write_floats("x", {1}, &one);
  plain.close();
  expect_error(file("plain.h5"), "not a tl weights file");

  StateDict nan;
  nan.insert("w", full({2}, std::nan("")));
  save_weights(file("nan.h5"), nan, sample_metadata());
  expect_error(file("nan.h5"), "tensor 'w' holds NaN");
}

}  // namespace
}  // namespace tl::weights
