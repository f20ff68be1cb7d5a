// A state dict: named tensors in a fixed order (registration order, as PyTorch keeps it), with names that are
// torchvision's dot-separated keys ("layer4.1.conv2.weight").
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace tl {

class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  // Adds an entry; throws ValueError if the name is already present.
  void insert(std::string name, Tensor tensor);
  // Replaces the tensor of an existing entry, or adds one.
  void set(const std::string& name, Tensor tensor);
  bool erase(const std::string& name);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws ValueError naming the entry when absent.
  const Tensor& at(const std::string& name) const;
  // Null when absent.
  const Tensor* find(const std::string& name) const;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace tl
