#include "weights/sandbox_wire.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include <sys/mman.h>
#include <unistd.h>

#include "engine/storage.h"

namespace tl::weights::wire {
namespace {

static_assert(std::endian::native == std::endian::little,
              "tensor data travels as the tensor's own bytes, which the format defines as little-endian");

constexpr std::size_t kMaxRank = 8;  // as the HDF5 reader (weights/hdf5.cpp)

std::uint8_t dtype_code(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return 0;
    case DType::Float64:
      return 1;
    case DType::Int64:
      return 2;
  }
  throw Error("sandbox result: a tensor of an unknown dtype");
}

std::size_t bytes_of(const Tensor& t) {
  return static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype());
}

void put_tensor(Sink& out, const Tensor& tensor) {
  out.u8(dtype_code(tensor.dtype()));
  out.u8(static_cast<std::uint8_t>(tensor.dim()));
  for (const std::int64_t d : tensor.shape()) out.i64(d);
  out.i64(static_cast<std::int64_t>(out.place(tensor)));
}

Tensor get_tensor(Source& in, const std::string& name) {
  const std::uint8_t code = in.u8();
  TL_CHECK(code <= 2, MalformedReply, "tensor '", name, "' has dtype code ", int(code));
  const DType dtype = code == 0 ? DType::Float32 : code == 1 ? DType::Float64 : DType::Int64;
  const std::uint8_t rank = in.u8();
  TL_CHECK(rank <= kMaxRank, MalformedReply, "tensor '", name, "' has rank ", int(rank));
  Shape shape;
  // The bytes of the non-zero dims must fit in the data area: that bounds the data, the element count and
  // every stride the tensor will compute (a zero dim among huge ones would otherwise overflow them), and
  // rules out overflow here.
  std::uint64_t extent = dtype_size(dtype);
  bool no_elements = false;
  for (std::uint8_t i = 0; i < rank; ++i) {
    const std::int64_t d = in.i64();
    TL_CHECK(d >= 0, MalformedReply, "tensor '", name, "' has a negative dim ", d);
    shape.push_back(d);
    if (d == 0) {
      no_elements = true;
      continue;
    }
    TL_CHECK(static_cast<std::uint64_t>(d) <= in.data_size() / extent, MalformedReply, "tensor '", name,
             "' declares more data than the result holds");
    extent *= static_cast<std::uint64_t>(d);
  }
  const auto offset = static_cast<std::uint64_t>(in.i64());
  return in.adopt(shape, dtype, offset, no_elements ? 0 : extent);
}

void put_metadata(Sink& out, const Metadata& m) {
  // Every field of Metadata and Preprocessing: a field added there must be added here and in get_metadata
  // (tests/weights/test_isolated_read.cpp round-trips each one).
  out.string(m.architecture);
  out.i64(m.num_classes);
  const Preprocessing& p = m.preprocessing;
  out.i64(p.input_size);
  for (const double v : p.mean) out.f64(v);
  for (const double v : p.std) out.f64(v);
  out.string(p.interpolation);
  out.f64(p.crop_fraction);
  out.u32(static_cast<std::uint32_t>(m.class_names.size()));
  for (const std::string& name : m.class_names) out.string(name);
  out.string(m.source);
  out.string(m.training_state);
}

Metadata get_metadata(Source& in) {
  Metadata m;
  m.architecture = in.string();
  m.num_classes = in.i64();
  Preprocessing& p = m.preprocessing;
  p.input_size = in.i64();
  for (double& v : p.mean) v = in.f64();
  for (double& v : p.std) v = in.f64();
  p.interpolation = in.string();
  p.crop_fraction = in.f64();
  // No reserve: a lying count costs nothing until its strings arrive, each at least 4 bytes of the index.
  const std::uint32_t names = in.u32();
  for (std::uint32_t i = 0; i < names; ++i) m.class_names.push_back(in.string());
  m.source = in.string();
  m.training_state = in.string();
  return m;
}

