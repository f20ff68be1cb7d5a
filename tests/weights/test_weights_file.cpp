// tl's HDF5 weight files: a round trip of tensors and metadata, atomic replacement, and clear errors for
// files that are not weights, are truncated, or hold NaN.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

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

// Chunked datasets are bounded by what they store times deflate's largest ratio: chunks never written read as
// the fill value, so a file of a few KiB could otherwise declare (and have tl allocate) gigabytes.
TEST_F(WeightsFileTest, ChunkedDatasetsCannotDeclareMoreThanTheyStore) {
  const auto write_chunked = [&](const std::string& path, const std::vector<hsize_t>& dims, bool fill) {
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    const std::vector<hsize_t> chunk(dims.size(), 4);
    H5Pset_chunk(plist, static_cast<int>(chunk.size()), chunk.data());
    H5Pset_deflate(plist, 6);
    const hid_t d = H5Dcreate2(f, "w", H5T_IEEE_F32LE, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    if (fill) {
      std::vector<float> values(static_cast<std::size_t>(dims[0] * dims[1]), 0.5f);
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    }
    H5Dclose(d);
    H5Pclose(plist);
    H5Sclose(space);
    H5Fclose(f);
  };
  write_chunked(file("written.h5"), {8, 8}, true);
  const std::vector<float> values = h5::File::open_read(file("written.h5")).read_floats("w");
  ASSERT_EQ(values.size(), 64u);
  EXPECT_EQ(values[63], 0.5f);

  write_chunked(file("hollow.h5"), {std::uint64_t{1} << 16, std::uint64_t{1} << 14}, false);  // 4 GiB
  try {
    h5::File::open_read(file("hollow.h5")).read_floats("w");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("dataset 'w' declares [65536, 16384]"), std::string::npos) << m;
    EXPECT_NE(m.find("chunks never written"), std::string::npos) << m;
  }
}

// A damaged chunk index may claim any stored size, and libhdf5 allocates a buffer of a chunk's stored size
// before reading it: a stored size beyond the file is refused first (found by tests/fuzz/,
// corpus/weights_file/oom-e985...: a 4 GiB malloc from a 6 KiB file).
TEST_F(WeightsFileTest, AChunkIndexCannotClaimMoreThanTheFile) {
  {
    const hsize_t dims[2] = {8, 8}, chunk[2] = {8, 8};
    const hid_t f = H5Fcreate(file("chunk.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, 2, chunk);
    H5Pset_deflate(plist, 6);
    const hid_t d = H5Dcreate2(f, "w", H5T_IEEE_F32LE, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    const std::vector<float> values(64, 0.25f);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Dclose(d);
    H5Pclose(plist);
    H5Sclose(space);
    H5Fclose(f);
  }
  EXPECT_EQ(h5::File::open_read(file("chunk.h5")).read_floats("w").size(), 64u);
  std::string bytes;
  {
    std::ifstream in(file("chunk.h5"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // The version 1 B-tree of the chunks: "TREE", node type 1 (chunks), level, entries, two sibling addresses,
  // then the first key, which starts with the chunk's stored size (4 bytes).
  std::size_t tree = bytes.find("TREE");
  while (tree != std::string::npos && bytes[tree + 4] != 1) tree = bytes.find("TREE", tree + 1);
  ASSERT_NE(tree, std::string::npos) << "no chunk B-tree";
  for (int i = 0; i < 4; ++i) bytes[tree + 24 + i] = static_cast<char>(i == 0 ? 0x42 : 0xff);
  std::ofstream(file("lying.h5"), std::ios::binary) << bytes;
  try {
    h5::File::open_read(file("lying.h5")).read_floats("w");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("dataset 'w' claims to store 4294967106 bytes but the file holds only"),
              std::string::npos)
        << m;
  }
}

// An integer attribute is read as a double and must fit int64 before the conversion, which is undefined
// behaviour otherwise (found by tests/fuzz/: a num_classes of 1.6e245).
TEST_F(WeightsFileTest, AnIntegerAttributeOutOfRangeIsRefused) {
  for (const double value : {1e300, -1e19, std::nan("")}) {
    save_weights(file("w.h5"), sample_tensors(), sample_metadata());
    const hid_t f = H5Fopen(file("w.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "num_classes");
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "num_classes", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &value);
    H5Aclose(a);
    H5Sclose(space);
    H5Fclose(f);
    try {
      load_weights(file("w.h5"));
      ADD_FAILURE() << "expected an error for " << value;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("attribute 'num_classes' is not a single integer"),
                std::string::npos)
          << e.what();
    }
  }
}

// libhdf5 1.10 never finishes parsing a global heap collection (where variable-length strings live) that
// holds a free-space object of size 0, and h5py hangs on such a file too: tl refuses it before libhdf5 reads
// a string (found by tests/fuzz/, corpus/weights_file/timeout-7c27...).
TEST_F(WeightsFileTest, AGlobalHeapThatNeverEndsIsRefused) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  std::string bytes;
  {
    std::ifstream in(file("w.h5"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::size_t heap = bytes.find("GCOL");
  ASSERT_NE(heap, std::string::npos) << "save_weights wrote no variable-length strings";
  // An object that claims more bytes than its collection holds (libhdf5 would copy from past its buffer).
  std::string overrun = bytes;
  for (std::size_t i = heap + 24; i < heap + 32; ++i) overrun[i] = i < heap + 28 ? '\xff' : '\0';
  std::ofstream(file("overrun.h5"), std::ios::binary) << overrun;
  try {
    load_weights(file("overrun.h5"));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("claims 4294967295 bytes, past the collection's end"),
              std::string::npos)
        << e.what();
  }
  // The first object becomes a free-space object (index 0) of size 0.
  for (std::size_t i = heap + 16; i < heap + 32; ++i) bytes[i] = '\0';
  std::ofstream(file("endless.h5"), std::ios::binary) << bytes;
  try {
    load_weights(file("endless.h5"));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file("endless.h5") + ": damaged HDF5 file: the global heap collection at byte " +
                     std::to_string(heap)),
              std::string::npos)
        << m;
  }
}

}  // namespace
}  // namespace tl::weights
