#include "weights/weights_file.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <type_traits>

#include "engine/atomic_file.h"
#include "engine/error.h"
#include "weights/hdf5.h"
#include "weights/hdf5_readers.h"
#include "weights/isolated_read.h"

namespace tl::weights {
namespace {

// The group holding a checkpoint's non-model tensors.
constexpr const char* kExtraGroup = "_extra";

std::string dataset_for(const std::string& name) {
  TL_CHECK(!name.empty() && name.find('/') == std::string::npos && name.front() != '.' &&
               name.back() != '.' && name.find("..") == std::string::npos,
           ValueError, "save_weights: '", name, "' is not a valid dot-separated tensor name");
  std::string out = name;
  std::replace(out.begin(), out.end(), '.', '/');
  return out;
}

std::string name_for(const std::string& dataset) {
  std::string out = dataset;
  std::replace(out.begin(), out.end(), '/', '.');
  return out;
}

}  // namespace

bool is_hdf5_file(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::equal(head, head + 8, kSignature);
}

namespace {

void write_weights(const std::string& path, const StateDict& tensors, const Metadata& metadata,
                   const StateDict& extra) {
  AtomicFile out(path);
  h5::File file = h5::File::create(out.temp_path());
  // Tensors on a GPU are copied to the host first. Model tensors are stored as float32; extras keep float64 (an optimizer's learning rates must round-trip
  // exactly for a resumed run to continue bit for bit).
  const auto write = [&file](const std::string& dataset, const Tensor& tensor, bool keep_float64) {
    if (tensor.dtype() == DType::Int64) {
      const Tensor dense = tensor.to(Device::cpu()).contiguous();
      file.write_int64s(dataset, dense.shape(), dense.data<std::int64_t>());
    } else if (keep_float64 && tensor.dtype() == DType::Float64) {
      const Tensor dense = tensor.detach().to(Device::cpu()).contiguous();
      file.write_doubles(dataset, dense.shape(), dense.data<double>());
    } else {
      const Tensor dense = tensor.detach().to(Device::cpu()).to(DType::Float32).contiguous();
      file.write_floats(dataset, dense.shape(), dense.data<float>());
    }
  };
  for (const auto& [name, tensor] : tensors) {
    TL_CHECK(name.rfind(kExtraGroup, 0) != 0, ValueError, "save_weights: '", name,
             "' uses the reserved prefix ", kExtraGroup);
    write(dataset_for(name), tensor, false);
  }
  for (const auto& [name, tensor] : extra)
    write(std::string(kExtraGroup) + "/" + dataset_for(name), tensor, true);
  const Preprocessing& p = metadata.preprocessing;
  file.write_string_attribute("format", kFormatName);
  file.write_int_attribute("format_version", kFormatVersion);
  file.write_string_attribute("architecture", metadata.architecture);
  file.write_int_attribute("num_classes", metadata.num_classes);
  file.write_int_attribute("input_size", p.input_size);
  file.write_double_array_attribute("mean", {p.mean.begin(), p.mean.end()});
  file.write_double_array_attribute("std", {p.std.begin(), p.std.end()});
  file.write_string_attribute("interpolation", p.interpolation);
  file.write_double_attribute("crop_fraction", p.crop_fraction);
  if (!metadata.class_names
           .empty())  // HDF5 has no empty simple dataspace: unknown names are an absent attribute
    file.write_string_array_attribute("class_names", metadata.class_names);
  file.write_string_attribute("source", metadata.source);
  if (!metadata.training_state.empty())
    file.write_string_attribute("training_state", metadata.training_state);
  file.close();
  out.commit();
}

}  // namespace

void save_weights(const std::string& path, const StateDict& tensors, const Metadata& metadata,
                  const StateDict& extra) {
  try {
    write_weights(path, tensors, metadata, extra);
  } catch (const ValueError&) {
    throw;  // about the tensors, not the file
  } catch (const Error& e) {
    throw Error(str("cannot write ", path, ": ", e.what()));
  }
}

WeightsFile load_weights(const std::string& path) {
  return isolated::load_weights(path);
}

WeightsFile load_weights_in_process(const std::string& path) {
  return detail::read_weights(h5::File::open_read(path),
                              [](const Shape& shape, DType dtype) { return empty(shape, dtype); });
}

namespace {

// Reads a dataset of `dtype` values straight into a tensor that `make` provides: libhdf5 converts into the
// tensor's own memory, with no copy through a vector.
template <typename T>
Tensor read_tensor(const h5::File& file, const std::string& dataset, const std::string& name,
                   const Shape& shape, DType dtype, const detail::TensorFactory& make) {
  Tensor t;
  const auto place = [&](std::size_t count) {
    t = make(shape, dtype);
    TL_CHECK(static_cast<std::size_t>(t.numel()) == count, Error, file.path(), ": dataset '", dataset,
             "' changed its shape while it was read");
    return t.data<T>();
  };
  if constexpr (std::is_same_v<T, float>) file.read_floats(dataset, place);
  if constexpr (std::is_same_v<T, double>) file.read_doubles(dataset, place);
  if constexpr (std::is_same_v<T, std::int64_t>) file.read_int64s(dataset, place);
  if constexpr (!std::is_same_v<T, std::int64_t>) {
    const T* values = t.data<T>();
    const std::int64_t count = t.numel();
    for (std::int64_t i = 0; i < count; ++i)
      TL_CHECK(std::isfinite(values[i]), Error, file.path(), ": tensor '", name,
               "' holds NaN or infinite values");
  }
  return t;
}

}  // namespace

WeightsFile detail::read_weights(const h5::File& file, const TensorFactory& make) {
  const std::string& path = file.path();
  TL_CHECK(file.has_attribute("/", "format") &&
               file.read_string_attribute("/", "format") == std::vector<std::string>{kFormatName},
           Error, path, ": not a tl weights file (no root attribute format = '", kFormatName,
           "'); convert it with tl_convert");
  const std::int64_t version = file.read_int_attribute("/", "format_version");
  TL_CHECK(version >= 1 && version <= kFormatVersion, Error, path, ": format version ", version,
           " is newer than this tl reads (", kFormatVersion, ")");

  WeightsFile out;
  for (const std::string& dataset : file.dataset_paths()) {
    const h5::DatasetInfo info = file.dataset_info(dataset);
    const bool is_extra = dataset.rfind(std::string(kExtraGroup) + "/", 0) == 0;
    StateDict& into = is_extra ? out.extra : out.tensors;
    const std::string name =
        name_for(is_extra ? dataset.substr(std::string(kExtraGroup).size() + 1) : dataset);
    if (info.kind == h5::ElementKind::Integer) {
      into.insert(name, read_tensor<std::int64_t>(file, dataset, name, info.shape, DType::Int64, make));
    } else if (info.kind == h5::ElementKind::Float && info.element_size == 8) {
      // float64 stays float64 (gradient-check references); loading into a model converts.
      into.insert(name, read_tensor<double>(file, dataset, name, info.shape, DType::Float64, make));
    } else if (info.kind == h5::ElementKind::Float) {
      into.insert(name, read_tensor<float>(file, dataset, name, info.shape, DType::Float32, make));
    } else {
      throw Error(str(path, ": dataset '", dataset, "' holds neither numbers nor counters"));
    }
  }

  Metadata& m = out.metadata;
  const auto text = [&](const char* name) {
    if (!file.has_attribute("/", name)) return std::string();
    const auto v = file.read_string_attribute("/", name);
    return v.empty() ? std::string() : v.front();
  };
  const auto triple = [&](const char* name, std::array<double, 3>& into) {
    if (!file.has_attribute("/", name)) return;
    const auto v = file.read_double_attribute("/", name);
    TL_CHECK(v.size() == 3, Error, path, ": attribute '", name, "' must hold 3 values (RGB), has ", v.size());
    std::copy(v.begin(), v.end(), into.begin());
  };
  m.architecture = text("architecture");
  m.source = text("source");
  m.training_state = text("training_state");
  if (file.has_attribute("/", "num_classes")) m.num_classes = file.read_int_attribute("/", "num_classes");
  if (file.has_attribute("/", "input_size"))
    m.preprocessing.input_size = file.read_int_attribute("/", "input_size");
  triple("mean", m.preprocessing.mean);
  triple("std", m.preprocessing.std);
  if (file.has_attribute("/", "interpolation")) m.preprocessing.interpolation = text("interpolation");
  if (file.has_attribute("/", "crop_fraction"))
    m.preprocessing.crop_fraction = file.read_double_attribute("/", "crop_fraction").at(0);
  if (file.has_attribute("/", "class_names")) m.class_names = file.read_string_attribute("/", "class_names");
  TL_CHECK(m.class_names.empty() || m.num_classes == 0 ||
               static_cast<std::int64_t>(m.class_names.size()) == m.num_classes,
           Error, path, ": ", m.class_names.size(), " class names for ", m.num_classes, " classes");
  return out;
}

}  // namespace tl::weights
