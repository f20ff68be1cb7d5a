// Parameter groups from a model and the user's group specs: the seed's
//   optim.Adam([{"params": model.layer4.parameters(), "lr": 1e-4}, {"params": model.fc.parameters(), "lr":
//   1e-3}],
//              lr=1e-5)
// is GroupPlanner(model, {{"layer4", 1e-4}, {"fc", 1e-3}}, {1e-5, weight_decay}).build().
//
// The rule, shared by build() and group_of() so gradual unfreezing puts a parameter where build() would have:
//  - a parameter belongs to the first spec whose pattern matches its full name (a glob, or a module path that
//    matches everything under it, exactly as Module::freeze), else to the group "rest" with the base lr;
//  - with weight decay > 0 and decay_norm_and_bias off, BatchNorm weights and biases and every bias go to the
//    twin group "<name>.no_decay" (same lr, weight decay 0);
//  - build() takes only trainable (requires_grad) parameters and drops empty groups; groups come in spec
//  order,
//    each followed by its twin, then "rest" and "rest.no_decay".
#pragma once

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/module.h"
#include "engine/optim/optimizer.h"

namespace tl::optim {

struct GroupSpec {
  GroupSpec() = default;
  GroupSpec(std::string pattern_, double lr_, std::string name_ = {})
      : pattern(std::move(pattern_)), lr(lr_), name(std::move(name_)) {}

  std::string pattern;  // "layer4", "fc", "layer4.1.*", "*.bn*"
  double lr = 1e-3;
  std::string name;  // the group's name; empty means the pattern
  // Overrides of the planner's weight decay and of the optimizer's momentum / betas for this group.
  std::optional<double> weight_decay;
  std::optional<double> momentum;
  std::optional<std::array<double, 2>> betas;
};

struct GroupDefaults {
  double base_lr = 1e-3;             // the lr of "rest"
  double weight_decay = 0.0;         // of every group without its own
  bool decay_norm_and_bias = false;  // true: BatchNorm parameters and biases are decayed like the rest
};

class GroupPlanner {
 public:
  // Checks the specs against the model: every pattern must match at least one parameter (frozen ones count)
  // and not only parameters an earlier spec already takes; names must be unique; lrs and weight decays finite
  // and at least 0. Throws ValueError naming the pattern. The model must outlive the planner.
  GroupPlanner(const Module& model, std::vector<GroupSpec> specs, GroupDefaults defaults);

  // The groups of every trainable parameter, empty groups dropped, each with initial_lr = lr.
  std::vector<ParamGroup> build() const;
  // The group a parameter of the model belongs to by the rule, with its settings and no parameters: what
  // Optimizer::add_group needs when that group does not exist yet. Throws ValueError for a name the model
  // lacks.
  ParamGroup group_of(const std::string& param_name) const;
  // Gradual unfreezing: puts every trainable parameter the optimizer does not hold yet into its group
  // (add_params), creating the group first when it is missing (add_group). Returns the names added, in model
  // order. A group created here runs at its spec's lr until the next Scheduler::apply.
  std::vector<std::string> add_unfrozen(Optimizer& optimizer) const;

 private:
  // Which spec (or -1 for "rest") and whether in the no-decay twin.
  struct Placement {
    int spec = -1;
    bool no_decay = false;
  };
  Placement place(const std::string& param_name) const;
  ParamGroup settings(const Placement& at) const;

  const Module& model_;
  std::vector<GroupSpec> specs_;
  GroupDefaults defaults_;
  std::vector<std::string> norm_params_;  // full names of BatchNorm parameters, sorted
};

// GroupPlanner(model, specs, {base_lr, weight_decay, decay_norm_and_bias}).build().
std::vector<ParamGroup> make_param_groups(const Module& model, const std::vector<GroupSpec>& specs,
                                          double base_lr, double weight_decay,
                                          bool decay_norm_and_bias = false);

}  // namespace tl::optim
