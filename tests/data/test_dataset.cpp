// Decoding every kind of JPEG and PNG against PIL, ImageFolder's scan and its refusals, the three ways of
// finding train and val, the seeded permutation, and Fashion-MNIST from Debian's package.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include <unistd.h>

#include "engine/data/dataset.h"
#include "tests/support/fixtures.h"

namespace tl::data {
namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `fn`, which must throw E; returns the message.
template <typename E, typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

std::vector<std::string> names_of(const ImageFolder& folder) {
  std::vector<std::string> names;
  for (const auto& s : folder.samples) names.push_back(fs::path(s.path).filename().string());
  return names;
}

// ---- decoding
// -----------------------------------------------------------------------------------------------

TEST(DataDecode, EveryKindMatchesPil) {
  TL_REQUIRE_FIXTURE(dir, "data/decode");
  std::ifstream list(dir + "/expected.txt");
  std::string name;
  std::int64_t width = 0, height = 0;
  int tolerance = 0, files = 0;
  while (list >> name >> width >> height >> tolerance) {
    SCOPED_TRACE(name);
    ++files;
    const Image image = decode_image(dir + "/" + name);
    ASSERT_EQ(image.width, width);
    ASSERT_EQ(image.height, height);
    const auto expected = read_bytes(dir + "/" + name + ".rgb");
    ASSERT_EQ(image.rgb.size(), expected.size());
    int worst = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
      worst = std::max(worst, std::abs(image.rgb[i] - expected[i]));
    EXPECT_LE(worst, tolerance);
    // The pattern is not flat, so a decoder that gave a constant image could not pass by luck.
    const auto [lo, hi] = std::minmax_element(expected.begin(), expected.end());
    EXPECT_GT(*hi - *lo, 100);
  }
  EXPECT_EQ(files, 10);
}

TEST(DataDecode, GrayscaleBecomesThreeEqualChannels) {
  TL_REQUIRE_FIXTURE(dir, "data/decode");
  for (const char* name : {"gray.jpg", "gray.png", "gray16.png"}) {
    SCOPED_TRACE(name);
    const Image image = decode_image(dir + "/" + name);
    for (std::int64_t y = 0; y < image.height; ++y)
      for (std::int64_t x = 0; x < image.width; ++x) {
        ASSERT_EQ(image.at(y, x, 0), image.at(y, x, 1));
        ASSERT_EQ(image.at(y, x, 0), image.at(y, x, 2));
      }
  }
}

TEST(DataDecode, BadFilesAreRefusedByName) {
  TL_REQUIRE_FIXTURE(dir, "data/decode/bad");
  std::ifstream list(dir + "/cases.txt");
  std::string line;
  int cases = 0;
  while (std::getline(list, line)) {
    const auto tab = line.find('\t');
    const std::string name = line.substr(0, tab), fragment = line.substr(tab + 1);
    SCOPED_TRACE(name);
    ++cases;
    const std::string m = message_of<ImageError>([&] { decode_image(dir + "/" + name); });
    EXPECT_NE(m.find(dir + "/" + name), std::string::npos) << m;
    EXPECT_NE(m.find(fragment), std::string::npos) << m;
  }
  EXPECT_EQ(cases, 4);
  EXPECT_NE(
      message_of<ImageError>([&] { decode_image(dir + "/missing.jpg"); }).find("missing.jpg: cannot open"),
      std::string::npos);
}

// A header may not declare more pixels than its bytes could encode (at most 4096 per byte): libjpeg decodes
// missing or corrupt scan data as gray, so a 137-byte file declaring 1540 x 45319 CMYK pixels cost seconds
// (found by tests/fuzz/, corpus/jpeg/timeout-ad00...).
TEST(DataDecode, AJpegCannotDeclareMorePixelsThanItsBytesHold) {
  TL_REQUIRE_FIXTURE(dir, "data/decode");
  std::ifstream in(dir + "/baseline.jpg", std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_NO_THROW(decode_image_bytes(bytes, "baseline.jpg"));
  std::size_t sof = 0;
  while (sof + 9 < bytes.size() && !(bytes[sof] == 0xFF && bytes[sof + 1] == 0xC0)) ++sof;
  ASSERT_LT(sof + 9, bytes.size()) << "no SOF0 marker";
  bytes[sof + 5] = 45319 >> 8;  // height
  bytes[sof + 6] = 45319 & 0xFF;
  bytes[sof + 7] = 1540 >> 8;  // width
  bytes[sof + 8] = 1540 & 0xFF;
  const std::string m = message_of<ImageError>([&] { decode_image_bytes(bytes, "big.jpg"); });
  EXPECT_NE(m.find("big.jpg: cannot decode: 1540 x 45319 pixels cannot be encoded in"), std::string::npos)
      << m;
}

// ---- ImageFolder
// --------------------------------------------------------------------------------------------

TEST(ImageFolder, ClassesAndFilesSortedHiddenAndLooseFilesIgnored) {
  TL_REQUIRE_FIXTURE(root, "data/trees/standard/train");
  const ImageFolder f = ImageFolder::scan(root);
  EXPECT_EQ(f.root, root);
  EXPECT_EQ(f.classes, (std::vector<std::string>{"ants", "bees"}));  // .cache is hidden
  EXPECT_EQ(names_of(f), (std::vector<std::string>{"a1.jpg", "a2.jpg", "b0.png", "b1.jpg", "b2.jpg"}));
  std::vector<std::int64_t> labels;
  for (const auto& s : f.samples) labels.push_back(s.label);
  EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(f.samples[2].path, root + "/bees/b0.png");
  EXPECT_EQ(f.count(0), 2);
  EXPECT_EQ(f.count(1), 3);
  EXPECT_EQ(f.count(2), 0);
}

TEST(ImageFolder, RefusesFoldersItCannotUse) {
  TL_REQUIRE_FIXTURE(trees, "data/trees");
  std::string m = message_of<ValueError>([&] { ImageFolder::scan(trees + "/nowhere"); });
  EXPECT_NE(m.find(trees + "/nowhere: no such folder"), std::string::npos) << m;
  m = message_of<ValueError>([&] { ImageFolder::scan(trees + "/empty_class"); });
  EXPECT_NE(m.find(trees + "/empty_class: class folder 'bees' is empty"), std::string::npos) << m;
  m = message_of<ValueError>([&] { ImageFolder::scan(trees + "/single_class"); });
  EXPECT_NE(m.find(trees + "/single_class: only one class folder ('only')"), std::string::npos) << m;
  m = message_of<ValueError>([&] { ImageFolder::scan(trees + "/no_classes"); });
  EXPECT_NE(m.find(trees + "/no_classes: no class folders"), std::string::npos) << m;
  EXPECT_NE(m.find("found 2 files directly in it"), std::string::npos) << m;
}

// ---- splits
// -------------------------------------------------------------------------------------------------

TEST(DataSplits, TrainAndValUnderOneRoot) {
  TL_REQUIRE_FIXTURE(root, "data/trees/standard");
  const Splits s = find_splits(root);
  EXPECT_EQ(s.train.root, root + "/train");
  EXPECT_EQ(s.val.root, root + "/val");
  EXPECT_EQ(s.train.samples.size(), 5u);
  EXPECT_EQ(names_of(s.val), (std::vector<std::string>{"v1.jpg", "v2.jpg", "v3.png"}));
  EXPECT_EQ(s.description, "train/ and val/ under " + root);
}

TEST(DataSplits, SeparateValidationFolderWithTheSameClasses) {
  TL_REQUIRE_FIXTURE(trees, "data/trees");
  const Splits s = find_splits(trees + "/flat", trees + "/flat_val");
  EXPECT_EQ(s.train.samples.size(), 17u);
  EXPECT_EQ(s.val.samples.size(), 3u);
  EXPECT_EQ(s.val.classes, (std::vector<std::string>{"cats", "dogs", "owls"}));
  const std::string m =
      message_of<ValueError>([&] { find_splits(trees + "/flat", trees + "/other_classes"); });
  EXPECT_NE(m.find("cats, dogs, owls"), std::string::npos) << m;
  EXPECT_NE(m.find("cats, horses, owls"), std::string::npos) << m;
  EXPECT_NE(m.find(trees + "/other_classes"), std::string::npos) << m;
}

TEST(DataSplits, SeededStratifiedSplitWithoutVal) {
  TL_REQUIRE_FIXTURE(root, "data/trees/flat");
  const Splits s = find_splits(root, "", 0.2, 7);
  // cats 10 -> 2 for val, dogs 5 -> 1, owls 2 -> 0.4 rounds to 0 but every class keeps one on each side.
  ASSERT_EQ(s.val.samples.size(), 4u);
  EXPECT_EQ(s.val.count(0), 2);
  EXPECT_EQ(s.val.count(1), 1);
  EXPECT_EQ(s.val.count(2), 1);
  EXPECT_EQ(s.train.samples.size(), 13u);
  EXPECT_EQ(s.description, "a 20% split of " + root + " (seed 7)");
  // Disjoint, together the whole folder, each side in class-then-name order.
  std::set<std::string> all;
  for (const auto* side : {&s.train, &s.val}) {
    for (std::size_t i = 0; i < side->samples.size(); ++i) {
      all.insert(side->samples[i].path);
      if (i > 0) {
        const auto& a = side->samples[i - 1];
        const auto& b = side->samples[i];
        EXPECT_TRUE(a.label < b.label || (a.label == b.label && a.path < b.path));
      }
    }
  }
  EXPECT_EQ(all.size(), 17u);
  // The same seed gives the same split; the seed matters.
  EXPECT_EQ(names_of(find_splits(root, "", 0.2, 7).val), names_of(s.val));
  std::set<std::vector<std::string>> distinct;
  for (std::uint64_t seed = 0; seed < 10; ++seed)
    distinct.insert(names_of(find_splits(root, "", 0.2, seed).val));
  EXPECT_GE(distinct.size(), 5u);
}

TEST(DataSplits, RefusesAClassTooSmallToSplitAndABadFraction) {
  TL_REQUIRE_FIXTURE(trees, "data/trees");
  std::string m = message_of<ValueError>([&] { find_splits(trees + "/one_image_class"); });
  EXPECT_NE(m.find("class 'b' has 1 file"), std::string::npos) << m;
  m = message_of<ValueError>([&] { find_splits(trees + "/flat", "", 1.0); });
  EXPECT_NE(m.find("has no val/ folder"), std::string::npos) << m;
}

// ---- seeds
// --------------------------------------------------------------------------------------------------

TEST(DataSeeds, PermutationIsSeededAndUniform) {
  auto p = seeded_permutation(1000, 42);
  EXPECT_EQ(p, seeded_permutation(1000, 42));
  EXPECT_NE(p, seeded_permutation(1000, 43));
  std::vector<std::int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota);
  EXPECT_TRUE(seeded_permutation(0, 1).empty());
  EXPECT_EQ(seeded_permutation(1, 1), std::vector<std::int64_t>{0});
  // All 6 orders of 3 come up equally often (an off-by-one in Fisher-Yates gives only the 2 cyclic ones).
  std::map<std::vector<std::int64_t>, int> counts;
  for (std::uint64_t seed = 0; seed < 6000; ++seed) ++counts[seeded_permutation(3, mix_seed({seed}))];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [order, n] : counts) EXPECT_NEAR(n, 1000, 120);
}

