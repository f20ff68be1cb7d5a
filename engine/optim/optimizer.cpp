// What every optimizer shares: the groups and their checks, the parameters ready for a step, and the layout
// of the saved state (group entries here, per-parameter buffers by the subclasses).
#include "engine/optim/optimizer.h"

#include <cmath>
#include <set>
#include <sstream>

#include "engine/error.h"

namespace tl::optim {
namespace {

constexpr const char* kGroupPrefix = "group.";

std::string group_names(const std::vector<ParamGroup>& groups) {
  std::ostringstream out;
  for (std::size_t i = 0; i < groups.size(); ++i) out << (i ? ", " : "") << "'" << groups[i].name << "'";
  return groups.empty() ? std::string("none") : out.str();
}

void check_settings(const ParamGroup& g) {
  TL_CHECK(!g.name.empty(), ValueError, "optimizer: a parameter group needs a name");
  TL_CHECK(std::isfinite(g.lr) && g.lr >= 0, ValueError, "optimizer: group '", g.name, "' has learning rate ",
           g.lr, " (must be finite and at least 0)");
  TL_CHECK(std::isfinite(g.weight_decay) && g.weight_decay >= 0, ValueError, "optimizer: group '", g.name,
           "' has weight decay ", g.weight_decay, " (must be finite and at least 0)");
}

Tensor scalar(double value) {
  return tensor(std::vector<double>{value}, {1});
}

// The single value of a one-element entry, which must be finite.
double read_scalar(const std::string& entry, const Tensor& t) {
  TL_CHECK(t.numel() == 1 && t.dtype() != DType::Int64, ValueError, "optimizer state: '", entry,
           "' must hold one floating-point value, got ", t.description());
  const double v = t.item<double>();
  TL_CHECK(std::isfinite(v) && v >= 0, ValueError, "optimizer state: '", entry, "' is ", v,
           " (must be finite and at least 0)");
  return v;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups) {
  // One group at a time through add_group, so a parameter in two groups is caught like a late duplicate.
  for (ParamGroup& g : groups) add_group(std::move(g));
}

void Optimizer::zero_grad() {
  for (const ParamGroup& g : groups_)
    for (const auto& [_, p] : g.params) p.zero_grad();
}

bool Optimizer::has_group(const std::string& name) const {
  for (const ParamGroup& g : groups_)
    if (g.name == name) return true;
  return false;
}

ParamGroup& Optimizer::group(const std::string& name) {
  for (ParamGroup& g : groups_)
    if (g.name == name) return g;
  throw ValueError(
      str(kind(), " optimizer: no parameter group '", name, "' (groups: ", group_names(groups_), ")"));
}

const ParamGroup& Optimizer::group(const std::string& name) const {
  return const_cast<Optimizer*>(this)->group(name);
}

const Tensor* Optimizer::find_param(const std::string& name) const {
  for (const ParamGroup& g : groups_)
    for (const auto& [n, p] : g.params)
      if (n == name) return &p;
  return nullptr;
}

void Optimizer::check_new_params(const std::vector<std::pair<std::string, Tensor>>& params,
                                 const char* what) const {
  std::set<std::string> seen;
  std::set<const TensorImpl*> seen_tensors;
  for (const auto& [name, p] : params) {
    TL_CHECK(!name.empty(), ValueError, "optimizer: ", what, ": a parameter without a name");
    TL_CHECK(p.defined(), ValueError, "optimizer: ", what, ": parameter '", name, "' is an undefined tensor");
    TL_CHECK(is_floating(p.dtype()), DTypeError, "optimizer: ", what, ": parameter '", name,
             "' must be float32 or float64, got ", p.description());
    TL_CHECK(seen.insert(name).second && seen_tensors.insert(p.impl_ptr()).second, ValueError,
             "optimizer: ", what, ": parameter '", name, "' is listed twice");
    for (const ParamGroup& g : groups_)
      for (const auto& [n, q] : g.params)
        TL_CHECK(n != name && !q.is_same(p), ValueError, "optimizer: ", what, ": parameter '", name,
                 "' is already in group '", g.name, "'", n != name ? str(" as '", n, "'") : std::string());
  }
}

void Optimizer::add_params(const std::string& group_name,
                           const std::vector<std::pair<std::string, Tensor>>& params) {
  ParamGroup& g = group(group_name);
  check_new_params(params, "add_params");
  // Fresh state needs nothing: a parameter without buffers starts as on its first step.
  g.params.insert(g.params.end(), params.begin(), params.end());
}

void Optimizer::add_group(ParamGroup group) {
  check_settings(group);
  TL_CHECK(!has_group(group.name), ValueError, "optimizer: there is already a parameter group '", group.name,
           "'");
  check_new_params(group.params, str("group '", group.name, "'").c_str());
  group.initial_lr = group.lr;
  groups_.push_back(std::move(group));
}

std::vector<Optimizer::Slot> Optimizer::params_with_grad() const {
  std::vector<Slot> out;
  for (const ParamGroup& g : groups_) {
    for (const auto& [name, p] : g.params) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      TL_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype(), Error, kind(), ": the gradient of '",
               name, "' is ", grad.description(), " but the parameter is ", p.description());
      TL_CHECK(grad.device() == p.device(), DeviceError, kind(), ": the gradient of '", name, "' is on ",
               grad.device().str(), " but the parameter is on ", p.device().str());
      TL_CHECK(p.is_contiguous(), Error, kind(), ": parameter '", name, "' (", p.description(),
               ") is not contiguous; the update writes it in place");
      out.push_back({&g, &name, p, grad.contiguous()});
    }
  }
  return out;
}

