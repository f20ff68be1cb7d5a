// read_onnx: a torchvision MobileNetV2 exported to ONNX, float or quantized, onto tl's mobilenet_v2 state
// dict.
//
// Exporters rename initializers freely ("onnx::Conv_538", "545_quantized"), so nothing here trusts names: the
// graph is walked in node order and every value is tracked by what it is in MobileNetV2 terms (the output of
// the n-th convolution, after its BatchNorm, after its ReLU6, a residual sum, the pooled features, the
// logits). Each convolution must take the previous stage's output and match, in shape and attributes, the
// n-th Conv2d of tl's own model, which is read from models::create_model so the two cannot drift apart.
// Anything else is refused with the node that broke the pattern.
//
// Folded BatchNorm (the usual eval-mode export) leaves a conv bias and no BatchNormalization node; tl's convs
// have no bias, so the bias moves into an identity BatchNorm (gamma 1, beta = bias, mean 0, var 1 - eps) that
// evaluates to exactly "+ bias" and still fine-tunes like any BatchNorm. Quantized weights are dequantized
// (QLinearConv, QLinearMatMul, the com.microsoft QLinearAdd bias, and DequantizeLinear of constants in QDQ
// graphs); activations' quantization only contributes the input scale of the int32 conv biases.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include "engine/error.h"
#include "engine/layers.h"
#include "models/registry.h"
#include "weights/importers.h"
#include "weights/onnx_graph.h"

namespace tl::weights {
namespace {

using ::onnx::NodeProto;
using ::onnx::TensorProto;
using onnx_graph::Constant;
using onnx_graph::ConstantTable;

constexpr const char* kArchitecture = "mobilenet_v2";

template <typename T>
std::string list_str(const std::vector<T>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + str(values[i]);
  return out + "]";
}

// ---- what tl's model expects ------------------------------------------------------------------------------

struct ConvTarget {
  std::string conv, norm;  // module paths: "features.1.conv.0.0", "features.1.conv.0.1"
  Shape weight;
  Conv2dOptions options;
  double eps = 1e-5;
  bool activation = false;  // a ReLU6 follows the BatchNorm
  int residual_from = -1;   // this conv ends an inverted residual block whose first conv has this index
};

struct Plan {
  std::vector<ConvTarget> convs;
  std::int64_t features = 0;  // what the head reads
  std::string head;           // "classifier.1"
  StateDict backbone;         // tl's entries without the head: names, order and shapes to produce
};

Plan make_plan() {
  const auto model = models::create_model(kArchitecture, 0);  // 0 classes: the backbone alone
  Plan plan;
  plan.features = model->num_features();
  plan.head = model->head_path();
  plan.backbone = model->state_dict();
  struct Block {
    std::string path;
    std::size_t first;
  };
  std::vector<Block> blocks;
  for (const auto& [path, module] : model->named_modules()) {
    if (const auto* conv = dynamic_cast<const Conv2d*>(module)) {
      plan.convs.push_back({path, "", conv->weight().shape(), conv->options()});
    } else if (const auto* bn = dynamic_cast<const BatchNorm2d*>(module)) {
      TL_CHECK(!plan.convs.empty() && plan.convs.back().norm.empty(), Error, "read_onnx: tl's ",
               kArchitecture, " has BatchNorm ", path, " without a convolution before it");
      plan.convs.back().norm = path;
      plan.convs.back().eps = bn->eps();
    } else if (module->type_name() == "ReLU6") {
      TL_CHECK(!plan.convs.empty(), Error, "read_onnx: tl's ", kArchitecture, " has ", path,
               " before any conv");
      plan.convs.back().activation = true;
    } else if (module->type_name() == "InvertedResidual") {
      blocks.push_back({path, plan.convs.size()});
    }
  }
  for (const ConvTarget& t : plan.convs)
    TL_CHECK(!t.norm.empty(), Error, "read_onnx: tl's ", kArchitecture, " has conv ", t.conv,
             " without BatchNorm");
  // tl's InvertedResidual adds its input when its stride is 1 and it keeps the channel count (torchvision's
  // rule); the block does not expose the flag, so it is derived the same way from its convs.
  for (const Block& b : blocks) {
    std::size_t last = b.first;
    while (last + 1 < plan.convs.size() && plan.convs[last + 1].conv.rfind(b.path + ".", 0) == 0) ++last;
    bool stride_one = true;
    for (std::size_t i = b.first; i <= last; ++i)
      stride_one = stride_one && plan.convs[i].options.stride_h == 1 && plan.convs[i].options.stride_w == 1;
    const ConvTarget& first = plan.convs[b.first];
    if (stride_one && first.weight[1] * first.options.groups == plan.convs[last].weight[0])
      plan.convs[last].residual_from = static_cast<int>(b.first);
  }
  return plan;
}

// ---- the walk ---------------------------------------------------------------------------------------------

// What a value of the graph is, in MobileNetV2 terms. Conv .. Residual carry the index of their convolution.
enum class Stage { Input, Conv, Norm, Act, Residual, Pooled, Product, Logits, Other };

struct Value {
  Stage stage = Stage::Other;
  int conv = -1;
};

struct FoundNorm {
  std::vector<double> gamma, beta, mean, var;
  double eps = 1e-5;
};

struct FoundConv {
  std::vector<double> weight, bias;  // bias empty: none
  std::optional<FoundNorm> norm;
};

struct FoundHead {
  int node = -1;
  std::int64_t classes = 0;
  std::vector<double> weight, bias;  // [classes, features] row-major, [classes] (empty: none)
};

class Walker {
 public:
  Walker(std::string file, const ::onnx::ModelProto& model, const Plan& plan)
      : file_(std::move(file)), graph_(model.graph()), plan_(plan), constants_(graph_, file_) {}

