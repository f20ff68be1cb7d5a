#include "weights/hdf5.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <shared_mutex>

#include "engine/error.h"
#include "engine/input_file.h"
#include "weights/hdf5_heaps.h"

namespace tl::weights::h5 {
namespace {

// Never destroyed: a Handle closed by a static destructor at exit may still need it.
std::shared_mutex& library_lock() {
  static auto* lock = new std::shared_mutex;
  return *lock;
}
thread_local int section_depth = 0;

}  // namespace

LibrarySection::LibrarySection() {
  if (section_depth++ == 0) library_lock().lock_shared();
}

LibrarySection::~LibrarySection() {
  if (--section_depth == 0) library_lock().unlock_shared();
}

ForkExclusion::ForkExclusion() {
  // A thread inside a section (a reader called back from libhdf5) has the library to itself already.
  if (section_depth == 0) {
    library_lock().lock();
    held_ = true;
  }
}

ForkExclusion::~ForkExclusion() {
  if (held_) library_lock().unlock();
}

void enter_forked_child() {
  ++section_depth;  // never left: the child ends with _exit()
}

void initialize_library() {
  static const bool done = [] {
    const LibrarySection section;
    return H5open() >= 0;
  }();
  (void)done;
}

namespace {

// Silences the HDF5 library's stderr error stacks for one call: we report failures ourselves, by name. Every
// call into libhdf5 happens inside one of these (or in Handle::reset), so it holds the library section too.
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, function_, data_); }

 private:
  LibrarySection section_;  // first: held around the calls of the constructor and destructor as well
  H5E_auto2_t function_ = nullptr;
  void* data_ = nullptr;
};

// The largest dataset we agree to allocate: generous for real weights, far below what a hostile header could
// declare.
constexpr std::uint64_t kMaxDatasetBytes = std::uint64_t{16} << 30;
// deflate's largest expansion (zlib's technical notes): the most a chunked, compressed dataset can hold per
// byte stored.
constexpr std::uint64_t kMaxCompressionRatio = 1032;

Handle checked(hid_t id, Handle::Closer closer, const std::string& what) {
  if (id < 0) throw Error(what);
  return Handle(id, closer);
}

std::string object_path(const std::string& object) {
  return object.empty() ? "/" : object;
}

herr_t collect_datasets(hid_t group, const char* name, const H5L_info_t* info, void* out) {
  if (info->type != H5L_TYPE_HARD) return 0;  // soft and external links could point anywhere: not weights
  const hid_t object = H5Oopen(group, name, H5P_DEFAULT);
  if (object < 0) return -1;
  if (H5Iget_type(object) == H5I_DATASET) static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  H5Oclose(object);
  return 0;
}

herr_t collect_names(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) {
    const LibrarySection section;
    closer_(id_);
  }
  id_ = -1;
}

// ---- files ------------------------------------------------------------------------------------------------

File File::open_read(const std::string& path) {
  require_readable_file(path);
  QuietErrors quiet;
  TL_CHECK(H5Fis_hdf5(path.c_str()) > 0, Error, path, ": not an HDF5 file");
  check_global_heaps(path);  // before libhdf5 reads any string from it
  const std::uintmax_t size = std::filesystem::file_size(path);
  return File(path, size,
              checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose,
                      path + ": cannot open the HDF5 file (damaged or truncated?)"));
}