std::uint32_t count_of(std::size_t n) {
  TL_CHECK(n <= std::numeric_limits<std::uint32_t>::max(), Error, "sandbox result: ", n, " entries");
  return static_cast<std::uint32_t>(n);
}

void insert_new(StateDict& into, std::string name, Tensor tensor) {
  TL_CHECK(!name.empty(), MalformedReply, "a tensor without a name");
  TL_CHECK(!into.contains(name), MalformedReply, "tensor '", name, "' twice");
  into.insert(std::move(name), std::move(tensor));
}

}  // namespace

// ---- the child's side -----------------------------------------------------------------------------------

void Sink::write(const void* data, std::size_t size) {
  // The index goes after the data when it is finished: both must fit.
  TL_CHECK(index_.size() <= capacity_ - used_ && size <= capacity_ - used_ - index_.size(), Error,
           too_large());
  index_.append(static_cast<const char*>(data), size);
}

std::string Sink::too_large() const {
  return str(name_, ": the result of reading it would be larger than the ", capacity_ >> 20,
             " MiB that tl takes from its sandboxed HDF5 reader (a damaged or hostile file?)");
}

void Sink::u32(std::uint32_t v) {
  unsigned char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  write(b, 4);
}

void Sink::i64(std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(u >> (8 * i));
  write(b, 8);
}

void Sink::f64(double v) {
  i64(std::bit_cast<std::int64_t>(v));
}

void Sink::string(const std::string& s) {
  u32(count_of(s.size()));
  write(s.data(), s.size());
}

unsigned char* Sink::allocate(std::size_t bytes, std::size_t alignment) {
  const std::size_t start = (used_ + alignment - 1) / alignment * alignment;
  TL_CHECK(start <= capacity_ && bytes <= capacity_ - start, Error, too_large());
  used_ = start + bytes;
  return base_ + start;
}