  void walk();

  std::vector<FoundConv> convs;
  FoundHead head;
  std::set<std::string> quantized;  // the integer types quantized weights came in
  std::int64_t input_size = 0;      // from the graph input, when fixed and square

 private:
  const NodeProto& node(int k) const { return graph_.node(k); }
  std::string label(int k) const { return onnx_graph::node_label(file_, k, node(k)); }
  int conv_count() const { return static_cast<int>(plan_.convs.size()); }

  Stage final_stage(int i) const {
    const ConvTarget& t = plan_.convs[static_cast<std::size_t>(i)];
    return t.residual_from >= 0 ? Stage::Residual : t.activation ? Stage::Act : Stage::Norm;
  }
  // Whether v is what conv i + 1 reads: the graph input for i = -1, else conv i's output after everything
  // MobileNetV2 applies to it. A conv's raw output counts as normalised: its BatchNorm was folded into it.
  bool is_ready(const Value& v, int i) const {
    if (i < 0) return v.stage == Stage::Input;
    if (v.conv != i) return false;
    return (v.stage == Stage::Conv ? Stage::Norm : v.stage) == final_stage(i);
  }
  std::string describe(const Value& v) const;
  std::string describe_ready(int i) const {
    return i < 0 ? describe({Stage::Input, -1}) : describe({final_stage(i), i});
  }

  bool is_constant(const std::string& name) const {
    return !name.empty() && !values_.count(name) && constants_.contains(name);
  }
  const Constant& constant(int k, const std::string& name, const char* what) {
    TL_CHECK(!name.empty(), Error, label(k), ": its ", what, " input is missing");
    return constants_.get(name, str(label(k), " ", what));
  }
  double scalar(int k, const std::string& name, const char* what) {
    const Constant& c = constant(k, name, what);
    TL_CHECK(c.numel() == 1, Error, label(k), ": its ", what, " '", name, "' has ", c.numel(),
             " elements where one is expected");
    return c.values[0];
  }
  const Value& value(int k, int input);
  void set(int k, int output, Value v) {
    if (output < node(k).output_size() && !node(k).output(output).empty())
      values_[node(k).output(output)] = v;
  }
  void set_all(int k, Value v) {
    for (int o = 0; o < node(k).output_size(); ++o) set(k, o, v);
  }

  void graph_input();
  void constant_node(int k);
  bool fold_constant(int k);
  void conv(int k, std::vector<std::int64_t> dims, std::vector<double> weight, std::vector<double> bias,
            bool fused_relu);
  void check_conv_attributes(int k, const ConvTarget& t);
  void float_conv(int k);
  void quantized_conv(int k);
  void batch_norm(int k);
  void clip(int k);
  void add(int k, bool quantized);
  void pool(int k);
  void reshape(int k);
  void set_head(int k, std::int64_t in, std::int64_t out, std::vector<double> weight,
                std::vector<double> bias);
  void gemm(int k);
  void matmul(int k, bool quantized);
  void pass_through(int k);
  void graph_output();

