// The kernel facade: every piece of arithmetic tl does, declared once. Arguments are shapes and pointers to
// densely packed (contiguous, row-major) buffers on ctx.device; there is no autograd and there are no modules
// here. Each function picks an implementation from ctx (see policy.h): the CPU reference, our fast CPU
// kernel, or a vendor library. All paths compute the same function; tests hold each to the reference.
//
// Conventions:
//  - T is float or double unless stated otherwise.
//  - Outputs are overwritten, never accumulated into, unless stated otherwise; they may hold garbage (even
//  NaN)
//    on entry. Inputs and outputs do not alias, except that the element-wise kernels (activation, binary,
//    affine, axpby) may run in place (y == x).
//  - A null output pointer means "not needed": its kernel is skipped (a frozen weight gets no weight
//  gradient).
//  - Shapes are validated by the caller (engine/ops) with messages naming the tensors; kernels assume them.
#pragma once

#include <cstdint>

#include "engine/dtype.h"
#include "kernels/policy.h"

namespace tl::kernels {

using std::int64_t;

// ---------------------------------------------------------------------------------------------------------------
// GEMM, row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op(X) = X or X^T. With beta == 0, C
// is not read. lda/ldb/ldc are the row strides of A, B, C as stored (A is [M,K] or, transposed, [K,M]).

template <typename T>
void gemm(const Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Names the implementation gemm<float> takes for ctx, e.g. "native-avx512", "openblas", "reference".
const char* gemm_implementation(const Context& ctx);

// ---------------------------------------------------------------------------------------------------------------
// 2-D convolution (cross-correlation, as in PyTorch). x: [N, C, H, W]; w: [K, C/groups, R, S] (OIHW);
// bias: [K] or null; y: [N, K, P, Q]. Padding may differ per side (Keras 'same' with stride 2 pads (0, 1)).

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  int64_t out_h() const {
    return (in_h + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  }
  int64_t out_w() const {
    return (in_w + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  }
  bool is_depthwise() const { return groups == in_channels && groups == out_channels && groups > 1; }
  // Multiply-adds times two, for GFLOP/s.
  double flops() const {
    return 2.0 * batch * out_channels * out_h() * out_w() * (in_channels / groups) * kernel_h * kernel_w;
  }
};

template <typename T>
void conv2d_forward(const Context& ctx, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data(const Context& ctx, const Conv2dShape& s, const T* dy, const T* w, T* dx);
// dw: [K, C/groups, R, S]; dbias: [K] or null.
template <typename T>
void conv2d_backward_filter(const Context& ctx, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                            T* dbias);

// ---------------------------------------------------------------------------------------------------------------
// Linear: y[rows, out] = x[rows, in] * w[out, in]^T + b[out] (b may be null).

template <typename T>
void linear_forward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                    const T* b, T* y);
template <typename T>
void linear_backward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                     const T* dy, T* dx, T* dw, T* db);

// ---------------------------------------------------------------------------------------------------------------
// BatchNorm over [N, C, spatial]: statistics per channel over N * spatial values.

struct BatchNormShape {
  int64_t batch = 1, channels = 1, spatial = 1;
};

// Training mode: normalises with the batch statistics and writes them (mean and 1/sqrt(var + eps), biased
// var) for backward. When running_mean/var are given they are updated in place:
//   running = (1 - momentum) * running + momentum * batch_stat, with the unbiased variance (as PyTorch does).
template <typename T>
void batch_norm_forward_train(const Context& ctx, const BatchNormShape& s, const T* x, const T* gamma,
                              const T* beta, double eps, double momentum, T* running_mean, T* running_var,
                              T* y, T* save_mean, T* save_invstd);
template <typename T>
void batch_norm_backward_train(const Context& ctx, const BatchNormShape& s, const T* x, const T* dy,
                               const T* gamma, const T* save_mean, const T* save_invstd, T* dx, T* dgamma,
                               T* dbeta);
// Eval mode: normalises with the running statistics, which are constants.
template <typename T>
void batch_norm_forward_eval(const Context& ctx, const BatchNormShape& s, const T* x, const T* gamma,
                             const T* beta, const T* running_mean, const T* running_var, double eps, T* y);
template <typename T>
void batch_norm_backward_eval(const Context& ctx, const BatchNormShape& s, const T* x, const T* dy,
                              const T* gamma, const T* running_mean, const T* running_var, double eps, T* dx,
                              T* dgamma, T* dbeta);

// ---------------------------------------------------------------------------------------------------------------
// Element-wise activations. Backward takes the forward input x.

enum class Activation { ReLU, ReLU6, HardSwish, HardSigmoid, Sigmoid, SiLU };

const char* activation_name(Activation a);

template <typename T>
void activation_forward(const Context& ctx, Activation a, int64_t n, const T* x, T* y);
template <typename T>
void activation_backward(const Context& ctx, Activation a, int64_t n, const T* x, const T* dy, T* dx);

// ---------------------------------------------------------------------------------------------------------------
// Element-wise arithmetic on n values.

enum class BinaryOp { Add, Sub, Mul, Div };

template <typename T>
void binary(const Context& ctx, BinaryOp op, int64_t n, const T* a, const T* b, T* y);
// y = x * scale + shift.
template <typename T>
void affine(const Context& ctx, int64_t n, const T* x, T scale, T shift, T* y);
// y = alpha * x + beta * y (accumulates into y; with beta == 0, y is not read).
template <typename T>
void axpby(const Context& ctx, int64_t n, T alpha, const T* x, T beta, T* y);
// T may also be int64_t.
template <typename T>
void fill(const Context& ctx, int64_t n, T value, T* y);

// Squeeze-excitation scaling: y[p, i] = x[p, i] * scale[p] over `planes` = N * C planes of `spatial` values.
template <typename T>
void channel_mul_forward(const Context& ctx, int64_t planes, int64_t spatial, const T* x, const T* scale,
                         T* y);
template <typename T>
void channel_mul_backward(const Context& ctx, int64_t planes, int64_t spatial, const T* x, const T* scale,
                          const T* dy, T* dx, T* dscale);

// Copies between strided views of the same sizes, elements of `element_size` bytes: for every index i,
// dst[i . dst_strides] = src[i . src_strides]. Strides are in elements.
void copy_strided(const Context& ctx, int64_t element_size, int64_t ndim, const int64_t* sizes,
                  const int64_t* src_strides, const void* src, const int64_t* dst_strides, void* dst);
// Converts n values from dtype `from` to dtype `to` (float to int64 truncates toward zero).
void cast(const Context& ctx, int64_t n, DType from, const void* src, DType to, void* dst);

// ---------------------------------------------------------------------------------------------------------------
// Reductions. Accumulate in double.

template <typename T>
T sum(const Context& ctx, int64_t n, const T* x);
// y[o, i] = sum over r of x[o, r, i], x viewed as [outer, reduced, inner].
template <typename T>
void sum_dim(const Context& ctx, int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y);

// ---------------------------------------------------------------------------------------------------------------
// Pooling over [N, C, H, W] (`planes` = N * C). Padding counts as -inf for max and, with count_include_pad,
// as zeros for average (PyTorch's default).

struct Pool2dShape {
  int64_t planes = 1, in_h = 1, in_w = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  int64_t out_h() const { return (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (in_w + pad_left + pad_right - kernel_w) / stride_w + 1; }
};

// argmax (may be null) receives, per output, the flat index h * in_w + w of the chosen input in its plane.
template <typename T>
void max_pool2d_forward(const Context& ctx, const Pool2dShape& s, const T* x, T* y, int64_t* argmax);
template <typename T>
void max_pool2d_backward(const Context& ctx, const Pool2dShape& s, const T* dy, const int64_t* argmax, T* dx);
template <typename T>
void avg_pool2d_forward(const Context& ctx, const Pool2dShape& s, bool count_include_pad, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Context& ctx, const Pool2dShape& s, bool count_include_pad, const T* dy,
                         T* dx);

// Adaptive average pooling: output cell (i, j) averages rows [floor(i*H/P), ceil((i+1)*H/P)) and the same for
// columns, as PyTorch does.
template <typename T>
void adaptive_avg_pool2d_forward(const Context& ctx, int64_t planes, int64_t in_h, int64_t in_w,
                                 int64_t out_h, int64_t out_w, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(const Context& ctx, int64_t planes, int64_t in_h, int64_t in_w,
                                  int64_t out_h, int64_t out_w, const T* dy, T* dx);

// ---------------------------------------------------------------------------------------------------------------
// Softmax cross-entropy, mean over rows, with label smoothing eps (target = (1 - eps) * onehot + eps /
// classes). labels are class indices in [0, classes); one out of range throws ValueError naming the row and
// label. probs [rows, classes] receives the softmax, which backward uses.

template <typename T>
T cross_entropy_forward(const Context& ctx, int64_t rows, int64_t classes, const T* logits,
                        const int64_t* labels, double label_smoothing, T* probs);
// dlogits = dloss * (probs - target) / rows.
template <typename T>
void cross_entropy_backward(const Context& ctx, int64_t rows, int64_t classes, const T* probs,
                            const int64_t* labels, double label_smoothing, T dloss, T* dlogits);

// ---------------------------------------------------------------------------------------------------------------
// Randomness, from the Philox stream (seed, offset) (see philox.h). Each element i depends only on i.

// Element i is kept when uniform_i >= p (draw i of the stream, offset a multiple of 4) and then scaled by
// 1 / (1 - p); dropout_backward regenerates the same mask from the same (seed, offset), so nothing is stored.
template <typename T>
void dropout_forward(const Context& ctx, int64_t n, double p, std::uint64_t seed, std::uint64_t offset,
                     const T* x, T* y);
template <typename T>
void dropout_backward(const Context& ctx, int64_t n, double p, std::uint64_t seed, std::uint64_t offset,
                      const T* dy, T* dx);

// Draws per element: float 1, double 4 (one Philox block: 53-bit uniforms).
template <typename T>
void fill_uniform(const Context& ctx, int64_t n, std::uint64_t seed, std::uint64_t offset, double low,
                  double high, T* y);
// Draws per element: 1 (one Philox block gives four normals).
template <typename T>
void fill_normal(const Context& ctx, int64_t n, std::uint64_t seed, std::uint64_t offset, double mean,
                 double stddev, T* y);

// ---------------------------------------------------------------------------------------------------------------
// Optimizer updates: one pass over n parameters, in place, in the parameter's type T with torch.optim's order
// of operations (torch 1.13, single-tensor path), so float32 results stay within rounding of PyTorch's. Each
// element depends only on its own values; the hyperparameters arrive as double and are rounded to T where
// PyTorch rounds them (a Python scalar meeting a T tensor).

struct SgdStep {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer is not read, only written (torch: buf = clone(d))
};

// d = g + weight_decay * p; with momentum: buf = first_step ? d : momentum * buf + (1 - dampening) * d, then
// d = nesterov ? d + momentum * buf : buf; p -= lr * d. momentum_buffer may be null when momentum == 0.
template <typename T>
void sgd_update(const Context& ctx, const SgdStep& s, int64_t n, T* param, const T* grad, T* momentum_buffer);

struct AdamStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;  // AdamW: p *= 1 - lr * weight_decay before the update, instead of g += wd * p
  int64_t step = 1;        // this update's number, from 1 (bias correction)
};

// m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g;
// p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps).
template <typename T>
void adam_update(const Context& ctx, const AdamStep& s, int64_t n, T* param, const T* grad, T* exp_avg,
                 T* exp_avg_sq);

}  // namespace tl::kernels
