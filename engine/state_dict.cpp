#include "engine/state_dict.h"

#include "engine/error.h"

namespace tl {

void StateDict::insert(std::string name, Tensor tensor) {
  TL_CHECK(!contains(name), ValueError, "state dict: duplicate entry '", name, "'");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(tensor));
}

void StateDict::set(const std::string& name, Tensor tensor) {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    insert(name, std::move(tensor));
  } else {
    entries_[it->second].second = std::move(tensor);
  }
}

bool StateDict::erase(const std::string& name) {
  const auto it = index_.find(name);
  if (it == index_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
  return true;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  TL_CHECK(t != nullptr, ValueError, "state dict has no entry '", name, "'");
  return *t;
}

const Tensor* StateDict::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

}  // namespace tl