Tensor Sink::tensor(const Shape& shape, DType dtype) {
  std::size_t bytes = dtype_size(dtype);
  for (const std::int64_t d : shape) {
    TL_CHECK(d >= 0, ShapeError, "a negative size in shape ", shape_str(shape));
    TL_CHECK(d == 0 || static_cast<std::size_t>(d) <= capacity_ / std::max<std::size_t>(bytes, 1), Error,
             name_, ": a tensor of shape ", shape_str(shape), " is larger than the result may be");
    bytes *= static_cast<std::size_t>(d);
  }
  if (bytes == 0) return empty(shape, dtype);
  auto impl = std::make_shared<TensorImpl>();
  // The memory is the parent's to release: the tensor only borrows it, for as long as the child lives.
  impl->storage =
      std::make_shared<Storage>(allocate(bytes, kDataAlignment), bytes, Device::cpu(), [](void*) {});
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

std::uint64_t Sink::place(const Tensor& t) {
  const Tensor dense = t.contiguous();
  const std::size_t bytes = bytes_of(dense);
  if (bytes == 0) return 0;
  // A tensor a reader made with tensor() is already in place; any other is copied in.
  const auto at = reinterpret_cast<std::uintptr_t>(dense.raw_data());
  const auto begin = reinterpret_cast<std::uintptr_t>(base_);
  if (at >= begin && at - begin <= used_ && bytes <= used_ - (at - begin) &&
      (at - begin) % kDataAlignment == 0)
    return at - begin;
  unsigned char* copy = allocate(bytes, kDataAlignment);
  std::memcpy(copy, dense.raw_data(), bytes);
  return static_cast<std::uint64_t>(copy - base_);
}

void Sink::reserve(std::size_t bytes) const {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t length = std::min(capacity_, (bytes + page - 1) / page * page);
  if (length > 0) (void)::madvise(base_, length, MADV_POPULATE_WRITE);
}

std::pair<std::uint64_t, std::uint64_t> Sink::finish() {
  const std::size_t data_size = used_;
  if (!index_.empty()) std::memcpy(allocate(index_.size(), 1), index_.data(), index_.size());
  return {data_size, index_.size()};
}

// ---- the parent's side ----------------------------------------------------------------------------------

void Source::read(void* into, std::size_t size) {
  TL_CHECK(size <= remaining(), MalformedReply, "the index ends early (", size - remaining(),
           " bytes missing)");
  if (size > 0) std::memcpy(into, base_ + data_size_ + at_, size);
  at_ += size;
}

std::uint8_t Source::u8() {
  std::uint8_t v = 0;
  read(&v, 1);
  return v;
}

std::uint32_t Source::u32() {
  unsigned char b[4];
  read(b, 4);
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | b[i];
  return v;
}

std::int64_t Source::i64() {
  unsigned char b[8];
  read(b, 8);
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
  return static_cast<std::int64_t>(v);
}

double Source::f64() {
  return std::bit_cast<double>(i64());
}

std::string Source::string() {
  const std::uint32_t size = u32();
  TL_CHECK(size <= remaining(), MalformedReply, "a string of ", size, " bytes, more than the index holds");
  std::string s(reinterpret_cast<const char*>(base_ + data_size_ + at_), size);
  at_ += size;
  return s;
}

Tensor Source::adopt(const Shape& shape, DType dtype, std::uint64_t offset, std::uint64_t bytes) {
  if (bytes == 0) return empty(shape, dtype);
  TL_CHECK(offset % kDataAlignment == 0, MalformedReply, "tensor data at byte ", offset,
           ", not a multiple of ", kDataAlignment);
  TL_CHECK(offset <= data_size_ && bytes <= data_size_ - offset, MalformedReply, "tensor data of ", bytes,
           " bytes at byte ", offset, ", past the ", data_size_, "-byte data area");
  // Apart from every tensor before: the one that starts at or before this one must end before it starts, and
  // the next one must start after it ends.
  const std::uint64_t end = offset + bytes;
  const auto next = taken_.lower_bound(offset);
  TL_CHECK(next == taken_.end() || next->first >= end, MalformedReply, "tensor data at byte ", offset,
           " overlaps another tensor's");
  TL_CHECK(next == taken_.begin() || std::prev(next)->second <= offset, MalformedReply,
           "tensor data at byte ", offset, " overlaps another tensor's");
  taken_.emplace(offset, end);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(base_ + offset, static_cast<std::size_t>(bytes), Device::cpu(),
                                            [owner = owner_](void*) {});
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

// ---- the payloads ---------------------------------------------------------------------------------------

void put_weights(Sink& out, const WeightsFile& file) {
  put_metadata(out, file.metadata);
  out.u32(count_of(file.tensors.size() + file.extra.size()));
  for (const auto& [part, dict] : {std::pair{0, &file.tensors}, std::pair{1, &file.extra}})
    for (const auto& [name, tensor] : *dict) {
      out.u8(static_cast<std::uint8_t>(part));
      out.string(name);
      put_tensor(out, tensor);
    }
}

WeightsFile get_weights(Source& in) {
  WeightsFile file;
  file.metadata = get_metadata(in);
  const std::uint32_t count = in.u32();
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint8_t part = in.u8();
    TL_CHECK(part <= 1, MalformedReply, "tensor part code ", int(part));
    std::string name = in.string();
    Tensor tensor = get_tensor(in, name);
    insert_new(part == 0 ? file.tensors : file.extra, std::move(name), std::move(tensor));
  }
  return file;
}

void put_imported(Sink& out, const Imported& imported) {
  put_metadata(out, imported.metadata);
  out.u32(count_of(imported.tensors.size()));
  for (const auto& [name, tensor] : imported.tensors) {
    out.string(name);
    put_tensor(out, tensor);
  }
  out.string(imported.format);
}

Imported get_imported(Source& in) {
  Imported imported;
  imported.metadata = get_metadata(in);
  const std::uint32_t count = in.u32();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string name = in.string();
    Tensor tensor = get_tensor(in, name);
    insert_new(imported.tensors, std::move(name), std::move(tensor));
  }
  imported.format = in.string();
  return imported;
}

}  // namespace tl::weights::wire
