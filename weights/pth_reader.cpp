// read_pth: torch.save files, in both of torch's containers.
//   zip (torch >= 1.6): an archive with one top folder (any name), <prefix>/data.pkl holding the object and
//     <prefix>/data/<key> holding each storage's raw little-endian bytes.
//   legacy: a sequence of pickles (magic number, protocol version, sys_info, the object, the storage keys),
//     then for each key in that list's order an int64 element count and the raw bytes.
// Both hand the object pickle to the restricted unpickler (weights/pickle.h), pick the state dict out of what
// it returns, and read only the storages that the state dict's tensors use, checking every view against the
// bytes actually present before touching them.
#include <zip.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "engine/error.h"
#include "weights/importers.h"
#include "weights/pickle.h"

namespace tl::weights {
namespace {

static_assert(std::endian::native == std::endian::little,
              "read_pth copies little-endian storages as they are");

using pickle::Document;
using pickle::Kind;
using pickle::Ref;
using pickle::StorageRef;
using pickle::StorageType;
using pickle::TensorRef;
using pickle::Value;

constexpr const char* kWhatWeRead =
    "tl reads a state dict (a dict of tensors, as torch.save(model.state_dict()) writes), "
    "or a dict holding one under 'state_dict' or 'model'";
constexpr int kMaxWrapping = 3;  // {'model': {'state_dict': ...}} and the like
// Views may overlap (a weight and its transpose both saved); beyond this many copies of the stored data, a
// file is more likely an attempt to exhaust memory than a checkpoint.
constexpr std::int64_t kMaxCopiesOfData = 4;

// ---- choosing the state dict ----

struct Entry {
  std::string name;
  std::size_t tensor;  // index into Document::tensors
};

std::optional<Ref> dict_lookup(const Document& doc, const Value& dict, const std::string& key) {
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const Value& k = doc[dict.items[i]];
    if (k.kind == Kind::String && k.text == key) return dict.items[i + 1];
  }
  return std::nullopt;
}

// The dict of tensors: the pickled value itself, or what it holds under "state_dict" or "model". Later
// duplicates of a key replace earlier ones in place, as in a Python dict.
std::vector<Entry> select_state_dict(const Document& doc, const std::string& path) {
  Ref ref = doc.root;
  for (int depth = 0;; ++depth) {
    const Value& dict = doc[ref];
    if (dict.kind != Kind::Dict)
      throw Error(
          str(path, ": the saved object is ", pickle::describe(dict.kind), ", not a dict: ", kWhatWeRead));
    if (dict.items.empty()) throw Error(str(path, ": the saved dict is empty: there are no tensors to read"));
    const Value* not_tensor_key = nullptr;
    Kind not_tensor_kind = Kind::None;
    for (std::size_t i = 0; i + 1 < dict.items.size() && not_tensor_key == nullptr; i += 2) {
      if (doc[dict.items[i + 1]].kind != Kind::Tensor) {
        not_tensor_key = &doc[dict.items[i]];
        not_tensor_kind = doc[dict.items[i + 1]].kind;
      }
    }
    if (not_tensor_key == nullptr) {
      std::vector<Entry> entries;
      std::unordered_map<std::string, std::size_t> index;
      for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
        const Value& key = doc[dict.items[i]];
        if (key.kind != Kind::String)
          throw Error(
              str(path, ": the state dict has a key that is ", pickle::describe(key.kind), ", not a string"));
        const auto tensor = static_cast<std::size_t>(doc[dict.items[i + 1]].integer);
        const auto [it, added] = index.emplace(key.text, entries.size());
        if (added) {
          entries.push_back({key.text, tensor});
        } else {
          entries[it->second].tensor = tensor;
        }
      }
      return entries;
    }
    if (depth < kMaxWrapping) {
      std::optional<Ref> inner = dict_lookup(doc, dict, "state_dict");
      if (!inner || doc[*inner].kind != Kind::Dict) inner = dict_lookup(doc, dict, "model");
      if (inner && doc[*inner].kind == Kind::Dict) {
        ref = *inner;
        continue;
      }
    }
    const std::string key = not_tensor_key->kind == Kind::String ? "'" + not_tensor_key->text + "'"
                                                                 : std::string("with a non-string key");
    throw Error(str(path, ": entry ", key, " is ", pickle::describe(not_tensor_kind),
                    ", not a tensor: ", kWhatWeRead));
  }
}

