// Element-wise activations and the squeeze-excitation channel scaling.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {
namespace {

Tensor activation(const Tensor& x, kernels::Activation a) {
  const char* op = kernels::activation_name(a);
  ops::require_floating(x, op, "the input");
  const Tensor xc = x.contiguous().detach();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  visit_floating(x.dtype(), op, [&]<typename T>() {
    kernels::activation_forward<T>(ops::context_for(x), a, x.numel(), xc.device_data<T>(),
                                   y.device_data<T>());
  });
  return record(op, y, {x}, [xc, a](const Tensor& g, const std::vector<bool>&) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(xc.shape(), xc.dtype(), xc.device());
    visit_floating(xc.dtype(), "activation backward", [&]<typename T>() {
      kernels::activation_backward<T>(ops::context_for(gc), a, xc.numel(), xc.device_data<T>(),
                                      gc.device_data<T>(), dx.device_data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor relu(const Tensor& x) {
  return activation(x, kernels::Activation::ReLU);
}
Tensor relu6(const Tensor& x) {
  return activation(x, kernels::Activation::ReLU6);
}
Tensor hardswish(const Tensor& x) {
  return activation(x, kernels::Activation::HardSwish);
}
Tensor hardsigmoid(const Tensor& x) {
  return activation(x, kernels::Activation::HardSigmoid);
}
Tensor sigmoid(const Tensor& x) {
  return activation(x, kernels::Activation::Sigmoid);
}
Tensor silu(const Tensor& x) {
  return activation(x, kernels::Activation::SiLU);
}

Tensor channel_mul(const Tensor& x, const Tensor& scale) {
  const char* op = "channel_mul";
  ops::require_floating(x, op, "the input");
  ops::require_dim(x, 4, op, "the input (N, C, H, W)");
  ops::require_like(scale, x, op, "the scale");
  const std::int64_t N = x.size(0), C = x.size(1), spatial = x.size(2) * x.size(3);
  TL_CHECK(scale.shape() == Shape({N, C, 1, 1}) || scale.shape() == Shape({N, C}), ShapeError, op,
           ": the scale must have shape ", shape_str({N, C, 1, 1}), " or ", shape_str({N, C}),
           " for an input ", x.description(), ", got ", scale.description());
  const Tensor xc = x.contiguous().detach(), sc = scale.contiguous().detach();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  visit_floating(x.dtype(), op, [&]<typename T>() {
    kernels::channel_mul_forward<T>(ops::context_for(x), N * C, spatial, xc.device_data<T>(),
                                    sc.device_data<T>(), y.device_data<T>());
  });
  return record(op, y, {x, scale}, [xc, sc, N, C, spatial](const Tensor& g, const std::vector<bool>& needs) {
    const Tensor gc = g.contiguous();
    Tensor dx = needs[0] ? empty(xc.shape(), xc.dtype(), xc.device()) : Tensor();
    Tensor ds = needs[1] ? empty(sc.shape(), sc.dtype(), sc.device()) : Tensor();
    visit_floating(xc.dtype(), "channel_mul backward", [&]<typename T>() {
      kernels::channel_mul_backward<T>(
          ops::context_for(gc), N * C, spatial, xc.device_data<T>(), sc.device_data<T>(), gc.device_data<T>(),
          dx.defined() ? dx.device_data<T>() : nullptr, ds.defined() ? ds.device_data<T>() : nullptr);
    });
    return std::vector<Tensor>{dx, ds};
  });
}

}  // namespace tl
