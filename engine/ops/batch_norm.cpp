// batch_norm2d in training mode (batch statistics, running statistics updated in place) and eval mode
// (running statistics as constants). Frozen BatchNorm layers run in eval mode, so their statistics never
// move.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm2d";
  ops::require_floating(x, op, "the input");
  TL_CHECK(x.dim() == 4 || x.dim() == 2, ShapeError, op, ": the input must be (N, C, H, W) or (N, C), got ",
           x.description());
  const std::int64_t C = x.size(1);
  for (auto [t, what] : {std::pair{gamma, "weight (gamma)"}, std::pair{beta, "bias (beta)"}}) {
    ops::require_like(t, x, op, what);
    ops::require_shape(t, {C}, op, what);
  }
  const bool have_running = running_mean.defined() || running_var.defined();
  if (have_running || !training) {
    for (auto [t, what] : {std::pair{running_mean, "running_mean"}, std::pair{running_var, "running_var"}}) {
      ops::require_like(t, x, op, what);
      ops::require_shape(t, {C}, op, what);
      TL_CHECK(t.is_contiguous(), ShapeError, op, ": ", what, " must be contiguous");
    }
  }
  TL_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, ValueError, op,
           ": needs eps > 0 and momentum in [0, 1], got eps ", eps, ", momentum ", momentum);
  const kernels::BatchNormShape s{x.size(0), C, x.dim() == 4 ? x.size(2) * x.size(3) : 1};
  TL_CHECK(!training || s.batch * s.spatial > 1, ShapeError, op,
           ": training mode needs more than one value per channel, got ", x.description(),
           " (use eval mode, or a batch larger than 1)");

  const Tensor xc = x.contiguous().detach(), gc = gamma.contiguous().detach(), bc = beta.contiguous();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  const auto ctx = ops::context_for(x);
  if (!training) {
    const Tensor mean_c = running_mean.detach(), var_c = running_var.detach();
    visit_floating(x.dtype(), op, [&]<typename T>() {
      kernels::batch_norm_forward_eval<T>(ctx, s, xc.device_data<T>(), gc.device_data<T>(),
                                          bc.device_data<T>(), mean_c.device_data<T>(),
                                          var_c.device_data<T>(), eps, y.device_data<T>());
    });
    return record("batch_norm2d_eval", y, {x, gamma, beta},
                  [s, xc, gc, mean_c, var_c, eps](const Tensor& g, const std::vector<bool>& needs) {
                    const Tensor dyc = g.contiguous();
                    Tensor dx = needs[0] ? empty(xc.shape(), xc.dtype(), xc.device()) : Tensor();
                    Tensor dgamma = needs[1] ? empty({s.channels}, xc.dtype(), xc.device()) : Tensor();
                    Tensor dbeta = needs[2] ? empty({s.channels}, xc.dtype(), xc.device()) : Tensor();
                    visit_floating(xc.dtype(), "batch_norm2d backward", [&]<typename T>() {
                      kernels::batch_norm_backward_eval<T>(
                          ops::context_for(dyc), s, xc.device_data<T>(), dyc.device_data<T>(),
                          gc.device_data<T>(), mean_c.device_data<T>(), var_c.device_data<T>(), eps,
                          dx.defined() ? dx.device_data<T>() : nullptr,
                          dgamma.defined() ? dgamma.device_data<T>() : nullptr,
                          dbeta.defined() ? dbeta.device_data<T>() : nullptr);
                    });
                    return std::vector<Tensor>{dx, dgamma, dbeta};
                  });
  }

  Tensor save_mean = empty({C}, x.dtype(), x.device()), save_invstd = empty({C}, x.dtype(), x.device());
  visit_floating(x.dtype(), op, [&]<typename T>() {
    kernels::batch_norm_forward_train<T>(
        ctx, s, xc.device_data<T>(), gc.device_data<T>(), bc.device_data<T>(), eps, momentum,
        have_running ? running_mean.device_data<T>() : nullptr,
        have_running ? running_var.device_data<T>() : nullptr, y.device_data<T>(), save_mean.device_data<T>(),
        save_invstd.device_data<T>());
  });
  return record("batch_norm2d_train", y, {x, gamma, beta},
                [s, xc, gc, save_mean, save_invstd](const Tensor& g, const std::vector<bool>& needs) {
                  const Tensor dyc = g.contiguous();
                  Tensor dx = needs[0] ? empty(xc.shape(), xc.dtype(), xc.device()) : Tensor();
                  Tensor dgamma = needs[1] ? empty({s.channels}, xc.dtype(), xc.device()) : Tensor();
                  Tensor dbeta = needs[2] ? empty({s.channels}, xc.dtype(), xc.device()) : Tensor();
                  visit_floating(xc.dtype(), "batch_norm2d backward", [&]<typename T>() {
                    kernels::batch_norm_backward_train<T>(
                        ops::context_for(dyc), s, xc.device_data<T>(), dyc.device_data<T>(),
                        gc.device_data<T>(), save_mean.device_data<T>(), save_invstd.device_data<T>(),
                        dx.defined() ? dx.device_data<T>() : nullptr,
                        dgamma.defined() ? dgamma.device_data<T>() : nullptr,
                        dbeta.defined() ? dbeta.device_data<T>() : nullptr);
                  });
                  return std::vector<Tensor>{dx, dgamma, dbeta};
                });
}

}  // namespace tl
