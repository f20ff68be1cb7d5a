#include "engine/npy.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "engine/atomic_file.h"
#include "engine/error.h"

namespace tl {
namespace {

const char kMagic[] = "\x93NUMPY";

DType dtype_from_descr(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return DType::Float32;
  if (descr == "<f8") return DType::Float64;
  if (descr == "<i8") return DType::Int64;
  throw Error(str(path, ": unsupported .npy dtype '", descr, "' (tl reads <f4, <f8 and <i8)"));
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::Float32:
      return "<f4";
    case DType::Float64:
      return "<f8";
    case DType::Int64:
      return "<i8";
  }
  return "?";
}

}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TL_CHECK(in.good(), Error, path, ": cannot open");
  char magic[6] = {};
  unsigned char version[2] = {};
  in.read(magic, 6);
  in.read(reinterpret_cast<char*>(version), 2);
  TL_CHECK(in && std::memcmp(magic, kMagic, 6) == 0, Error, path, ": not a .npy file");
  std::uint32_t header_length = 0;
  if (version[0] == 1) {
    unsigned char b[2] = {};
    in.read(reinterpret_cast<char*>(b), 2);
    header_length = b[0] | b[1] << 8;
  } else {
    unsigned char b[4] = {};
    in.read(reinterpret_cast<char*>(b), 4);
    header_length = b[0] | b[1] << 8 | b[2] << 16 | static_cast<std::uint32_t>(b[3]) << 24;
  }
  TL_CHECK(in && header_length < (1u << 20), Error, path, ": damaged .npy header");
  std::string header(header_length, '\0');
  in.read(header.data(), header_length);
  TL_CHECK(in.good(), Error, path, ": truncated .npy header");

  std::smatch m;
  TL_CHECK(std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']+)')")), Error, path,
           ": .npy header has no descr");
  const DType dtype = dtype_from_descr(m[1], path);
  TL_CHECK(
      std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")) && m[1] == "False",
      Error, path, ": Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
  TL_CHECK(std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")), Error, path,
           ": .npy header has no shape");
  Shape shape;
  const std::string dims = m[1];
  const std::regex number(R"(\d+)");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    TL_CHECK(it->str().size() < 12, Error, path, ": .npy dimension ", it->str(), " is too large");
    shape.push_back(std::stoll(it->str()));
  }
  const std::uint64_t bytes = static_cast<std::uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  const std::uint64_t data_start = static_cast<std::uint64_t>(in.tellg());
  TL_CHECK(data_start + bytes <= std::filesystem::file_size(path), Error, path,
           ": .npy data is shorter than its shape ", shape_str(shape), " needs (truncated?)");
  Tensor t = empty(shape, dtype);
  in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(bytes));
  TL_CHECK(in.good() || bytes == 0, Error, path, ": cannot read the .npy data");
  return t;
}

void save_npy(const std::string& path, const Tensor& tensor) {
  const Tensor dense = tensor.detach().contiguous();
  std::string shape;
  for (std::int64_t s : dense.shape()) shape += std::to_string(s) + ", ";
  if (dense.dim() > 1)
    shape.erase(shape.size() - 2);  // a 1-d shape keeps its trailing comma: (3,)
  else if (dense.dim() == 1)
    shape.pop_back();
  std::string header =
      str("{'descr': '", descr_of(dense.dtype()), "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad with spaces so the data starts on a 64-byte boundary, ending the header with a newline.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const char length[2] = {static_cast<char>(header.size() & 0xFF), static_cast<char>(header.size() >> 8)};
    out.write(length, 2);
    out << header;
    out.write(
        static_cast<const char*>(dense.raw_data()),
        static_cast<std::streamsize>(dense.numel() * static_cast<std::int64_t>(dtype_size(dense.dtype()))));
    TL_CHECK(out.good(), Error, path, ": write failed (disk full?)");
  }
  file.commit();
}

}  // namespace tl
