// Writing a file so that a crash or kill at any moment leaves either the old file or the new one, never half
// of one: write to a temporary file in the same folder, flush it to disk, then rename it over the target.
#pragma once

#include <string>

namespace tl {

class AtomicFile {
 public:
  // Reserves a temporary name beside `path` ("<path>.tmp-<pid>-<n>"); throws Error naming the folder when it
  // does not exist or is not writable.
  explicit AtomicFile(std::string path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Where to write.
  const std::string& temp_path() const { return temp_path_; }
  const std::string& path() const { return path_; }
  // fsyncs the temporary file, renames it onto path() and fsyncs the folder; throws Error on failure (the
  // previous file at path() is then untouched).
  void commit();

 private:
  std::string path_, temp_path_;
  bool committed_ = false;
};

}  // namespace tl
