#include "engine/data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <system_error>

#include "engine/error.h"
#include "kernels/philox.h"

namespace tl::data {
namespace fs = std::filesystem;
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Keeps the split's per-class permutations apart from the loader's epoch orders, which use the same seed.
constexpr std::uint64_t kSplitStream = 0x53504C4954ull;  // "SPLIT"

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---- IDX files (Fashion-MNIST)
// ------------------------------------------------------------------------------

// The whole (gzip-compressed or plain: zlib reads both) file in memory.
std::vector<std::uint8_t> read_gzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw ValueError(str(path, ": cannot open"));
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> chunk(1 << 20);
  for (;;) {
    const int got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw ValueError(str(path, ": cannot decompress: ", message));
    }
    if (got == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + got);
  }
  gzclose(file);
  return out;
}

std::uint32_t big_endian_u32(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  return static_cast<std::uint32_t>(bytes[at]) << 24 | static_cast<std::uint32_t>(bytes[at + 1]) << 16 |
         static_cast<std::uint32_t>(bytes[at + 2]) << 8 | static_cast<std::uint32_t>(bytes[at + 3]);
}

// Checks an IDX header (magic, then one big-endian size per dimension) against the bytes that follow it.
std::vector<std::int64_t> idx_dims(const std::vector<std::uint8_t>& bytes, std::uint32_t magic, int rank,
                                   const std::string& path) {
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  TL_CHECK(bytes.size() >= header, ValueError, path, ": not an IDX file (", bytes.size(), " bytes)");
  TL_CHECK(big_endian_u32(bytes, 0) == magic, ValueError, path,
           ": not an IDX file of the expected kind (magic ", big_endian_u32(bytes, 0), ", expected ", magic,
           ")");
  std::vector<std::int64_t> dims;
  std::uint64_t elements = 1;
  for (int d = 0; d < rank; ++d) {
    dims.push_back(big_endian_u32(bytes, 4 + 4 * static_cast<std::size_t>(d)));
    elements *= static_cast<std::uint64_t>(dims.back());
  }
  TL_CHECK(bytes.size() - header == elements, ValueError, path, ": the header promises ", elements,
           " bytes of data but the file has ", bytes.size() - header);
  return dims;
}

// Throws ValueError naming `path` unless it is a folder, saying whether it is missing or something else.
void require_folder(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return;
  TL_CHECK(!fs::exists(path, ec), ValueError, path,
           ": not a folder (a data set is a folder of class folders)");
  throw ValueError(str(path, ": no such folder"));
}

std::string locate(const std::string& folder, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem})
    if (fs::is_regular_file(fs::path(folder) / name)) return (fs::path(folder) / name).string();
  throw ValueError(
      str(folder, ": Fashion-MNIST not found (no ", stem,
          ".gz); install Debian's dataset-fashion-mnist package "
          "(apt-get install dataset-fashion-mnist) or name the folder that holds its IDX files"));
}

const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace

std::uint64_t mix_seed(std::initializer_list<std::uint64_t> values) {
  std::uint64_t h =
      0x6A09E667F3BCC908ull;  // any fixed start; splitmix64 is a bijection, so h ^ v stays distinct
  for (const std::uint64_t v : values) h = splitmix64(h ^ v);
  return h;
}

std::vector<std::int64_t> seeded_permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), 0);
  // Step i draws from Philox block i, so the permutation is a pure function of (n, seed).
  for (std::int64_t i = n - 1; i > 0; --i) {
    const kernels::PhiloxBlock bits = kernels::philox4x32(seed, static_cast<std::uint64_t>(i));
    const double u = kernels::philox_uniform_double(bits[0], bits[1]);
    const std::int64_t j = std::min(i, static_cast<std::int64_t>(u * static_cast<double>(i + 1)));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

// ---- ImageFolder
// --------------------------------------------------------------------------------------------

ImageFolder ImageFolder::scan(const std::string& root) {
  std::error_code ec;
  require_folder(root);
  ImageFolder folder;
  folder.root = root;
  std::int64_t loose_files = 0;
  // Hidden folders are skipped too: torchvision counts .ipynb_checkpoints as a class, a classic surprise.
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (it->is_directory(ec))
      folder.classes.push_back(it->path().filename().string());
    else
      ++loose_files;
  }
  TL_CHECK(!ec, ValueError, root, ": cannot list the folder: ", ec.message());
  std::sort(folder.classes.begin(), folder.classes.end());
  TL_CHECK(!folder.classes.empty(), ValueError, root,
           ": no class folders (expected one sub-folder per class, as in ", root, "/<class>/<image>",
           loose_files ? str("; found ", loose_files, " files directly in it") : std::string(), ")");
  TL_CHECK(folder.classes.size() >= 2, ValueError, root, ": only one class folder ('", folder.classes[0],
           "'); a classifier needs at least two classes");
  for (std::size_t label = 0; label < folder.classes.size(); ++label) {
    const fs::path class_dir = fs::path(root) / folder.classes[label];
    std::vector<std::string> files;
    for (fs::directory_iterator it(class_dir, ec), end; !ec && it != end; it.increment(ec))
      if (!hidden(it->path()) && it->is_regular_file(ec)) files.push_back(it->path().filename().string());
    TL_CHECK(!ec, ValueError, class_dir.string(), ": cannot list the folder: ", ec.message());
    TL_CHECK(!files.empty(), ValueError, root, ": class folder '", folder.classes[label], "' is empty");
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
      folder.samples.push_back({(class_dir / f).string(), static_cast<std::int64_t>(label)});
  }
  return folder;
}