  std::string file_;
  const ::onnx::GraphProto& graph_;
  const Plan& plan_;
  ConstantTable constants_;
  std::unordered_map<std::string, Value> values_;
};

std::string Walker::describe(const Value& v) const {
  const std::string conv = v.conv >= 0 ? plan_.convs[static_cast<std::size_t>(v.conv)].conv : "";
  switch (v.stage) {
    case Stage::Input:
      return "the graph's input image";
    case Stage::Conv:
      return "the output of " + conv;
    case Stage::Norm:
      return "the output of " + conv + " and its BatchNorm";
    case Stage::Act:
      return "the output of " + conv + " + BatchNorm + ReLU6";
    case Stage::Residual:
      return "the residual sum after " + conv;
    case Stage::Pooled:
      return "the pooled features";
    case Stage::Product:
      return "the classifier's product before its bias";
    case Stage::Logits:
      return "the logits";
    case Stage::Other:
      return "a shape, mask or other value that is not an image";
  }
  return "?";
}

const Value& Walker::value(int k, int input) {
  const NodeProto& n = node(k);
  TL_CHECK(input < n.input_size() && !n.input(input).empty(), Error, label(k), ": input ", input,
           " is missing");
  const std::string& name = n.input(input);
  const auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  TL_CHECK(!constants_.contains(name), Error, label(k), ": its input '", name,
           "' is a constant where torchvision's MobileNetV2 has an activation");
  throw Error(
      str(label(k), ": its input '", name,
          "' is produced by no earlier node (the graph is not in topological order, or not complete)"));
}

void Walker::graph_input() {
  std::vector<const ::onnx::ValueInfoProto*> inputs;
  for (const auto& in : graph_.input())
    if (!constants_.contains(in.name())) inputs.push_back(&in);  // IR < 4 lists initializers as inputs too
  TL_CHECK(inputs.size() == 1, Error, file_, ": the graph has ", inputs.size(),
           " inputs besides its weights; a MobileNetV2 has one, the image");
  values_[inputs[0]->name()] = {Stage::Input, -1};
  if (!inputs[0]->type().has_tensor_type() || !inputs[0]->type().tensor_type().has_shape()) return;
  const auto& shape = inputs[0]->type().tensor_type().shape();
  if (shape.dim_size() != 4) return;
  const auto fixed = [&](int d) { return shape.dim(d).has_dim_value() ? shape.dim(d).dim_value() : 0; };
  TL_CHECK(fixed(1) == 0 || fixed(1) == 3, Error, file_, ": the graph input '", inputs[0]->name(), "' has ",
           fixed(1), " channels; torchvision's MobileNetV2 reads RGB images (3)");
  if (fixed(2) > 0 && fixed(2) == fixed(3)) input_size = fixed(2);
}

void Walker::constant_node(int k) {
  const NodeProto& n = node(k);
  TL_CHECK(n.output_size() == 1, Error, label(k), ": a Constant node has ", n.output_size(), " outputs");
  TL_CHECK(n.attribute_size() == 1, Error, label(k), ": a Constant node needs exactly one value attribute");
  const ::onnx::AttributeProto& a = n.attribute(0);
  Constant c;
  c.data_type = TensorProto::FLOAT;
  if (a.name() == "value") {
    constants_.add_proto(n.output(0), a.t(), str(label(k), " value"));
    return;
  } else if (a.name() == "value_float") {
    c.values = {a.f()};
  } else if (a.name() == "value_floats") {
    c.values.assign(a.floats().begin(), a.floats().end());
    c.dims = {c.numel()};
  } else if (a.name() == "value_int" || a.name() == "value_ints") {
    c.data_type = TensorProto::INT64;
    if (a.name() == "value_int") {
      c.values = {static_cast<double>(a.i())};
    } else {
      for (const std::int64_t v : a.ints()) c.values.push_back(static_cast<double>(v));
      c.dims = {c.numel()};
    }
  } else {
    throw Error(str(label(k), ": a Constant with attribute '", a.name(), "', which tl does not read"));
  }
  constants_.add(n.output(0), std::move(c));
}

// Identity and DequantizeLinear of constants yield constants (deduplicated biases in torch exports; weights
// of QDQ graphs), evaluated here so the convs that read them find plain weights. Returns false for any other
// node.
bool Walker::fold_constant(int k) {
  const NodeProto& n = node(k);
  if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
  if (n.op_type() != "Identity" && n.op_type() != "DequantizeLinear") return false;
  for (const std::string& in : n.input())
    if (!in.empty() && !is_constant(in)) return false;
  TL_CHECK(n.output_size() == 1, Error, label(k), ": ", n.output_size(), " outputs where one is expected");
  if (n.op_type() == "Identity") {
    constants_.add(n.output(0), constant(k, n.input(0), "input"));
    return true;
  }
  const Constant& q = constant(k, n.input(0), "quantized input");
  const Constant& scale = constant(k, n.input_size() > 1 ? n.input(1) : "", "scale");
  const Constant* zero =
      n.input_size() > 2 && !n.input(2).empty() ? &constant(k, n.input(2), "zero point") : nullptr;
  Constant out;
  out.dims = q.dims;
  out.data_type = TensorProto::FLOAT;
  out.values = onnx_graph::dequantize(q, scale, zero, onnx_graph::int_attribute(n, "axis", 1), label(k));
  if (q.data_type == TensorProto::UINT8 || q.data_type == TensorProto::INT8)
    quantized.insert(onnx_graph::data_type_name(q.data_type));
  constants_.add(n.output(0), std::move(out));
  return true;
}

void Walker::check_conv_attributes(int k, const ConvTarget& t) {
  const NodeProto& n = node(k);
  const Conv2dOptions& o = t.options;
  const auto expect = [&](const char* name, std::vector<std::int64_t> found,
                          const std::vector<std::int64_t>& want) {
    TL_CHECK(found == want, Error, label(k), ": ", name, " ", list_str(found), " where tl's ", kArchitecture,
             " has ", list_str(want), " for ", t.conv, ": the graph is not a torchvision MobileNetV2");
  };
  const auto or_default = [](std::vector<std::int64_t> v, std::vector<std::int64_t> fallback) {
    return v.empty() ? fallback : v;
  };
  const std::string auto_pad = onnx_graph::string_attribute(n, "auto_pad", "NOTSET");
  TL_CHECK(auto_pad == "NOTSET", Error, label(k), ": auto_pad ", auto_pad,
           "; tl reads convolutions with explicit pads (as torch.onnx.export writes them)");
  expect("kernel_shape",
         or_default(onnx_graph::ints_attribute(n, "kernel_shape"), {t.weight[2], t.weight[3]}),
         {t.weight[2], t.weight[3]});
  expect("strides", or_default(onnx_graph::ints_attribute(n, "strides"), {1, 1}), {o.stride_h, o.stride_w});
  expect("dilations", or_default(onnx_graph::ints_attribute(n, "dilations"), {1, 1}),
         {o.dilation_h, o.dilation_w});
  // ONNX orders pads as all begins, then all ends: [top, left, bottom, right].
  expect("pads", or_default(onnx_graph::ints_attribute(n, "pads"), {0, 0, 0, 0}),
         {o.padding.top, o.padding.left, o.padding.bottom, o.padding.right});
  expect("group", {onnx_graph::int_attribute(n, "group", 1)}, {o.groups});
}

// fused_relu: the output's quantized range starts at 0, which is how ONNX Runtime's quantizer fuses a ReLU6
// (Clip 0..6) into the conv before it; it leaves no Clip node. It stands for the ReLU6 only where tl has one.
void Walker::conv(int k, std::vector<std::int64_t> dims, std::vector<double> weight, std::vector<double> bias,
                  bool fused_relu) {
  const int i = static_cast<int>(convs.size());
  TL_CHECK(i < conv_count(), Error, label(k), ": a convolution after the last of the ", conv_count(),
           " in torchvision's MobileNetV2");
  const ConvTarget& t = plan_.convs[static_cast<std::size_t>(i)];
  const std::string step = str(t.conv, " (convolution ", i + 1, " of ", conv_count(), ")");
  TL_CHECK(dims == t.weight, Error, label(k), ": weight ", list_str(dims), " does not match tl's ",
           kArchitecture, " ", step, ", which is ", shape_str(t.weight),
           ": the graph is not a torchvision MobileNetV2");
  const Value& in = value(k, 0);
  const bool missing_relu = i > 0 && in.conv == i - 1 &&
                            plan_.convs[static_cast<std::size_t>(i - 1)].activation &&
                            (in.stage == Stage::Conv || in.stage == Stage::Norm);
  TL_CHECK(is_ready(in, i - 1), Error, label(k), ": its input '", node(k).input(0), "' is ", describe(in),
           ", but torchvision's MobileNetV2 feeds ", step, " with ", describe_ready(i - 1),
           missing_relu
               ? " (a quantized conv's fused ReLU6 shows as an output zero point at the type's minimum)"
               : "");
  check_conv_attributes(k, t);
  TL_CHECK(bias.empty() || static_cast<std::int64_t>(bias.size()) == t.weight[0], Error, label(k),
           ": a bias of ", bias.size(), " values for ", t.weight[0], " output channels");
  convs.push_back({std::move(weight), std::move(bias), std::nullopt});
  set(k, 0, {fused_relu && t.activation ? Stage::Act : Stage::Conv, i});
}

void Walker::float_conv(int k) {
  const NodeProto& n = node(k);
  const Constant& w = constant(k, n.input_size() > 1 ? n.input(1) : "", "weight");
  TL_CHECK(w.data_type == TensorProto::FLOAT || w.data_type == TensorProto::DOUBLE ||
               w.data_type == TensorProto::FLOAT16 || w.data_type == TensorProto::BFLOAT16,
           Error, label(k), ": its weight is ", onnx_graph::data_type_name(w.data_type),
           "; a quantized weight needs a QLinearConv or a DequantizeLinear before the Conv");
  std::vector<double> bias;
  if (n.input_size() > 2 && !n.input(2).empty()) bias = constant(k, n.input(2), "bias").values;
  conv(k, w.dims, w.values, std::move(bias), false);
}

// QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B): w is dequantized
// per tensor or per output channel; the int32 bias has scale x_scale * w_scale.
void Walker::quantized_conv(int k) {
  const NodeProto& n = node(k);
  TL_CHECK(n.input_size() >= 8, Error, label(k), ": ", n.input_size(),
           " inputs where QLinearConv has 8 or 9");
  const double x_scale = scalar(k, n.input(1), "x_scale");
  const Constant& w = constant(k, n.input(3), "weight");
  TL_CHECK(w.data_type == TensorProto::UINT8 || w.data_type == TensorProto::INT8, Error, label(k),
           ": its weight is ", onnx_graph::data_type_name(w.data_type),
           "; QLinearConv weights are uint8 or int8");
  const Constant& w_scale = constant(k, n.input(4), "w_scale");
  const Constant& w_zero = constant(k, n.input(5), "w_zero_point");
  std::vector<double> weight = onnx_graph::dequantize(w, w_scale, &w_zero, 0, label(k) + " weight");
  std::vector<double> bias;
  if (n.input_size() > 8 && !n.input(8).empty()) {
    const Constant& b = constant(k, n.input(8), "bias");
    TL_CHECK(b.data_type == TensorProto::INT32, Error, label(k), ": its bias is ",
             onnx_graph::data_type_name(b.data_type), "; QLinearConv biases are int32");
    TL_CHECK(w_scale.numel() == 1 || w_scale.numel() == b.numel(), Error, label(k), ": ", w_scale.numel(),
             " weight scales for a bias of ", b.numel());
    bias.resize(b.values.size());
    for (std::size_t c = 0; c < bias.size(); ++c)
      bias[c] = b.values[c] * x_scale * w_scale.values[w_scale.numel() == 1 ? 0 : c];
  }
  quantized.insert(onnx_graph::data_type_name(w.data_type));
  const Constant& y_zero = constant(k, n.input(7), "y_zero_point");
  TL_CHECK(y_zero.numel() == 1, Error, label(k), ": ", y_zero.numel(),
           " output zero points where one is expected");
  const double lowest = y_zero.data_type == TensorProto::INT8 ? -128.0 : 0.0;
  conv(k, w.dims, std::move(weight), std::move(bias), y_zero.values[0] == lowest);
}

void Walker::batch_norm(int k) {
  const NodeProto& n = node(k);
  const Value in = value(k, 0);
  TL_CHECK(in.stage == Stage::Conv && !convs[static_cast<std::size_t>(in.conv)].norm, Error, label(k),
           ": normalises ", describe(in),
           "; in torchvision's MobileNetV2 a BatchNorm only follows a convolution");
  const ConvTarget& t = plan_.convs[static_cast<std::size_t>(in.conv)];
  FoundNorm norm;
  std::vector<double>* fields[] = {&norm.gamma, &norm.beta, &norm.mean, &norm.var};
  const char* names[] = {"scale", "B", "mean", "var"};
  for (int p = 0; p < 4; ++p) {
    const Constant& c = constant(k, n.input_size() > p + 1 ? n.input(p + 1) : "", names[p]);
    TL_CHECK(c.numel() == t.weight[0], Error, label(k), ": its ", names[p], " has ", c.numel(),
             " values for the ", t.weight[0], " channels of ", t.conv);
    *fields[p] = c.values;
  }
  norm.eps = onnx_graph::float_attribute(n, "epsilon", 1e-5);
  convs[static_cast<std::size_t>(in.conv)].norm = std::move(norm);
  set_all(k, {Stage::Other, -1});  // a training-mode export also outputs the updated statistics
  set(k, 0, {Stage::Norm, in.conv});
}

void Walker::clip(int k) {
  const NodeProto& n = node(k);
  const Value in = value(k, 0);
  // An Act input is a quantized conv with its ReLU6 already fused in; clipping it again changes nothing.
  TL_CHECK(in.stage == Stage::Conv || in.stage == Stage::Norm || in.stage == Stage::Act, Error, label(k),
           ": clips ", describe(in),
           "; torchvision's MobileNetV2 has a ReLU6 only after a convolution and its BatchNorm");
  const ConvTarget& t = plan_.convs[static_cast<std::size_t>(in.conv)];
  TL_CHECK(t.activation, Error, label(k), ": an activation after ", t.conv, ", where tl's ", kArchitecture,
           " has none (the projection of an inverted residual block is linear)");
  // Opset 11 moved min and max from attributes to optional inputs.
  double lo = onnx_graph::float_attribute(n, "min", -std::numeric_limits<double>::infinity());
  double hi = onnx_graph::float_attribute(n, "max", std::numeric_limits<double>::infinity());
  if (n.input_size() > 1 && !n.input(1).empty()) lo = scalar(k, n.input(1), "min");
  if (n.input_size() > 2 && !n.input(2).empty()) hi = scalar(k, n.input(2), "max");
  TL_CHECK(std::abs(lo) < 1e-6 && std::abs(hi - 6.0) < 1e-6, Error, label(k), ": clips to [", lo, ", ", hi,
           "]; torchvision's MobileNetV2 uses ReLU6, Clip(0, 6)");
  set(k, 0, {Stage::Act, in.conv});
}

// A residual sum (block input + projection), or the classifier's bias after a MatMul. QLinearAdd
// (com.microsoft) reads A, A_scale, A_zero_point, B, B_scale, B_zero_point, then C's scale and zero point.
void Walker::add(int k, bool quantized_add) {
  const NodeProto& n = node(k);
  const int a = 0, b = quantized_add ? 3 : 1;
  TL_CHECK(n.input_size() > b, Error, label(k), ": ", n.input_size(), " inputs are too few");
  if (is_constant(n.input(a)) || is_constant(n.input(b))) {
    const int c = is_constant(n.input(a)) ? a : b, x = c == a ? b : a;
    const Value in = value(k, x);
    TL_CHECK(in.stage == Stage::Product && head.bias.empty(), Error, label(k), ": adds a constant to ",
             describe(in), "; torchvision's MobileNetV2 adds a constant only as the classifier's bias");
    const Constant& bias = constant(k, n.input(c), "bias");
    std::vector<double> values = bias.values;
    if (quantized_add) {
      const Constant& scale = constant(k, n.input(c + 1), "bias scale");
      const Constant* zero =
          n.input_size() > c + 2 ? &constant(k, n.input(c + 2), "bias zero point") : nullptr;
      values = onnx_graph::dequantize(bias, scale, zero, 0, label(k) + " bias");
    }
    TL_CHECK(static_cast<std::int64_t>(values.size()) == head.classes, Error, label(k), ": a bias of ",
             values.size(), " values for a classifier of ", head.classes, " outputs");
    head.bias = std::move(values);
    set(k, 0, {Stage::Logits, -1});
    return;
  }
  const Value va = value(k, a), vb = value(k, b);
  for (const auto& [block, input] : {std::pair{va, vb}, std::pair{vb, va}}) {
    if ((block.stage != Stage::Conv && block.stage != Stage::Norm) || block.conv < 0) continue;
    const int from = plan_.convs[static_cast<std::size_t>(block.conv)].residual_from;
    if (from >= 0 && is_ready(input, from - 1)) {
      set(k, 0, {Stage::Residual, block.conv});
      return;
    }
  }
  throw Error(
      str(label(k), ": adds ", describe(va), " and ", describe(vb),
          "; torchvision's MobileNetV2 adds only a block's input to its projection, in the blocks that keep "
          "their size"));
}

void Walker::pool(int k) {
  const NodeProto& n = node(k);
  const Value in = value(k, 0);
  const int last = conv_count() - 1;
  TL_CHECK(is_ready(in, last), Error, label(k), ": pools ", describe(in),
           "; torchvision's MobileNetV2 pools ", describe_ready(last), " (after all ", conv_count(),
           " convolutions)");
  if (n.op_type() == "QLinearGlobalAveragePool")
    TL_CHECK(onnx_graph::int_attribute(n, "channels_last", 0) == 0, Error, label(k),
             ": channels_last pooling; tl reads NCHW graphs");
  if (n.op_type() == "ReduceMean") {
    std::vector<std::int64_t> axes = onnx_graph::ints_attribute(n, "axes");
    for (auto& axis : axes) axis = axis < 0 ? axis + 4 : axis;
    std::sort(axes.begin(), axes.end());
    TL_CHECK(axes == std::vector<std::int64_t>({2, 3}), Error, label(k), ": a mean over axes ",
             list_str(axes), "; torchvision's MobileNetV2 averages over height and width (2, 3)");
  }
  set(k, 0, {Stage::Pooled, -1});
}

// Flatten, Reshape, Squeeze: only the pooled features get reshaped ([N, C, 1, 1] -> [N, C]).
void Walker::reshape(int k) {
  const NodeProto& n = node(k);
  if (is_constant(n.input(0)) || value(k, 0).stage == Stage::Other) {
    set_all(k, {Stage::Other, -1});
    return;
  }
  const Value in = value(k, 0);
  TL_CHECK(in.stage == Stage::Pooled, Error, label(k), ": reshapes ", describe(in),
           "; torchvision's MobileNetV2 only flattens the pooled features");
  if (n.op_type() == "Flatten")
    TL_CHECK(onnx_graph::int_attribute(n, "axis", 1) == 1, Error, label(k), ": Flatten from axis ",
             onnx_graph::int_attribute(n, "axis", 1), "; torchvision flattens from axis 1");
  set(k, 0, {Stage::Pooled, -1});
}

void Walker::set_head(int k, std::int64_t in, std::int64_t out, std::vector<double> weight,
                      std::vector<double> bias) {
  TL_CHECK(head.node < 0, Error, label(k), ": a second classifier (the first is node ", head.node, ")");
  TL_CHECK(in == plan_.features && out >= 1, Error, label(k), ": a classifier of ", in, " inputs and ", out,
           " outputs; torchvision's MobileNetV2 classifies its ", plan_.features, " pooled features");
  TL_CHECK(bias.empty() || static_cast<std::int64_t>(bias.size()) == out, Error, label(k), ": a bias of ",
           bias.size(), " values for ", out, " outputs");
  head = {k, out, std::move(weight), std::move(bias)};
}

void Walker::gemm(int k) {
  const NodeProto& n = node(k);
  const Value in = value(k, 0);
  TL_CHECK(in.stage == Stage::Pooled, Error, label(k), ": multiplies ", describe(in),
           "; torchvision's MobileNetV2 has one matrix product, its classifier on the pooled features");
  TL_CHECK(onnx_graph::int_attribute(n, "transA", 0) == 0, Error, label(k),
           ": transA is set; torch exports A as is");
  const Constant& b = constant(k, n.input_size() > 1 ? n.input(1) : "", "weight");
  TL_CHECK(b.dims.size() == 2, Error, label(k), ": a weight of shape ", list_str(b.dims),
           " where [out, in] is expected");
  const bool trans_b = onnx_graph::int_attribute(n, "transB", 0) != 0;
  const double alpha = onnx_graph::float_attribute(n, "alpha", 1.0),
               beta = onnx_graph::float_attribute(n, "beta", 1.0);
  const std::int64_t out = trans_b ? b.dims[0] : b.dims[1], features = trans_b ? b.dims[1] : b.dims[0];
  std::vector<double> weight(b.values.size());
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t f = 0; f < features; ++f)
      weight[static_cast<std::size_t>(o * features + f)] =
          alpha * b.values[static_cast<std::size_t>(trans_b ? o * features + f : f * out + o)];
  std::vector<double> bias;
  if (n.input_size() > 2 && !n.input(2).empty()) {
    const Constant& c = constant(k, n.input(2), "bias");
    bias = c.values;
    if (c.numel() == 1 && out > 1) bias.assign(static_cast<std::size_t>(out), c.values[0]);  // broadcast
    for (double& v : bias) v *= beta;
  }
  set_head(k, features, out, std::move(weight), std::move(bias));
  set(k, 0, {Stage::Logits, -1});
}

// MatMul(A, B) or QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)
// with a constant B of [in, out] (per column scales when quantized); the bias follows in an Add.
void Walker::matmul(int k, bool quantized_matmul) {
  const NodeProto& n = node(k);
  const Value in = value(k, 0);
  TL_CHECK(in.stage == Stage::Pooled, Error, label(k), ": multiplies ", describe(in),
           "; torchvision's MobileNetV2 has one matrix product, its classifier on the pooled features");
  const int bi = quantized_matmul ? 3 : 1;
  const Constant& b = constant(k, n.input_size() > bi ? n.input(bi) : "", "weight");
  TL_CHECK(b.dims.size() == 2, Error, label(k), ": a weight of shape ", list_str(b.dims),
           " where [in, out] is expected");
  std::vector<double> values = b.values;
  if (quantized_matmul) {
    TL_CHECK(n.input_size() >= 6, Error, label(k), ": ", n.input_size(), " inputs where QLinearMatMul has 8");
    TL_CHECK(b.data_type == TensorProto::UINT8 || b.data_type == TensorProto::INT8, Error, label(k),
             ": its weight is ", onnx_graph::data_type_name(b.data_type),
             "; QLinearMatMul weights are uint8 or int8");
    values = onnx_graph::dequantize(b, constant(k, n.input(4), "b_scale"),
                                    &constant(k, n.input(5), "b_zero_point"), 1, label(k) + " weight");
    quantized.insert(onnx_graph::data_type_name(b.data_type));
  }
  const std::int64_t features = b.dims[0], out = b.dims[1];
  std::vector<double> weight(values.size());
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t f = 0; f < features; ++f)
      weight[static_cast<std::size_t>(o * features + f)] = values[static_cast<std::size_t>(f * out + o)];
  set_head(k, features, out, std::move(weight), {});
  set(k, 0, {Stage::Product, -1});
}