// DataParallel saves every name under "module."; tl's names are the bare module's.
void strip_data_parallel_prefix(std::vector<Entry>& entries) {
  static const std::string kPrefix = "module.";
  for (const Entry& e : entries) {
    if (e.name.size() <= kPrefix.size() || e.name.compare(0, kPrefix.size(), kPrefix) != 0) return;
  }
  for (Entry& e : entries) e.name.erase(0, kPrefix.size());
}

// ---- storages ----

// What the pickle says about each storage key; every reference to a key must agree.
struct StorageInfo {
  StorageType type;
  std::int64_t numel;
  std::int64_t nbytes() const { return numel * static_cast<std::int64_t>(pickle::element_size(type)); }
};
using Catalog = std::unordered_map<std::string, StorageInfo>;

Catalog catalog_storages(const Document& doc, const std::string& path) {
  Catalog catalog;
  for (const StorageRef& s : doc.storages) {
    const auto [it, added] = catalog.emplace(s.key, StorageInfo{s.type, s.numel});
    if (!added && (it->second.type != s.type || it->second.numel != s.numel))
      throw Error(str(path, ": storage '", s.key, "' is named both as ", it->second.numel, " elements of ",
                      pickle::storage_type_name(it->second.type), " and as ", s.numel, " elements of ",
                      pickle::storage_type_name(s.type)));
  }
  return catalog;
}

// The keys the chosen tensors use, in first-use order.
std::vector<std::string> keys_used(const Document& doc, const std::vector<Entry>& entries) {
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  for (const Entry& e : entries) {
    const std::string& key = doc.storages[doc.tensors[e.tensor].storage].key;
    if (seen.insert(key).second) keys.push_back(key);
  }
  return keys;
}

// The bytes read for each storage key the state dict uses, as stored (dtype conversion happens per tensor).
struct Loaded {
  std::shared_ptr<Storage> storage;
  std::int64_t numel;
};
using StorageBytes = std::unordered_map<std::string, Loaded>;

// ---- tensors ----

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const std::uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                              : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

template <typename T>
T load(const std::uint8_t* p) {  // storage bytes carry no alignment promise once offset
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Copies the strided view (shape, strides, first element `start`) of a storage into `out` in row-major order,
// converting each element with `read`. An odometer over the outer dimensions: no recursion on the rank.
template <typename Out, typename Read>
void gather(const std::uint8_t* base, std::size_t element_size, std::int64_t start, const Shape& shape,
            const Strides& strides, Out* out, Read read) {
  const std::size_t rank = shape.size();
  if (rank == 0) {
    *out = read(base + static_cast<std::size_t>(start) * element_size);
    return;
  }
  const std::int64_t inner = shape[rank - 1], inner_stride = strides[rank - 1];
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t outer = 1;
  for (std::size_t d = 0; d + 1 < rank; ++d) outer *= shape[d];
  for (std::int64_t o = 0; o < outer; ++o) {
    std::int64_t at = start;
    for (std::size_t d = 0; d + 1 < rank; ++d) at += index[d] * strides[d];
    for (std::int64_t i = 0; i < inner; ++i)
      *out++ = read(base + static_cast<std::size_t>(at + i * inner_stride) * element_size);
    for (std::size_t d = rank - 1; d-- > 0;) {  // advance the odometer
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

void gather_converted(const std::uint8_t* base, StorageType type, std::int64_t start, const Tensor& out,
                      const Strides& strides) {
  const std::size_t size = pickle::element_size(type);
  const Shape& shape = out.shape();
  switch (type) {
    case StorageType::Float:
      return gather(base, size, start, shape, strides, out.data<float>(), load<float>);
    case StorageType::Double:
      return gather(base, size, start, shape, strides, out.data<float>(),
                    [](const std::uint8_t* p) { return static_cast<float>(load<double>(p)); });
    case StorageType::Half:
      return gather(base, size, start, shape, strides, out.data<float>(),
                    [](const std::uint8_t* p) { return half_to_float(load<std::uint16_t>(p)); });
    case StorageType::BFloat16:
      return gather(base, size, start, shape, strides, out.data<float>(), [](const std::uint8_t* p) {
        return std::bit_cast<float>(static_cast<std::uint32_t>(load<std::uint16_t>(p)) << 16);
      });
    case StorageType::Long:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(), load<std::int64_t>);
    case StorageType::Int:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(),
                    [](const std::uint8_t* p) { return std::int64_t{load<std::int32_t>(p)}; });
    case StorageType::Short:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(),
                    [](const std::uint8_t* p) { return std::int64_t{load<std::int16_t>(p)}; });
    case StorageType::Char:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(),
                    [](const std::uint8_t* p) { return std::int64_t{load<std::int8_t>(p)}; });
    case StorageType::Byte:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(),
                    [](const std::uint8_t* p) { return std::int64_t{*p}; });
    case StorageType::Bool:
      return gather(base, size, start, shape, strides, out.data<std::int64_t>(),
                    [](const std::uint8_t* p) { return std::int64_t{*p != 0}; });
  }
}

