#include "weights/isolated_read.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "engine/input_file.h"
#include "weights/hdf5.h"
#include "weights/hdf5_readers.h"
#include "weights/sandbox.h"
#include "weights/sandbox_wire.h"

namespace tl::weights::isolated {
namespace {

// The file's bytes, for the child to parse: mapped read-only (no copy, and a fork shares the mapping
// without copying page tables), or read into memory where the file cannot be mapped.
class FileImage {
 public:
  explicit FileImage(const std::string& path) {
    require_readable_file(path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    TL_CHECK(fd >= 0, Error, path, ": cannot be read (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < 0) {
      const int error = errno;
      ::close(fd);
      throw Error(str(path, ": cannot be read (", std::strerror(error), ")"));
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        mapped_ = p;
      } else {
        copy_.resize(size_);
        std::size_t done = 0;
        while (done < size_) {
          const ssize_t n = ::read(fd, copy_.data() + done, size_ - done);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          done += static_cast<std::size_t>(n);
        }
        copy_.resize(done);  // a file that shrank meanwhile is read as it now is
        size_ = done;
      }
    }
    ::close(fd);
  }
  ~FileImage() {
    if (mapped_) ::munmap(mapped_, size_);
  }
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;

  const void* data() const { return mapped_ ? mapped_ : copy_.data(); }
  std::size_t size() const { return size_; }
  // Maps every page in one call (Linux 5.14+), rather than one fault at a time as libhdf5 reads: for a child
  // that will read the whole file. Best effort.
  void map_all() const {
    if (mapped_) (void)::madvise(mapped_, size_, MADV_POPULATE_READ);
  }

 private:
  void* mapped_ = nullptr;
  std::vector<unsigned char> copy_;
  std::size_t size_ = 0;
};

}  // namespace

WeightsFile load_weights(const std::string& path) {
  const FileImage image(path);
  WeightsFile result;
  sandbox::run(
      path, sandbox::default_limits(image.size()),
      [&](wire::Sink& out) {
        // libhdf5 reads each dataset straight into the result's memory, which the parent then adopts.
        image.map_all();
        out.reserve(image.size());
        const WeightsFile file =
            detail::read_weights(h5::File::open_image(path, image.data(), image.size()),
                                 [&out](const Shape& s, DType d) { return out.tensor(s, d); });
        wire::put_weights(out, file);
      },
      [&](wire::Source& in) { result = wire::get_weights(in); });
  return result;
}

Imported read_keras_h5(const std::string& path) {
  const FileImage image(path);
  Imported result;
  sandbox::run(
      path, sandbox::default_limits(image.size()),
      [&](wire::Sink& out) {
        image.map_all();
        const Imported imported = detail::read_keras(h5::File::open_image(path, image.data(), image.size()));
        wire::put_imported(out, imported);
      },
      [&](wire::Source& in) { result = wire::get_imported(in); });
  return result;
}

SourceFormat hdf5_format(const std::string& path) {
  const FileImage image(path);
  SourceFormat result = SourceFormat::Unknown;
  sandbox::run(
      path, sandbox::default_limits(image.size()),
      [&](wire::Sink& out) {
        // The root's attributes are looked up, none is read: no string, so no global heap to check first (a
        // scan of the whole file, which the read that follows makes anyway).
        const SourceFormat format = detail::classify_hdf5(
            h5::File::open_image(path, image.data(), image.size(), /*check_heaps=*/false));
        out.u8(static_cast<std::uint8_t>(format));
      },
      [&](wire::Source& in) {
        const std::uint8_t code = in.u8();
        for (const SourceFormat f : {SourceFormat::TlWeights, SourceFormat::KerasH5, SourceFormat::Unknown})
          if (code == static_cast<std::uint8_t>(f)) result = f;
        TL_CHECK(code == static_cast<std::uint8_t>(result), wire::MalformedReply, "format code ", int(code));
      });
  return result;
}

}  // namespace tl::weights::isolated