// QuantizeLinear, DequantizeLinear, Identity, Dropout: the value stays what it was (quantization of
// activations is not part of what tl computes; dropout is off in eval and tl's model has its own).
void Walker::pass_through(int k) {
  const NodeProto& n = node(k);
  const Value in = is_constant(n.input(0)) ? Value{} : value(k, 0);
  set_all(k, {Stage::Other, -1});  // Dropout's mask
  set(k, 0, in);
}

void Walker::graph_output() {
  TL_CHECK(graph_.output_size() >= 1, Error, file_, ": the graph has no output");
  const std::string& name = graph_.output(0).name();
  const auto it = values_.find(name);
  TL_CHECK(it != values_.end(), Error, file_, ": the graph output '", name, "' is produced by no node");
  TL_CHECK(it->second.stage == Stage::Logits || it->second.stage == Stage::Product, Error, file_,
           ": the graph output '", name, "' is ", describe(it->second),
           "; a torchvision MobileNetV2 outputs its classifier's logits");
}

void Walker::walk() {
  graph_input();
  for (int k = 0; k < graph_.node_size(); ++k) {
    const NodeProto& n = node(k);
    const std::string& op = n.op_type();
    const bool standard = n.domain().empty() || n.domain() == "ai.onnx",
               microsoft = n.domain() == "com.microsoft";
    TL_CHECK(n.input_size() >= 1 || op == "Constant", Error, label(k), ": a node without inputs");
    if (standard && op == "Constant") {
      constant_node(k);
    } else if (fold_constant(k)) {
    } else if (standard && op == "Conv") {
      float_conv(k);
    } else if (standard && op == "QLinearConv") {
      quantized_conv(k);
    } else if (standard && op == "BatchNormalization") {
      batch_norm(k);
    } else if (standard && op == "Clip") {
      clip(k);
    } else if ((standard && op == "Add") || (microsoft && op == "QLinearAdd")) {
      add(k, microsoft);
    } else if ((standard && (op == "GlobalAveragePool" || op == "ReduceMean")) ||
               (microsoft && op == "QLinearGlobalAveragePool")) {
      pool(k);
    } else if (standard && (op == "Flatten" || op == "Reshape" || op == "Squeeze")) {
      reshape(k);
    } else if (standard && op == "Gemm") {
      gemm(k);
    } else if (standard && (op == "MatMul" || op == "QLinearMatMul")) {
      matmul(k, op == "QLinearMatMul");
    } else if (standard &&
               (op == "QuantizeLinear" || op == "DequantizeLinear" || op == "Identity" || op == "Dropout")) {
      pass_through(k);
    } else if (standard && (op == "Shape" || op == "Gather" || op == "Unsqueeze" || op == "Concat" ||
                            op == "Cast" || op == "Slice" || op == "ConstantOfShape")) {
      set_all(k, {Stage::Other, -1});  // shape arithmetic (a dynamic Reshape's target); never an image
    } else {
      throw Error(str(label(k), " is not part of a torchvision MobileNetV2"));
    }
  }
  graph_output();
}