bool is_floating(StorageType type) {
  return type == StorageType::Float || type == StorageType::Double || type == StorageType::Half ||
         type == StorageType::BFloat16;
}

// Builds every tensor of the state dict from the storages read. A float32 or int64 tensor that is a
// contiguous run of its storage becomes a view of it (no copy); any other (converted dtype, strided) is
// materialised, as torch's .contiguous() would, into a tensor of its own.
class TensorBuilder {
 public:
  TensorBuilder(const Document& doc, const StorageBytes& bytes, const std::string& path)
      : doc_(doc), bytes_(bytes), path_(path) {
    std::int64_t stored = 0;
    for (const auto& [key, loaded] : bytes) stored += loaded.numel;
    copy_budget_ = kMaxCopiesOfData * stored + 65536;
  }

  Tensor build(const Entry& entry) {
    const TensorRef& t = doc_.tensors[entry.tensor];
    const StorageRef& s = doc_.storages[t.storage];
    const std::shared_ptr<Storage>& storage = bytes_.at(s.key).storage;
    const std::int64_t view_start = s.view_numel < 0 ? 0 : s.view_offset;
    const std::int64_t limit = s.view_numel < 0 ? s.numel : s.view_numel;
    const std::string where = str(path_, ": tensor '", entry.name, "'");

    // Overflow-checked element count and reach: hostile sizes must not wrap around into a passing check.
    std::int64_t numel = 1, last = t.offset;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (__builtin_mul_overflow(numel, t.shape[d], &numel))
        throw Error(str(where, " has an absurd size ", shape_str(t.shape)));
    }
    if (numel > 0) {
      for (std::size_t d = 0; d < t.shape.size(); ++d) {
        std::int64_t step = 0;
        if (__builtin_mul_overflow(t.shape[d] - 1, t.strides[d], &step) ||
            __builtin_add_overflow(last, step, &last))
          throw Error(
              str(where, " has an absurd size ", shape_str(t.shape), " and stride ", shape_str(t.strides)));
      }
      if (last >= limit)
        throw Error(str(where, " (size ", shape_str(t.shape), ", stride ", shape_str(t.strides), ", offset ",
                        t.offset, ") reaches element ", last, " of storage '", s.key, "', which holds ",
                        limit, " elements"));
    } else if (t.offset > limit) {
      throw Error(
          str(where, " starts at element ", t.offset, " of storage '", s.key, "', which holds ", limit));
    }

    const DType dtype = is_floating(s.type) ? DType::Float32 : DType::Int64;
    const std::int64_t start = view_start + t.offset;
    auto view = std::make_shared<TensorImpl>();
    view->storage = storage;
    view->offset = start;
    view->shape = t.shape;
    view->strides = t.strides;
    view->dtype = dtype;
    const bool same_type = s.type == StorageType::Float || s.type == StorageType::Long;
    if (same_type && numel > 0 && Tensor(view).is_contiguous()) {
      view->strides = contiguous_strides(t.shape);
      return Tensor(view);
    }
    copy_budget_ -= numel;
    if (copy_budget_ < 0)
      throw Error(str(where, ": the file's tensors would copy its stored data more than ", kMaxCopiesOfData,
                      " times over (overlapping views): refusing"));
    Tensor out = empty(t.shape, dtype);
    if (numel > 0)
      gather_converted(static_cast<const std::uint8_t*>(storage->data()), s.type, start, out, t.strides);
    return out;
  }

 private:
  const Document& doc_;
  const StorageBytes& bytes_;
  const std::string& path_;
  std::int64_t copy_budget_ = 0;
};

Imported assemble(const Document& doc, std::vector<Entry> entries, const StorageBytes& bytes,
                  const std::string& path, const char* format) {
  strip_data_parallel_prefix(entries);
  Imported out;
  TensorBuilder builder(doc, bytes, path);
  for (const Entry& e : entries) out.tensors.insert(e.name, builder.build(e));
  out.format = format;
  out.metadata.source = str("torchvision .pth: ", std::filesystem::path(path).filename().string());
  return out;
}

