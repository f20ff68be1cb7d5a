#include "weights/onnx_graph.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/error.h"

namespace tl::weights::onnx_graph {
namespace {

using ::onnx::TensorProto;

// raw_data is little-endian by the ONNX spec; decoding copies it as is.
static_assert(std::endian::native == std::endian::little, "onnx_graph.cpp assumes a little-endian host");

// Bytes per element in raw_data; 0 for the types tl does not decode (strings, complex numbers).
std::int64_t element_bytes(std::int32_t type) {
  switch (type) {
    case TensorProto::UINT8:
    case TensorProto::INT8:
    case TensorProto::BOOL:
      return 1;
    case TensorProto::UINT16:
    case TensorProto::INT16:
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
      return 2;
    case TensorProto::FLOAT:
    case TensorProto::INT32:
    case TensorProto::UINT32:
      return 4;
    case TensorProto::DOUBLE:
    case TensorProto::INT64:
    case TensorProto::UINT64:
      return 8;
    default:
      return 0;
  }
}

// Elements in the typed field the spec assigns to the type (small integer types and float16 live in
// int32_data).
std::int64_t typed_count(const TensorProto& t) {
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      return t.float_data_size();
    case TensorProto::DOUBLE:
      return t.double_data_size();
    case TensorProto::INT64:
      return t.int64_data_size();
    case TensorProto::UINT32:
    case TensorProto::UINT64:
      return t.uint64_data_size();
    default:
      return t.int32_data_size();
  }
}

double half_to_double(std::uint32_t bits) {
  const int sign = static_cast<int>((bits >> 15) & 1), exponent = static_cast<int>((bits >> 10) & 0x1f);
  const int mantissa = static_cast<int>(bits & 0x3ff);
  double v;
  if (exponent == 0) {
    v = std::ldexp(mantissa, -24);  // subnormal
  } else if (exponent == 31) {
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(mantissa + 1024, exponent - 25);
  }
  return sign ? -v : v;
}

double bfloat16_to_double(std::uint32_t bits) {
  return static_cast<double>(std::bit_cast<float>(bits << 16));
}

template <typename T>
T raw_element(const std::string& raw, std::int64_t i) {
  T v;
  std::memcpy(&v, raw.data() + i * static_cast<std::int64_t>(sizeof(T)), sizeof(T));
  return v;
}

// Element i of the raw bytes, converted to double.
double raw_value(std::int32_t type, const std::string& raw, std::int64_t i) {
  switch (type) {
    case TensorProto::UINT8:
      return raw_element<std::uint8_t>(raw, i);
    case TensorProto::INT8:
      return raw_element<std::int8_t>(raw, i);
    case TensorProto::BOOL:
      return raw_element<std::uint8_t>(raw, i) != 0;
    case TensorProto::UINT16:
      return raw_element<std::uint16_t>(raw, i);
    case TensorProto::INT16:
      return raw_element<std::int16_t>(raw, i);
    case TensorProto::FLOAT16:
      return half_to_double(raw_element<std::uint16_t>(raw, i));
    case TensorProto::BFLOAT16:
      return bfloat16_to_double(raw_element<std::uint16_t>(raw, i));
    case TensorProto::FLOAT:
      return raw_element<float>(raw, i);
    case TensorProto::INT32:
      return raw_element<std::int32_t>(raw, i);
    case TensorProto::UINT32:
      return raw_element<std::uint32_t>(raw, i);
    case TensorProto::DOUBLE:
      return raw_element<double>(raw, i);
    case TensorProto::INT64:
      return static_cast<double>(raw_element<std::int64_t>(raw, i));
    case TensorProto::UINT64:
      return static_cast<double>(raw_element<std::uint64_t>(raw, i));
    default:
      return 0.0;
  }
}

// Element i of the typed field, converted to double.
double typed_value(const TensorProto& t, std::int64_t i) {
  const int k = static_cast<int>(i);
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      return t.float_data(k);
    case TensorProto::DOUBLE:
      return t.double_data(k);
    case TensorProto::INT64:
      return static_cast<double>(t.int64_data(k));
    case TensorProto::UINT32:
    case TensorProto::UINT64:
      return static_cast<double>(t.uint64_data(k));
    case TensorProto::FLOAT16:
      return half_to_double(static_cast<std::uint32_t>(t.int32_data(k)) & 0xffff);
    case TensorProto::BFLOAT16:
      return bfloat16_to_double(static_cast<std::uint32_t>(t.int32_data(k)) & 0xffff);
    case TensorProto::BOOL:
      return t.int32_data(k) != 0;
    default:
      return t.int32_data(k);  // the integer types up to 32 bits
  }
}

}  // namespace