TEST(DataSeeds, MixSeedSeparatesTuples) {
  EXPECT_EQ(mix_seed({1, 2}), mix_seed({1, 2}));
  EXPECT_NE(mix_seed({1, 2}), mix_seed({2, 1}));
  EXPECT_NE(mix_seed({1, 2}), mix_seed({1, 2, 0}));
  EXPECT_NE(mix_seed({0}), mix_seed({}));
}

// ---- ImageFolderDataset
// -------------------------------------------------------------------------------------

TEST(DataImageFolderDataset, DecodesThroughTheTransform) {
  TL_REQUIRE_FIXTURE(root, "data/trees/standard/train");
  ImageFolder folder = ImageFolder::scan(root);
  const ImageFolderDataset ds(folder, [](const Image& image, Generator&) {
    Tensor t = zeros({3, 2, 2});
    t.data<float>()[0] = static_cast<float>(image.width);
    t.data<float>()[1] = static_cast<float>(image.at(0, image.width - 1, 0));  // red is 255 at the right edge
    return t;
  });
  EXPECT_EQ(ds.size(), 5);
  EXPECT_EQ(ds.classes(), folder.classes);
  EXPECT_EQ(ds.label(3), 1);
  EXPECT_EQ(ds.describe(3), root + "/bees/b1.jpg");
  Generator g(0);
  const Tensor t = ds.get(2, g);  // bees/b0.png: lossless, so the right edge is exactly 255
  EXPECT_EQ(t.data<float>()[0], static_cast<float>(decode_image(root + "/bees/b0.png").width));
  EXPECT_EQ(t.data<float>()[1], 255);
  EXPECT_THROW(ds.get(5, g), ValueError);
  EXPECT_THROW(ds.label(-1), ValueError);
}

