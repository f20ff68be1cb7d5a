// Dropout with a counter-based mask: backward regenerates it from (seed, offset) instead of storing it.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"
#include "engine/random.h"

namespace tl {

Tensor dropout(const Tensor& x, double p, bool training, Generator& generator) {
  ops::require_floating(x, "dropout", "the input");
  TL_CHECK(p >= 0 && p <= 1, ValueError, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  const std::uint64_t seed = generator.seed();
  const std::uint64_t offset = generator.reserve(static_cast<std::uint64_t>(x.numel()));
  const Tensor xc = x.contiguous();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  visit_floating(x.dtype(), "dropout", [&]<typename T>() {
    kernels::dropout_forward<T>(ops::context_for(x), x.numel(), p, seed, offset, xc.device_data<T>(),
                                y.device_data<T>());
  });
  return record("dropout", y, {x}, [p, seed, offset](const Tensor& g, const std::vector<bool>&) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(gc.shape(), gc.dtype(), gc.device());
    visit_floating(gc.dtype(), "dropout backward", [&]<typename T>() {
      kernels::dropout_backward<T>(ops::context_for(gc), gc.numel(), p, seed, offset, gc.device_data<T>(),
                                   dx.device_data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace tl
