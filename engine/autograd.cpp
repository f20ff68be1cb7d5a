#include "engine/autograd.h"

#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "engine/error.h"
#include "engine/functional.h"

namespace tl {
namespace {
thread_local bool grad_mode_enabled = true;

// Adds `gradient` into a leaf's .grad. The first gradient is adopted when nothing else holds it (the common
// case: a fresh buffer from a backward kernel), else copied, so two leaves never share one gradient buffer.
void accumulate_into_leaf(const Tensor& leaf, const Tensor& gradient) {
  AutogradMeta& meta = leaf.autograd_meta();
  if (!meta.grad) {
    const bool exclusive = gradient.impl_shared().use_count() == 1 && gradient.storage().use_count() == 1 &&
                           gradient.is_contiguous() && gradient.offset() == 0;
    meta.grad = std::make_shared<Tensor>(exclusive ? gradient : gradient.clone());
  } else {
    add_(*meta.grad, gradient);
  }
}

void check_gradient_shape(const Node& node, std::size_t i, const Tensor& gradient) {
  const Tensor& input = node.inputs()[i];
  TL_CHECK(gradient.shape() == input.shape(), ShapeError, "backward of ", node.name(), ": gradient of input ",
           i, " has shape ", shape_str(gradient.shape()), ", expected ", shape_str(input.shape()));
}

}  // namespace

bool GradMode::is_enabled() {
  return grad_mode_enabled;
}
void GradMode::set_enabled(bool enabled) {
  grad_mode_enabled = enabled;
}

Node::Node(std::string name, std::vector<Tensor> inputs, BackwardFn backward)
    : name_(std::move(name)), inputs_(std::move(inputs)), backward_(std::move(backward)) {
  needs_grad_.reserve(inputs_.size());
  for (const Tensor& t : inputs_) needs_grad_.push_back(t.defined() && t.requires_grad());
}

std::vector<Tensor> Node::apply(const Tensor& grad_output) {
  TL_CHECK(
      backward_, Error, "backward through ", name_,
      " a second time: its saved tensors were freed by the first backward (pass retain_graph = true to the "
      "first call)");
  return backward_(grad_output, needs_grad_);
}

void Node::release() {
  backward_ = nullptr;
  inputs_.clear();
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor output, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!should_record(inputs)) return output;
  AutogradMeta& meta = output.autograd_meta();
  meta.requires_grad = true;
  meta.grad_fn = std::make_shared<Node>(name, std::move(inputs), std::move(backward));
  return output;
}

void run_backward(const Tensor& root, const Tensor& grad_root, bool retain_graph) {
  TL_CHECK(
      root.requires_grad(), Error,
      "backward: the tensor does not require grad (no input of the ops that made it requires grad, or it was "
      "computed under NoGradGuard)");
  TL_CHECK(grad_root.shape() == root.shape(), ShapeError, "backward: gradient of shape ",
           shape_str(grad_root.shape()), " for a tensor of shape ", shape_str(root.shape()));
  NoGradGuard no_grad;
  if (!root.grad_fn()) {
    accumulate_into_leaf(root, grad_root);
    return;
  }

  // Count, for every node reachable from the root, how many consumers will send it a gradient.
  std::unordered_map<Node*, int> pending_consumers;
  std::vector<std::shared_ptr<Node>> visited;
  {
    std::vector<Node*> stack{root.grad_fn().get()};
    std::unordered_set<Node*> seen{root.grad_fn().get()};
    visited.push_back(root.grad_fn());
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      for (std::size_t i = 0; i < node->inputs().size(); ++i) {
        if (!node->needs_grad()[i]) continue;
        const std::shared_ptr<Node>& producer = node->inputs()[i].grad_fn();
        if (!producer) continue;
        ++pending_consumers[producer.get()];
        if (seen.insert(producer.get()).second) {
          stack.push_back(producer.get());
          visited.push_back(producer);
        }
      }
    }
  }

  // Kahn's algorithm: a node runs once all of its consumers have contributed to its output gradient.
  std::unordered_map<Node*, Tensor> grads{{root.grad_fn().get(), grad_root}};
  std::deque<Node*> ready{root.grad_fn().get()};
  while (!ready.empty()) {
    Node* node = ready.front();
    ready.pop_front();
    Tensor grad_output = std::move(grads[node]);
    grads.erase(node);
    // A node no consumer sent a gradient to contributes nothing, but still releases its producers.
    std::vector<Tensor> input_grads(node->inputs().size());
    if (grad_output.defined()) {
      input_grads = node->apply(grad_output);
      TL_CHECK(input_grads.size() == node->inputs().size(), Error, "backward of ", node->name(), " returned ",
               input_grads.size(), " gradients for ", node->inputs().size(), " inputs");
    }
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      if (!node->needs_grad()[i]) continue;
      const Tensor& input = node->inputs()[i];
      const bool has_grad = input_grads[i].defined();
      if (has_grad) check_gradient_shape(*node, i, input_grads[i]);
      const std::shared_ptr<Node>& producer = input.grad_fn();
      if (!producer) {
        if (has_grad) accumulate_into_leaf(input, input_grads[i]);
        continue;
      }
      if (has_grad) {
        Tensor& slot = grads[producer.get()];
        // Out of place: a backward function may hand the same tensor to several inputs.
        slot = slot.defined() ? add(slot, input_grads[i]) : input_grads[i];
      }
      if (--pending_consumers[producer.get()] == 0) ready.push_back(producer.get());
    }
  }

  if (!retain_graph)
    for (const auto& node : visited) node->release();
}

}  // namespace tl
