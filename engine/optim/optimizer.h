// Optimizers over parameter groups, as torch.optim does: each group has its own learning rate, weight decay
// and (optionally) momentum or betas; a parameter without a gradient is skipped and its state does not
// advance. State (momentum buffers, Adam moments, step counts) is keyed by parameter name, so it saves into
// checkpoints and restores exactly. The updates are torch 1.13's formulas (kernels/ops.h: sgd_update,
// adam_update).
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/state_dict.h"
#include "engine/tensor.h"

namespace tl::optim {

struct ParamGroup {
  std::string name;  // "layer4", "fc", "rest"; shown in progress lines and metrics
  std::vector<std::pair<std::string, Tensor>> params;  // full parameter names and the tensors
  double lr = 1e-3;
  double initial_lr = 1e-3;  // what schedules scale (set to lr when the group joins the optimizer)
  double weight_decay = 0.0;
  // Per-group overrides of the optimizer's options (torch allows any option per group); unset means the
  // optimizer's own. momentum applies to SGD, betas to Adam/AdamW; the other kind ignores it.
  std::optional<double> momentum;
  std::optional<std::array<double, 2>> betas;
};

struct SgdOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

struct AdamOptions {
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  bool decoupled_weight_decay = false;  // AdamW
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient, under NoGradGuard. Throws Error naming a parameter
  // whose gradient has another shape or dtype, or that is not contiguous.
  virtual void step() = 0;
  // Drops every parameter's gradient (the next backward allocates fresh ones).
  void zero_grad();

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  bool has_group(const std::string& name) const;
  // Throws ValueError naming the group and listing the known ones.
  ParamGroup& group(const std::string& name);
  const ParamGroup& group(const std::string& name) const;

  // Adds parameters to the existing group named `group` (gradual unfreezing): they take its lr and weight
  // decay and start with fresh state (no momentum, Adam step 0), as in torch when a parameter joins a group.
  // Throws ValueError for an unknown group or a parameter already present (by name or by tensor) in any
  // group.
  void add_params(const std::string& group, const std::vector<std::pair<std::string, Tensor>>& params);
  // Adds a whole group (torch's add_param_group): for a group whose parameters were all frozen when the
  // optimizer was built. Its initial_lr is set to its lr; a schedule scales it from the next Scheduler::apply
  // on, so call apply for the current epoch after adding it mid-run. Throws ValueError for a name already in
  // use, a parameter already present, or a negative lr or weight decay.
  void add_group(ParamGroup group);

  // "sgd", "adam", "adamw".
  virtual std::string kind() const = 0;
  // Everything needed to continue exactly, as a snapshot (copies):
  //   "group.<name>.lr", "group.<name>.initial_lr"   float64 [1], per group
  //   "<param>.momentum_buffer"                       SGD with momentum, after the parameter's first step
  //   "<param>.exp_avg", "<param>.exp_avg_sq"         Adam, in the parameter's dtype and shape
  //   "<param>.step"                                  Adam, int64 [1]: the parameter's update count
  // A parameter that never had a gradient has no entries. Hyperparameters other than lr are not stored: they
  // come from the run's configuration. For a bit-exact resume the float64 entries must be stored as float64.
  StateDict state() const;
  // Restores state(): every group's lr and initial_lr, and the per-parameter buffers (parameters absent from
  // `state` start fresh). Checks everything before changing anything; throws ValueError naming the entry that
  // does not fit: an unknown parameter or group, a group of this optimizer missing from `state`, a wrong
  // shape, a buffer another kind of optimizer keeps, an incomplete set of Adam buffers.
  void load_state(const StateDict& state);

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups);

  // A parameter ready for an update: its group, its name, the tensor and its contiguous gradient.
  struct Slot {
    const ParamGroup* group;
    const std::string* name;
    Tensor param, grad;
  };
  // Every parameter that has a gradient, in group order; throws Error naming one whose gradient does not fit.
  std::vector<Slot> params_with_grad() const;

  // Per-parameter buffers by parameter name, then by buffer name ("exp_avg").
  using Buffers = std::map<std::string, std::map<std::string, Tensor>>;
  // The buffer names this optimizer keeps per parameter; load_state refuses others.
  virtual std::vector<std::string> buffer_names() const = 0;
  virtual Buffers save_buffers() const = 0;
  // Replaces the whole per-parameter state. Names are known to be parameters of this optimizer and
  // buffer_names; check shapes and completeness (check_buffer) and throw before changing anything.
  virtual void load_buffers(const Buffers& buffers) = 0;
  // Throws ValueError unless `buffer` (the entry "<param>.<name>") has `shape`; returns it contiguous, in
  // `dtype`, as a copy that shares nothing with the caller's state dict.
  static Tensor check_buffer(const std::string& param, const std::string& name, const Tensor& buffer,
                             const Shape& shape, DType dtype);
  // The parameter named `name`, or null.
  const Tensor* find_param(const std::string& name) const;

  std::vector<ParamGroup> groups_;

 private:
  void check_new_params(const std::vector<std::pair<std::string, Tensor>>& params, const char* what) const;
};

// SGD with momentum (PyTorch's formulation: buf = momentum * buf + (1 - dampening) * g, the first step sets
// buf = g), Nesterov, and L2 weight decay added to the gradient. A group's momentum overrides
// options.momentum.
std::unique_ptr<Optimizer> make_sgd(std::vector<ParamGroup> groups, const SgdOptions& options);
// Adam (L2 weight decay added to the gradient) or, with decoupled_weight_decay, AdamW (p -= lr * wd * p),
// with PyTorch's bias correction. A group's betas override options.betas.
std::unique_ptr<Optimizer> make_adam(std::vector<ParamGroup> groups, const AdamOptions& options);

}  // namespace tl::optim