// ---- the zip container ----

// The key becomes part of a record name: keep it to one plain path component.
void check_storage_key(const std::string& key, const std::string& path) {
  if (key.empty() || key == "." || key == ".." || key.find_first_of("/\\") != std::string::npos ||
      key.find('\0') != std::string::npos)
    throw Error(str(path, ": storage key '", key, "' is not a plain record name"));
}

// Names that could point outside the archive, were anything ever to extract it.
bool is_safe_entry_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name[0] == '\\' || (name.size() > 1 && name[1] == ':')) return false;
  std::size_t begin = 0;
  while (begin <= name.size()) {
    const std::size_t end = std::min(name.find_first_of("/\\", begin), name.size());
    if (name.compare(begin, end - begin, "..") == 0) return false;
    begin = end + 1;
  }
  return true;
}

class ZipArchive {
 public:
  explicit ZipArchive(const std::string& path) : path_(path) {
    std::error_code size_error;
    file_size_ = std::filesystem::file_size(path, size_error);
    if (size_error) throw Error(str(path, ": cannot tell its size: ", size_error.message()));
    int code = 0;
    archive_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (archive_ == nullptr) {
      zip_error_t error;
      zip_error_init_with_code(&error, code);
      const std::string message = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw Error(str(path, ": not a readable zip archive (", message,
                      "): the file is truncated or damaged, or is not a torch.save file"));
    }
  }
  ~ZipArchive() { zip_discard(archive_); }
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  std::vector<std::string> names() const {
    const zip_int64_t n = zip_get_num_entries(archive_, 0);
    std::vector<std::string> out;
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(archive_, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
      if (name == nullptr) throw Error(str(path_, ": zip entry ", i, " has no readable name"));
      out.emplace_back(name);
    }
    return out;
  }

  bool contains(const std::string& name) const {
    return zip_name_locate(archive_, name.c_str(), ZIP_FL_ENC_RAW) >= 0;
  }

  // The uncompressed size of an entry, after checking that tl can read it and that the size is plausible
  // for the bytes present: a forged size must not make us allocate more than the file could expand to.
  std::uint64_t size(const std::string& name) const {
    zip_stat_t st;
    if (zip_stat_index(archive_, index(name), ZIP_FL_ENC_RAW, &st) != 0 ||
        (st.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD)) !=
            (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD))
      throw Error(str(path_, ": cannot read the zip directory entry of '", name, "'"));
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
      throw Error(str(path_, ": zip entry '", name, "' is encrypted"));
    if (st.comp_method == ZIP_CM_STORE) {
      if (st.size != st.comp_size || st.comp_size > file_size_)
        throw Error(
            str(path_, ": zip entry '", name, "' claims ", st.size, " bytes in a file of ", file_size_));
    } else if (st.comp_method == ZIP_CM_DEFLATE) {
      if (st.comp_size > file_size_ ||
          st.size / 1032 > st.comp_size + 1)  // deflate's ratio is at most 1032:1
        throw Error(str(path_, ": zip entry '", name, "' claims ", st.size, " bytes from ", st.comp_size,
                        " compressed"));
    } else {
      throw Error(str(path_, ": zip entry '", name, "' uses compression method ", st.comp_method,
                      "; torch.save stores entries uncompressed"));
    }
    return st.size;
  }

  // Reads the whole entry, which must hold exactly `nbytes`; reading to its end makes libzip check the CRC.
  void read(const std::string& name, void* out, std::uint64_t nbytes) const {
    zip_file_t* file = zip_fopen_index(archive_, index(name), 0);
    if (file == nullptr)
      throw Error(str(path_, ": cannot open zip entry '", name, "': ", zip_strerror(archive_)));
    auto* dst = static_cast<std::uint8_t*>(out);
    std::uint64_t done = 0;
    std::string failure;
    while (failure.empty()) {
      std::uint8_t spare;
      const std::uint64_t want = done < nbytes ? nbytes - done : 1;
      const zip_int64_t got = zip_fread(file, done < nbytes ? dst + done : &spare, want);
      if (got < 0) {
        failure = zip_file_strerror(file);
      } else if (got == 0) {
        if (done < nbytes) failure = str("it ends after ", done, " of ", nbytes, " bytes");
        break;
      } else if (done >= nbytes) {
        failure = str("it holds more than ", nbytes, " bytes");
      } else {
        done += static_cast<std::uint64_t>(got);
      }
    }
    const int closed = zip_fclose(file);
    if (failure.empty() && closed != 0) {
      zip_error_t error;
      zip_error_init_with_code(&error, closed);
      failure = zip_error_strerror(&error);
      zip_error_fini(&error);
    }
    if (!failure.empty()) throw Error(str(path_, ": cannot read zip entry '", name, "': ", failure));
  }

 private:
  zip_uint64_t index(const std::string& name) const {
    const zip_int64_t i = zip_name_locate(archive_, name.c_str(), ZIP_FL_ENC_RAW);
    if (i < 0) throw Error(str(path_, ": the archive has no entry '", name, "'"));
    return static_cast<zip_uint64_t>(i);
  }

  const std::string& path_;
  zip_t* archive_ = nullptr;
  std::uintmax_t file_size_ = 0;
};

