// Element-wise arithmetic on same-shaped tensors and scalars, and the in-place updates optimizers use.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {
namespace {

using kernels::BinaryOp;

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
  }
  return "?";
}

Tensor binary_values(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  ops::require_floating(a, name, "the first operand");
  ops::require_like(b, a, name, "the second operand");
  TL_CHECK(a.shape() == b.shape(), ShapeError, name, ": shapes ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " differ (tl does not broadcast)");
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  visit_floating(a.dtype(), name, [&]<typename T>() {
    kernels::binary<T>(ops::context_for(a), op, a.numel(), ac.device_data<T>(), bc.device_data<T>(),
                       out.device_data<T>());
  });
  return out;
}

Tensor affine_values(const Tensor& x, double scale, double shift, const char* name) {
  ops::require_floating(x, name, "the input");
  const Tensor xc = x.contiguous();
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  visit_floating(x.dtype(), name, [&]<typename T>() {
    kernels::affine<T>(ops::context_for(x), x.numel(), xc.device_data<T>(), static_cast<T>(scale),
                       static_cast<T>(shift), out.device_data<T>());
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return record("add", binary_values(BinaryOp::Add, a, b), {a, b},
                [](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{g, g};
                });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("sub", binary_values(BinaryOp::Sub, a, b), {a, b},
                [](const Tensor& g, const std::vector<bool>& needs) {
                  return std::vector<Tensor>{g, needs[1] ? neg(g) : Tensor()};
                });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  const Tensor as = a.detach(), bs = b.detach();
  return record(
      "mul", binary_values(BinaryOp::Mul, a, b), {a, b},
      [as, bs](const Tensor& g, const std::vector<bool>& needs) {
        return std::vector<Tensor>{needs[0] ? mul(g, bs) : Tensor(), needs[1] ? mul(g, as) : Tensor()};
      });
}

Tensor div(const Tensor& a, const Tensor& b) {
  const Tensor as = a.detach(), bs = b.detach();
  return record("div", binary_values(BinaryOp::Div, a, b), {a, b},
                [as, bs](const Tensor& g, const std::vector<bool>& needs) {
                  Tensor ga, gb;
                  if (needs[0]) ga = div(g, bs);
                  if (needs[1]) gb = neg(div(mul(g, as), mul(bs, bs)));  // d(a/b)/db = -a / b^2
                  return std::vector<Tensor>{ga, gb};
                });
}

Tensor add(const Tensor& a, double scalar) {
  return record("add_scalar", affine_values(a, 1.0, scalar, "add"), {a},
                [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double scalar) {
  return record(
      "mul_scalar", affine_values(a, scalar, 0.0, "mul"), {a},
      [scalar](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{mul(g, scalar)}; });
}

Tensor neg(const Tensor& a) {
  return record("neg", affine_values(a, -1.0, 0.0, "neg"), {a},
                [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{neg(g)}; });
}

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  ops::require_floating(dst, "add_", "the destination");
  ops::require_like(src, dst, "add_", "the source");
  TL_CHECK(!(GradMode::is_enabled() && dst.requires_grad()), Error,
           "add_: in-place change of a tensor that requires grad; do it under NoGradGuard");
  TL_CHECK(dst.shape() == src.shape(), ShapeError, "add_: source of shape ", shape_str(src.shape()),
           " into a tensor of shape ", shape_str(dst.shape()));
  TL_CHECK(dst.is_contiguous(), ShapeError, "add_: the destination ", dst.description(),
           " is not contiguous");
  const Tensor sc = src.contiguous();
  visit_floating(dst.dtype(), "add_", [&]<typename T>() {
    kernels::axpby<T>(ops::context_for(dst), dst.numel(), static_cast<T>(alpha), sc.device_data<T>(), T(1),
                      dst.device_data<T>());
  });
}

void mul_(const Tensor& dst, double scalar) {
  ops::require_floating(dst, "mul_", "the destination");
  TL_CHECK(!(GradMode::is_enabled() && dst.requires_grad()), Error,
           "mul_: in-place change of a tensor that requires grad; do it under NoGradGuard");
  TL_CHECK(dst.is_contiguous(), ShapeError, "mul_: the destination ", dst.description(),
           " is not contiguous");
  visit_floating(dst.dtype(), "mul_", [&]<typename T>() {
    kernels::affine<T>(ops::context_for(dst), dst.numel(), dst.device_data<T>(), static_cast<T>(scalar), T(0),
                       dst.device_data<T>());
  });
}

}  // namespace tl
