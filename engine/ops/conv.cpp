// conv2d: shape checks, the forward kernel, and a backward that runs only the passes whose inputs need
// gradients (a frozen conv weight skips backward-filter entirely).
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {
namespace {

// TensorFlow's 'same': total padding max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0), the smaller half
// first.
Padding2d tf_same_padding(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  const auto total = [](std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t d) {
    const std::int64_t out = (n + s - 1) / s;
    return std::max<std::int64_t>((out - 1) * s + (k - 1) * d + 1 - n, 0);
  };
  const std::int64_t th = total(x.size(2), w.size(2), o.stride_h, o.dilation_h);
  const std::int64_t tw = total(x.size(3), w.size(3), o.stride_w, o.dilation_w);
  return {th / 2, th - th / 2, tw / 2, tw - tw / 2};
}

kernels::Conv2dShape conv_shape(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  const char* op = "conv2d";
  ops::require_floating(x, op, "the input");
  ops::require_dim(x, 4, op, "the input (N, C, H, W)");
  ops::require_like(w, x, op, "the weight");
  ops::require_dim(w, 4, op, "the weight (out, in / groups, kh, kw)");
  TL_CHECK(o.groups >= 1, ValueError, op, ": groups must be at least 1, got ", o.groups);
  TL_CHECK(o.stride_h >= 1 && o.stride_w >= 1, ValueError, op, ": strides must be at least 1, got ",
           o.stride_h, "x", o.stride_w);
  TL_CHECK(o.dilation_h >= 1 && o.dilation_w >= 1, ValueError, op, ": dilations must be at least 1, got ",
           o.dilation_h, "x", o.dilation_w);
  const Padding2d p = o.tf_same ? tf_same_padding(x, w, o) : o.padding;
  TL_CHECK(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, ValueError, op,
           ": padding must not be negative, got (top ", p.top, ", bottom ", p.bottom, ", left ", p.left,
           ", right ", p.right, ")");
  kernels::Conv2dShape s;
  s.batch = x.size(0);
  s.in_channels = x.size(1);
  s.in_h = x.size(2);
  s.in_w = x.size(3);
  s.out_channels = w.size(0);
  s.kernel_h = w.size(2);
  s.kernel_w = w.size(3);
  s.stride_h = o.stride_h;
  s.stride_w = o.stride_w;
  s.pad_top = p.top;
  s.pad_bottom = p.bottom;
  s.pad_left = p.left;
  s.pad_right = p.right;
  s.dilation_h = o.dilation_h;
  s.dilation_w = o.dilation_w;
  s.groups = o.groups;
  TL_CHECK(s.in_channels % s.groups == 0 && s.out_channels % s.groups == 0, ShapeError, op, ": ",
           s.in_channels, " input and ", s.out_channels,
           " output channels are not divisible by groups = ", s.groups);
  TL_CHECK(w.size(1) * s.groups == s.in_channels, ShapeError, op, ": the weight ", w.description(),
           " expects ", w.size(1) * s.groups, " input channels (groups = ", s.groups, "), the input ",
           x.description(), " has ", s.in_channels);
  TL_CHECK(s.out_h() >= 1 && s.out_w() >= 1, ShapeError, op, ": the input ", x.description(),
           " is too small for a ", s.kernel_h, "x", s.kernel_w, " kernel (dilation ", s.dilation_h, "x",
           s.dilation_w, ", padding ", p.top, "/", p.bottom, "/", p.left, "/", p.right, ")");
  return s;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  const kernels::Conv2dShape s = conv_shape(x, weight, options);
  if (bias.defined()) {
    ops::require_like(bias, x, "conv2d", "the bias");
    ops::require_shape(bias, {s.out_channels}, "conv2d", "the bias");
  }
  const Tensor xc = x.contiguous().detach(), wc = weight.contiguous().detach();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = empty({s.batch, s.out_channels, s.out_h(), s.out_w()}, x.dtype(), x.device());
  visit_floating(x.dtype(), "conv2d", [&]<typename T>() {
    kernels::conv2d_forward<T>(ops::context_for(x), s, xc.device_data<T>(), wc.device_data<T>(),
                               ops::cdata<T>(bc), y.device_data<T>());
  });
  return record("conv2d", y, {x, weight, bias}, [s, xc, wc](const Tensor& g, const std::vector<bool>& needs) {
    const Tensor gc = g.contiguous();
    const auto ctx = ops::context_for(gc);
    Tensor dx, dw, db;
    if (needs[0]) dx = empty(xc.shape(), xc.dtype(), xc.device());
    if (needs[1]) dw = empty(wc.shape(), wc.dtype(), wc.device());
    if (needs[2]) db = empty({s.out_channels}, xc.dtype(), xc.device());
    visit_floating(gc.dtype(), "conv2d backward", [&]<typename T>() {
      if (needs[0])
        kernels::conv2d_backward_data<T>(ctx, s, gc.device_data<T>(), wc.device_data<T>(),
                                         dx.device_data<T>());
      if (needs[1]) {
        kernels::conv2d_backward_filter<T>(ctx, s, xc.device_data<T>(), gc.device_data<T>(),
                                           dw.device_data<T>(), db.defined() ? db.device_data<T>() : nullptr);
      } else if (needs[2]) {
        // Only the bias trains: its gradient is a sum of dy, no filter pass needed.
        db = sum(sum(gc.reshape({s.batch, s.out_channels, -1}), 2), 0);
      }
    });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace tl
