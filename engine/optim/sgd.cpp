// SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's update (kernels' sgd_update).
#include <cmath>
#include <unordered_map>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/optim/optimizer.h"
#include "kernels/ops.h"

namespace tl::optim {
namespace {

constexpr const char* kMomentumBuffer = "momentum_buffer";

class Sgd final : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
      : Optimizer(std::move(groups)), options_(options) {
    TL_CHECK(std::isfinite(options.dampening) && options.dampening >= 0 && options.dampening <= 1, ValueError,
             "sgd: dampening ", options.dampening, " must be in [0, 1]");
    for (const ParamGroup& g : groups_) check_group(g);
  }

  std::string kind() const override { return "sgd"; }

  void step() override {
    NoGradGuard no_grad;
    for (const Slot& slot : params_with_grad()) {
      check_group(*slot.group);  // groups() is writable: a group's momentum may have changed since
      kernels::SgdStep s;
      s.lr = slot.group->lr;
      s.momentum = momentum_of(*slot.group);
      s.dampening = options_.dampening;
      s.weight_decay = slot.group->weight_decay;
      s.nesterov = options_.nesterov;
      Tensor buffer;
      if (s.momentum != 0) {
        auto it = buffers_.find(*slot.name);
        s.first_step = it == buffers_.end();
        if (s.first_step)
          it =
              buffers_.emplace(*slot.name, empty(slot.param.shape(), slot.param.dtype(), slot.param.device()))
                  .first;
        buffer = it->second;
        TL_CHECK(buffer.dtype() == slot.param.dtype() && buffer.shape() == slot.param.shape(), Error,
                 "sgd: the momentum buffer of '", *slot.name, "' is ", buffer.description(),
                 " but the parameter is now ", slot.param.description());
      }
      visit_floating(slot.param.dtype(), "sgd", [&]<typename T>() {
        kernels::sgd_update<T>(kernels::Context::current(slot.param.device()), s, slot.param.numel(),
                               static_cast<T*>(slot.param.raw_data()),
                               static_cast<const T*>(slot.grad.raw_data()),
                               buffer.defined() ? static_cast<T*>(buffer.raw_data()) : nullptr);
      });
    }
  }

 protected:
  std::vector<std::string> buffer_names() const override { return {kMomentumBuffer}; }

  Buffers save_buffers() const override {
    Buffers out;
    for (const auto& [name, buffer] : buffers_) out[name][kMomentumBuffer] = buffer.clone();
    return out;
  }

  void load_buffers(const Buffers& buffers) override {
    std::unordered_map<std::string, Tensor> loaded;
    for (const auto& [name, entries] : buffers) {
      const Tensor& p = *find_param(name);
      loaded.emplace(name,
                     check_buffer(name, kMomentumBuffer, entries.at(kMomentumBuffer), p.shape(), p.dtype())
                         .to(p.device()));
    }
    buffers_ = std::move(loaded);
  }

 private:
  double momentum_of(const ParamGroup& g) const { return g.momentum.value_or(options_.momentum); }

  void check_group(const ParamGroup& g) const {
    const double momentum = momentum_of(g);
    TL_CHECK(std::isfinite(momentum) && momentum >= 0, ValueError, "sgd: group '", g.name, "' has momentum ",
             momentum, " (must be at least 0)");
    TL_CHECK(!options_.nesterov || (momentum > 0 && options_.dampening == 0), ValueError, "sgd: group '",
             g.name, "': Nesterov momentum needs momentum > 0 and dampening 0 (got momentum ", momentum,
             ", dampening ", options_.dampening, ")");
  }

  SgdOptions options_;
  std::unordered_map<std::string, Tensor> buffers_;  // by parameter name; absent until the first step
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(std::vector<ParamGroup> groups, const SgdOptions& options) {
  return std::make_unique<Sgd>(std::move(groups), options);
}

}  // namespace tl::optim
