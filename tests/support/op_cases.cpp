#include "tests/support/op_cases.h"

#include <functional>

#include "engine/functional.h"
#include "engine/random.h"

namespace tl::testing {
namespace {

using Inputs = std::vector<Tensor>;

InputSpec in(Shape shape, double low = -1.0, double high = 1.0) {
  return {std::move(shape), true, low, high, false};
}
InputSpec constant(Shape shape, double low, double high) {
  return {std::move(shape), false, low, high, false};
}
InputSpec labels(std::int64_t rows, std::int64_t classes) {
  return {{rows}, false, 0.0, static_cast<double>(classes), true};
}

// conv2d cases: x, weight and (optionally) bias, with the given options.
OpCase conv(std::string name, Shape x, Shape w, bool bias, Conv2dOptions o) {
  std::vector<InputSpec> inputs{in(x), in(w)};
  if (bias) inputs.push_back(in({w[0]}));
  return {"conv2d_" + name, inputs,
          [bias, o](const Inputs& t) { return conv2d(t[0], t[1], bias ? t[2] : Tensor(), o); }};
}

Conv2dOptions conv_options(std::int64_t stride, Padding2d padding, std::int64_t dilation = 1,
                           std::int64_t groups = 1) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = stride;
  o.padding = padding;
  o.dilation_h = o.dilation_w = dilation;
  o.groups = groups;
  return o;
}

OpCase unary(std::string name, Tensor (*fn)(const Tensor&), double low, double high) {
  return {name, {in({2, 3, 4, 5}, low, high)}, [fn](const Inputs& t) { return fn(t[0]); }};
}

Pool2dOptions pool_options(std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                           bool include_pad = true) {
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = kernel;
  o.stride_h = o.stride_w = stride;
  o.padding = Padding2d::same_all(pad);
  o.count_include_pad = include_pad;
  return o;
}

std::vector<OpCase> build_cases() {
  const Padding2d none{}, pad1 = Padding2d::same_all(1), keras_same{0, 1, 0, 1};
  std::vector<OpCase> cases{
      // ---- convolution: every shape family the models use, plus the edge cases ----------------------------
      conv("3x3", {2, 3, 7, 7}, {4, 3, 3, 3}, true, conv_options(1, pad1)),
      conv("batch1_nobias_nonsquare", {1, 3, 5, 8}, {2, 3, 3, 3}, false, conv_options(1, pad1)),
      conv("odd_stride2", {2, 3, 9, 7}, {4, 3, 3, 3}, true, conv_options(2, pad1)),
      conv("1x1_spatial", {2, 4, 1, 1}, {3, 4, 1, 1}, true, conv_options(1, none)),
      conv("pointwise", {2, 6, 5, 4}, {5, 6, 1, 1}, false, conv_options(1, none)),
      conv("pointwise_stride2", {2, 4, 7, 7}, {6, 4, 1, 1}, false, conv_options(2, none)),
      conv("groups2", {2, 4, 6, 6}, {6, 2, 3, 3}, true, conv_options(1, pad1, 1, 2)),
      conv("depthwise_s1", {2, 4, 6, 5}, {4, 1, 3, 3}, true, conv_options(1, pad1, 1, 4)),
      conv("depthwise_s2", {1, 3, 7, 7}, {3, 1, 3, 3}, false, conv_options(2, pad1, 1, 3)),
      conv("depthwise_5x5_s2", {1, 2, 9, 9}, {2, 1, 5, 5}, false,
           conv_options(2, Padding2d::same_all(2), 1, 2)),
      conv("depthwise_keras_same_s2", {1, 4, 6, 6}, {4, 1, 3, 3}, false, conv_options(2, keras_same, 1, 4)),
      conv("dilation2", {1, 2, 9, 9}, {3, 2, 3, 3}, true, conv_options(1, Padding2d::same_all(2), 2)),
      conv("keras_same_s2", {2, 3, 8, 8}, {4, 3, 3, 3}, true, conv_options(2, keras_same)),
      conv("tf_same_s2", {1, 2, 8, 7}, {3, 2, 3, 3}, false,
           [] {
             Conv2dOptions o = conv_options(2, {});
             o.tf_same = true;  // 8 rows pad (0, 1), 7 columns pad (1, 1)
             return o;
           }()),
      conv("stem_7x7_s2", {1, 3, 11, 11}, {2, 3, 7, 7}, false, conv_options(2, Padding2d::same_all(3))),

      // ---- linear -----------------------------------------------------------------------------------------
      {"linear", {in({3, 5}), in({4, 5}), in({4})}, [](const Inputs& t) { return linear(t[0], t[1], t[2]); }},
      {"linear_batch1_nobias",
       {in({1, 7}), in({2, 7})},
       [](const Inputs& t) { return linear(t[0], t[1], Tensor()); }},

      // ---- batch norm: training (batch statistics, with and without running statistics) and eval ----------
      {"batch_norm_train",
       {in({3, 4, 3, 2}, -2, 3), in({4}, 0.5, 1.5), in({4}), constant({4}, -0.5, 0.5),
        constant({4}, 0.5, 2.0)},
       [](const Inputs& t) { return batch_norm2d(t[0], t[1], t[2], t[3].clone(), t[4].clone(), true); }},
      {"batch_norm_train_batch1_no_running",
       {in({1, 3, 2, 3}), in({3}, 0.5, 1.5), in({3})},
       [](const Inputs& t) { return batch_norm2d(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-3); }},
      {"batch_norm_train_2d",
       {in({5, 3}), in({3}, 0.5, 1.5), in({3})},
       [](const Inputs& t) { return batch_norm2d(t[0], t[1], t[2], Tensor(), Tensor(), true); }},
      {"batch_norm_eval",
       {in({2, 3, 4, 4}), in({3}, 0.5, 1.5), in({3}), constant({3}, -0.5, 0.5), constant({3}, 0.5, 2.0)},
       [](const Inputs& t) { return batch_norm2d(t[0], t[1], t[2], t[3], t[4], false); }},

      // ---- activations, over ranges that cross every kink and saturation ----------------------------------
      unary("relu", relu, -2, 2),
      unary("relu6", relu6, -3, 9),
      unary("hardswish", hardswish, -5, 5),
      unary("hardsigmoid", hardsigmoid, -5, 5),
      unary("sigmoid", sigmoid, -6, 6),
      unary("silu", silu, -6, 6),

      // ---- arithmetic -------------------------------------------------------------------------------------
      {"add", {in({2, 3, 4}), in({2, 3, 4})}, [](const Inputs& t) { return add(t[0], t[1]); }},
      {"sub", {in({2, 3, 4}), in({2, 3, 4})}, [](const Inputs& t) { return sub(t[0], t[1]); }},
      {"mul", {in({2, 3, 4}), in({2, 3, 4})}, [](const Inputs& t) { return mul(t[0], t[1]); }},
      {"div", {in({2, 3, 4}), in({2, 3, 4}, 0.5, 2.0)}, [](const Inputs& t) { return div(t[0], t[1]); }},
      {"scalar_ops", {in({3, 4})}, [](const Inputs& t) { return neg(t[0] * 2.5 + 1.0); }},
      {"channel_mul",
       {in({2, 3, 4, 4}), in({2, 3, 1, 1})},
       [](const Inputs& t) { return channel_mul(t[0], t[1]); }},
      {"channel_mul_2d_scale",
       {in({1, 2, 3, 3}), in({1, 2})},
       [](const Inputs& t) { return channel_mul(t[0], t[1]); }},

      // ---- pooling ----------------------------------------------------------------------------------------
      {"max_pool_3x3_s2_p1",
       {in({2, 2, 7, 7})},
       [](const Inputs& t) { return max_pool2d(t[0], pool_options(3, 2, 1)); }},
      {"max_pool_2x2_nonsquare",
       {in({1, 2, 6, 5})},
       [](const Inputs& t) { return max_pool2d(t[0], pool_options(2, 2, 0)); }},
      {"avg_pool_3x3_s2_p1",
       {in({2, 2, 7, 7})},
       [](const Inputs& t) { return avg_pool2d(t[0], pool_options(3, 2, 1)); }},
      {"avg_pool_exclude_pad",
       {in({1, 2, 5, 6})},
       [](const Inputs& t) { return avg_pool2d(t[0], pool_options(3, 2, 1, false)); }},
      {"adaptive_avg_pool_1x1",
       {in({2, 3, 7, 7})},
       [](const Inputs& t) { return adaptive_avg_pool2d(t[0], 1, 1); }},
      {"adaptive_avg_pool_uneven",
       {in({1, 2, 5, 7})},
       [](const Inputs& t) { return adaptive_avg_pool2d(t[0], 3, 2); }},

      // ---- shape ops (views, backward through strides) ----------------------------------------------------
      {"flatten", {in({2, 3, 2, 2})}, [](const Inputs& t) { return t[0].flatten(1); }},
      {"permute_narrow",
       {in({2, 3, 4})},
       [](const Inputs& t) {
         return t[0].permute({2, 0, 1}).narrow(0, 1, 2);
       }},
      {"unsqueeze_expand",
       {in({3, 1})},
       [](const Inputs& t) {
         return t[0].unsqueeze(0).expand({2, 3, 4});
       }},

      // ---- dropout (a fresh generator per call, so every evaluation draws the same mask) ------------------
      {"dropout_train",
       {in({4, 50})},
       [](const Inputs& t) {
         Generator g(7);
         return dropout(t[0], 0.3, true, g);
       }},
      {"dropout_eval",
       {in({4, 5})},
       [](const Inputs& t) {
         Generator g(7);
         return dropout(t[0], 0.3, false, g) * 1.0;
       }},

      // ---- loss and reductions ----------------------------------------------------------------------------
      {"cross_entropy",
       {in({5, 4}, -3, 3), labels(5, 4)},
       [](const Inputs& t) { return cross_entropy(t[0], t[1]); }},
      {"cross_entropy_smoothing",
       {in({6, 7}, -3, 3), labels(6, 7)},
       [](const Inputs& t) { return cross_entropy(t[0], t[1], 0.1); }},
      {"cross_entropy_batch1",
       {in({1, 3}), labels(1, 3)},
       [](const Inputs& t) { return cross_entropy(t[0], t[1]); }},
      {"sum_all", {in({3, 4})}, [](const Inputs& t) { return sum(t[0]); }},
      {"mean_all", {in({3, 4})}, [](const Inputs& t) { return mean(t[0]); }},
      {"sum_dim", {in({3, 4, 2})}, [](const Inputs& t) { return sum(t[0], 1); }},
      {"mean_dim_keepdim", {in({3, 4})}, [](const Inputs& t) { return mean(t[0], 0, true); }},
  };
  return cases;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build_cases();
  return cases;
}

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, bool requires_grad) {
  std::vector<Tensor> inputs;
  const std::uint64_t seed = std::hash<std::string>{}(c.name);
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    const InputSpec& spec = c.inputs[i];
    Generator generator(seed + i);
    if (spec.integer) {
      Tensor values = uniform(spec.shape, spec.low, spec.high, generator, DType::Float64);
      inputs.push_back(values.to(DType::Int64));  // truncation of [0, classes) gives every class
      continue;
    }
    Tensor t = uniform(spec.shape, spec.low, spec.high, generator, dtype);
    if (requires_grad && spec.differentiable) t.set_requires_grad(true);
    inputs.push_back(t);
  }
  return inputs;
}

}  // namespace tl::testing