const char* data_type_name(std::int32_t data_type) {
  switch (data_type) {
    case TensorProto::FLOAT:
      return "float32";
    case TensorProto::UINT8:
      return "uint8";
    case TensorProto::INT8:
      return "int8";
    case TensorProto::UINT16:
      return "uint16";
    case TensorProto::INT16:
      return "int16";
    case TensorProto::INT32:
      return "int32";
    case TensorProto::INT64:
      return "int64";
    case TensorProto::STRING:
      return "string";
    case TensorProto::BOOL:
      return "bool";
    case TensorProto::FLOAT16:
      return "float16";
    case TensorProto::DOUBLE:
      return "float64";
    case TensorProto::UINT32:
      return "uint32";
    case TensorProto::UINT64:
      return "uint64";
    case TensorProto::BFLOAT16:
      return "bfloat16";
    default:
      return "an unknown type";
  }
}

::onnx::ModelProto load_model(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  TL_CHECK(!ec, Error, path, ": cannot read the file (", ec.message(), ")");
  TL_CHECK(static_cast<std::int64_t>(size) <= kMaxFileBytes, Error, path, ": ", size,
           " bytes is more than tl reads from an ONNX file (", kMaxFileBytes,
           " bytes); an ImageNet classifier is far smaller");
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  TL_CHECK(in && in.read(bytes.data(), static_cast<std::streamsize>(size)), Error, path,
           ": cannot read the file");

  ::onnx::ModelProto model;
  TL_CHECK(model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), Error, path,
           ": not an ONNX model (the protobuf ModelProto does not parse: the file is truncated or of another "
           "kind)");
  TL_CHECK(model.has_graph() && model.graph().node_size() > 0, Error, path,
           ": not an ONNX model with a graph (no nodes found; is it another kind of file?)");
  TL_CHECK(model.graph().sparse_initializer_size() == 0, Error, path,
           ": has sparse initializers, which tl does not read");
  for (const TensorProto& t : model.graph().initializer())  // every one, used or not: a bad file fails early
    checked_numel(t, str(path, ": initializer '", t.name(), "'"));
  return model;
}

std::int64_t checked_numel(const TensorProto& t, const std::string& where) {
  TL_CHECK(t.data_location() != TensorProto::EXTERNAL && t.external_data_size() == 0, Error, where,
           " keeps its data in an external file, which tl does not read (save the model in one file: "
           "onnx.save with "
           "save_as_external_data=False)");
  TL_CHECK(!t.has_segment(), Error, where, " is a segment of a larger tensor, which tl does not read");
  const std::int64_t bytes = element_bytes(t.data_type());
  TL_CHECK(bytes > 0, Error, where, " holds ", data_type_name(t.data_type()),
           " values; tl reads only numeric tensors");
  // Bounded far below int64 overflow: no tensor of a file under kMaxFileBytes can hold more elements than
  // this.
  constexpr std::int64_t kMaxElements = kMaxFileBytes * 8;
  std::int64_t numel = 1;
  std::string dims;
  for (const std::int64_t d : t.dims()) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  for (const std::int64_t d : t.dims()) {
    TL_CHECK(d >= 0, Error, where, ": dims [", dims, "] has a negative size");
    TL_CHECK(d == 0 || numel <= kMaxElements / d, Error, where, ": dims [", dims,
             "] declare more elements than any ONNX file can hold");
    numel *= d;
  }
  if (t.has_raw_data()) {
    TL_CHECK(typed_count(t) == 0, Error, where, " has both raw_data and typed data");
    const auto raw = static_cast<std::int64_t>(t.raw_data().size());
    TL_CHECK(raw == numel * bytes, Error, where, ": dims [", dims, "] declare ", numel, " ",
             data_type_name(t.data_type()), " values (", numel * bytes, " bytes) but raw_data holds ", raw,
             " bytes");
  } else {
    TL_CHECK(typed_count(t) == numel, Error, where, ": dims [", dims, "] declare ", numel,
             " values but the tensor holds ", typed_count(t));
  }
  return numel;
}