namespace {

// The HDF5 signature, where the format puts a superblock: byte 0, or 512, 1024, 2048, ... after a user block
// (what H5Fis_hdf5 looks for in a file).
bool has_hdf5_signature(const std::uint8_t* data, std::size_t size) {
  static constexpr std::uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  for (std::size_t at = 0; size >= 8 && at <= size - 8; at = at == 0 ? 512 : at * 2)
    if (std::memcmp(data + at, kSignature, 8) == 0) return true;
  return false;
}

// libhdf5's file-image callbacks, set so that the core driver reads the caller's bytes in place. It asks for
// a buffer of the image's size to copy the image into, twice (when the image is set in the property list,
// and when the file opens): it gets the image itself, and the copy from the image into itself does nothing.
// A copy anywhere else, or a resize (a write), fails: the file is opened read-only.
struct ImageView {
  const void* data;
  std::size_t size;
};

void* image_malloc(std::size_t size, H5FD_file_image_op_t operation, void* view) {
  const auto* image = static_cast<const ImageView*>(view);
  if (size != image->size || operation == H5FD_FILE_IMAGE_OP_PROPERTY_LIST_GET) return nullptr;
  return const_cast<void*>(image->data);
}

void* image_memcpy(void* destination, const void* source, std::size_t, H5FD_file_image_op_t, void*) {
  return destination == source ? destination : nullptr;
}

void* image_realloc(void*, std::size_t, H5FD_file_image_op_t, void*) {
  return nullptr;
}

herr_t image_free(void*, H5FD_file_image_op_t, void*) {
  return 0;  // the bytes are the caller's
}

void* view_copy(void* view) {
  return view;  // one view per File, alive as long as the File
}

herr_t view_free(void*) {
  return 0;
}

// The name the core driver is given: it opens it once, and must fail to (or it refuses the image as "file
// already exists"). Nothing can be created under /proc/self, so this fails in any process, sandboxed or not.
constexpr const char* kImageName = "/proc/self/tl-hdf5-image";

}  // namespace

File File::open_image(const std::string& name, const void* data, std::size_t size, bool check_heaps) {
  QuietErrors quiet;
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  TL_CHECK(bytes != nullptr && has_hdf5_signature(bytes, size), Error, name, ": not an HDF5 file");
  if (check_heaps) check_global_heaps(name, bytes, size);  // before libhdf5 reads any string from it
  auto view = std::make_shared<ImageView>(ImageView{data, size});
  const Handle access = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate");
  H5FD_file_image_callbacks_t callbacks{image_malloc, image_memcpy, image_realloc, image_free,
                                        view_copy,    view_free,    view.get()};
  TL_CHECK(H5Pset_fapl_core(access.get(), std::size_t{1} << 20, /*backing_store=*/0) >= 0 &&
               H5Pset_file_image_callbacks(access.get(), &callbacks) >= 0 &&
               H5Pset_file_image(access.get(), const_cast<void*>(data), size) >= 0,
           Error, name, ": libhdf5 refused the file's image (out of memory?)");
  File file(name, size,
            checked(H5Fopen(kImageName, H5F_ACC_RDONLY, access.get()), H5Fclose,
                    name + ": cannot open the HDF5 file (damaged or truncated?)"));
  file.image_ = std::move(view);
  return file;
}

File File::create(const std::string& path) {
  QuietErrors quiet;
  // The core driver without a backing store: the file lives in memory, grown 64 MiB at a time.
  const Handle access = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate");
  TL_CHECK(H5Pset_fapl_core(access.get(), std::size_t{64} << 20, /*backing_store=*/0) >= 0, Error,
           "H5Pset_fapl_core");
  File file(path, 0,
            checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()), H5Fclose,
                    path + ": cannot create the HDF5 file"));
  file.in_memory_ = true;
  return file;
}

namespace {

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TL_CHECK(fd >= 0, Error, path, ": cannot create the file: ", std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw Error(
          str(path, ": writing failed after ", done, " of ", bytes.size(), " bytes: ", std::strerror(saved)));
    }
    done += static_cast<std::size_t>(n);
  }
  TL_CHECK(::close(fd) == 0, Error, path, ": writing failed: ", std::strerror(errno));
}

}  // namespace

