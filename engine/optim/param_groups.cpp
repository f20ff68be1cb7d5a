// Parameter groups from group specs: one placement rule for building the optimizer and for parameters
// unfrozen later.
#include "engine/optim/param_groups.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/layers.h"

namespace tl::optim {
namespace {

constexpr const char* kRest = "rest";
constexpr const char* kNoDecay = ".no_decay";

// Module::freeze's rule: a glob on the full name, or a module path covering everything under it.
bool matches(const std::string& pattern, const std::string& name) {
  return glob_match(pattern, name) || glob_match(pattern + ".*", name);
}

bool is_bias(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  return (dot == std::string::npos ? name : name.substr(dot + 1)) == "bias";
}

void check_rate(double value, const char* what, const std::string& owner) {
  TL_CHECK(std::isfinite(value) && value >= 0, ValueError, "parameter groups: ", owner, " has ", what, " ",
           value, " (must be finite and at least 0)");
}

}  // namespace

GroupPlanner::GroupPlanner(const Module& model, std::vector<GroupSpec> specs, GroupDefaults defaults)
    : model_(model), specs_(std::move(specs)), defaults_(defaults) {
  check_rate(defaults_.base_lr, "learning rate", "the base");
  check_rate(defaults_.weight_decay, "weight decay", "the base");

  for (const auto& [path, module] : model.named_modules()) {
    if (dynamic_cast<const BatchNorm2d*>(module) == nullptr) continue;
    for (const auto& [name, _] : module->named_parameters())
      norm_params_.push_back(path.empty() ? name : path + "." + name);
  }
  std::sort(norm_params_.begin(), norm_params_.end());

  const auto params = model.named_parameters();
  std::set<std::string> names{kRest, std::string(kRest) + kNoDecay};
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    GroupSpec& s = specs_[i];
    TL_CHECK(!s.pattern.empty(), ValueError, "parameter groups: group ", i + 1, " has an empty pattern");
    if (s.name.empty()) s.name = s.pattern;
    const std::string owner = str("group '", s.name, "'");
    check_rate(s.lr, "learning rate", owner);
    if (s.weight_decay) check_rate(*s.weight_decay, "weight decay", owner);
    TL_CHECK(names.insert(s.name).second && names.insert(s.name + kNoDecay).second, ValueError,
             "parameter groups: the group name '", s.name, "' is taken (",
             s.name == kRest || s.name == std::string(kRest) + kNoDecay
                 ? "'rest' holds the parameters no pattern matches"
                 : "by an earlier group or its '.no_decay' twin",
             ")");

    std::size_t matched = 0, taken = 0;
    std::string shadowing;
    for (const auto& [name, _] : params) {
      if (!matches(s.pattern, name)) continue;
      ++matched;
      bool earlier = false;
      for (std::size_t j = 0; j < i && !earlier; ++j) {
        earlier = matches(specs_[j].pattern, name);
        if (earlier && shadowing.empty()) shadowing = specs_[j].pattern;
      }
      if (!earlier) ++taken;
    }
    TL_CHECK(matched > 0, ValueError, "parameter groups: pattern '", s.pattern,
             "' matches no parameter of the ", model.type_name(), " (names look like '",
             params.empty() ? "" : params.front().first, "')");
    TL_CHECK(
        taken > 0, ValueError, "parameter groups: pattern '", s.pattern,
        "' matches only parameters that the earlier pattern '", shadowing,
        "' already takes (a parameter goes to the first pattern that matches; list the more specific first)");
  }
}

GroupPlanner::Placement GroupPlanner::place(const std::string& name) const {
  Placement at;
  for (std::size_t i = 0; i < specs_.size() && at.spec < 0; ++i)
    if (matches(specs_[i].pattern, name)) at.spec = static_cast<int>(i);
  const double decay =
      at.spec < 0 ? defaults_.weight_decay : specs_[at.spec].weight_decay.value_or(defaults_.weight_decay);
  at.no_decay = decay > 0 && !defaults_.decay_norm_and_bias &&
                (is_bias(name) || std::binary_search(norm_params_.begin(), norm_params_.end(), name));
  return at;
}

ParamGroup GroupPlanner::settings(const Placement& at) const {
  ParamGroup g;
  const GroupSpec* spec = at.spec < 0 ? nullptr : &specs_[at.spec];
  g.name = std::string(spec ? spec->name : kRest) + (at.no_decay ? kNoDecay : "");
  g.lr = g.initial_lr = spec ? spec->lr : defaults_.base_lr;
  g.weight_decay = at.no_decay ? 0.0
                   : spec      ? spec->weight_decay.value_or(defaults_.weight_decay)
                               : defaults_.weight_decay;
  if (spec) {
    g.momentum = spec->momentum;
    g.betas = spec->betas;
  }
  return g;
}

std::vector<ParamGroup> GroupPlanner::build() const {
  // Slot 2 * spec (+1 for the twin); "rest" after the specs.
  std::vector<ParamGroup> slots(2 * (specs_.size() + 1));
  for (std::size_t i = 0; i < slots.size(); ++i) {
    Placement at;
    at.spec = i / 2 < specs_.size() ? static_cast<int>(i / 2) : -1;
    at.no_decay = i % 2 == 1;
    slots[i] = settings(at);
  }
  for (const auto& [name, p] : model_.named_parameters()) {
    if (!p.requires_grad()) continue;
    const Placement at = place(name);
    const std::size_t spec = at.spec < 0 ? specs_.size() : static_cast<std::size_t>(at.spec);
    slots[2 * spec + (at.no_decay ? 1 : 0)].params.emplace_back(name, p);
  }
  std::vector<ParamGroup> out;
  for (ParamGroup& g : slots)
    if (!g.params.empty()) out.push_back(std::move(g));
  return out;
}

ParamGroup GroupPlanner::group_of(const std::string& param_name) const {
  bool known = false;
  for (const auto& [name, _] : model_.named_parameters()) known = known || name == param_name;
  TL_CHECK(known, ValueError, "parameter groups: the ", model_.type_name(), " has no parameter '", param_name,
           "'");
  return settings(place(param_name));
}

std::vector<std::string> GroupPlanner::add_unfrozen(Optimizer& optimizer) const {
  std::set<std::string> held;
  for (const ParamGroup& g : optimizer.groups())
    for (const auto& [name, _] : g.params) held.insert(name);
  std::vector<std::string> added;
  for (const auto& [name, p] : model_.named_parameters()) {
    if (!p.requires_grad() || held.count(name)) continue;
    ParamGroup g = settings(place(name));
    if (optimizer.has_group(g.name)) {
      optimizer.add_params(g.name, {{name, p}});
    } else {
      g.params = {{name, p}};
      optimizer.add_group(std::move(g));
    }
    added.push_back(name);
  }
  return added;
}

std::vector<ParamGroup> make_param_groups(const Module& model, const std::vector<GroupSpec>& specs,
                                          double base_lr, double weight_decay, bool decay_norm_and_bias) {
  return GroupPlanner(model, specs, GroupDefaults{base_lr, weight_decay, decay_norm_and_bias}).build();
}

}  // namespace tl::optim