std::int64_t ImageFolder::count(std::int64_t label) const {
  return std::count_if(samples.begin(), samples.end(), [&](const Sample& s) { return s.label == label; });
}

Splits find_splits(const std::string& root, const std::string& val_root, double val_fraction,
                   std::uint64_t seed) {
  std::error_code ec;
  require_folder(root);
  const fs::path train_dir = fs::path(root) / "train", val_dir = fs::path(root) / "val";
  const bool has_train = fs::is_directory(train_dir, ec), has_val = fs::is_directory(val_dir, ec);
  Splits splits;
  if (!val_root.empty() || (has_train && has_val)) {
    const std::string train_path = has_train ? train_dir.string() : root;
    const std::string val_path = val_root.empty() ? val_dir.string() : val_root;
    splits.train = ImageFolder::scan(train_path);
    splits.val = ImageFolder::scan(val_path);
    TL_CHECK(splits.train.classes == splits.val.classes, ValueError, "the classes of ", train_path, " (",
             join(splits.train.classes), ") and ", val_path, " (", join(splits.val.classes),
             ") differ; both need the same class folders");
    splits.description = val_root.empty() ? str("train/ and val/ under ", root)
                                          : str(train_path, " with validation folder ", val_root);
    return splits;
  }
  TL_CHECK(val_fraction > 0 && val_fraction < 1, ValueError, root,
           ": has no val/ folder, so a validation fraction strictly between 0 and 1 is needed, got ",
           val_fraction);
  const std::string source = has_train ? train_dir.string() : root;
  const ImageFolder all = ImageFolder::scan(source);
  splits.train.root = splits.val.root = source;
  splits.train.classes = splits.val.classes = all.classes;
  for (std::int64_t label = 0; label < static_cast<std::int64_t>(all.classes.size()); ++label) {
    std::vector<const Sample*> members;
    for (const auto& s : all.samples)
      if (s.label == label) members.push_back(&s);
    const auto n = static_cast<std::int64_t>(members.size());
    TL_CHECK(n >= 2, ValueError, source, ": class '", all.classes[static_cast<std::size_t>(label)], "' has ",
             n, n == 1 ? " file" : " files",
             ", too few to split into training and validation (add images or a val/ folder)");
    const std::int64_t k =
        std::clamp<std::int64_t>(std::llround(static_cast<double>(n) * val_fraction), 1, n - 1);
    const auto order =
        seeded_permutation(n, mix_seed({kSplitStream, seed, static_cast<std::uint64_t>(label)}));
    std::vector<bool> in_val(static_cast<std::size_t>(n), false);
    for (std::int64_t i = 0; i < k; ++i)
      in_val[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = true;
    for (std::int64_t i = 0; i < n; ++i)
      (in_val[static_cast<std::size_t>(i)] ? splits.val : splits.train)
          .samples.push_back(*members[static_cast<std::size_t>(i)]);
  }
  std::ostringstream percent;
  percent << val_fraction * 100;
  splits.description = str("a ", percent.str(), "% split of ", source, " (seed ", seed, ")");
  return splits;
}

// ---- ImageFolderDataset
// -------------------------------------------------------------------------------------

ImageFolderDataset::ImageFolderDataset(ImageFolder folder, Transform transform)
    : folder_(std::move(folder)), transform_(std::move(transform)) {
  TL_CHECK(static_cast<bool>(transform_), ValueError, folder_.root, ": ImageFolderDataset needs a transform");
}

std::int64_t ImageFolderDataset::label(std::int64_t index) const {
  TL_CHECK(index >= 0 && index < size(), ValueError, folder_.root, ": sample index ", index,
           " is out of range (", size(), " samples)");
  return folder_.samples[static_cast<std::size_t>(index)].label;
}

Tensor ImageFolderDataset::get(std::int64_t index, Generator& generator) const {
  label(index);  // range check
  return transform_(decode_image(folder_.samples[static_cast<std::size_t>(index)].path), generator);
}

std::string ImageFolderDataset::describe(std::int64_t index) const {
  if (index < 0 || index >= size()) return str(folder_.root, " #", index);
  return folder_.samples[static_cast<std::size_t>(index)].path;
}

// ---- FashionMnistDataset
// ------------------------------------------------------------------------------------

FashionMnistDataset::FashionMnistDataset(const Options& options, Transform transform)
    : options_(options), transform_(std::move(transform)) {
  TL_CHECK(static_cast<bool>(transform_), ValueError, "FashionMnistDataset needs a transform");
  TL_CHECK(options_.per_class >= 0, ValueError, "Fashion-MNIST: per_class must be 0 (all) or positive, got ",
           options_.per_class);
  const auto& names = fashion_mnist_names();
  std::vector<std::int64_t> subset = options_.class_subset;
  if (subset.empty())
    for (std::int64_t c = 0; c < 10; ++c) subset.push_back(c);
  std::vector<std::int64_t> relabel(10, -1);
  for (std::size_t i = 0; i < subset.size(); ++i) {
    const std::int64_t c = subset[i];
    TL_CHECK(c >= 0 && c < 10, ValueError, "Fashion-MNIST: class ", c, " does not exist (classes are 0..9)");
    TL_CHECK(relabel[static_cast<std::size_t>(c)] < 0, ValueError, "Fashion-MNIST: class ", c,
             " is named twice in the subset");
    relabel[static_cast<std::size_t>(c)] = static_cast<std::int64_t>(i);
    classes_.push_back(names[static_cast<std::size_t>(c)]);
  }

  const std::string prefix = options_.train ? "train" : "t10k";
  const std::string image_path = locate(options_.folder, prefix + "-images-idx3-ubyte");
  const std::string label_path = locate(options_.folder, prefix + "-labels-idx1-ubyte");
  std::vector<std::uint8_t> image_bytes = read_gzip(image_path);
  const std::vector<std::uint8_t> label_bytes = read_gzip(label_path);
  const auto image_dims = idx_dims(image_bytes, 2051, 3, image_path);
  const auto label_dims = idx_dims(label_bytes, 2049, 1, label_path);
  TL_CHECK(image_dims[0] == label_dims[0], ValueError, image_path, " holds ", image_dims[0], " images but ",
           label_path, " ", label_dims[0], " labels");
  TL_CHECK(image_dims[1] >= 1 && image_dims[2] >= 1, ValueError, image_path, ": images of ", image_dims[1],
           "x", image_dims[2], " pixels");
  rows_ = image_dims[1];
  cols_ = image_dims[2];
  image_bytes.erase(image_bytes.begin(), image_bytes.begin() + 16);
  pixels_ = std::move(image_bytes);

  std::vector<std::int64_t> kept_per_class(10, 0);
  for (std::int64_t i = 0; i < label_dims[0]; ++i) {
    const std::int64_t c = label_bytes[8 + static_cast<std::size_t>(i)];
    TL_CHECK(c < 10, ValueError, label_path, ": label ", c, " of image ", i, " is not a Fashion-MNIST class");
    file_labels_.push_back(c);
    if (relabel[static_cast<std::size_t>(c)] < 0) continue;
    if (options_.per_class > 0 && kept_per_class[static_cast<std::size_t>(c)] >= options_.per_class) continue;
    ++kept_per_class[static_cast<std::size_t>(c)];
    indices_.push_back(i);
  }
  // Labels relabelled once here, not in every label() call.
  for (auto& c : file_labels_) c = relabel[static_cast<std::size_t>(c)];
}

std::int64_t FashionMnistDataset::label(std::int64_t index) const {
  TL_CHECK(index >= 0 && index < size(), ValueError, "Fashion-MNIST: sample index ", index,
           " is out of range (", size(), " samples)");
  return file_labels_[static_cast<std::size_t>(indices_[static_cast<std::size_t>(index)])];
}

Tensor FashionMnistDataset::get(std::int64_t index, Generator& generator) const {
  label(index);  // range check
  const std::int64_t file_index = indices_[static_cast<std::size_t>(index)];
  Image image{cols_, rows_, std::vector<std::uint8_t>(static_cast<std::size_t>(rows_ * cols_ * 3))};
  const std::uint8_t* gray = pixels_.data() + file_index * rows_ * cols_;
  for (std::int64_t p = 0; p < rows_ * cols_; ++p)
    for (int c = 0; c < 3; ++c) image.rgb[static_cast<std::size_t>(p * 3 + c)] = gray[p];
  return transform_(image, generator);
}

std::string FashionMnistDataset::describe(std::int64_t index) const {
  const std::string part = options_.train ? "train" : "t10k";
  if (index < 0 || index >= size()) return str("fashion-mnist ", part, " sample ", index);
  return str("fashion-mnist ", part, " #", indices_[static_cast<std::size_t>(index)]);
}

}  // namespace tl::data
