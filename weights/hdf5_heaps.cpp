#include "weights/hdf5_heaps.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/error.h"

namespace tl::weights::h5 {
namespace {

// The file's bytes, mapped read-only for the scan (no copy of a large weight file).
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;  // libhdf5 reports it
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const std::uint8_t*>(p);
        size_ = static_cast<std::size_t>(st.st_size);
      }
    }
    ::close(fd);
  }
  ~Mapping() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

std::uint64_t little_endian(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Sizes of offsets and lengths from a superblock at byte 0 (versions 0 and 1 keep them at bytes 13-14,
// versions 2 and 3 at 9-10); 0 when there is none.
int length_size(const std::uint8_t* data, std::size_t size) {
  static constexpr std::uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (size < 16 || std::memcmp(data, kSignature, 8) != 0) return 0;
  const int version = data[8];
  if (version <= 1) return data[14];
  if (version <= 3) return data[10];
  return 0;
}

}  // namespace

void check_global_heaps(const std::string& path) {
  const Mapping file(path);
  check_global_heaps(path, file.data(), file.size());
}

void check_global_heaps(const std::string& path, const std::uint8_t* data, std::size_t size) {
  if (!data || length_size(data, size) != 8) return;
  // A collection: "GCOL", version 1, 3 reserved bytes, its size (8 bytes, header included), then objects:
  // index (2), reference count (2), reserved (4), size (8), data padded to 8. Index 0 is the free space,
  // whose size counts its own header.
  constexpr std::size_t kHeader = 16, kObjectHeader = 16;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = bytes.find("GCOL"); at != std::string_view::npos; at = bytes.find("GCOL", at + 1)) {
    if (size - at < kHeader || data[at + 4] != 1) continue;
    const std::uint64_t declared = little_endian(data + at + 8, 8);
    if (declared > size - at) continue;  // libhdf5 fails to read it: an error, not a hang
    const std::size_t end = at + static_cast<std::size_t>(declared);
    std::size_t p = at + kHeader;
    while (p < end && end - p >= kObjectHeader) {
      const std::uint64_t index = little_endian(data + p, 2);
      const std::uint64_t object = little_endian(data + p + 8, 8);
      const std::uint64_t need = index > 0 ? kObjectHeader + ((object + 7) / 8) * 8 : object;
      TL_CHECK(need != 0, Error, path, ": damaged HDF5 file: the global heap collection at byte ", at,
               " has an empty free-space object at byte ", p, " (libhdf5 would never finish reading it)");
      // An object past its collection's end would be copied from beyond libhdf5's buffer when read; free
      // space past the end only ends the walk.
      if (need > end - p || need < object) {
        TL_CHECK(index == 0, Error, path, ": damaged HDF5 file: object ", index,
                 " of the global heap collection at byte ", at, " claims ", object,
                 " bytes, past the collection's end");
        break;
      }
      p += static_cast<std::size_t>(need);
    }
  }
}

}  // namespace tl::weights::h5
