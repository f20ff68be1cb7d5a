// linear: y = x w^T + b, with backward GEMMs only for the inputs that need gradients.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  ops::require_floating(x, op, "the input");
  ops::require_dim(x, 2, op, "the input (rows, in_features)");
  ops::require_like(weight, x, op, "the weight");
  ops::require_dim(weight, 2, op, "the weight (out_features, in_features)");
  TL_CHECK(weight.size(1) == x.size(1), ShapeError, op, ": the input ", x.description(), " has ", x.size(1),
           " features, the weight ", weight.description(), " expects ", weight.size(1));
  const std::int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
  if (bias.defined()) {
    ops::require_like(bias, x, op, "the bias");
    ops::require_shape(bias, {out}, op, "the bias");
  }
  const Tensor xc = x.contiguous().detach(), wc = weight.contiguous().detach();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = empty({rows, out}, x.dtype(), x.device());
  visit_floating(x.dtype(), op, [&]<typename T>() {
    kernels::linear_forward<T>(ops::context_for(x), rows, in, out, xc.device_data<T>(), wc.device_data<T>(),
                               ops::cdata<T>(bc), y.device_data<T>());
  });
  return record(
      op, y, {x, weight, bias}, [xc, wc, rows, in, out](const Tensor& g, const std::vector<bool>& needs) {
        const Tensor gc = g.contiguous();
        Tensor dx, dw, db;
        if (needs[0]) dx = empty({rows, in}, xc.dtype(), xc.device());
        if (needs[1]) dw = empty({out, in}, xc.dtype(), xc.device());
        if (needs[2]) db = empty({out}, xc.dtype(), xc.device());
        visit_floating(gc.dtype(), "linear backward", [&]<typename T>() {
          kernels::linear_backward<T>(
              ops::context_for(gc), rows, in, out, xc.device_data<T>(), wc.device_data<T>(),
              gc.device_data<T>(), dx.defined() ? dx.device_data<T>() : nullptr,
              dw.defined() ? dw.device_data<T>() : nullptr, db.defined() ? db.device_data<T>() : nullptr);
        });
        return std::vector<Tensor>{dx, dw, db};
      });
}

}  // namespace tl
