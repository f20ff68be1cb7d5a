#include "engine/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace tl {
namespace {

std::string folder_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error(str("cannot open ", path, " to flush it: ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw Error(str("cannot flush ", path, " to disk: ", std::strerror(saved)));
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  static std::atomic<unsigned> counter{0};  // distinct temporary names for concurrent writers in one process
  const std::string folder = folder_of(path_);
  TL_CHECK(std::filesystem::is_directory(folder), Error, "cannot write ", path_, ": folder ", folder,
           " does not exist");
  TL_CHECK(::access(folder.c_str(), W_OK) == 0, Error, "cannot write ", path_, ": folder ", folder,
           " is not writable");
  TL_CHECK(!std::filesystem::is_directory(path_), Error, "cannot write ", path_,
           ": it is a folder (name a file in it)");
  temp_path_ = str(path_, ".tmp-", ::getpid(), "-", counter++);
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::commit() {
  fsync_path(temp_path_, O_RDONLY);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw Error(str("cannot move ", temp_path_, " onto ", path_, ": ", std::strerror(errno)));
  committed_ = true;
  fsync_path(folder_of(path_), O_RDONLY | O_DIRECTORY);
}

}  // namespace tl