Constant decode(const TensorProto& t, const std::string& where) {
  const std::int64_t numel = checked_numel(t, where);
  Constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  c.data_type = t.data_type();
  c.values.resize(static_cast<std::size_t>(numel));
  for (std::int64_t i = 0; i < numel; ++i)
    c.values[static_cast<std::size_t>(i)] =
        t.has_raw_data() ? raw_value(t.data_type(), t.raw_data(), i) : typed_value(t, i);
  return c;
}

std::vector<double> dequantize(const Constant& q, const Constant& scale, const Constant* zero_point,
                               std::int64_t axis, const std::string& where) {
  const std::int64_t channels = scale.numel();
  TL_CHECK(channels >= 1, Error, where, ": the quantization scale is empty");
  const std::int64_t zeros = zero_point ? zero_point->numel() : 0;
  TL_CHECK(zeros <= 1 || zeros == channels, Error, where, ": ", channels, " quantization scales but ", zeros,
           " zero points");
  for (const double s : scale.values)
    TL_CHECK(std::isfinite(s), Error, where, ": a quantization scale is not finite (", s, ")");
  std::int64_t inner = 1;
  if (channels > 1) {
    const auto ndim = static_cast<std::int64_t>(q.dims.size());
    if (axis < 0) axis += ndim;
    TL_CHECK(axis >= 0 && axis < ndim && q.dims[static_cast<std::size_t>(axis)] == channels, Error, where,
             ": ", channels, " per-channel scales do not match axis ", axis, " of a tensor with ", ndim,
             " dims");
    for (auto d = static_cast<std::size_t>(axis) + 1; d < q.dims.size(); ++d) inner *= q.dims[d];
  }
  std::vector<double> out(q.values.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto c =
        channels == 1 ? 0 : static_cast<std::size_t>((static_cast<std::int64_t>(i) / inner) % channels);
    const double zero = zeros == 0 ? 0.0 : zero_point->values[zeros == 1 ? 0 : c];
    out[i] = scale.values[c] * (q.values[i] - zero);
  }
  return out;
}

// ---- constants --------------------------------------------------------------------------------------------

ConstantTable::ConstantTable(const ::onnx::GraphProto& graph, std::string file) : file_(std::move(file)) {
  for (const TensorProto& t : graph.initializer()) protos_[t.name()] = &t;  // load_model checked them
}

const Constant& ConstantTable::get(const std::string& name, const std::string& where) {
  if (auto it = decoded_.find(name); it != decoded_.end()) return it->second;
  const auto proto = protos_.find(name);
  TL_CHECK(proto != protos_.end(), Error, where, ": '", name,
           "' is not a constant of the graph (tl reads weights from initializers and Constant nodes)");
  return decoded_.emplace(name, decode(*proto->second, str(file_, ": tensor '", name, "'"))).first->second;
}

void ConstantTable::add_proto(const std::string& name, const TensorProto& tensor, const std::string& where) {
  checked_numel(tensor, where);
  protos_[name] = &tensor;
  decoded_.erase(name);
}

// ---- attributes and labels --------------------------------------------------------------------------------

const ::onnx::AttributeProto* find_attribute(const ::onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

std::int64_t int_attribute(const ::onnx::NodeProto& node, const std::string& name, std::int64_t fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->i() : fallback;
}

double float_attribute(const ::onnx::NodeProto& node, const std::string& name, double fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->f() : fallback;
}

std::string string_attribute(const ::onnx::NodeProto& node, const std::string& name,
                             const std::string& fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->s() : fallback;
}

std::vector<std::int64_t> ints_attribute(const ::onnx::NodeProto& node, const std::string& name) {
  const auto* a = find_attribute(node, name);
  return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : std::vector<std::int64_t>{};
}

std::string node_label(const std::string& file, int index, const ::onnx::NodeProto& node) {
  const std::string& domain = node.domain();
  const std::string type = (domain.empty() || domain == "ai.onnx" ? "" : domain + ":") + node.op_type();
  return str(file, ": node ", index, " (", type, node.name().empty() ? "" : " '" + node.name() + "'", ")");
}

}  // namespace tl::weights::onnx_graph
