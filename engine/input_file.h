// Checks that a path named as an input is a file this process can read, so that the message says which of
// those it is not (missing, a folder, not readable) instead of a reader failing later with a guess.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/error.h"

namespace tl {

// Throws Error naming `path`: "no such file", "is a folder, not a file", "not a regular file" or "cannot be
// read (<errno's reason>)".
inline void require_readable_file(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  TL_CHECK(std::filesystem::exists(status), Error, path, ": no such file");
  TL_CHECK(!std::filesystem::is_directory(status), Error, path, ": is a folder, not a file");
  TL_CHECK(std::filesystem::is_regular_file(status), Error, path, ": not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TL_CHECK(fd >= 0, Error, path, ": cannot be read (", std::strerror(errno), ")");
  ::close(fd);
}

}  // namespace tl
