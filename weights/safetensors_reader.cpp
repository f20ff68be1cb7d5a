// safetensors (Hugging Face / timm): an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the data buffer, offsets relative to its start. Everything in the header is checked before a byte of
// the buffer is trusted, with the rules of the reference implementation (safetensors' Metadata::validate):
// the header is bounded, every tensor's byte range matches its shape and dtype, and the ranges tile the
// buffer exactly (no overlap, no hole, nothing left over), so a hostile file can neither read out of bounds
// nor hide data.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "weights/importers.h"

namespace tl::weights {
namespace {

using Json = nlohmann::json;

// safetensors' own limit is 100 MB; real headers are kilobytes.
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;
constexpr std::size_t kMaxRank = 8;  // as tl's HDF5 reader; weights have at most 4

enum class Code { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

struct DTypeInfo {
  const char* name;
  std::size_t size;
  Code code;
};

// What tl keeps: floats become float32 (the engine's dtype for weights), integers int64 (counters, indices).
constexpr DTypeInfo kDTypes[] = {
    {"F32", 4, Code::F32}, {"F16", 2, Code::F16},   {"BF16", 2, Code::BF16}, {"F64", 8, Code::F64},
    {"I64", 8, Code::I64}, {"I32", 4, Code::I32},   {"I16", 2, Code::I16},   {"I8", 1, Code::I8},
    {"U8", 1, Code::U8},   {"BOOL", 1, Code::Bool},
};
// Valid safetensors dtypes tl does not take: named as unsupported rather than as garbage.
constexpr const char* kKnownUnsupported[] = {"U16", "U32", "U64", "F8_E5M2", "F8_E4M3"};

struct Entry {
  std::string name;
  const DTypeInfo* dtype = nullptr;
  Shape shape;
  std::uint64_t numel = 1;
  std::uint64_t begin = 0, end = 0;
};

std::uint64_t read_u64_le(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// IEEE half -> float, exactly (every half is a float): subnormals renormalised, inf and NaN kept.
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {
    exponent = 113;  // 127 - 15 + 1, lowered once per shift below
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  } else {
    bits = sign;
  }
  return std::bit_cast<float>(bits);
}

template <typename T>
T load(const unsigned char* p) {
  // Little-endian on disk; tl's CPUs are little-endian too, and memcpy keeps unaligned reads legal.
  static_assert(std::endian::native == std::endian::little,
                "safetensors reader assumes a little-endian host");
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// double -> float as IEEE rounds it. Converting a double beyond float's range is undefined behaviour in C++,
// so what rounds to infinity is made infinity here (the threshold is FLT_MAX plus half an ulp).
float narrow(double v) {
  constexpr double kOverflow = 0x1.ffffffp+127;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  if (std::isfinite(v) && std::abs(v) >= kOverflow) return v > 0 ? kInf : -kInf;
  return static_cast<float>(v);
}

// Applies `decode` to each element of the tensor's bytes.
template <typename Out, typename Decode>
Tensor decode_all(const Entry& e, const unsigned char* data, Decode decode) {
  std::vector<Out> out(static_cast<std::size_t>(e.numel));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<Out>(decode(data + i * e.dtype->size));
  return tensor(out, e.shape);
}

Tensor convert(const Entry& e, const unsigned char* data) {
  switch (e.dtype->code) {
    case Code::F32:
      return decode_all<float>(e, data, load<float>);
    case Code::F16:
      return decode_all<float>(e, data,
                               [](const unsigned char* p) { return half_to_float(load<std::uint16_t>(p)); });
    case Code::BF16:
      return decode_all<float>(e, data, [](const unsigned char* p) {
        return std::bit_cast<float>(static_cast<std::uint32_t>(load<std::uint16_t>(p)) << 16);
      });
    case Code::F64:
      return decode_all<float>(e, data, [](const unsigned char* p) { return narrow(load<double>(p)); });
    case Code::I64:
      return decode_all<std::int64_t>(e, data, load<std::int64_t>);
    case Code::I32:
      return decode_all<std::int64_t>(e, data, load<std::int32_t>);
    case Code::I16:
      return decode_all<std::int64_t>(e, data, load<std::int16_t>);
    case Code::I8:
      return decode_all<std::int64_t>(e, data, load<std::int8_t>);
    case Code::U8:
      return decode_all<std::int64_t>(e, data, load<std::uint8_t>);
    case Code::Bool:
      return decode_all<std::int64_t>(e, data, [](const unsigned char* p) { return *p != 0; });
  }
  throw Error(str("safetensors: unhandled dtype ", e.dtype->name));
}

const DTypeInfo& parse_dtype(const std::string& path, const std::string& name, const Json& value) {
  TL_CHECK(value.is_string(), Error, path, ": tensor '", name, "': \"dtype\" is not a string");
  const std::string dt = value.get<std::string>();
  for (const DTypeInfo& d : kDTypes)
    if (dt == d.name) return d;
  for (const char* u : kKnownUnsupported)
    TL_CHECK(dt != u, Error, path, ": tensor '", name, "' has dtype ", dt,
             ", which tl does not support (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
  throw Error(str(path, ": tensor '", name, "' has an unknown dtype '", dt, "'"));
}

std::uint64_t parse_unsigned(const std::string& path, const std::string& name, const char* field,
                             const Json& v) {
  TL_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0), Error, path,
           ": tensor '", name, "': \"", field, "\" holds ", v.dump(), ", not a non-negative integer");
  return v.get<std::uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const Json& info) {
  TL_CHECK(info.is_object(), Error, path, ": tensor '", name, "' is not described by a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    TL_CHECK(info.contains(field), Error, path, ": tensor '", name, "' has no \"", field, "\"");
  Entry e;
  e.name = name;
  e.dtype = &parse_dtype(path, name, info["dtype"]);
  const Json& shape = info["shape"];
  TL_CHECK(shape.is_array(), Error, path, ": tensor '", name, "': \"shape\" is not an array");
  TL_CHECK(shape.size() <= kMaxRank, Error, path, ": tensor '", name, "' has ", shape.size(),
           " dimensions (tl takes at most ", kMaxRank, ")");
  for (const Json& d : shape) {
    const std::uint64_t size = parse_unsigned(path, name, "shape", d);
    TL_CHECK(size <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) &&
                 !__builtin_mul_overflow(e.numel, size, &e.numel),
             Error, path, ": tensor '", name, "' declares an impossible shape ", shape.dump());
    e.shape.push_back(static_cast<std::int64_t>(size));
  }
  const Json& offsets = info["data_offsets"];
  TL_CHECK(offsets.is_array() && offsets.size() == 2, Error, path, ": tensor '", name,
           "': \"data_offsets\" must be [begin, end], got ", offsets.dump());
  e.begin = parse_unsigned(path, name, "data_offsets", offsets[0]);
  e.end = parse_unsigned(path, name, "data_offsets", offsets[1]);
  TL_CHECK(e.begin <= e.end, Error, path, ": tensor '", name, "' has data_offsets [", e.begin, ", ", e.end,
           "] that end before they begin");
  std::uint64_t bytes = 0;
  TL_CHECK(!__builtin_mul_overflow(e.numel, e.dtype->size, &bytes) && bytes == e.end - e.begin, Error, path,
           ": tensor '", name, "' is ", e.dtype->name, " ", shape_str(e.shape), " (", e.numel,
           " elements of ", e.dtype->size, " bytes) but its data_offsets [", e.begin, ", ", e.end, "] span ",
           e.end - e.begin, " bytes");
  return e;
}

// When every name starts with `prefix` (DataParallel's "module."), drops it.
void strip_common_prefix(std::vector<Entry>& entries, const std::string& prefix) {
  if (entries.empty()) return;
  for (const Entry& e : entries)
    if (e.name.size() <= prefix.size() || e.name.compare(0, prefix.size(), prefix) != 0) return;
  for (Entry& e : entries) e.name.erase(0, prefix.size());
}

}  // namespace

Imported read_safetensors(const std::string& path) {
  TL_CHECK(std::filesystem::is_regular_file(path), Error, path, ": no such file");
  const std::uint64_t file_size = std::filesystem::file_size(path);
  std::ifstream in(path, std::ios::binary);
  TL_CHECK(in, Error, path, ": cannot open the file");
  TL_CHECK(file_size >= 8, Error, path, ": ", file_size,
           " bytes is too short for a safetensors file (the 8-byte header length is missing)");
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  const std::uint64_t header_size = read_u64_le(length_bytes);
  TL_CHECK(header_size <= kMaxHeaderBytes, Error, path, ": the safetensors header claims ", header_size,
           " bytes, over the ", kMaxHeaderBytes >> 20, " MiB limit (not a safetensors file, or damaged)");
  TL_CHECK(header_size <= file_size - 8, Error, path, ": the safetensors header claims ", header_size,
           " bytes but the file holds only ", file_size - 8, " after the length (truncated?)");

  std::string header(static_cast<std::size_t>(header_size), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  TL_CHECK(in, Error, path, ": cannot read the safetensors header");
  const Json root = Json::parse(header, nullptr, /*allow_exceptions=*/false);
  TL_CHECK(!root.is_discarded(), Error, path, ": the safetensors header is not valid JSON");
  TL_CHECK(root.is_object(), Error, path, ": the safetensors header is not a JSON object");

  std::vector<Entry> entries;
  for (const auto& [name, info] : root.items()) {
    if (name == "__metadata__") {
      TL_CHECK(info.is_object(), Error, path, ": \"__metadata__\" is not a JSON object");
      continue;  // free-form strings ("format": "pt"); nothing tl needs
    }
    TL_CHECK(!name.empty(), Error, path, ": a tensor has an empty name");
    entries.push_back(parse_entry(path, name, info));
  }

  // The ranges must tile [0, buffer size) in order; a zero-length tensor may sit anywhere in the sequence.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const std::uint64_t buffer_size = file_size - 8 - header_size;
  std::uint64_t expected = 0;
  for (const Entry& e : entries) {
    TL_CHECK(e.end <= buffer_size, Error, path, ": tensor '", e.name, "' has data_offsets [", e.begin, ", ",
             e.end, "] past the end of the ", buffer_size, "-byte data buffer (truncated?)");
    TL_CHECK(e.begin == expected, Error, path, ": tensor '", e.name, "' starts at byte ", e.begin, " where ",
             expected, " was expected: the data_offsets ",
             e.begin < expected ? "overlap the previous tensor" : "leave a hole");
    expected = e.end;
  }
  TL_CHECK(expected == buffer_size, Error, path, ": the tensors cover ", expected, " bytes of the ",
           buffer_size, "-byte data buffer (trailing bytes belong to no tensor)");

  std::vector<unsigned char> buffer(static_cast<std::size_t>(buffer_size));
  in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(buffer_size));
  TL_CHECK(in || buffer_size == 0, Error, path, ": cannot read the ", buffer_size, "-byte data buffer");

  strip_common_prefix(entries, "module.");
  Imported out;
  out.format = "safetensors";
  out.metadata.source = "safetensors: " + std::filesystem::path(path).filename().string();
  for (const Entry& e : entries) {
    TL_CHECK(!out.tensors.contains(e.name), Error, path, ": two tensors are named '", e.name, "'");
    out.tensors.insert(e.name, convert(e, buffer.data() + e.begin));
  }
  return out;
}

}  // namespace tl::weights
