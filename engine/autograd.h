// The autograd tape. Each differentiable op that sees an input requiring grad (while grad mode is on) records
// a Node: its inputs and a backward function. Tensor::backward walks the nodes from the loss in reverse
// topological order, hands each its output gradient, and accumulates into the leaves' .grad. An input that
// does not require grad is marked so, and the backward function skips its gradient entirely: a frozen weight
// costs no gradient buffer and no weight-gradient kernel.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace tl {

// Whether ops record the tape on this thread. On by default; NoGradGuard turns it off within a scope.
class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Evaluation and frozen feature extraction: nothing inside the scope is recorded.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Receives the gradient of the node's output and, for each input, whether its gradient is wanted; returns one
// gradient per input (undefined where not wanted). Runs with grad mode off.
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs_grad)>;

class Node {
 public:
  Node(std::string name, std::vector<Tensor> inputs, BackwardFn backward);

  const std::string& name() const { return name_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  const std::vector<bool>& needs_grad() const { return needs_grad_; }

  // Throws if the graph was released by an earlier backward (retain_graph = false).
  std::vector<Tensor> apply(const Tensor& grad_output);
  // Drops the inputs and everything the backward function saved; the node can no longer run.
  void release();

 private:
  std::string name_;
  std::vector<Tensor> inputs_;
  std::vector<bool> needs_grad_;
  BackwardFn backward_;
};

// True when an op on these inputs must be recorded.
bool should_record(const std::vector<Tensor>& inputs);

// Records `output` as produced by `name` from `inputs` when should_record(inputs), else leaves it alone (and
// `backward` is dropped). The backward function must not capture `output` itself (that would make a cycle);
// capture output.detach() if it needs the values.
Tensor record(const char* name, Tensor output, std::vector<Tensor> inputs, BackwardFn backward);

// The backward pass from `root`, seeded with `grad_root` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad_root, bool retain_graph);

}  // namespace tl
