// Adam and AdamW: torch.optim.Adam / AdamW's update with bias correction (kernels' adam_update). Each
// parameter counts its own steps, as torch does, so a parameter that joined late (gradual unfreezing) is
// bias-corrected from its own first step.
#include <cmath>
#include <unordered_map>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/optim/optimizer.h"
#include "kernels/ops.h"

namespace tl::optim {
namespace {

constexpr const char* kExpAvg = "exp_avg";
constexpr const char* kExpAvgSq = "exp_avg_sq";
constexpr const char* kStep = "step";

struct Moments {
  Tensor exp_avg, exp_avg_sq;
  std::int64_t step = 0;
};

class Adam final : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
      : Optimizer(std::move(groups)), options_(options) {
    TL_CHECK(std::isfinite(options.eps) && options.eps >= 0, ValueError, kind(), ": eps ", options.eps,
             " must be at least 0");
    for (const ParamGroup& g : groups_) check_group(g);
  }

  std::string kind() const override { return options_.decoupled_weight_decay ? "adamw" : "adam"; }

  void step() override {
    NoGradGuard no_grad;
    for (const Slot& slot : params_with_grad()) {
      check_group(*slot.group);  // groups() is writable: a group's betas may have changed since
      auto it = moments_.find(*slot.name);
      if (it == moments_.end()) {
        const Tensor& p = slot.param;
        it = moments_
                 .emplace(*slot.name, Moments{zeros(p.shape(), p.dtype(), p.device()),
                                              zeros(p.shape(), p.dtype(), p.device()), 0})
                 .first;
      }
      Moments& m = it->second;
      TL_CHECK(m.exp_avg.dtype() == slot.param.dtype() && m.exp_avg.shape() == slot.param.shape(), Error,
               kind(), ": the moments of '", *slot.name, "' are ", m.exp_avg.description(),
               " but the parameter is now ", slot.param.description());
      ++m.step;
      const std::array<double, 2> betas = betas_of(*slot.group);
      kernels::AdamStep s;
      s.lr = slot.group->lr;
      s.beta1 = betas[0];
      s.beta2 = betas[1];
      s.eps = options_.eps;
      s.weight_decay = slot.group->weight_decay;
      s.decoupled = options_.decoupled_weight_decay;
      s.step = m.step;
      visit_floating(slot.param.dtype(), kind().c_str(), [&]<typename T>() {
        kernels::adam_update<T>(
            kernels::Context::current(slot.param.device()), s, slot.param.numel(),
            static_cast<T*>(slot.param.raw_data()), static_cast<const T*>(slot.grad.raw_data()),
            static_cast<T*>(m.exp_avg.raw_data()), static_cast<T*>(m.exp_avg_sq.raw_data()));
      });
    }
  }

 protected:
  std::vector<std::string> buffer_names() const override { return {kExpAvg, kExpAvgSq, kStep}; }

  Buffers save_buffers() const override {
    Buffers out;
    for (const auto& [name, m] : moments_) {
      out[name][kExpAvg] = m.exp_avg.clone();
      out[name][kExpAvgSq] = m.exp_avg_sq.clone();
      out[name][kStep] = tensor(std::vector<std::int64_t>{m.step}, {1});
    }
    return out;
  }

  void load_buffers(const Buffers& buffers) override {
    std::unordered_map<std::string, Moments> loaded;
    for (const auto& [name, entries] : buffers) {
      for (const char* b : {kExpAvg, kExpAvgSq, kStep})
        TL_CHECK(entries.count(b), ValueError, "optimizer state: '", name, ".", b, "' is missing (", kind(),
                 " keeps exp_avg, exp_avg_sq and step for every parameter it has updated)");
      const Tensor& p = *find_param(name);
      Moments m;
      m.exp_avg = check_buffer(name, kExpAvg, entries.at(kExpAvg), p.shape(), p.dtype()).to(p.device());
      m.exp_avg_sq =
          check_buffer(name, kExpAvgSq, entries.at(kExpAvgSq), p.shape(), p.dtype()).to(p.device());
      m.step = check_buffer(name, kStep, entries.at(kStep), {1}, DType::Int64).item<std::int64_t>();
      TL_CHECK(m.step >= 1, ValueError, "optimizer state: '", name, ".", kStep, "' is ", m.step,
               " (a parameter with moments has taken at least one step)");
      loaded.emplace(name, std::move(m));
    }
    moments_ = std::move(loaded);
  }

 private:
  std::array<double, 2> betas_of(const ParamGroup& g) const { return g.betas.value_or(options_.betas); }

  void check_group(const ParamGroup& g) const {
    const std::array<double, 2> betas = betas_of(g);
    for (int i = 0; i < 2; ++i)
      TL_CHECK(betas[i] >= 0 && betas[i] < 1, ValueError, kind(), ": group '", g.name, "' has beta", i + 1,
               " ", betas[i], " (must be in [0, 1))");
  }

  AdamOptions options_;
  std::unordered_map<std::string, Moments> moments_;  // by parameter name; absent until the first step
};

}  // namespace

std::unique_ptr<Optimizer> make_adam(std::vector<ParamGroup> groups, const AdamOptions& options) {
  return std::make_unique<Adam>(std::move(groups), options);
}

}  // namespace tl::optim
