// A guard in front of two bugs of libhdf5 1.10 in global heap collections (where variable-length strings
// live): a free-space object of size 0 makes its heap parser loop forever (H5HG__cache_heap_deserialize
// advances by the object's size; h5py hangs on such a file too), and an object that claims more bytes than
// its collection holds is copied from past the end of libhdf5's buffer (H5HG_read). tl refuses both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tl::weights::h5 {

// Walks every global heap collection of the file at `path` the way libhdf5 will, and throws tl::Error naming
// the file and the byte when one would never end or an object overruns its collection. Files whose superblock
// is not at byte 0 or whose lengths are not 8 bytes (neither h5py nor tl writes such files) are left to
// libhdf5.
void check_global_heaps(const std::string& path);
// The same on a file's bytes in memory; `name` is the file in messages.
void check_global_heaps(const std::string& name, const std::uint8_t* data, std::size_t size);

}  // namespace tl::weights::h5