Tensor Optimizer::check_buffer(const std::string& param, const std::string& name, const Tensor& buffer,
                               const Shape& shape, DType dtype) {
  TL_CHECK(buffer.shape() == shape, ValueError, "optimizer state: '", param, ".", name, "' has shape ",
           shape_str(buffer.shape()), " but must have ", shape_str(shape),
           shape == Shape{1} ? std::string() : str(" (the shape of parameter '", param, "')"));
  TL_CHECK(dtype == DType::Int64 ? buffer.dtype() == DType::Int64 : is_floating(buffer.dtype()), ValueError,
           "optimizer state: '", param, ".", name, "' is ", buffer.description(), ", expected ",
           dtype_name(dtype));
  return buffer.detach().to(dtype).clone();
}

StateDict Optimizer::state() const {
  StateDict out;
  for (const ParamGroup& g : groups_) {
    out.insert(str(kGroupPrefix, g.name, ".lr"), scalar(g.lr));
    out.insert(str(kGroupPrefix, g.name, ".initial_lr"), scalar(g.initial_lr));
  }
  // Buffers in group order, so the file reads like the model.
  const Buffers buffers = save_buffers();
  for (const ParamGroup& g : groups_) {
    for (const auto& [name, _] : g.params) {
      const auto it = buffers.find(name);
      if (it == buffers.end()) continue;
      for (const std::string& b : buffer_names()) {
        const auto entry = it->second.find(b);
        if (entry != it->second.end()) out.insert(str(name, ".", b), entry->second);
      }
    }
  }
  return out;
}

void Optimizer::load_state(const StateDict& state) {
  std::map<std::string, std::pair<std::optional<double>, std::optional<double>>> lrs;  // lr, initial_lr
  Buffers buffers;
  const std::vector<std::string> known = buffer_names();
  for (const auto& [entry, t] : state) {
    // "group.<name>.lr" / "group.<name>.initial_lr" (a group name may hold dots).
    if (entry.rfind(kGroupPrefix, 0) == 0 && (ends_with(entry, ".lr") || ends_with(entry, ".initial_lr"))) {
      const bool initial = ends_with(entry, ".initial_lr");
      const std::size_t prefix = std::string(kGroupPrefix).size();
      const std::size_t suffix = std::string(initial ? ".initial_lr" : ".lr").size();
      const std::string name = entry.size() > prefix + suffix
                                   ? entry.substr(prefix, entry.size() - prefix - suffix)
                                   : std::string();
      TL_CHECK(has_group(name), ValueError, "optimizer state: '", entry, "' is for group '", name,
               "', which this ", kind(), " optimizer does not have (groups: ", group_names(groups_), ")");
      (initial ? lrs[name].second : lrs[name].first) = read_scalar(entry, t);
      continue;
    }
    const std::size_t dot = entry.rfind('.');
    const std::string param = dot == std::string::npos ? entry : entry.substr(0, dot);
    const std::string buffer = dot == std::string::npos ? std::string() : entry.substr(dot + 1);
    bool is_known = false;
    for (const std::string& k : known) is_known = is_known || k == buffer;
    if (!is_known) {
      std::ostringstream list;
      for (std::size_t i = 0; i < known.size(); ++i) list << (i ? ", " : "") << known[i];
      throw ValueError(str("optimizer state: '", entry, "' is not an entry of ", kind(),
                           " state (per parameter: ", known.empty() ? std::string("none") : list.str(),
                           "; per group: group.<name>.lr, group.<name>.initial_lr)"));
    }
    TL_CHECK(find_param(param) != nullptr, ValueError, "optimizer state: '", entry, "' is for parameter '",
             param, "', which is in no group of this optimizer");
    buffers[param][buffer] = t;
  }
  for (const ParamGroup& g : groups_) {
    const auto& [lr, initial_lr] = lrs[g.name];
    const char* missing = !lr ? ".lr" : !initial_lr ? ".initial_lr" : nullptr;
    TL_CHECK(missing == nullptr, ValueError, "optimizer state: no entry '", kGroupPrefix, g.name, missing,
             "' for group '", g.name, "'; was the state saved by an optimizer with other groups?");
  }
  load_buffers(buffers);  // throws before changing anything
  for (ParamGroup& g : groups_) {
    g.lr = *lrs[g.name].first;
    g.initial_lr = *lrs[g.name].second;
  }
}

}  // namespace tl::optim
