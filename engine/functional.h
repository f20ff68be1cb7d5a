// The differentiable operations. Each validates its arguments (errors name the op, the argument and the
// shapes), runs the kernel for its inputs' device through kernels/ops.h, and records itself on the autograd
// tape when an input requires grad. Inputs may be non-contiguous views; outputs are new contiguous tensors.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace tl {

class Generator;

// ---- element-wise arithmetic (float32 / float64, both operands of the same shape and dtype) ---------------

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double scalar);
Tensor mul(const Tensor& a, double scalar);
Tensor neg(const Tensor& a);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
  return add(a, -s);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
  return mul(a, 1.0 / s);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}

// In place and not recorded (optimizer updates, gradient accumulation): dst += alpha * src; dst *= scalar.
// Refused on a tensor that requires grad while grad mode is on.
void add_(const Tensor& dst, const Tensor& src, double alpha = 1.0);
void mul_(const Tensor& dst, double scalar);

// ---- reductions -------------------------------------------------------------------------------------------

Tensor sum(const Tensor& x);   // all elements: a tensor of shape []
Tensor mean(const Tensor& x);  // all elements: a tensor of shape []
Tensor sum(const Tensor& x, std::int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x, std::int64_t dim, bool keepdim = false);

// ---- layers -----------------------------------------------------------------------------------------------

// Padding per side. Symmetric padding is the usual case; Keras 'same' with stride 2 pads (0, 1).
struct Padding2d {
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;
  static Padding2d same_all(std::int64_t p) { return {p, p, p, p}; }
  static Padding2d symmetric(std::int64_t h, std::int64_t w) { return {h, h, w, w}; }
};

struct Conv2dOptions {
  std::int64_t stride_h = 1, stride_w = 1;
  Padding2d padding;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t groups = 1;
  // Pad as TensorFlow / Keras 'same' does for the actual input size (ignoring `padding`): the output is
  // ceil(input / stride) and the odd pixel of padding goes to the bottom / right.
  bool tf_same = false;
};

// x [N, C, H, W], weight [K, C / groups, R, S], bias [K] or undefined -> [N, K, P, Q].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options);

// x [rows, in], weight [out, in], bias [out] or undefined -> [rows, out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// x [N, C, H, W] (or [N, C]); gamma, beta, running_mean, running_var [C]. In training mode the batch
// statistics normalise and running_mean/var (when defined) are updated in place with `momentum` (unbiased
// variance, as PyTorch). In eval mode the running statistics normalise and nothing is updated.
Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor hardswish(const Tensor& x);
Tensor hardsigmoid(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);

// Squeeze-excitation: x [N, C, H, W] scaled per (n, c) by scale [N, C, 1, 1] or [N, C].
Tensor channel_mul(const Tensor& x, const Tensor& scale);

struct Pool2dOptions {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 0, stride_w = 0;  // 0: the kernel size (PyTorch's default)
  Padding2d padding;
  bool count_include_pad = true;  // average pooling only
};

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor adaptive_avg_pool2d(const Tensor& x, std::int64_t out_h, std::int64_t out_w);

// Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training; the identity
// otherwise. The mask comes from `generator`, which advances.
Tensor dropout(const Tensor& x, double p, bool training, Generator& generator);

// Mean softmax cross-entropy of logits [rows, classes] against int64 labels [rows], with label smoothing.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0);

}  // namespace tl