// ---- Fashion-MNIST
// ------------------------------------------------------------------------------------------

const char* kFashionFolder = "/usr/share/datasets/fashion-mnist";

// The 28 x 28 image itself, unnormalised: [3, 28, 28] of the byte values.
Tensor raw(const Image& image, Generator&) {
  return to_normalized_tensor(image, {0, 0, 0}, {1.0 / 255, 1.0 / 255, 1.0 / 255});
}

TEST(FashionMnist, SubsetAndPerClassLimit) {
  if (!fs::exists(std::string(kFashionFolder) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << kFashionFolder << " is absent: install Debian's dataset-fashion-mnist";
  FashionMnistDataset::Options o;
  o.train = false;
  o.class_subset = {9, 0};
  o.per_class = 5;
  const FashionMnistDataset ds(o, raw);
  ASSERT_EQ(ds.size(), 10);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"Ankle boot", "T-shirt/top"}));
  int per_label[2] = {0, 0};
  std::int64_t last_file_index = -1;
  for (std::int64_t i = 0; i < ds.size(); ++i) {
    ASSERT_GE(ds.label(i), 0);
    ASSERT_LE(ds.label(i), 1);
    ++per_label[ds.label(i)];
    // Kept in file order: "fashion-mnist t10k #<file index>", increasing.
    const std::string name = ds.describe(i);
    ASSERT_EQ(name.rfind("fashion-mnist t10k #", 0), 0u) << name;
    const std::int64_t file_index = std::stoll(name.substr(20));
    EXPECT_GT(file_index, last_file_index);
    last_file_index = file_index;
  }
  EXPECT_EQ(per_label[0], 5);
  EXPECT_EQ(per_label[1], 5);
  EXPECT_EQ(ds.describe(0), "fashion-mnist t10k #0");  // the test set opens with an ankle boot
  EXPECT_EQ(ds.label(0), 0);

  Generator g(0);
  const Tensor t = ds.get(0, g);
  ASSERT_EQ(t.shape(), (Shape{3, 28, 28}));
  const auto v = t.to_vector<float>();
  float lo = 255, hi = 0;
  for (std::size_t i = 0; i < 784; ++i) {
    ASSERT_EQ(v[i], v[i + 784]);
    ASSERT_EQ(v[i], v[i + 2 * 784]);
    ASSERT_NEAR(v[i], std::round(v[i]), 1e-3);
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  EXPECT_EQ(lo, 0);    // black background
  EXPECT_GT(hi, 200);  // a bright garment
}