// ---- the state dict ---------------------------------------------------------------------------------------

Tensor float_tensor(const std::vector<double>& values, const Shape& shape) {
  return tensor(std::vector<float>(values.begin(), values.end()), shape);
}

StateDict make_state_dict(const std::string& file, const Plan& plan, const Walker& found) {
  std::unordered_map<std::string, Tensor> made;
  for (std::size_t i = 0; i < plan.convs.size(); ++i) {
    const ConvTarget& t = plan.convs[i];
    const FoundConv& f = found.convs[i];
    const auto channels = static_cast<std::size_t>(t.weight[0]);
    made[t.conv + ".weight"] = float_tensor(f.weight, t.weight);
    const std::vector<double> bias = f.bias.empty() ? std::vector<double>(channels, 0.0) : f.bias;
    std::vector<double> gamma(channels, 1.0), beta = bias, mean(channels, 0.0), var(channels, 1.0 - t.eps);
    if (f.norm) {
      // BN(conv + b) = gamma (conv - (mean - b)) / sqrt(var + eps) + beta; and var is shifted so that tl's
      // eps gives the file's sqrt(var + eps) exactly.
      gamma = f.norm->gamma;
      beta = f.norm->beta;
      for (std::size_t c = 0; c < channels; ++c) {
        mean[c] = f.norm->mean[c] - bias[c];
        var[c] = f.norm->var[c] + f.norm->eps - t.eps;
        TL_CHECK(var[c] + t.eps > 0, Error, file, ": the BatchNorm after ", t.conv,
                 " has running_var + epsilon ", var[c] + t.eps, " in channel ", c, "; it must be positive");
      }
    }
    made[t.norm + ".weight"] = float_tensor(gamma, {t.weight[0]});
    made[t.norm + ".bias"] = float_tensor(beta, {t.weight[0]});
    made[t.norm + ".running_mean"] = float_tensor(mean, {t.weight[0]});
    made[t.norm + ".running_var"] = float_tensor(var, {t.weight[0]});
    made[t.norm + ".num_batches_tracked"] = tensor(std::vector<std::int64_t>{0}, Shape{});
  }
  StateDict out;
  for (const auto& [name, expected] : plan.backbone) {
    const auto it = made.find(name);
    TL_CHECK(it != made.end() && it->second.shape() == expected.shape(), Error, "read_onnx: ", file,
             ": tl's entry ", name, " ", shape_str(expected.shape()),
             " was not produced (a bug in onnx_reader.cpp)");
    out.insert(name, it->second);
  }
  TL_CHECK(out.size() == made.size(), Error, "read_onnx: ", file, ": produced ", made.size(),
           " entries for tl's ", out.size(), " (a bug in onnx_reader.cpp)");
  const FoundHead& h = found.head;
  out.insert(plan.head + ".weight", float_tensor(h.weight, {h.classes, plan.features}));
  out.insert(plan.head + ".bias", h.bias.empty() ? zeros({h.classes}) : float_tensor(h.bias, {h.classes}));
  return out;
}

}  // namespace

Imported read_onnx(const std::string& path) {
  const ::onnx::ModelProto model = onnx_graph::load_model(path);
  const Plan plan = make_plan();
  Walker walker(path, model, plan);
  walker.walk();

  Imported out;
  out.tensors = make_state_dict(path, plan, walker);
  std::string types;
  for (const std::string& t : walker.quantized) types += (types.empty() ? "" : "+") + t;
  out.format = types.empty() ? "ONNX" : "ONNX (quantized " + types + ")";
  Metadata& m = out.metadata;
  m.architecture = kArchitecture;
  m.num_classes = walker.head.classes;
  m.preprocessing = Preprocessing{};  // torchvision's ImageNet mean/std, bilinear resize, 0.875 center crop
  if (walker.input_size > 0) m.preprocessing.input_size = walker.input_size;
  std::string producer = model.producer_name();
  if (!model.producer_version().empty()) producer += " " + model.producer_version();
  m.source = str(out.format, ": ", std::filesystem::path(path).filename().string(),
                 producer.empty() ? "" : " (written by " + producer + ")");
  return out;
}

}  // namespace tl::weights
