// A thin C++ layer over the HDF5 C library: handles that close themselves, and the few reads and writes tl's
// weight files and the Keras importer need. Every failure throws tl::Error naming the file and the object;
// the HDF5 library's own error printing is silenced while these calls run.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/shape.h"

namespace tl::weights::h5 {

// An HDF5 identifier closed by the matching H5*close on destruction.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership without closing.
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

enum class ElementKind { Float, Integer, String, Other };

struct DatasetInfo {
  Shape shape;
  ElementKind kind = ElementKind::Other;
  std::size_t element_size = 0;
};

class File {
 public:
  static File open_read(const std::string& path);
  // A new file to be written to `path`. It is built in memory and reaches the disk only in close(), with
  // plain POSIX writes: a full disk then fails in tl's code with errno's reason, and the HDF5 library never
  // holds a half-written file (its 1.10 termination crashes on a file whose flush failed).
  static File create(const std::string& path);

  const std::string& path() const { return path_; }
  // Closes the file; a created file is written to its path here (truncating what was there), and errors
  // surface here rather than being lost in a destructor. A created file never closed is never written.
  void close();

  // ---- reading --------------------------------------------------------------------------------------------
  bool exists(const std::string& object) const;
  // Every dataset below `group` ("/" for all), as paths relative to the file root without a leading slash,
  // in name order.
  std::vector<std::string> dataset_paths(const std::string& group = "/") const;
  // Subgroups and datasets directly in `group`, in name order.
  std::vector<std::string> children(const std::string& group) const;
  DatasetInfo dataset_info(const std::string& dataset) const;
  std::vector<float> read_floats(const std::string& dataset) const;
  std::vector<double> read_doubles(const std::string& dataset) const;
  std::vector<std::int64_t> read_int64s(const std::string& dataset) const;

  bool has_attribute(const std::string& object, const std::string& name) const;
  // Elements of an attribute (1 for a scalar), whatever its type: h5py writes an empty list as a float64
  // array, so callers expecting strings check for 0 first.
  std::int64_t attribute_size(const std::string& object, const std::string& name) const;
  // Fixed- or variable-length strings (h5py writes either); a string array attribute gives all its elements.
  std::vector<std::string> read_string_attribute(const std::string& object, const std::string& name) const;
  std::vector<double> read_double_attribute(const std::string& object, const std::string& name) const;
  std::int64_t read_int_attribute(const std::string& object, const std::string& name) const;

  // ---- writing --------------------------------------------------------------------------------------------
  // Creates intermediate groups as needed.
  void write_floats(const std::string& dataset, const Shape& shape, const float* data);
  void write_doubles(const std::string& dataset, const Shape& shape, const double* data);
  void write_int64s(const std::string& dataset, const Shape& shape, const std::int64_t* data);
  void write_string_attribute(const std::string& name, const std::string& value);
  void write_string_array_attribute(const std::string& name, const std::vector<std::string>& values);
  void write_double_array_attribute(const std::string& name, const std::vector<double>& values);
  void write_double_attribute(const std::string& name, double value);
  void write_int_attribute(const std::string& name, std::int64_t value);

 private:
  File(std::string path, Handle handle) : path_(std::move(path)), handle_(std::move(handle)) {}
  Handle open_object(const std::string& object) const;
  Handle open_attribute(const std::string& object, const std::string& name) const;
  template <typename T>
  std::vector<T> read_dataset(const std::string& dataset, hid_t memory_type, ElementKind expected) const;
  void write_dataset(const std::string& dataset, const Shape& shape, hid_t memory_type, const void* data);
  void write_attribute(const std::string& name, hid_t type, hid_t space, const void* data);

  std::string path_;
  Handle handle_;
  bool in_memory_ = false;  // created: close() writes the image to path_
};

}  // namespace tl::weights::h5
