// Sums and means, over everything or over one dimension.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {

Tensor sum(const Tensor& x) {
  ops::require_floating(x, "sum", "the input");
  const Tensor xc = x.contiguous();
  Tensor out = empty({}, x.dtype(), x.device());
  visit_floating(x.dtype(), "sum", [&]<typename T>() {
    out.fill_(static_cast<double>(kernels::sum<T>(ops::context_for(x), x.numel(), xc.device_data<T>())));
  });
  const Shape shape = x.shape();
  return record("sum", out, {x}, [shape](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(Shape(shape.size(), 1)).expand(shape).contiguous()};
  });
}

Tensor mean(const Tensor& x) {
  TL_CHECK(x.numel() > 0, ShapeError, "mean: the input ", x.description(), " has no elements");
  return mul(sum(x), 1.0 / static_cast<double>(x.numel()));
}

Tensor sum(const Tensor& x, std::int64_t dim, bool keepdim) {
  ops::require_floating(x, "sum", "the input");
  const std::int64_t d = normalize_dim(dim, x.dim(), "sum", x.shape());
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (std::int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  Shape kept = x.shape();
  kept[d] = 1;
  const Tensor xc = x.contiguous();
  Tensor out = empty(kept, x.dtype(), x.device());
  visit_floating(x.dtype(), "sum", [&]<typename T>() {
    kernels::sum_dim<T>(ops::context_for(x), outer, x.size(d), inner, xc.device_data<T>(),
                        out.device_data<T>());
  });
  if (!keepdim) out = out.squeeze(d);
  const Shape shape = x.shape();
  return record("sum_dim", out, {x}, [shape, kept](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(kept).expand(shape).contiguous()};
  });
}

Tensor mean(const Tensor& x, std::int64_t dim, bool keepdim) {
  const std::int64_t d = normalize_dim(dim, x.dim(), "mean", x.shape());
  TL_CHECK(x.size(d) > 0, ShapeError, "mean: dimension ", dim, " of ", x.description(), " is empty");
  return mul(sum(x, d, keepdim), 1.0 / static_cast<double>(x.size(d)));
}

}  // namespace tl
