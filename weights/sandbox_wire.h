// The result a sandboxed reader hands back to tl (weights/sandbox.h), in a small binary format that the
// parent parses without trusting it. The child that writes it has just run libhdf5 on a hostile file, so it
// may be compromised: every count, size, offset and string the parent reads is checked against the bytes the
// result holds, so a lying child cannot make tl read out of bounds or allocate more than the result's size.
// The worst a compromised child can do is hand back weights of its choosing, which a crafted but valid file
// could too.
//
// The result lies in memory the child shares with the parent, which the parent reads only once the child has
// exited (nothing can change it under the parser). It has two parts:
//   - the data area, from the start: each tensor's bytes, at a multiple of 64 bytes (tl's CPU alignment). The
//     child's reader creates its tensors there (Sink::tensor), so that libhdf5 reads into them directly, and
//     the parent's tensors adopt those bytes in place (Source::adopt): the data is never copied on its way;
//   - the index, after it: the metadata, and per tensor its name, dtype, shape and offset in the data area.
// Integers are little-endian; tensor data is the tensor's own bytes (parent and child are the same machine).
//   string:   u32 length, bytes
//   tensor:   u8 dtype (0 float32, 1 float64, 2 int64), u8 rank (at most 8), rank x i64 dims, u64 offset
//   metadata: string architecture, i64 num_classes, i64 input_size, 3 x f64 mean, 3 x f64 std,
//             string interpolation, f64 crop_fraction, u32 count + strings class_names, string source,
//             string training_state
//   WeightsFile: metadata, u32 count, then per tensor: u8 part (0 tensors, 1 extra), string name, tensor
//   Imported:    metadata, u32 count, then per tensor: string name, tensor; then string format
// Tensors' data may not overlap, so no two of the parent's tensors share bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "engine/error.h"
#include "weights/importers.h"
#include "weights/weights_file.h"

namespace tl::weights::wire {

inline constexpr std::size_t kDataAlignment = 64;

// A result that breaks the format. Thrown only by the parent's side.
class MalformedReply : public Error {
 public:
  using Error::Error;
};

// The child's side, over the result's memory (`capacity` bytes at `base`, page-aligned). `name` (the file)
// starts the error when the result would not fit.
class Sink {
 public:
  Sink(unsigned char* base, std::size_t capacity, std::string name)
      : base_(base), capacity_(capacity), name_(std::move(name)) {}

  // The index.
  void write(const void* data, std::size_t size);
  void u8(std::uint8_t v) { write(&v, 1); }
  void u32(std::uint32_t v);
  void i64(std::int64_t v);
  void f64(double v);
  void string(const std::string& s);

  // A new tensor whose bytes lie in the data area, for a reader to fill in place.
  Tensor tensor(const Shape& shape, DType dtype);
  // The offset of `t`'s bytes in the data area; they are copied there first unless they already lie in it.
  std::uint64_t place(const Tensor& t);
  // Backs the first `bytes` of the data area with memory in one call (Linux 5.14+), rather than a fault per
  // page as a reader fills it: for a child that knows about how much it will write. Best effort.
  void reserve(std::size_t bytes) const;
  // Puts the index after the data. Returns its offset (the data area's size) and its length.
  std::pair<std::uint64_t, std::uint64_t> finish();

 private:
  unsigned char* allocate(std::size_t bytes, std::size_t alignment);
  std::string too_large() const;

  unsigned char* base_;
  std::size_t capacity_;
  std::string name_;
  std::size_t used_ = 0;
  std::string index_;
};

// The parent's side: `data_size` bytes of tensor data at `base`, then `index_size` bytes of index. The
// tensors it makes keep `owner` (the memory) alive.
class Source {
 public:
  Source(std::shared_ptr<void> owner, unsigned char* base, std::size_t data_size, std::size_t index_size)
      : owner_(std::move(owner)), base_(base), data_size_(data_size), index_size_(index_size) {}

  // The index: exactly `size` bytes, or MalformedReply.
  void read(void* into, std::size_t size);
  bool at_end() const { return at_ == index_size_; }
  std::size_t remaining() const { return index_size_ - at_; }
  std::uint8_t u8();
  std::uint32_t u32();
  std::int64_t i64();
  double f64();
  std::string string();

  std::size_t data_size() const { return data_size_; }
  // A tensor over `bytes` bytes of the data area at `offset`, in place, once they are checked: inside the
  // data area, aligned, and apart from every tensor adopted before.
  Tensor adopt(const Shape& shape, DType dtype, std::uint64_t offset, std::uint64_t bytes);

 private:
  std::shared_ptr<void> owner_;
  unsigned char* base_;
  std::size_t data_size_, index_size_;
  std::size_t at_ = 0;
  std::map<std::uint64_t, std::uint64_t> taken_;  // begin -> end of each adopted tensor's bytes
};

void put_weights(Sink& out, const WeightsFile& file);
WeightsFile get_weights(Source& in);
void put_imported(Sink& out, const Imported& imported);
Imported get_imported(Source& in);

}  // namespace tl::weights::wire
