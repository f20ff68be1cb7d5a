// Recognising a checkpoint's format from its first bytes.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/input_file.h"
#include "weights/hdf5.h"
#include "weights/hdf5_readers.h"
#include "weights/importers.h"
#include "weights/isolated_read.h"

namespace tl::weights {
namespace {

std::string head_of(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && std::equal(suffix.rbegin(), suffix.rend(), s.rbegin());
}

// safetensors: 8-byte little-endian header length, then a JSON object.
bool looks_like_safetensors(const std::string& head, std::uintmax_t file_size) {
  if (head.size() < 10) return false;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(head[static_cast<std::size_t>(i)]);
  return n >= 2 && n + 8 <= file_size && head[8] == '{';
}

// ONNX ModelProto: starts with field 1 (ir_version, varint: byte 0x08) and carries a graph (field 7).
bool looks_like_onnx(const std::string& head) {
  return !head.empty() && head[0] == 0x08;
}

}  // namespace

SourceFormat detail::classify_hdf5(const h5::File& file) {
  if (file.has_attribute("/", "format")) return SourceFormat::TlWeights;
  if (file.has_attribute("/", "keras_version") || file.has_attribute("/", "layer_names") ||
      file.exists("model_weights"))
    return SourceFormat::KerasH5;
  return SourceFormat::Unknown;
}

const char* format_name(SourceFormat format) {
  switch (format) {
    case SourceFormat::TlWeights:
      return "tl weights (HDF5)";
    case SourceFormat::Pth:
      return "torchvision .pth";
    case SourceFormat::Safetensors:
      return "safetensors";
    case SourceFormat::KerasH5:
      return "Keras .h5";
    case SourceFormat::Onnx:
      return "ONNX";
    case SourceFormat::Unknown:
      return "unknown";
  }
  return "?";
}

SourceFormat detect_format(const std::string& path) {
  require_readable_file(path);
  const std::uintmax_t size = std::filesystem::file_size(path);
  TL_CHECK(size > 0, Error, path, ": the file is empty (0 bytes)");
  const std::string head = head_of(path, 16);
  if (head.size() >= 4 && head.compare(0, 4, "PK\x03\x04") == 0)
    return SourceFormat::Pth;  // torch >= 1.6: a zip
  // Legacy torch.save: a protocol-2 pickle (0x80 0x02) of the magic number (a LONG1 opcode follows).
  if (head.size() >= 3 && static_cast<unsigned char>(head[0]) == 0x80 && head[1] == 0x02 && head[2] == '\x8a')
    return SourceFormat::Pth;
  if (is_hdf5_file(path)) return isolated::hdf5_format(path);
  if (looks_like_safetensors(head, size)) return SourceFormat::Safetensors;
  if (ends_with(path, ".onnx") || looks_like_onnx(head)) return SourceFormat::Onnx;
  return SourceFormat::Unknown;
}

}  // namespace tl::weights