TEST(FashionMnist, AllClassesAreBalancedInTheTestSet) {
  if (!fs::exists(std::string(kFashionFolder) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << kFashionFolder << " is absent: install Debian's dataset-fashion-mnist";
  FashionMnistDataset::Options o;
  o.train = false;
  const FashionMnistDataset ds(o, raw);
  ASSERT_EQ(ds.size(), 10000);
  ASSERT_EQ(ds.classes().size(), 10u);
  EXPECT_EQ(ds.classes()[9], "Ankle boot");
  std::vector<int> counts(10, 0);
  for (std::int64_t i = 0; i < ds.size(); ++i) ++counts[static_cast<std::size_t>(ds.label(i))];
  EXPECT_EQ(counts, std::vector<int>(10, 1000));
}

TEST(FashionMnist, ClearErrors) {
  FashionMnistDataset::Options o;
  o.folder = "/nonexistent/fashion";
  std::string m = message_of<ValueError>([&] { FashionMnistDataset(o, raw); });
  EXPECT_NE(m.find("/nonexistent/fashion"), std::string::npos) << m;
  EXPECT_NE(m.find("dataset-fashion-mnist"), std::string::npos) << m;
  o = {};
  o.class_subset = {3, 10};
  m = message_of<ValueError>([&] { FashionMnistDataset(o, raw); });
  EXPECT_NE(m.find("class 10"), std::string::npos) << m;
  o.class_subset = {3, 3};
  m = message_of<ValueError>([&] { FashionMnistDataset(o, raw); });
  EXPECT_NE(m.find("twice"), std::string::npos) << m;
}

TEST(FashionMnist, RefusesADamagedFile) {
  // A folder whose label file lies about its size: the header is checked against the data.
  const fs::path dir = fs::temp_directory_path() / ("tl_fashion_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto write = [&](const std::string& name, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(dir / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  std::vector<std::uint8_t> images = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2};
  images.resize(16 + 8, 7);
  write("t10k-images-idx3-ubyte", images);
  write("t10k-labels-idx1-ubyte", {0, 0, 8, 1, 0, 0, 0, 3, 1, 2});  // promises 3 labels, holds 2
  FashionMnistDataset::Options o;
  o.folder = dir.string();
  o.train = false;
  const std::string m = message_of<ValueError>([&] { FashionMnistDataset(o, raw); });
  EXPECT_NE(m.find("t10k-labels-idx1-ubyte: the header promises 3 bytes of data but the file has 2"),
            std::string::npos)
      << m;
  write("t10k-labels-idx1-ubyte", {0, 0, 8, 1, 0, 0, 0, 2, 1, 2});
  const FashionMnistDataset ok(o, raw);  // uncompressed IDX files are read too
  EXPECT_EQ(ok.size(), 2);
  EXPECT_EQ(ok.label(1), 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tl::data