// The top folder holding data.pkl: torch names it after the file (or "archive"), so any name will do.
std::string zip_prefix(const std::vector<std::string>& names, const std::string& path) {
  std::vector<std::string> found;
  for (const std::string& name : names) {
    constexpr std::string_view kPickle = "/data.pkl";
    if (name.size() > kPickle.size() &&
        name.compare(name.size() - kPickle.size(), kPickle.size(), kPickle) == 0 &&
        name.find('/') == name.size() - kPickle.size())
      found.push_back(name.substr(0, name.size() - kPickle.size()));
  }
  if (found.empty())
    throw Error(str(path, ": a zip archive without <folder>/data.pkl: not a torch.save file"));
  if (found.size() > 1)
    throw Error(
        str(path, ": a zip archive with two data.pkl (", found[0], "/ and ", found[1], "/): refusing"));
  return found[0];
}

Imported read_zip(const std::string& path) {
  const ZipArchive zip(path);
  const std::vector<std::string> names = zip.names();
  for (const std::string& name : names) {
    if (!is_safe_entry_name(name))
      throw Error(
          str(path, ": zip entry '", name, "' is an absolute path or climbs out with '..': refusing"));
  }
  const std::string prefix = zip_prefix(names, path);
  const std::string byteorder = prefix + "/byteorder";
  if (zip.contains(byteorder)) {  // torch >= 2.1 says which; older ones were little-endian throughout
    const std::uint64_t n = zip.size(byteorder);
    if (n > 16) throw Error(str(path, ": its byteorder record is ", n, " bytes long"));
    std::string order(n, '\0');
    zip.read(byteorder, order.data(), n);
    if (order != "little")
      throw Error(str(path, ": saved with byteorder '", order, "'; tl reads little-endian files"));
  }

  const std::string pickle_name = prefix + "/data.pkl";
  std::vector<std::uint8_t> pickle_bytes(zip.size(pickle_name));
  zip.read(pickle_name, pickle_bytes.data(), pickle_bytes.size());
  const Document doc = pickle::unpickle(pickle_bytes, str(path, " (", pickle_name, ")"));

  const std::vector<Entry> entries = select_state_dict(doc, path);
  const Catalog catalog = catalog_storages(doc, path);
  StorageBytes bytes;
  for (const std::string& key : keys_used(doc, entries)) {
    check_storage_key(key, path);
    const StorageInfo& info = catalog.at(key);
    const std::string record = prefix + "/data/" + key;
    if (!zip.contains(record))
      throw Error(str(path, ": storage '", key, "' has no record '", record, "' in the archive"));
    const std::uint64_t size = zip.size(record);
    if (size != static_cast<std::uint64_t>(info.nbytes()))
      throw Error(str(path, ": record '", record, "' holds ", size, " bytes, but its storage is ", info.numel,
                      " elements of ", pickle::storage_type_name(info.type), " (", info.nbytes(), " bytes)"));
    auto storage = std::make_shared<Storage>(static_cast<std::size_t>(size), Device::cpu());
    zip.read(record, storage->data(), size);
    bytes.emplace(key, Loaded{std::move(storage), info.numel});
  }
  return assemble(doc, entries, bytes, path, "torchvision .pth (zip)");
}

// ---- the legacy container ----

// torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, as LONG1 writes it (little-endian).
constexpr std::uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr std::int64_t kLegacyProtocol = 1001;

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str(path, ": cannot open for reading"));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0) throw Error(str(path, ": cannot tell its size"));
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw Error(str(path, ": read error"));
  return bytes;
}

