// The op-test harness's cases (after ggml's test-backend-ops): each names one differentiable op at one shape,
// describes its inputs, and computes its output from them. The same table drives every check — each kernel
// path against the reference, finite-difference gradients in float64 — and, later, the GPU paths.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace tl::testing {

struct InputSpec {
  Shape shape;
  bool differentiable = true;  // gradient-checked; false for constants such as running statistics
  double low = -1.0, high = 1.0;
  bool integer = false;  // int64 values in [low, high): class labels
};

struct OpCase {
  std::string name;  // "conv2d_depthwise_s2": a valid GoogleTest parameter name
  std::vector<InputSpec> inputs;
  // Computes the output from the inputs, in their order. Must be deterministic: called many times.
  std::function<Tensor(const std::vector<Tensor>&)> run;
};

const std::vector<OpCase>& op_cases();

// GoogleTest prints a parameter with this: the case name, not its bytes.
inline void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

// The inputs of `c` as tensors of `dtype` (labels stay int64), seeded by the case name so every path sees the
// same values; differentiable ones require grad when `requires_grad`.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, bool requires_grad);

}  // namespace tl::testing
