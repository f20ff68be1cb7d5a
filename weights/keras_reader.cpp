// Keras .h5 (Keras 2's HDF5 layout) -> tl's state dict, for keras.applications MobileNet (V1, any of tl's
// alphas) and MobileNetV2 (alpha 1.0).
//
// Layout: a full-model file has a `model_config` JSON attribute at the root and its weights in
// /model_weights; a weights-only file (model.save_weights) has them at the root. Either way the weights group
// lists its layers in a `layer_names` attribute, each layer group lists its arrays in `weight_names`
// ("conv1/kernel:0"), and the arrays sit at <group>/<layer>/<weight name>.
//
// The reader knows both architectures as tables (below): it detects which one from the layer names, takes
// alpha from conv1's width, checks every array's shape against the table before reading it, and refuses any
// layer the table does not have. When the file carries its model_config it also checks that Keras computes
// what tl's model computes: strides, padding (Keras 'same' vs an explicit ZeroPadding2D), BatchNorm epsilon,
// ReLU6, and no layer tl does not build. Kernels are transposed from Keras' HWIO to PyTorch's OIHW.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/error.h"
#include "weights/hdf5.h"
#include "weights/hdf5_readers.h"
#include "weights/importers.h"
#include "weights/isolated_read.h"

namespace tl::weights {
namespace {

using Json = nlohmann::json;

constexpr double kKerasEps = 1e-3;  // tl's MobileNets use Keras' BatchNorm epsilon

// ---- what the file holds ----------------------------------------------------------------------------------

struct Array {
  std::string dataset;  // path in the file
  Shape shape;
};

// The weights of one layer by role: "kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean",
// "moving_variance".
using LayerWeights = std::map<std::string, Array>;

struct FileWeights {
  std::vector<std::string> order;  // layers with weights, in file order
  std::map<std::string, LayerWeights> layers;
};

// "conv1/kernel:0" -> "kernel".
std::string role_of(const std::string& weight_name) {
  std::string role = weight_name.substr(weight_name.rfind('/') + 1);
  return role.substr(0, role.find(':'));
}

FileWeights read_file_weights(const h5::File& file) {
  const std::string& path = file.path();
  const std::string root = file.exists("model_weights") ? "model_weights" : "/";
  TL_CHECK(file.has_attribute(root, "layer_names"), Error, path, ": '", root,
           "' has no 'layer_names' attribute: not a Keras 2 .h5 file (Keras 3 .weights.h5 is not supported)");
  const std::string prefix = root == "/" ? "" : root + "/";
  FileWeights out;
  const std::vector<std::string> names = file.attribute_size(root, "layer_names") == 0
                                             ? std::vector<std::string>{}
                                             : file.read_string_attribute(root, "layer_names");
  for (const std::string& layer : names) {
    const std::string group = prefix + layer;
    TL_CHECK(!layer.empty() && layer.find('/') == std::string::npos && file.exists(group), Error, path,
             ": layer '", layer, "' is listed in layer_names but has no group '", group, "' (damaged file?)");
    TL_CHECK(file.has_attribute(group, "weight_names"), Error, path, ": layer '", layer,
             "' has no 'weight_names' attribute (damaged file?)");
    if (file.attribute_size(group, "weight_names") == 0) continue;  // ReLU, padding, pooling, ...
    LayerWeights weights;
    for (const std::string& weight : file.read_string_attribute(group, "weight_names")) {
      const std::string dataset = group + "/" + weight;
      TL_CHECK(file.exists(dataset), Error, path, ": layer '", layer, "' lists weight '", weight,
               "' but the file has no dataset '", dataset, "' (truncated or damaged?)");
      const h5::DatasetInfo info = file.dataset_info(dataset);
      TL_CHECK(info.kind == h5::ElementKind::Float, Error, path, ": layer '", layer, "' weight '", weight,
               "' is not a floating-point array");
      const std::string role = role_of(weight);
      TL_CHECK(weights.emplace(role, Array{dataset, info.shape}).second, Error, path, ": layer '", layer,
               "' has two '", role, "' weights");
    }
    TL_CHECK(out.layers.emplace(layer, std::move(weights)).second, Error, path, ": layer '", layer,
             "' is listed twice in layer_names");
    out.order.push_back(layer);
  }
  return out;
}

// ---- what the model_config says ---------------------------------------------------------------------------

struct GraphLayer {
  std::string class_name;
  Json config;
  std::string input;  // the layer feeding this one (first input); empty when unknown
};

struct Graph {
  bool present = false;
  std::vector<std::string> order;
  std::map<std::string, GraphLayer> layers;
  std::optional<std::int64_t> input_size;  // square input side, when the InputLayer fixes one
};

// The first input of a layer. Keras 2 writes inbound_nodes as [[[name, node, tensor, kwargs], ...]],
// Keras 3 as [{"args": [{"config": {"keras_history": [name, ...]}}]}].
std::string first_inbound(const Json& layer) {
  const Json nodes = layer.value("inbound_nodes", Json::array());
  if (!nodes.is_array() || nodes.empty()) return "";
  const Json& node = nodes[0];
  if (node.is_array() && !node.empty() && node[0].is_array() && !node[0].empty() && node[0][0].is_string())
    return node[0][0].get<std::string>();
  if (node.is_object() && node.contains("args") && node["args"].is_array() && !node["args"].empty()) {
    const Json& arg = node["args"][0];
    if (arg.is_object() && arg.contains("config") && arg["config"].contains("keras_history") &&
        arg["config"]["keras_history"].is_array() && !arg["config"]["keras_history"].empty() &&
        arg["config"]["keras_history"][0].is_string())
      return arg["config"]["keras_history"][0].get<std::string>();
  }
  return "";
}

Graph read_graph(const h5::File& file) {
  Graph graph;
  const std::string& path = file.path();
  if (!file.has_attribute("/", "model_config")) return graph;
  const std::vector<std::string> text = file.read_string_attribute("/", "model_config");
  TL_CHECK(text.size() == 1, Error, path, ": the 'model_config' attribute is not one string");
  const Json model = Json::parse(text[0], nullptr, /*allow_exceptions=*/false);
  TL_CHECK(!model.is_discarded() && model.is_object(), Error, path,
           ": the 'model_config' attribute is not a JSON object");
  const Json config = model.value("config", Json());
  const Json layers = config.is_array()    ? config
                      : config.is_object() ? config.value("layers", Json())
                                           : Json();
  TL_CHECK(layers.is_array(), Error, path, ": 'model_config' lists no layers");
  graph.present = true;
  std::string previous;  // Sequential models have no inbound_nodes: each layer reads the one before
  for (const Json& layer : layers) {
    TL_CHECK(layer.is_object() && layer.contains("config") && layer["config"].is_object() &&
                 layer.contains("class_name") && layer["class_name"].is_string(),
             Error, path, ": 'model_config' has a malformed layer: ", layer.dump().substr(0, 200));
    const Json& c = layer["config"];
    const std::string name = layer.value("name", c.value("name", std::string()));
    TL_CHECK(!name.empty(), Error, path, ": 'model_config' has a layer without a name");
    GraphLayer g{layer["class_name"].get<std::string>(), c, first_inbound(layer)};
    if (g.input.empty()) g.input = previous;
    if (g.class_name == "InputLayer") {
      const Json shape = c.value("batch_input_shape", c.value("batch_shape", Json()));
      if (shape.is_array() && shape.size() == 4 && shape[1].is_number_integer() &&
          shape[2].is_number_integer() && shape[1] == shape[2])
        graph.input_size = shape[1].get<std::int64_t>();
    }
    TL_CHECK(graph.layers.emplace(name, std::move(g)).second, Error, path,
             ": 'model_config' has two layers named '", name, "'");
    graph.order.push_back(name);
    previous = name;
  }
  return graph;
}

// ---- the architectures, as tables -------------------------------------------------------------------------

enum class Op { Conv, Depthwise, BatchNorm, Head };

// How tl's model pads a convolution.
enum class Pad {
  None,       // 1x1
  Symmetric,  // 3x3 stride 1: one pixel each side
  TfSame,     // Conv2dOptions::tf_same
  ZeroOne,    // explicit (top 0, bottom 1, left 0, right 1), Keras' ZeroPadding2D(((0, 1), (0, 1)))
};

struct Step {
  std::string keras;  // layer name in the file
  Op op;
  std::string tl;  // module path in tl's model
  std::int64_t in = 0, out = 0, kernel = 1, stride = 1;
  Pad pad = Pad::None;
};

struct Plan {
  std::string architecture;
  std::vector<Step> steps;  // the backbone, in tl's registration order
  std::int64_t features = 0;
  std::string head_tl;  // tl's head path
  int residuals = 0;    // inverted-residual blocks that add their input (MobileNetV2)
};

// Names a keras.applications head can have: conv_preds (MobileNet's 1x1 conv), Logits / predictions (a
// Dense).
constexpr const char* kHeadNames[] = {"conv_preds", "Logits", "predictions"};

void add_conv_bn(Plan& plan, Op op, const std::string& keras, const std::string& keras_bn,
                 const std::string& tl, const std::string& tl_bn, std::int64_t in, std::int64_t out,
                 std::int64_t kernel, std::int64_t stride, Pad pad) {
  plan.steps.push_back({keras, op, tl, in, out, kernel, stride, pad});
  plan.steps.push_back({keras_bn, Op::BatchNorm, tl_bn, out, out, 1, 1, Pad::None});
}

Plan mobilenet_v1_plan(double alpha, const std::string& architecture) {
  Plan plan;
  plan.architecture = architecture;
  const auto width = [alpha](std::int64_t filters) { return static_cast<std::int64_t>(filters * alpha); };
  std::int64_t in = width(32);
  add_conv_bn(plan, Op::Conv, "conv1", "conv1_bn", "conv1", "conv1_bn", 3, in, 3, 2, Pad::TfSame);
  constexpr std::pair<std::int64_t, std::int64_t> blocks[] = {
      {64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
      {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
  int id = 1;
  for (const auto& [filters, stride] : blocks) {
    const std::string dw = "conv_dw_" + std::to_string(id), pw = "conv_pw_" + std::to_string(id);
    add_conv_bn(plan, Op::Depthwise, dw, dw + "_bn", dw, dw + "_bn", in, in, 3, stride,
                stride == 1 ? Pad::Symmetric : Pad::ZeroOne);
    add_conv_bn(plan, Op::Conv, pw, pw + "_bn", pw, pw + "_bn", in, width(filters), 1, 1, Pad::None);
    in = width(filters);
    ++id;
  }
  plan.features = in;
  plan.head_tl = "conv_preds";
  return plan;
}

// keras.applications MobileNetV2 1.0 under torchvision's names (features.N...), as tl's mobilenet_v2_keras.
Plan mobilenet_v2_plan() {
  Plan plan;
  plan.architecture = "mobilenet_v2_keras";
  const auto pad3 = [](std::int64_t stride) { return stride == 1 ? Pad::Symmetric : Pad::ZeroOne; };
  add_conv_bn(plan, Op::Conv, "Conv1", "bn_Conv1", "features.0.0", "features.0.1", 3, 32, 3, 2, pad3(2));
  add_conv_bn(plan, Op::Depthwise, "expanded_conv_depthwise", "expanded_conv_depthwise_BN",
              "features.1.conv.0.0", "features.1.conv.0.1", 32, 32, 3, 1, pad3(1));
  add_conv_bn(plan, Op::Conv, "expanded_conv_project", "expanded_conv_project_BN", "features.1.conv.1",
              "features.1.conv.2", 32, 16, 1, 1, Pad::None);
  struct Stage {
    std::int64_t channels, repeats, stride;
  };
  constexpr Stage stages[] = {{24, 2, 2}, {32, 3, 2}, {64, 4, 2}, {96, 3, 1}, {160, 3, 2}, {320, 1, 1}};
  std::int64_t in = 16;
  int block = 1;
  for (const Stage& s : stages) {
    for (std::int64_t i = 0; i < s.repeats; ++i, ++block) {
      const std::string k = "block_" + std::to_string(block) + "_";
      const std::string t = "features." + std::to_string(block + 1) + ".conv.";
      const std::int64_t hidden = in * 6, stride = i == 0 ? s.stride : 1;
      add_conv_bn(plan, Op::Conv, k + "expand", k + "expand_BN", t + "0.0", t + "0.1", in, hidden, 1, 1,
                  Pad::None);
      add_conv_bn(plan, Op::Depthwise, k + "depthwise", k + "depthwise_BN", t + "1.0", t + "1.1", hidden,
                  hidden, 3, stride, pad3(stride));
      add_conv_bn(plan, Op::Conv, k + "project", k + "project_BN", t + "2", t + "3", hidden, s.channels, 1, 1,
                  Pad::None);
      plan.residuals += stride == 1 && in == s.channels;
      in = s.channels;
    }
  }
  add_conv_bn(plan, Op::Conv, "Conv_1", "Conv_1_bn", "features.18.0", "features.18.1", 320, 1280, 1, 1,
              Pad::None);
  plan.features = 1280;
  plan.head_tl = "classifier.1";
  return plan;
}

const Array* find_array(const FileWeights& weights, const std::string& layer, const std::string& role) {
  const auto l = weights.layers.find(layer);
  if (l == weights.layers.end()) return nullptr;
  const auto a = l->second.find(role);
  return a == l->second.end() ? nullptr : &a->second;
}

Plan detect(const std::string& path, const FileWeights& weights) {
  if (weights.layers.count("conv1") && weights.layers.count("conv_dw_1")) {
    const Array* kernel = find_array(weights, "conv1", "kernel");
    TL_CHECK(kernel && kernel->shape.size() == 4, Error, path,
             ": layer 'conv1' has no 4-D 'kernel': not a keras.applications MobileNet");
    const std::int64_t filters = kernel->shape[3];
    for (const auto& [alpha, suffix] : std::vector<std::pair<double, std::string>>{
             {1.0, ""}, {0.75, "_0.75"}, {0.5, "_0.5"}, {0.25, "_0.25"}})
      if (filters == static_cast<std::int64_t>(32 * alpha))
        return mobilenet_v1_plan(alpha, "mobilenet_v1" + suffix);
    throw Error(str(path, ": layer 'conv1' has ", filters, " filters: MobileNet alpha ", filters / 32.0,
                    ", but tl builds alpha 1.0, 0.75, 0.5 and 0.25 only (32, 24, 16 or 8 filters)"));
  }
  if (weights.layers.count("Conv1") && weights.layers.count("expanded_conv_depthwise")) {
    const Array* kernel = find_array(weights, "Conv1", "kernel");
    TL_CHECK(kernel && kernel->shape.size() == 4, Error, path,
             ": layer 'Conv1' has no 4-D 'kernel': not a keras.applications MobileNetV2");
    TL_CHECK(kernel->shape[3] == 32, Error, path, ": layer 'Conv1' has ", kernel->shape[3],
             " filters, so this MobileNetV2 has alpha != 1.0; tl builds MobileNetV2 1.0 only (32 filters)");
    return mobilenet_v2_plan();
  }
  throw Error(
      str(path, ": neither a keras.applications MobileNet (layers conv1, conv_dw_1, ...) nor MobileNetV2 ",
          "(Conv1, expanded_conv_depthwise, ...)",
          weights.order.empty() ? std::string(": no layer has weights")
                                : str("; its first layer with weights is '", weights.order.front(), "'")));
}

// ---- checks of the file against the plan ------------------------------------------------------------------

std::map<std::string, Shape> expected_shapes(const Step& s) {
  switch (s.op) {
    case Op::Conv:
      return {{"kernel", {s.kernel, s.kernel, s.in, s.out}}};
    case Op::Depthwise:
      return {{"depthwise_kernel", {s.kernel, s.kernel, s.in, 1}}};
    case Op::BatchNorm:
      return {{"gamma", {s.out}}, {"beta", {s.out}}, {"moving_mean", {s.out}}, {"moving_variance", {s.out}}};
    case Op::Head:
      return {{"kernel", {}}, {"bias", {s.out}}};  // the kernel may be a 1x1 conv or a Dense
  }
  return {};
}

void check_layer_weights(const std::string& path, const Plan& plan, const Step& s,
                         const LayerWeights& found) {
  const std::map<std::string, Shape> expected = expected_shapes(s);
  for (const auto& [role, shape] : expected) {
    const auto f = found.find(role);
    TL_CHECK(f != found.end(), Error, path, ": layer '", s.keras, "' has no '", role, "' weight (",
             plan.architecture, " needs one)");
    if (s.op == Op::Head && role == "kernel") {
      const Shape& k = f->second.shape;
      const bool ok = (k.size() == 4 && k[0] == 1 && k[1] == 1 && k[2] == s.in && k[3] == s.out) ||
                      (k.size() == 2 && k[0] == s.in && k[1] == s.out);
      TL_CHECK(ok, Error, path, ": layer '", s.keras, "' kernel is ", shape_str(k), ", expected [1, 1, ",
               s.in, ", ", s.out, "] (a 1x1 conv) or [", s.in, ", ", s.out, "] (a Dense) for ",
               plan.architecture);
      continue;
    }
    TL_CHECK(f->second.shape == shape, Error, path, ": layer '", s.keras, "' weight '", role, "' is ",
             shape_str(f->second.shape), ", expected ", shape_str(shape), " for ", plan.architecture);
  }
  for (const auto& [role, array] : found)
    TL_CHECK(expected.count(role), Error, path, ": layer '", s.keras, "' has a weight '", role, "' ",
             shape_str(array.shape), " that ", plan.architecture, "'s layer does not have");
}

struct Padding {
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;
  bool operator==(const Padding&) const = default;
};

std::string padding_str(const Padding& p) {
  return str("(", p.top, ", ", p.bottom, ", ", p.left, ", ", p.right, ")");
}

// ZeroPadding2D's padding: an int, [h, w] (symmetric) or [[top, bottom], [left, right]].
std::optional<Padding> zero_padding_of(const Json& padding) {
  const auto integer = [](const Json& j) { return j.is_number_integer(); };
  if (integer(padding)) {
    const std::int64_t p = padding.get<std::int64_t>();
    return Padding{p, p, p, p};
  }
  if (!padding.is_array() || padding.size() != 2) return std::nullopt;
  if (integer(padding[0]) && integer(padding[1])) {
    const std::int64_t h = padding[0].get<std::int64_t>(), w = padding[1].get<std::int64_t>();
    return Padding{h, h, w, w};
  }
  for (const Json& pair : padding)
    if (!pair.is_array() || pair.size() != 2 || !integer(pair[0]) || !integer(pair[1])) return std::nullopt;
  return Padding{padding[0][0].get<std::int64_t>(), padding[0][1].get<std::int64_t>(),
                 padding[1][0].get<std::int64_t>(), padding[1][1].get<std::int64_t>()};
}

bool is_pair(const Json& j, std::int64_t v) {
  return j.is_array() && j.size() == 2 && j[0] == v && j[1] == v;
}

const char* pad_description(Pad pad) {
  switch (pad) {
    case Pad::None:
      return "no padding";
    case Pad::Symmetric:
      return "padding (1, 1, 1, 1)";
    case Pad::TfSame:
      return "TensorFlow 'same' padding";
    case Pad::ZeroOne:
      return "padding (0, 1, 0, 1)";
  }
  return "?";
}

// Keras pads either with padding='same' or with padding='valid' after a ZeroPadding2D; tl's model pads as
// `s.pad`. For a stride-2 3x3 conv, 'same' and an explicit (0, 1, 0, 1) agree exactly when the conv's input
// is even-sized, which holds at every stride-2 layer of these networks when the input side is a multiple of
// 32 (every keras.applications size is; an unspecified one is taken to be).
void check_padding(const std::string& path, const Plan& plan, const Graph& graph, const Step& s,
                   const GraphLayer& layer) {
  const std::string padding = layer.config.value("padding", std::string());
  const bool even = !graph.input_size || *graph.input_size % 32 == 0;
  std::string how = str("padding='", padding, "'");
  Padding explicit_pad;
  const auto input = graph.layers.find(layer.input);
  if (input != graph.layers.end() && input->second.class_name == "ZeroPadding2D") {
    const std::optional<Padding> p = zero_padding_of(input->second.config.value("padding", Json()));
    TL_CHECK(p, Error, path, ": ZeroPadding2D layer '", layer.input,
             "' has a padding tl cannot read: ", input->second.config.value("padding", Json()).dump());
    explicit_pad = *p;
    how += str(" after ZeroPadding2D '", layer.input, "' ", padding_str(explicit_pad));
  }
  if (padding == "same" && explicit_pad != Padding{}) how += " (padding twice)";
  bool ok = false;
  if (padding == "same") {
    ok = explicit_pad == Padding{} && (s.pad != Pad::ZeroOne || even);
  } else if (padding == "valid") {
    switch (s.pad) {
      case Pad::None:
        ok = explicit_pad == Padding{};
        break;
      case Pad::Symmetric:
        ok = explicit_pad == Padding{1, 1, 1, 1};
        break;
      case Pad::TfSame:
        ok = explicit_pad == Padding{0, 1, 0, 1} && even;
        break;
      case Pad::ZeroOne:
        ok = explicit_pad == Padding{0, 1, 0, 1};
        break;
    }
  }
  TL_CHECK(ok, Error, path, ": layer '", s.keras, "' uses ", how, ", but ", plan.architecture, " applies ",
           pad_description(s.pad), " there",
           graph.input_size ? str(" (input size ", *graph.input_size, ")") : std::string(),
           ": this file's model computes something else");
}

void check_graph_layer(const std::string& path, const Plan& plan, const Graph& graph, const Step& s) {
  const auto it = graph.layers.find(s.keras);
  TL_CHECK(it != graph.layers.end(), Error, path, ": layer '", s.keras,
           "' has weights but is not in the model_config (damaged file?)");
  const GraphLayer& layer = it->second;
  const Json& c = layer.config;
  const auto fail = [&](const std::string& what) {
    throw Error(str(path, ": layer '", s.keras, "' (", layer.class_name, ") ", what, "; ", plan.architecture,
                    " cannot represent it"));
  };
  if (c.contains("data_format") && c["data_format"] != "channels_last")
    fail("has data_format " + c["data_format"].dump());
  if (s.op == Op::BatchNorm) {
    if (layer.class_name != "BatchNormalization") fail("is not a BatchNormalization");
    const double eps = c.value("epsilon", kKerasEps);
    if (std::abs(eps - kKerasEps) > 1e-9)
      fail(str("has epsilon ", eps, " where tl's model uses ", kKerasEps));
    if (!c.value("center", true) || !c.value("scale", true)) fail("has center or scale off");
    return;
  }
  const bool dense = layer.class_name == "Dense";
  if (s.op == Op::Head) {
    if (!dense && layer.class_name != "Conv2D") fail("is neither a Dense nor a 1x1 Conv2D");
    if (!c.value("use_bias", true)) fail("has no bias");
    const std::string activation = c.value("activation", std::string("linear"));
    // softmax is monotonic: tl returns the logits it is applied to, and the classes rank the same.
    if (activation != "linear" && activation != "softmax") fail("has activation '" + activation + "'");
    const Json count = dense ? c.value("units", Json()) : c.value("filters", Json());
    if (count != s.out) fail(str("declares ", count.dump(), " outputs but its kernel has ", s.out));
    if (!dense && !is_pair(c.value("kernel_size", Json()), 1)) fail("is not a 1x1 convolution");
    return;
  }
  const char* expected_class = s.op == Op::Conv ? "Conv2D" : "DepthwiseConv2D";
  if (layer.class_name != expected_class) fail(str("is not a ", expected_class));
  if (c.value("use_bias", false)) fail("has a bias");
  if (c.value("activation", std::string("linear")) != "linear") fail("has a fused activation");
  if (!is_pair(c.value("kernel_size", Json()), s.kernel))
    fail(str("is not a ", s.kernel, "x", s.kernel, " kernel"));
  if (!is_pair(c.value("strides", Json()), s.stride)) fail(str("does not have stride ", s.stride));
  if (c.contains("dilation_rate") && !is_pair(c["dilation_rate"], 1)) fail("is dilated");
  if (s.op == Op::Depthwise && c.value("depth_multiplier", 1) != 1)
    fail("has a depth_multiplier other than 1");
  if (s.op == Op::Conv && c.value("filters", Json()) != s.out) fail(str("does not have ", s.out, " filters"));
  check_padding(path, plan, graph, s, layer);
}

// Layers without weights that these networks contain, checked where they could change the function.
void check_weightless_layer(const std::string& path, const Plan& plan, const std::string& name,
                            const GraphLayer& layer) {
  const std::string& k = layer.class_name;
  const Json& c = layer.config;
  const auto fail = [&](const std::string& what) {
    throw Error(
        str(path, ": layer '", name, "' (", k, ") ", what, "; ", plan.architecture, " has no such layer"));
  };
  if (k == "InputLayer" || k == "ZeroPadding2D" || k == "Dropout" || k == "Reshape" || k == "Flatten" ||
      k == "GlobalAveragePooling2D")
    return;  // ZeroPadding2D is checked with the conv it feeds
  if (k == "Add") {
    if (plan.architecture != "mobilenet_v2_keras") fail("adds a residual");
    return;
  }
  if (k == "ReLU") {
    if (c.value("max_value", Json()) != 6.0 || c.value("negative_slope", 0.0) != 0.0 ||
        c.value("threshold", 0.0) != 0.0)
      fail("is not ReLU6 (max_value " + c.value("max_value", Json()).dump() + ")");
    return;
  }
  if (k == "Activation") {
    const std::string a = c.value("activation", std::string());
    if (a != "softmax" && a != "linear" && a != "relu6") fail("applies '" + a + "'");
    return;
  }
  fail("is a layer tl does not know");
}

// ---- conversion -------------------------------------------------------------------------------------------

// Keras kernel [kh, kw, in, out] -> PyTorch [out, in, kh, kw]. A depthwise kernel [kh, kw, C, 1] gives [1, C,
// kh, kw], the same bytes as tl's [C, 1, kh, kw]; a 1x1 head [1, 1, F, C] gives [C, F, 1, 1], the bytes of
// [C, F].
std::vector<float> hwio_to_oihw(const std::vector<float>& k, std::int64_t kh, std::int64_t kw,
                                std::int64_t in, std::int64_t out) {
  std::vector<float> o(k.size());
  for (std::int64_t h = 0; h < kh; ++h)
    for (std::int64_t w = 0; w < kw; ++w)
      for (std::int64_t i = 0; i < in; ++i)
        for (std::int64_t c = 0; c < out; ++c)
          o[static_cast<std::size_t>(((c * in + i) * kh + h) * kw + w)] =
              k[static_cast<std::size_t>(((h * kw + w) * in + i) * out + c)];
  return o;
}

void convert_step(const h5::File& file, const Step& s, const LayerWeights& found, StateDict& out) {
  const auto values = [&](const std::string& role) { return file.read_floats(found.at(role).dataset); };
  switch (s.op) {
    case Op::Conv:
      out.insert(s.tl + ".weight", tensor(hwio_to_oihw(values("kernel"), s.kernel, s.kernel, s.in, s.out),
                                          {s.out, s.in, s.kernel, s.kernel}));
      break;
    case Op::Depthwise:
      out.insert(s.tl + ".weight",
                 tensor(hwio_to_oihw(values("depthwise_kernel"), s.kernel, s.kernel, s.in, 1),
                        {s.in, 1, s.kernel, s.kernel}));
      break;
    case Op::BatchNorm:
      out.insert(s.tl + ".weight", tensor(values("gamma"), {s.out}));
      out.insert(s.tl + ".bias", tensor(values("beta"), {s.out}));
      out.insert(s.tl + ".running_mean", tensor(values("moving_mean"), {s.out}));
      out.insert(s.tl + ".running_var", tensor(values("moving_variance"), {s.out}));
      out.insert(s.tl + ".num_batches_tracked", tensor(std::vector<std::int64_t>{0}, {}));
      break;
    case Op::Head:
      // A Dense kernel [F, C] has the bytes of a 1x1 conv kernel [1, 1, F, C].
      out.insert(s.tl + ".weight", tensor(hwio_to_oihw(values("kernel"), 1, 1, s.in, s.out), {s.out, s.in}));
      out.insert(s.tl + ".bias", tensor(values("bias"), {s.out}));
      break;
  }
}

Imported read_keras_file(const h5::File& file) {
  const std::string& path = file.path();
  const FileWeights weights = read_file_weights(file);
  const Graph graph = read_graph(file);
  Plan plan = detect(path, weights);

  // The head is optional (include_top=False gives the pooled-feature extractor, tl's num_classes = 0).
  std::int64_t num_classes = 0;
  for (const char* head : kHeadNames) {
    const Array* kernel = find_array(weights, head, "kernel");
    if (!weights.layers.count(head)) continue;
    TL_CHECK(num_classes == 0, Error, path, ": more than one classifier layer (", head, ")");
    TL_CHECK(kernel && !kernel->shape.empty() && kernel->shape.back() >= 1, Error, path, ": layer '", head,
             "' has no kernel with a class dimension");
    num_classes = kernel->shape.back();
    plan.steps.push_back({head, Op::Head, plan.head_tl, plan.features, num_classes, 1, 1, Pad::None});
  }

  std::set<std::string> planned;
  for (const Step& s : plan.steps) planned.insert(s.keras);
  for (const std::string& layer : weights.order)
    TL_CHECK(planned.count(layer), Error, path, ": layer '", layer, "' is not part of ", plan.architecture,
             " (another architecture, or a model built on top of it?)");
  for (const Step& s : plan.steps) {
    const auto found = weights.layers.find(s.keras);
    TL_CHECK(found != weights.layers.end(), Error, path, ": layer '", s.keras, "' is missing (",
             plan.architecture, " needs it)");
    check_layer_weights(path, plan, s, found->second);
  }
  if (graph.present) {
    std::set<std::string> conv_inputs;
    for (const Step& s : plan.steps) {
      check_graph_layer(path, plan, graph, s);
      if (s.op == Op::Conv || s.op == Op::Depthwise) conv_inputs.insert(graph.layers.at(s.keras).input);
    }
    int adds = 0;
    for (const auto& [name, layer] : graph.layers) {
      adds += layer.class_name == "Add";
      // Padding is checked with the conv it feeds; anywhere else it would change the function unnoticed.
      TL_CHECK(layer.class_name != "ZeroPadding2D" || conv_inputs.count(name), Error, path,
               ": ZeroPadding2D layer '", name, "' does not feed a convolution; ", plan.architecture,
               " has no such padding");
    }
    TL_CHECK(adds == plan.residuals, Error, path, ": the model_config has ", adds, " Add layers where ",
             plan.architecture, " has ", plan.residuals, " residual connections");
    for (const std::string& name : graph.order)
      if (!planned.count(name)) {
        const GraphLayer& layer = graph.layers.at(name);
        TL_CHECK(layer.class_name != "Conv2D" && layer.class_name != "DepthwiseConv2D" &&
                     layer.class_name != "BatchNormalization" && layer.class_name != "Dense",
                 Error, path, ": layer '", name, "' (", layer.class_name,
                 ") has no weights in the file, or is not part of ", plan.architecture);
        check_weightless_layer(path, plan, name, layer);
      }
  }

  Imported out;
  out.format = "Keras .h5";
  for (const Step& s : plan.steps) convert_step(file, s, weights.layers.at(s.keras), out.tensors);
  Metadata& m = out.metadata;
  m.architecture = plan.architecture;
  m.num_classes = num_classes;
  m.preprocessing.mean = {0.5, 0.5, 0.5};  // keras' preprocess_input: x / 127.5 - 1 on [0, 255] pixels
  m.preprocessing.std = {0.5, 0.5, 0.5};
  m.preprocessing.input_size = graph.input_size.value_or(224);
  m.source = "Keras .h5: " + std::filesystem::path(path).filename().string();
  return out;
}

}  // namespace

Imported detail::read_keras(const h5::File& file) {
  try {
    return read_keras_file(file);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type (a hostile or foreign model_config).
    throw Error(str(file.path(), ": malformed model_config (", e.what(), ")"));
  }
}

Imported read_keras_h5(const std::string& path) {
  return isolated::read_keras_h5(path);
}

Imported read_keras_h5_in_process(const std::string& path) {
  return detail::read_keras(h5::File::open_read(path));
}

}  // namespace tl::weights
