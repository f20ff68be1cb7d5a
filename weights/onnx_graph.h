// The protobuf side of the ONNX importer: loading a ModelProto with Debian's generated classes
// (libonnx_proto), bounded and checked, and decoding its constant tensors. Knows nothing of any architecture;
// onnx_reader.cpp maps a graph onto tl's model. Every error names the file and the tensor or node at fault.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tl::weights::onnx_graph {

// Files above this are refused before reading: a real classifier is tens of MB, and protobuf cannot parse 2
// GiB.
inline constexpr std::int64_t kMaxFileBytes = std::int64_t{1} << 30;

// Reads and parses `path`. Throws Error naming the file when it is missing, too large, not a ModelProto, or
// has no graph nodes, and when any initializer is unusable (see checked_numel; sparse initializers are
// refused too).
::onnx::ModelProto load_model(const std::string& path);

// A constant tensor decoded to double: exact for every type weights come in (float, float16, int8, uint8,
// int32; int64 below 2^53, which shapes are).
struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  std::int32_t data_type = 0;  // onnx::TensorProto::DataType
  std::int64_t numel() const { return static_cast<std::int64_t>(values.size()); }
};

// The element count the dims declare, after checking that they are non-negative, that their product does not
// overflow, and that the data (raw_data or the typed field) holds exactly that many elements. External data
// and types other than numbers are refused. `where` names the tensor in messages ("model.onnx: initializer
// 'w'").
std::int64_t checked_numel(const ::onnx::TensorProto& tensor, const std::string& where);
Constant decode(const ::onnx::TensorProto& tensor, const std::string& where);

// "uint8", "int8", "float32", ...
const char* data_type_name(std::int32_t data_type);

// scale * (q - zero_point), per tensor (scale has one element) or per slice along `axis` of q (scale has
// q.dims[axis] elements). zero_point may be null (0), one value for all, or one per scale.
std::vector<double> dequantize(const Constant& q, const Constant& scale, const Constant* zero_point,
                               std::int64_t axis, const std::string& where);

// The graph's constants by name: initializers (load_model checked them) and Constant nodes' values (checked
// when added), decoded on first use; and values the importer folds itself (an Identity or DequantizeLinear of
// one).
class ConstantTable {
 public:
  ConstantTable(const ::onnx::GraphProto& graph, std::string file);

  bool contains(const std::string& name) const { return protos_.count(name) || decoded_.count(name); }
  // Throws Error naming `where` when `name` is not a constant of the graph.
  const Constant& get(const std::string& name, const std::string& where);
  void add_proto(const std::string& name, const ::onnx::TensorProto& tensor, const std::string& where);
  void add(const std::string& name, Constant value) { decoded_[name] = std::move(value); }

 private:
  std::string file_;
  std::unordered_map<std::string, const ::onnx::TensorProto*> protos_;
  std::unordered_map<std::string, Constant> decoded_;  // node-based: references stay valid as it grows
};

// Attributes by name; the defaults stand in when a node omits one (as ONNX's operator specs define them).
const ::onnx::AttributeProto* find_attribute(const ::onnx::NodeProto& node, const std::string& name);
std::int64_t int_attribute(const ::onnx::NodeProto& node, const std::string& name, std::int64_t fallback);
double float_attribute(const ::onnx::NodeProto& node, const std::string& name, double fallback);
std::string string_attribute(const ::onnx::NodeProto& node, const std::string& name,
                             const std::string& fallback);
std::vector<std::int64_t> ints_attribute(const ::onnx::NodeProto& node,
                                         const std::string& name);  // empty: absent

// "model.onnx: node 57 (HardSwish 'HardSwish_57')"; a domain other than the default one is shown before the
// type.
std::string node_label(const std::string& file, int index, const ::onnx::NodeProto& node);

}  // namespace tl::weights::onnx_graph