void File::close() {
  if (!handle_.valid()) return;
  QuietErrors quiet;
  if (!in_memory_) {
    TL_CHECK(H5Fclose(handle_.release()) >= 0, Error, path_, ": closing the HDF5 file failed");
    return;
  }
  TL_CHECK(H5Fflush(handle_.get(), H5F_SCOPE_GLOBAL) >= 0, Error, path_, ": finishing the HDF5 file failed");
  const ssize_t size = H5Fget_file_image(handle_.get(), nullptr, 0);
  TL_CHECK(size > 0, Error, path_, ": finishing the HDF5 file failed");
  std::vector<char> image(static_cast<std::size_t>(size));
  TL_CHECK(H5Fget_file_image(handle_.get(), image.data(), image.size()) == size, Error, path_,
           ": finishing the HDF5 file failed");
  handle_.reset();  // the in-memory file; nothing of it is on disk yet
  write_bytes(path_, image);
}

// ---- reading ----------------------------------------------------------------------------------------------

bool File::exists(const std::string& object) const {
  QuietErrors quiet;
  if (object.empty() || object == "/") return true;
  // Each level must exist before H5Lexists may be asked about the next.
  std::string prefix;
  std::size_t start = object.front() == '/' ? 1 : 0;
  while (start < object.size()) {
    const std::size_t slash = object.find('/', start);
    prefix = object.substr(0, slash);
    if (H5Lexists(handle_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

Handle File::open_object(const std::string& object) const {
  TL_CHECK(exists(object), Error, path_, ": no object '", object, "'");
  QuietErrors quiet;
  return checked(H5Oopen(handle_.get(), object_path(object).c_str(), H5P_DEFAULT), H5Oclose,
                 path_ + ": cannot open '" + object + "'");
}

std::vector<std::string> File::dataset_paths(const std::string& group) const {
  const Handle g = open_object(group);
  std::vector<std::string> out;
  QuietErrors quiet;
  TL_CHECK(H5Lvisit(g.get(), H5_INDEX_NAME, H5_ITER_INC, collect_datasets, &out) >= 0, Error, path_,
           ": cannot walk the groups below '", group, "' (damaged file?)");
  return out;
}

std::vector<std::string> File::children(const std::string& group) const {
  const Handle g = open_object(group);
  std::vector<std::string> out;
  QuietErrors quiet;
  TL_CHECK(H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_names, &out) >= 0, Error, path_,
           ": cannot list '", group, "'");
  return out;
}

DatasetInfo File::dataset_info(const std::string& dataset) const {
  QuietErrors quiet;
  const Handle d = checked(H5Dopen2(handle_.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose,
                           path_ + ": no dataset '" + dataset + "'");
  const Handle space =
      checked(H5Dget_space(d.get()), H5Sclose, path_ + ": '" + dataset + "' has no dataspace");
  const Handle type = checked(H5Dget_type(d.get()), H5Tclose, path_ + ": '" + dataset + "' has no type");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  TL_CHECK(rank >= 0 && rank <= 8, Error, path_, ": '", dataset, "' has an unsupported rank ", rank);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  DatasetInfo info;
  for (hsize_t d_i : dims) info.shape.push_back(static_cast<std::int64_t>(d_i));
  switch (H5Tget_class(type.get())) {
    case H5T_FLOAT:
      info.kind = ElementKind::Float;
      break;
    case H5T_INTEGER:
      info.kind = ElementKind::Integer;
      break;
    case H5T_STRING:
      info.kind = ElementKind::String;
      break;
    default:
      info.kind = ElementKind::Other;
      break;
  }
  info.element_size = H5Tget_size(type.get());
  return info;
}

template <typename T>
void File::read_dataset(const std::string& dataset, hid_t memory_type, ElementKind expected,
                        const std::function<T*(std::size_t)>& place) const {
  const DatasetInfo info = dataset_info(dataset);
  TL_CHECK(info.kind == expected || (expected == ElementKind::Float && info.kind == ElementKind::Integer),
           Error, path_, ": dataset '", dataset, "' holds ",
           info.kind == ElementKind::String ? "strings" : "another type", ", not numbers");
  // The product of the non-zero dims is bounded too: a zero dim among huge ones holds no data, but the
  // tensor's strides are products of its dims and would overflow.
  std::uint64_t count = 1, extent = 1;
  for (std::int64_t s : info.shape) {
    TL_CHECK(s >= 0 && (s == 0 || extent <= kMaxDatasetBytes / static_cast<std::uint64_t>(s)), Error, path_,
             ": dataset '", dataset, "' declares an impossible shape ", shape_str(info.shape));
    if (s > 0) extent *= static_cast<std::uint64_t>(s);
    count *= static_cast<std::uint64_t>(s);
  }
  TL_CHECK(count * sizeof(T) <= kMaxDatasetBytes, Error, path_, ": dataset '", dataset, "' declares ",
           shape_str(info.shape), ", over the ", kMaxDatasetBytes >> 30, " GiB limit");
  QuietErrors quiet;
  const Handle d = checked(H5Dopen2(handle_.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose,
                           path_ + ": no dataset '" + dataset + "'");
  // A contiguous dataset's bytes are in the file: it cannot be larger than the file (a truncated or hostile
  // one).
  const Handle plist =
      checked(H5Dget_create_plist(d.get()), H5Pclose, path_ + ": '" + dataset + "' is damaged");
  const std::uint64_t file_size = size_;
  const std::uint64_t declared = count * info.element_size;
  if (H5Pget_layout(plist.get()) == H5D_CONTIGUOUS) {
    TL_CHECK(declared <= file_size, Error, path_, ": dataset '", dataset, "' declares ",
             shape_str(info.shape), " (", declared, " bytes) but the file holds only ", file_size,
             " bytes (truncated?)");
  } else {
    // Chunked (or compact) data may be compressed, so the file bounds it only through the compression ratio;
    // and chunks never written read as the fill value, so without this a few KiB could declare gigabytes.
    // The chunk index's sizes are the file's word too: libhdf5 allocates a buffer of each chunk's stored size
    // before reading it, so a damaged index could ask for gigabytes.
    const std::uint64_t stored = H5Dget_storage_size(d.get());
    TL_CHECK(stored <= file_size, Error, path_, ": dataset '", dataset, "' claims to store ", stored,
             " bytes but the file holds only ", file_size, " (damaged chunk index?)");
    TL_CHECK(declared <= stored * kMaxCompressionRatio, Error, path_, ": dataset '", dataset, "' declares ",
             shape_str(info.shape), " (", declared, " bytes) but stores only ", stored,
             " bytes, more than deflate could expand (truncated, or chunks never written?)");
  }
  T* out = place(static_cast<std::size_t>(count));
  if (count > 0)
    TL_CHECK(H5Dread(d.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0, Error, path_,
             ": cannot read dataset '", dataset, "' (damaged or truncated file?)");
}

namespace {

template <typename T>
std::function<T*(std::size_t)> into(std::vector<T>& values) {
  return [&values](std::size_t count) {
    values.resize(count);
    return values.data();
  };
}

}  // namespace

std::vector<float> File::read_floats(const std::string& dataset) const {
  std::vector<float> values;
  read_dataset<float>(dataset, H5T_NATIVE_FLOAT, ElementKind::Float, into(values));
  return values;
}

std::vector<double> File::read_doubles(const std::string& dataset) const {
  std::vector<double> values;
  read_dataset<double>(dataset, H5T_NATIVE_DOUBLE, ElementKind::Float, into(values));
  return values;
}

std::vector<std::int64_t> File::read_int64s(const std::string& dataset) const {
  std::vector<std::int64_t> values;
  read_dataset<std::int64_t>(dataset, H5T_NATIVE_INT64, ElementKind::Integer, into(values));
  return values;
}

void File::read_floats(const std::string& dataset, const std::function<float*(std::size_t)>& place) const {
  read_dataset<float>(dataset, H5T_NATIVE_FLOAT, ElementKind::Float, place);
}

void File::read_doubles(const std::string& dataset, const std::function<double*(std::size_t)>& place) const {
  read_dataset<double>(dataset, H5T_NATIVE_DOUBLE, ElementKind::Float, place);
}

void File::read_int64s(const std::string& dataset,
                       const std::function<std::int64_t*(std::size_t)>& place) const {
  read_dataset<std::int64_t>(dataset, H5T_NATIVE_INT64, ElementKind::Integer, place);
}

bool File::has_attribute(const std::string& object, const std::string& name) const {
  if (!exists(object)) return false;
  QuietErrors quiet;
  return H5Aexists_by_name(handle_.get(), object_path(object).c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

Handle File::open_attribute(const std::string& object, const std::string& name) const {
  TL_CHECK(has_attribute(object, name), Error, path_, ": '", object_path(object), "' has no attribute '",
           name, "'");
  QuietErrors quiet;
  return checked(
      H5Aopen_by_name(handle_.get(), object_path(object).c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose, path_ + ": cannot open attribute '" + name + "'");
}

std::int64_t File::attribute_size(const std::string& object, const std::string& name) const {
  const Handle attr = open_attribute(object, name);
  QuietErrors quiet;
  const Handle space =
      checked(H5Aget_space(attr.get()), H5Sclose, path_ + ": attribute '" + name + "' is damaged");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  TL_CHECK(n >= 0, Error, path_, ": attribute '", name, "' is damaged");
  return static_cast<std::int64_t>(n);
}

std::vector<std::string> File::read_string_attribute(const std::string& object,
                                                     const std::string& name) const {
  const Handle attr = open_attribute(object, name);
  QuietErrors quiet;
  const Handle type =
      checked(H5Aget_type(attr.get()), H5Tclose, path_ + ": attribute '" + name + "' has no type");
  const Handle space =
      checked(H5Aget_space(attr.get()), H5Sclose, path_ + ": attribute '" + name + "' is damaged");
  TL_CHECK(H5Tget_class(type.get()) == H5T_STRING, Error, path_, ": attribute '", name, "' is not a string");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  TL_CHECK(n >= 0 && n <= (1 << 20), Error, path_, ": attribute '", name, "' has ", n, " elements");
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    const Handle memory = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
    H5Tset_size(memory.get(), H5T_VARIABLE);
    H5Tset_cset(memory.get(), H5Tget_cset(type.get()));
    std::vector<char*> pointers(static_cast<std::size_t>(n), nullptr);
    TL_CHECK(H5Aread(attr.get(), memory.get(), pointers.data()) >= 0, Error, path_,
             ": cannot read attribute '", name, "'");
    for (char* p : pointers) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, pointers.data());
  } else {
    const std::size_t size = H5Tget_size(type.get());
    TL_CHECK(
        size > 0 && size <= (std::size_t{64} << 20) / std::max<std::size_t>(1, static_cast<std::size_t>(n)),
        Error, path_, ": attribute '", name, "' is too large");
    std::vector<char> buffer(size * static_cast<std::size_t>(n));
    TL_CHECK(H5Aread(attr.get(), type.get(), buffer.data()) >= 0, Error, path_, ": cannot read attribute '",
             name, "'");
    for (hssize_t i = 0; i < n; ++i) {
      const char* begin = buffer.data() + static_cast<std::size_t>(i) * size;
      out.emplace_back(begin, std::find(begin, begin + size, '\0'));
    }
  }
  return out;
}

std::vector<double> File::read_double_attribute(const std::string& object, const std::string& name) const {
  const Handle attr = open_attribute(object, name);
  QuietErrors quiet;
  const Handle type =
      checked(H5Aget_type(attr.get()), H5Tclose, path_ + ": attribute '" + name + "' has no type");
  const H5T_class_t type_class = H5Tget_class(type.get());
  TL_CHECK(type_class == H5T_FLOAT || type_class == H5T_INTEGER, Error, path_, ": attribute '", name,
           "' is not a number");
  const Handle space =
      checked(H5Aget_space(attr.get()), H5Sclose, path_ + ": attribute '" + name + "' is damaged");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  TL_CHECK(n >= 0 && n <= (1 << 20), Error, path_, ": attribute '", name, "' has ", n, " elements");
  std::vector<double> out(static_cast<std::size_t>(n));
  TL_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, out.data()) >= 0, Error, path_, ": cannot read attribute '",
           name, "'");
  return out;
}

std::int64_t File::read_int_attribute(const std::string& object, const std::string& name) const {
  const std::vector<double> v = read_double_attribute(object, name);
  // The range first: converting a double outside int64 (or NaN) is undefined behaviour (tests/fuzz/ found
  // it).
  TL_CHECK(v.size() == 1 && v[0] >= -0x1p63 && v[0] < 0x1p63 && std::trunc(v[0]) == v[0], Error, path_,
           ": attribute '", name, "' is not a single integer");
  return static_cast<std::int64_t>(v[0]);
}

// ---- writing ----------------------------------------------------------------------------------------------

void File::write_dataset(const std::string& dataset, const Shape& shape, hid_t memory_type,
                         const void* data) {
  QuietErrors quiet;
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Handle space =
      checked(shape.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
              H5Sclose, path_ + ": cannot describe the shape of '" + dataset + "'");
  const Handle links = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "H5Pcreate");
  H5Pset_create_intermediate_group(links.get(), 1);
  const Handle d =
      checked(H5Dcreate2(handle_.get(), ("/" + dataset).c_str(), memory_type, space.get(), links.get(),
                         H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose, path_ + ": cannot create dataset '" + dataset + "' (a name that is also a group?)");
  TL_CHECK(H5Dwrite(d.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, Error, path_,
           ": cannot write dataset '", dataset, "' (disk full?)");
}

void File::write_floats(const std::string& dataset, const Shape& shape, const float* data) {
  write_dataset(dataset, shape, H5T_NATIVE_FLOAT, data);
}

void File::write_doubles(const std::string& dataset, const Shape& shape, const double* data) {
  write_dataset(dataset, shape, H5T_NATIVE_DOUBLE, data);
}

void File::write_int64s(const std::string& dataset, const Shape& shape, const std::int64_t* data) {
  write_dataset(dataset, shape, H5T_NATIVE_INT64, data);
}

void File::write_attribute(const std::string& name, hid_t type, hid_t space, const void* data) {
  const Handle attr = checked(H5Acreate2(handle_.get(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                              H5Aclose, path_ + ": cannot create attribute '" + name + "'");
  TL_CHECK(H5Awrite(attr.get(), type, data) >= 0, Error, path_, ": cannot write attribute '", name, "'");
}

void File::write_string_attribute(const std::string& name, const std::string& value) {
  // Variable-length UTF-8, so that h5py hands back a str rather than bytes.
  QuietErrors quiet;
  const Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  const char* pointer = value.c_str();
  write_attribute(name, type.get(), space.get(), &pointer);
}

void File::write_string_array_attribute(const std::string& name, const std::vector<std::string>& values) {
  QuietErrors quiet;
  const Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const hsize_t n = values.size();
  const Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate_simple");
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  write_attribute(name, type.get(), space.get(), pointers.data());
}

void File::write_double_array_attribute(const std::string& name, const std::vector<double>& values) {
  QuietErrors quiet;
  const hsize_t n = values.size();
  const Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate_simple");
  write_attribute(name, H5T_NATIVE_DOUBLE, space.get(), values.data());
}

void File::write_double_attribute(const std::string& name, double value) {
  QuietErrors quiet;
  const Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  write_attribute(name, H5T_NATIVE_DOUBLE, space.get(), &value);
}

void File::write_int_attribute(const std::string& name, std::int64_t value) {
  QuietErrors quiet;
  const Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  write_attribute(name, H5T_NATIVE_INT64, space.get(), &value);
}

}  // namespace tl::weights::h5
