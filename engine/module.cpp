#include "engine/module.h"

#include <algorithm>
#include <sstream>

#include "engine/autograd.h"
#include "engine/error.h"

namespace tl {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void check_name(const std::string& name, const char* what) {
  TL_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, "register_", what, ": name '",
           name, "' must be non-empty and contain no '.'");
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative matcher with backtracking to the last '*': linear in practice, no recursion.
  std::size_t p = 0, t = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string LoadReport::summary() const {
  // A file of another architecture misses hundreds of entries; the first few of each kind say enough.
  constexpr std::size_t kShown = 8;
  std::ostringstream out;
  const auto more = [&out](std::size_t count, const char* what) {
    if (count > kShown) out << "... and " << count - kShown << " more " << what << "\n";
  };
  for (std::size_t i = 0; i < std::min(missing.size(), kShown); ++i)
    out << "missing from the state dict: " << missing[i] << "\n";
  more(missing.size(), "missing from the state dict");
  for (std::size_t i = 0; i < std::min(unexpected.size(), kShown); ++i)
    out << "not in the model: " << unexpected[i] << "\n";
  more(unexpected.size(), "not in the model");
  for (std::size_t i = 0; i < std::min(mismatched.size(), kShown); ++i)
    out << "shape mismatch: " << mismatched[i].name << " is " << shape_str(mismatched[i].expected)
        << " in the model, " << shape_str(mismatched[i].found) << " in the state dict\n";
  more(mismatched.size(), "with another shape");
  return out.str();
}

// ---- registration -----------------------------------------------------------------------------------------

Tensor Module::register_parameter(std::string name, Tensor value) {
  check_name(name, "parameter");
  value.set_requires_grad(true);
  parameters_.emplace_back(std::move(name), value);
  return value;
}

Tensor Module::register_buffer(std::string name, Tensor value) {
  check_name(name, "buffer");
  buffers_.emplace_back(std::move(name), value);
  return value;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_name(name, "module");
  TL_CHECK(module != nullptr, ValueError, "register_module: '", name, "' is null");
  for (const auto& [existing, _] : children_)
    TL_CHECK(existing != name, ValueError, "register_module: duplicate child '", name, "'");
  children_.emplace_back(std::move(name), std::move(module));
}

// ---- the tree ---------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) const {
  std::vector<std::pair<std::string, Module*>> out{{prefix, const_cast<Module*>(this)}};
  for (const auto& [name, child] : children_) {
    auto below = child->named_modules(join(prefix, name));
    out.insert(out.end(), below.begin(), below.end());
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [path, module] : named_modules())
    for (const auto& [name, t] : module->parameters_) out.emplace_back(join(path, name), t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [path, module] : named_modules())
    for (const auto& [name, t] : module->buffers_) out.emplace_back(join(path, name), t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

Module& Module::submodule(const std::string& path) {
  Module* current = this;
  std::string rest = path;
  while (!rest.empty()) {
    const std::size_t dot = rest.find('.');
    const std::string head = rest.substr(0, dot);
    rest = dot == std::string::npos ? "" : rest.substr(dot + 1);
    Module* next = nullptr;
    for (auto& [name, child] : current->children_)
      if (name == head) next = child.get();
    TL_CHECK(next != nullptr, ValueError, "no module '", path, "' in this ", type_name_, " (no child '", head,
             "')");
    current = next;
  }
  return *current;
}

void Module::replace(const std::string& path, std::shared_ptr<Module> module) {
  TL_CHECK(module != nullptr, ValueError, "replace: the new module for '", path, "' is null");
  const std::size_t dot = path.rfind('.');
  Module& parent = dot == std::string::npos ? *this : submodule(path.substr(0, dot));
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  for (auto& [child_name, child] : parent.children_)
    if (child_name == name) {
      module->train(child->is_training());
      child = std::move(module);
      return;
    }
  throw ValueError(str("replace: no module '", path, "' in this ", type_name_));
}

// ---- modes ------------------------------------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

void Module::to(DType dtype) {
  TL_CHECK(is_floating(dtype), DTypeError, "Module::to: ", dtype_name(dtype), " is not a floating dtype");
  NoGradGuard no_grad;
  for (auto named : {named_parameters(), named_buffers()})
    for (const auto& [_, t] : named)
      if (is_floating(t.dtype()) && t.dtype() != dtype) t.set_data(t.to(dtype));
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (auto named : {named_parameters(), named_buffers()})
    for (const auto& [_, t] : named)
      if (is_floating(t.dtype()) && t.device() != device) t.set_data(t.to(device));
}

Device Module::device() const {
  const auto params = named_parameters();
  return params.empty() ? Device::cpu() : params.front().second.device();
}

// ---- state ------------------------------------------------------------------------------------------------

StateDict Module::state_dict() const {
  StateDict out;
  // Per module: its parameters, then its buffers, then its children (PyTorch's order).
  for (const auto& [path, module] : named_modules()) {
    for (const auto& [name, t] : module->parameters_) out.insert(join(path, name), t);
    for (const auto& [name, t] : module->buffers_) out.insert(join(path, name), t);
  }
  return out;
}

LoadReport Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict mine = state_dict();
  LoadReport report;
  for (const auto& [name, t] : mine) {
    const Tensor* given = state.find(name);
    if (!given) {
      report.missing.push_back(name);
    } else if (given->shape() != t.shape()) {
      report.mismatched.push_back({name, t.shape(), given->shape()});
    }
  }
  for (const auto& [name, _] : state)
    if (!mine.contains(name)) report.unexpected.push_back(name);
  if (strict && !report.complete())
    throw ValueError("load_state_dict (strict) failed:\n" + report.summary() +
                     "nothing was loaded; pass strict = false to load the entries that match");

  NoGradGuard no_grad;
  for (const auto& [name, t] : mine) {
    const Tensor* given = state.find(name);
    if (!given || given->shape() != t.shape()) continue;
    t.copy_(*given);
    ++report.loaded;
  }
  return report;
}

// ---- freezing ---------------------------------------------------------------------------------------------

std::size_t Module::set_requires_grad_matching(const std::string& pattern, bool value, const char* verb) {
  std::size_t matched = 0;
  for (const auto& [name, t] : named_parameters()) {
    if (!glob_match(pattern, name) && !glob_match(pattern + ".*", name)) continue;
    t.set_requires_grad(value);
    if (!value) t.zero_grad();  // a frozen parameter keeps no stale gradient
    ++matched;
  }
  TL_CHECK(matched > 0, ValueError, verb, "('", pattern, "'): no parameter of this ", type_name_,
           " matches (names look like '", named_parameters().empty() ? "" : named_parameters().front().first,
           "')");
  return matched;
}

std::size_t Module::freeze(const std::string& pattern) {
  return set_requires_grad_matching(pattern, false, "freeze");
}

std::size_t Module::unfreeze(const std::string& pattern) {
  return set_requires_grad_matching(pattern, true, "unfreeze");
}

std::int64_t Module::parameter_count(bool trainable_only) const {
  std::int64_t n = 0;
  for (const auto& [_, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

std::string Module::describe() const {
  std::ostringstream out;
  for (const auto& [path, module] : named_modules()) {
    const std::size_t depth =
        path.empty() ? 0 : 1 + static_cast<std::size_t>(std::count(path.begin(), path.end(), '.'));
    out << std::string(2 * depth, ' ') << (path.empty() ? "" : path.substr(path.rfind('.') + 1) + ": ")
        << module->type_name();
    const std::string extra = module->extra_description();
    if (!extra.empty()) out << "(" << extra << ")";
    out << "\n";
  }
  return out.str();
}

}  // namespace tl
