// A thin C++ layer over the HDF5 C library: handles that close themselves, and the few reads and writes tl's
// weight files and the Keras importer need. Every failure throws tl::Error naming the file and the object;
// the HDF5 library's own error printing is silenced while these calls run.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/shape.h"

namespace tl::weights::h5 {

// libhdf5 is built thread-safe: one global lock around each of its calls. A fork() while another thread holds
// that lock would leave it held forever in the child, whose only thread would then wait for it. So every call
// tl makes into libhdf5 runs inside a LibrarySection (nested ones are free), and the HDF5 sandbox
// (weights/sandbox.cpp) forks under a ForkExclusion, which waits until no thread is inside one.
class LibrarySection {
 public:
  LibrarySection();
  ~LibrarySection();
  LibrarySection(const LibrarySection&) = delete;
  LibrarySection& operator=(const LibrarySection&) = delete;
};

class ForkExclusion {
 public:
  ForkExclusion();
  ~ForkExclusion();
  ForkExclusion(const ForkExclusion&) = delete;
  ForkExclusion& operator=(const ForkExclusion&) = delete;

 private:
  bool held_ = false;
};

// In a forked child: its one thread enters libhdf5 without the sections' lock, which the parent held when it
// forked (and so is held in the child's copy of memory).
void enter_forked_child();

// Initialises libhdf5 in this process, once (H5open): a forked child then inherits a ready library instead of
// setting one up each time. Reads no file.
void initialize_library();

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
  // A file already in memory (`size` bytes at `data`, which must outlive the File), read in place by
  // libhdf5's core driver without a copy; `name` is the file's name in messages. Nothing is opened. Without
  // `check_heaps` the global heaps are not checked (hdf5_heaps.h): for a caller that reads no string.
  static File open_image(const std::string& name, const void* data, std::size_t size,
                         bool check_heaps = true);
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
  // The same reads into memory the caller provides: `place(count)` is called once the dataset has passed the
  // checks, with its element count, and returns where the values go (no copy through a vector).
  void read_floats(const std::string& dataset, const std::function<float*(std::size_t)>& place) const;
  void read_doubles(const std::string& dataset, const std::function<double*(std::size_t)>& place) const;
  void read_int64s(const std::string& dataset, const std::function<std::int64_t*(std::size_t)>& place) const;

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
  File(std::string path, std::uint64_t size, Handle handle)
      : path_(std::move(path)), size_(size), handle_(std::move(handle)) {}
  Handle open_object(const std::string& object) const;
  Handle open_attribute(const std::string& object, const std::string& name) const;
  template <typename T>
  void read_dataset(const std::string& dataset, hid_t memory_type, ElementKind expected,
                    const std::function<T*(std::size_t)>& place) const;
  void write_dataset(const std::string& dataset, const Shape& shape, hid_t memory_type, const void* data);
  void write_attribute(const std::string& name, hid_t type, hid_t space, const void* data);

  std::string path_;
  std::uint64_t size_ = 0;       // of the file when opened: nothing stored in it can be larger
  std::shared_ptr<void> image_;  // open_image's bookkeeping, which libhdf5 points at until handle_ closes
  Handle handle_;
  bool in_memory_ = false;  // created: close() writes the image to path_
};

}  // namespace tl::weights::h5
