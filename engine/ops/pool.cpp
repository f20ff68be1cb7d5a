// Max, average and adaptive-average pooling with PyTorch's output-size and padding rules.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {
namespace {

kernels::Pool2dShape pool_shape(const Tensor& x, const Pool2dOptions& o, const char* op) {
  ops::require_floating(x, op, "the input");
  ops::require_dim(x, 4, op, "the input (N, C, H, W)");
  TL_CHECK(o.kernel_h >= 1 && o.kernel_w >= 1, ValueError, op, ": kernel must be at least 1x1, got ",
           o.kernel_h, "x", o.kernel_w);
  TL_CHECK(o.stride_h >= 0 && o.stride_w >= 0, ValueError, op, ": strides must not be negative, got ",
           o.stride_h, "x", o.stride_w);
  const Padding2d& p = o.padding;
  // As PyTorch: padding beyond half the kernel would make windows that see only padding.
  TL_CHECK(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0 &&
               2 * std::max(p.top, p.bottom) <= o.kernel_h && 2 * std::max(p.left, p.right) <= o.kernel_w,
           ValueError, op, ": padding (", p.top, ", ", p.bottom, ", ", p.left, ", ", p.right,
           ") must be between 0 and half the kernel ", o.kernel_h, "x", o.kernel_w);
  kernels::Pool2dShape s;
  s.planes = x.size(0) * x.size(1);
  s.in_h = x.size(2);
  s.in_w = x.size(3);
  s.kernel_h = o.kernel_h;
  s.kernel_w = o.kernel_w;
  s.stride_h = o.stride_h ? o.stride_h : o.kernel_h;
  s.stride_w = o.stride_w ? o.stride_w : o.kernel_w;
  s.pad_top = p.top;
  s.pad_bottom = p.bottom;
  s.pad_left = p.left;
  s.pad_right = p.right;
  TL_CHECK(s.out_h() >= 1 && s.out_w() >= 1, ShapeError, op, ": the input ", x.description(),
           " is smaller than the ", o.kernel_h, "x", o.kernel_w, " window");
  return s;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const kernels::Pool2dShape s = pool_shape(x, options, "max_pool2d");
  const Tensor xc = x.contiguous();
  Tensor y = empty({x.size(0), x.size(1), s.out_h(), s.out_w()}, x.dtype(), x.device());
  const bool recording = should_record({x});
  Tensor argmax = recording ? empty(y.shape(), DType::Int64, x.device()) : Tensor();
  visit_floating(x.dtype(), "max_pool2d", [&]<typename T>() {
    kernels::max_pool2d_forward<T>(ops::context_for(x), s, xc.device_data<T>(), y.device_data<T>(),
                                   recording ? argmax.device_data<std::int64_t>() : nullptr);
  });
  const Shape in_shape = x.shape();
  return record("max_pool2d", y, {x}, [s, argmax, in_shape](const Tensor& g, const std::vector<bool>&) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(in_shape, gc.dtype(), gc.device());
    visit_floating(gc.dtype(), "max_pool2d backward", [&]<typename T>() {
      kernels::max_pool2d_backward<T>(ops::context_for(gc), s, gc.device_data<T>(),
                                      argmax.device_data<std::int64_t>(), dx.device_data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const kernels::Pool2dShape s = pool_shape(x, options, "avg_pool2d");
  const bool include_pad = options.count_include_pad;
  const Tensor xc = x.contiguous();
  Tensor y = empty({x.size(0), x.size(1), s.out_h(), s.out_w()}, x.dtype(), x.device());
  visit_floating(x.dtype(), "avg_pool2d", [&]<typename T>() {
    kernels::avg_pool2d_forward<T>(ops::context_for(x), s, include_pad, xc.device_data<T>(),
                                   y.device_data<T>());
  });
  const Shape in_shape = x.shape();
  return record("avg_pool2d", y, {x}, [s, include_pad, in_shape](const Tensor& g, const std::vector<bool>&) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(in_shape, gc.dtype(), gc.device());
    visit_floating(gc.dtype(), "avg_pool2d backward", [&]<typename T>() {
      kernels::avg_pool2d_backward<T>(ops::context_for(gc), s, include_pad, gc.device_data<T>(),
                                      dx.device_data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::int64_t out_h, std::int64_t out_w) {
  const char* op = "adaptive_avg_pool2d";
  ops::require_floating(x, op, "the input");
  ops::require_dim(x, 4, op, "the input (N, C, H, W)");
  TL_CHECK(out_h >= 1 && out_w >= 1, ValueError, op, ": output size must be at least 1x1, got ", out_h, "x",
           out_w);
  TL_CHECK(x.size(2) >= 1 && x.size(3) >= 1, ShapeError, op, ": the input ", x.description(), " is empty");
  const std::int64_t planes = x.size(0) * x.size(1), in_h = x.size(2), in_w = x.size(3);
  const Tensor xc = x.contiguous();
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  visit_floating(x.dtype(), op, [&]<typename T>() {
    kernels::adaptive_avg_pool2d_forward<T>(ops::context_for(x), planes, in_h, in_w, out_h, out_w,
                                            xc.device_data<T>(), y.device_data<T>());
  });
  const Shape in_shape = x.shape();
  return record(op, y, {x},
                [planes, in_h, in_w, out_h, out_w, in_shape](const Tensor& g, const std::vector<bool>&) {
                  const Tensor gc = g.contiguous();
                  Tensor dx = empty(in_shape, gc.dtype(), gc.device());
                  visit_floating(gc.dtype(), "adaptive_avg_pool2d backward", [&]<typename T>() {
                    kernels::adaptive_avg_pool2d_backward<T>(ops::context_for(gc), planes, in_h, in_w, out_h,
                                                             out_w, gc.device_data<T>(), dx.device_data<T>());
                  });
                  return std::vector<Tensor>{dx};
                });
}

}  // namespace tl
