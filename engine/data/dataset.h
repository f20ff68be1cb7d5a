// Labelled image collections. ImageFolder finds the images of a folder tree (one sub-folder per class,
// classes sorted by name as torchvision does); a Dataset turns an index into a transformed tensor and a
// label, drawing any randomness from the generator it is handed (so a sample's augmentation depends only on
// the seed, the epoch and the index, never on which worker thread loads it).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/random.h"
#include "engine/tensor.h"

namespace tl::data {

struct Sample {
  std::string path;
  std::int64_t label = 0;
};

// A folder of class folders: root/<class>/<file>. Every regular, non-hidden file is a sample (whether it
// decodes is found out when it is loaded); files directly in root and hidden files are ignored.
struct ImageFolder {
  std::string root;
  std::vector<std::string> classes;  // sorted by name; label i is classes[i]
  std::vector<Sample> samples;       // by class, then by file name

  // Throws ValueError naming the folder when it does not exist, has no class folders, has only one class, or
  // has an empty class folder.
  static ImageFolder scan(const std::string& root);
  std::int64_t count(std::int64_t label) const;
};

// Where the training and validation images come from: root/train and root/val when both exist; else root with
// a separate validation folder `val_root`; else a seeded, class-stratified split of root keeping
// `val_fraction` of each class for validation. The classes of train and val must agree (ValueError
// otherwise). An explicit `val_root` always wins (with root/train as the training folder when root has one),
// and a root with train/ but no val/ splits root/train: a user who names a folder means it.
struct Splits {
  ImageFolder train, val;
  std::string description;  // "train/ and val/ under <root>", "a 20% split of <root> (seed 0)", ...
};
Splits find_splits(const std::string& root, const std::string& val_root = "", double val_fraction = 0.2,
                   std::uint64_t seed = 0);

// A seed for one purpose from several values (splitmix64 over each in turn): (seed, epoch, index) tuples that
// differ anywhere give unrelated streams.
std::uint64_t mix_seed(std::initializer_list<std::uint64_t> values);
// A Fisher-Yates permutation of 0..n-1 driven by Philox with `seed`; the same on every machine.
std::vector<std::int64_t> seeded_permutation(std::int64_t n, std::uint64_t seed);

// get() and the other members are called from several loader threads at once, so they must not change state.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual std::int64_t label(std::int64_t index) const = 0;
  // The sample as a [3, H, W] float tensor (every sample of a dataset has the same H and W). Throws
  // ImageError (naming the file) when it cannot be decoded.
  virtual Tensor get(std::int64_t index, Generator& generator) const = 0;
  // A name for messages: the file path, or "fashion-mnist train #17".
  virtual std::string describe(std::int64_t index) const = 0;
  virtual const std::vector<std::string>& classes() const = 0;
};

// An ImageFolder's samples through a transform (training augmentation or evaluation preprocessing).
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(ImageFolder folder, Transform transform);
  std::int64_t size() const override { return static_cast<std::int64_t>(folder_.samples.size()); }
  std::int64_t label(std::int64_t index) const override;
  Tensor get(std::int64_t index, Generator& generator) const override;
  std::string describe(std::int64_t index) const override;
  const std::vector<std::string>& classes() const override { return folder_.classes; }
  const ImageFolder& folder() const { return folder_; }

 private:
  ImageFolder folder_;
  Transform transform_;
};

// Fashion-MNIST from Debian's dataset-fashion-mnist package (IDX files, by default under
// /usr/share/datasets/fashion-mnist), as 3-channel images (the gray value repeated) through `transform`.
// `class_subset` keeps only those labels (relabelled 0..k-1 in the given order; empty: all ten); `per_class`
// keeps at most that many images of each (0: all), the first ones in file order.
class FashionMnistDataset : public Dataset {
 public:
  struct Options {
    std::string folder = "/usr/share/datasets/fashion-mnist";
    bool train = true;  // train-images (60000) or t10k-images (10000)
    std::vector<std::int64_t> class_subset;
    std::int64_t per_class = 0;
  };
  FashionMnistDataset(const Options& options, Transform transform);
  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  std::int64_t label(std::int64_t index) const override;
  Tensor get(std::int64_t index, Generator& generator) const override;
  std::string describe(std::int64_t index) const override;
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  Options options_;
  Transform transform_;
  std::int64_t rows_ = 0, cols_ = 0;
  std::vector<std::uint8_t> pixels_;       // all images of the file, row-major
  std::vector<std::int64_t> file_labels_;  // all labels of the file, relabelled (-1: not in the subset)
  std::vector<std::int64_t> indices_;      // kept images, in order
  std::vector<std::string> classes_;
};

}  // namespace tl::data