// The whole file is read at once: the legacy format's pickles have no length prefix, and files in it are old
// checkpoints of modest size; the storages are then copied out of it (peak memory about twice the file).
Imported read_legacy(const std::string& path, const std::vector<std::uint8_t>& file) {
  const std::span<const std::uint8_t> all(file);
  std::size_t pos = 0;
  auto next_pickle = [&]() {
    Document doc = pickle::unpickle(all.subspan(pos), path, pos);
    pos += doc.size;
    return doc;
  };

  const Document magic = next_pickle();
  const Value& m = magic[magic.root];
  if (m.kind != Kind::BigInt || m.text != std::string(std::begin(kLegacyMagic), std::end(kLegacyMagic)))
    throw Error(
        str(path, ": not a torch.save file (it starts with a pickle, but not with torch's magic number)"));
  const Document protocol = next_pickle();
  const Value& p = protocol[protocol.root];
  if (p.kind != Kind::Int || p.integer != kLegacyProtocol)
    throw Error(str(path, ": unsupported torch legacy format version (expected ", kLegacyProtocol, ")"));
  const Document sys_info = next_pickle();
  const Value& info = sys_info[sys_info.root];
  if (info.kind != Kind::Dict) throw Error(str(path, ": the legacy header's sys_info is not a dict"));
  if (const auto little = dict_lookup(sys_info, info, "little_endian");
      little && (sys_info[*little].kind != Kind::Bool || sys_info[*little].integer != 1))
    throw Error(str(path, ": saved on a big-endian machine; tl reads little-endian files"));

  const Document doc = next_pickle();
  const std::vector<Entry> entries = select_state_dict(doc, path);
  const Catalog catalog = catalog_storages(doc, path);

  const Document key_list = next_pickle();
  const Value& keys = key_list[key_list.root];
  if (keys.kind != Kind::List) throw Error(str(path, ": the legacy storage key list is not a list"));

  std::unordered_set<std::string> needed;
  for (const std::string& key : keys_used(doc, entries)) needed.insert(key);
  StorageBytes bytes;
  std::unordered_set<std::string> listed;
  for (const Ref ref : keys.items) {
    const Value& k = key_list[ref];
    if (k.kind != Kind::String)
      throw Error(str(path, ": the legacy storage key list holds ", pickle::describe(k.kind)));
    const std::string& key = k.text;
    if (!listed.insert(key).second) throw Error(str(path, ": storage '", key, "' is listed twice"));
    const auto it = catalog.find(key);
    if (it == catalog.end()) throw Error(str(path, ": storage '", key, "' is listed but no tensor names it"));
    if (file.size() - pos < 8)
      throw Error(str(path, ": truncated file: storage '", key, "' should start at byte ", pos,
                      ", the file ends at ", file.size()));
    std::int64_t count = 0;
    std::memcpy(&count, file.data() + pos, 8);
    pos += 8;
    if (count != it->second.numel)
      throw Error(
          str(path, ": storage '", key, "' holds ", count, " elements, its pickle says ", it->second.numel));
    const auto nbytes = static_cast<std::uint64_t>(it->second.nbytes());
    if (nbytes > file.size() - pos)
      throw Error(str(path, ": truncated file: storage '", key, "' needs ", nbytes, " bytes at byte ", pos,
                      ", the file ends at ", file.size()));
    if (needed.count(key) != 0) {
      auto storage = std::make_shared<Storage>(static_cast<std::size_t>(nbytes), Device::cpu());
      if (nbytes > 0) std::memcpy(storage->data(), file.data() + pos, static_cast<std::size_t>(nbytes));
      bytes.emplace(key, Loaded{std::move(storage), count});
    }
    pos += static_cast<std::size_t>(nbytes);
  }
  for (const std::string& key : needed) {
    if (bytes.count(key) == 0) throw Error(str(path, ": storage '", key, "' has no data in the file"));
  }
  return assemble(doc, entries, bytes, path, "torchvision .pth (legacy)");
}

}  // namespace

Imported read_pth(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw Error(str(path, ": is a folder, not a torch.save file"));
  std::vector<std::uint8_t> head(4);
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str(path, ": cannot open for reading"));
    in.read(reinterpret_cast<char*>(head.data()), 4);
    head.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (head.empty()) throw Error(str(path, ": empty file: not a torch.save file"));
  if (head.size() >= 2 && head[0] == 'P' && head[1] == 'K') return read_zip(path);
  if (head[0] != 0x80) throw Error(str(path, ": not a torch.save file (neither a zip archive nor a pickle)"));
  return read_legacy(path, read_file(path));
}

}  // namespace tl::weights
