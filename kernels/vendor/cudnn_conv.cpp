// cuDNN convolutions behind the facade's conv2d contracts (kernels/vendor/cuda_vendor.h), through cuDNN 9's
// legacy convolution API (deprecated but present; it warns only under CUDNN_WARN_DEPRECATED).
//
// Layout: x NCHW, w KCRS (OIHW, C = in_channels / groups), y NKPQ, all fully packed, cross-correlation as in
// PyTorch, groups through cudnnSetConvolutionGroupCount.
//
// Padding: cuDNN pads symmetrically only, tl per side (Keras 'same' with stride 2 pads (0, 1)). cuDNN is
// given the symmetric part, min(top, bottom) and min(left, right), and the rest is made explicit: x is copied
// into a zeroed scratch with the extra rows and columns (our copy_strided kernel), backward-data writes the
// gradient of that padded input and the interior is copied out. That keeps odd padding on cuDNN at the cost
// of one copy of x (or dx), instead of handing those layers to a slower path.
//
// Math: float convolutions may use TF32 only when tl::cuda::tf32_allowed(). For float data cuDNN's
// CUDNN_DEFAULT_MATH already permits TF32 on Ampere and later, so forbidding it takes CUDNN_FMA_MATH; with
// TF32 allowed the descriptor gets CUDNN_DEFAULT_MATH (what PyTorch does with allow_tf32). Double always gets
// CUDNN_DEFAULT_MATH (FP64 tensor-core math is IEEE double). cudnnFind reports the math type each algorithm
// ran with; the call sets exactly that one, and in float-without-TF32 only CUDNN_FMA_MATH results are taken.
//
// Algorithms: the first call of a (device, direction, full shape, dtype, TF32 on/off) times cuDNN's
// algorithms with cudnnFind…AlgorithmEx on the caller's real buffers, within a workspace limit of min(256
// MiB, a quarter of the device's free memory), and caches the fastest usable one for the process. Find writes
// its trial results into the caller's output (or our padded scratch); that output is overwritten by the real
// call that follows at once, and the contract lets outputs hold garbage on entry, so nothing of the trials is
// kept and no second output-sized buffer is needed. When cuDNN has no usable algorithm, or the shape is one
// cuDNN's int descriptors cannot hold (or an empty tensor), the call goes to our own kernel
// (tl::kernels::cuda) and the cache remembers that.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"
#include "kernels/vendor/cuda_vendor.h"

namespace tl::kernels::vendor {
namespace {

using std::int64_t;

template <typename T>
constexpr cudnnDataType_t cudnn_type() {
  if constexpr (std::is_same_v<T, double>)
    return CUDNN_DATA_DOUBLE;
  else
    return CUDNN_DATA_FLOAT;
}

// ---- descriptors: owned, destroyed on every path out (a throw included) ---------------------------------

class TensorDescriptor {
 public:
  TensorDescriptor() { TL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  void set(cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w) {
    TL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, type, static_cast<int>(n),
                                              static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  }
  operator cudnnTensorDescriptor_t() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor() { TL_CUDNN_CHECK(cudnnCreateFilterDescriptor(&desc_)); }
  ~FilterDescriptor() { cudnnDestroyFilterDescriptor(desc_); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
  void set(cudnnDataType_t type, int64_t k, int64_t c, int64_t r, int64_t s) {
    TL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(desc_, type, CUDNN_TENSOR_NCHW, static_cast<int>(k),
                                              static_cast<int>(c), static_cast<int>(r), static_cast<int>(s)));
  }
  operator cudnnFilterDescriptor_t() const { return desc_; }

 private:
  cudnnFilterDescriptor_t desc_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() { TL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&desc_)); }
  ~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(desc_); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  operator cudnnConvolutionDescriptor_t() const { return desc_; }

 private:
  cudnnConvolutionDescriptor_t desc_ = nullptr;
};

// ---- geometry: what cuDNN is shown of a tl convolution --------------------------------------------------

struct Geometry {
  int64_t pad_h = 0, pad_w = 0;  // the symmetric padding cuDNN applies
  // Zero rows and columns added explicitly around x (one of each pair is 0).
  int64_t extra_top = 0, extra_bottom = 0, extra_left = 0, extra_right = 0;
  int64_t in_h = 0, in_w = 0;  // the input cuDNN sees: x's size plus the explicit padding

  bool explicit_padding() const { return extra_top || extra_bottom || extra_left || extra_right; }
};

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.pad_h = std::min(s.pad_top, s.pad_bottom);
  g.pad_w = std::min(s.pad_left, s.pad_right);
  g.extra_top = s.pad_top - g.pad_h;
  g.extra_bottom = s.pad_bottom - g.pad_h;
  g.extra_left = s.pad_left - g.pad_w;
  g.extra_right = s.pad_right - g.pad_w;
  g.in_h = s.in_h + g.extra_top + g.extra_bottom;
  g.in_w = s.in_w + g.extra_left + g.extra_right;
  return g;
}

std::size_t padded_count(const Conv2dShape& s, const Geometry& g) {
  return static_cast<std::size_t>(s.batch * s.in_channels * g.in_h * g.in_w);
}

// cuDNN's 4-d descriptors hold int sizes and its kernels index with int; anything beyond (or an empty tensor,
// which cuDNN rejects as a bad parameter) goes to our kernels, which take int64 shapes.
bool cudnn_can_run(const Conv2dShape& s, const Geometry& g) {
  const int64_t limit = INT_MAX;
  const int64_t x = s.batch * s.in_channels * g.in_h * g.in_w;
  const int64_t y = s.batch * s.out_channels * s.out_h() * s.out_w();
  const int64_t w = s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  for (const int64_t v : {x, y, w})
    if (v <= 0 || v > limit) return false;
  for (const int64_t v : {g.pad_h, g.pad_w, s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.groups})
    if (v > limit) return false;
  return true;
}

// What a float convolution may use, before cudnnFind narrows it to one algorithm's math type.
template <typename T>
cudnnMathType_t search_math(bool tf32) {
  if constexpr (std::is_same_v<T, double>) {
    return CUDNN_DEFAULT_MATH;
  } else {
    return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  }
}

struct Descriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;

  Descriptors(const Conv2dShape& s, const Geometry& g, cudnnDataType_t type, cudnnMathType_t math) {
    x.set(type, s.batch, s.in_channels, g.in_h, g.in_w);
    y.set(type, s.batch, s.out_channels, s.out_h(), s.out_w());
    w.set(type, s.out_channels, s.in_channels / s.groups, s.kernel_h, s.kernel_w);
    TL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, static_cast<int>(g.pad_h), static_cast<int>(g.pad_w), static_cast<int>(s.stride_h),
        static_cast<int>(s.stride_w), static_cast<int>(s.dilation_h), static_cast<int>(s.dilation_w),
        CUDNN_CROSS_CORRELATION, type));
    TL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, static_cast<int>(s.groups)));
    TL_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  }

  // Once per cached shape: cuDNN must agree with Conv2dShape on the output, or a descriptor is wrong.
  void check_output(const Conv2dShape& s) const {
    int n = 0, c = 0, h = 0, w_ = 0;
    TL_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &w_));
    TL_CHECK(n == s.batch && c == s.out_channels && h == s.out_h() && w_ == s.out_w(), Error,
             "cuDNN computes a convolution output of [", n, ", ", c, ", ", h, ", ", w_,
             "] where tl expects [", s.batch, ", ", s.out_channels, ", ", s.out_h(), ", ", s.out_w(),
             "] (kernels/vendor/cudnn_conv.cpp)");
  }
};

// ---- explicit padding -----------------------------------------------------------------------------------

// xp (the padded input, [N, C, g.in_h, g.in_w]) = zeros with x in its interior.
template <typename T>
void pad_input(int device, const Conv2dShape& s, const Geometry& g, const T* x, T* xp) {
  TL_CUDA_CHECK(cudaMemsetAsync(xp, 0, padded_count(s, g) * sizeof(T), ::tl::cuda::stream(device)));
  const int64_t sizes[3] = {s.batch * s.in_channels, s.in_h, s.in_w};
  const int64_t dense[3] = {s.in_h * s.in_w, s.in_w, 1};
  const int64_t padded[3] = {g.in_h * g.in_w, g.in_w, 1};
  ::tl::kernels::cuda::copy_strided(device, sizeof(T), 3, sizes, dense, x, padded,
                                    xp + g.extra_top * g.in_w + g.extra_left);
}

// dx = the interior of dxp, the gradient of the padded input (the padding's gradient is dropped).
template <typename T>
void crop_gradient(int device, const Conv2dShape& s, const Geometry& g, const T* dxp, T* dx) {
  const int64_t sizes[3] = {s.batch * s.in_channels, s.in_h, s.in_w};
  const int64_t dense[3] = {s.in_h * s.in_w, s.in_w, 1};
  const int64_t padded[3] = {g.in_h * g.in_w, g.in_w, 1};
  ::tl::kernels::cuda::copy_strided(device, sizeof(T), 3, sizes, padded,
                                    dxp + g.extra_top * g.in_w + g.extra_left, dense, dx);
}

// ---- the algorithm cache --------------------------------------------------------------------------------

enum class Direction { Forward, BackwardData, BackwardFilter };

struct Key {
  int device = 0;
  Direction direction = Direction::Forward;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  bool tf32 = false;
  std::array<int64_t, 16> shape{};

  auto operator<=>(const Key&) const = default;
};

Key make_key(int device, Direction direction, cudnnDataType_t type, bool tf32, const Conv2dShape& s) {
  return {
      device,
      direction,
      type,
      tf32,
      {s.batch, s.in_channels, s.in_h, s.in_w, s.out_channels, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w,
       s.pad_top, s.pad_bottom, s.pad_left, s.pad_right, s.dilation_h, s.dilation_w, s.groups}};
}

struct Choice {
  bool native = false;  // no usable cuDNN algorithm: our kernel runs instead
  int algo = 0;         // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  std::size_t workspace = 0;
  float time_ms = 0;  // as cudnnFind measured it
};

// One map for all devices (the device is part of the key), guarded by one mutex. The lock is not held while
// cudnnFind runs: two threads meeting a new shape at once both time it and store the same kind of answer,
// which is cheaper than serialising every device's first step behind one search.
struct AlgorithmCache {
  std::mutex mutex;
  std::map<Key, Choice> choices;
};

AlgorithmCache& algorithm_cache() {
  static AlgorithmCache cache;
  return cache;
}

std::optional<Choice> cached_choice(const Key& key) {
  AlgorithmCache& cache = algorithm_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  const auto it = cache.choices.find(key);
  if (it == cache.choices.end()) return std::nullopt;
  return it->second;
}

void store_choice(const Key& key, const Choice& choice) {
  AlgorithmCache& cache = algorithm_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.choices[key] = choice;
}

// Scratch for cudnnFind: min(256 MiB, free / 4), so a search never crowds out the step's own tensors; halved
// while the allocator cannot serve it.
std::unique_ptr<::tl::cuda::Workspace> find_workspace(int device) {
  std::size_t free_bytes = 0, total_bytes = 0;
  TL_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  std::size_t limit = std::min<std::size_t>(std::size_t{256} << 20, free_bytes / 4);
  for (;;) {
    try {
      return std::make_unique<::tl::cuda::Workspace>(device, limit);
    } catch (const DeviceError&) {
      if (limit < (std::size_t{1} << 20)) throw;
      limit /= 2;
    }
  }
}

// The fastest result that ran, fits the workspace and, for float without TF32, used FMA math only. cudnnFind
// sorts by time, failed algorithms last.
template <typename Perf>
Choice pick(const Perf* perf, int count, bool fma_only, std::size_t workspace_limit) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > workspace_limit) continue;
    if (fma_only && p.mathType != CUDNN_FMA_MATH) continue;
    Choice c;
    c.algo = static_cast<int>(p.algo);
    c.math = p.mathType;
    c.workspace = p.memory;
    c.time_ms = p.time;
    return c;
  }
  Choice native;
  native.native = true;
  return native;
}

// cudnnFind returns NOT_SUPPORTED when no algorithm handles the configuration; that is an answer (use our
// kernel), not an error.
bool find_succeeded(cudnnStatus_t status, const char* call) {
  if (status == CUDNN_STATUS_NOT_SUPPORTED) return false;
  if (status != CUDNN_STATUS_SUCCESS) ::tl::cuda::throw_cudnn_error(status, call, __FILE__, __LINE__);
  return true;
}

// ---- names for cudnn_chosen_algorithms() ----------------------------------------------------------------

const char* direction_name(Direction d) {
  switch (d) {
    case Direction::Forward:
      return "fwd";
    case Direction::BackwardData:
      return "bwd_data";
    case Direction::BackwardFilter:
      return "bwd_filter";
  }
  return "?";
}

const char* algo_name(Direction d, int algo) {
  static const char* const forward[] = {
      "implicit_gemm", "implicit_precomp_gemm", "gemm", "direct", "fft", "fft_tiling",
      "winograd",      "winograd_nonfused"};
  static const char* const backward_data[] = {"algo_0",     "algo_1",   "fft",
                                              "fft_tiling", "winograd", "winograd_nonfused"};
  static const char* const backward_filter[] = {
      "algo_0", "algo_1", "fft", "algo_3", "winograd", "winograd_nonfused", "fft_tiling"};
  switch (d) {
    case Direction::Forward:
      return algo >= 0 && algo < 8 ? forward[algo] : "?";
    case Direction::BackwardData:
      return algo >= 0 && algo < 6 ? backward_data[algo] : "?";
    case Direction::BackwardFilter:
      return algo >= 0 && algo < 7 ? backward_filter[algo] : "?";
  }
  return "?";
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH:
      return "default";
    case CUDNN_TENSOR_OP_MATH:
      return "tensor_op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return "tensor_op_allow_conversion";
    case CUDNN_FMA_MATH:
      return "fma";
  }
  return "?";
}

// ---- the three directions -------------------------------------------------------------------------------

template <typename T>
struct Scalars {
  // cuDNN reads alpha and beta as double for double data, float otherwise: T is exactly that.
  const T one = T(1), zero = T(0);
};

template <typename T>
Choice find_forward(cudnnHandle_t handle, const Descriptors& d, const T* x, const T* w, T* y, bool fma_only,
                    int device) {
  const auto ws = find_workspace(device);
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  if (!find_succeeded(cudnnFindConvolutionForwardAlgorithmEx(handle, d.x, x, d.w, w, d.conv, d.y, y,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned,
                                                             perf, ws->data(), ws->size()),
                      "cudnnFindConvolutionForwardAlgorithmEx"))
    return pick(perf, 0, fma_only, 0);
  return pick(perf, returned, fma_only, ws->size());
}

template <typename T>
Choice find_backward_data(cudnnHandle_t handle, const Descriptors& d, const T* dy, const T* w, T* dx,
                          bool fma_only, int device) {
  const auto ws = find_workspace(device);
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int returned = 0;
  if (!find_succeeded(cudnnFindConvolutionBackwardDataAlgorithmEx(handle, d.w, w, d.y, dy, d.conv, d.x, dx,
                                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                                  &returned, perf, ws->data(), ws->size()),
                      "cudnnFindConvolutionBackwardDataAlgorithmEx"))
    return pick(perf, 0, fma_only, 0);
  return pick(perf, returned, fma_only, ws->size());
}

template <typename T>
Choice find_backward_filter(cudnnHandle_t handle, const Descriptors& d, const T* x, const T* dy, T* dw,
                            bool fma_only, int device) {
  const auto ws = find_workspace(device);
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int returned = 0;
  if (!find_succeeded(cudnnFindConvolutionBackwardFilterAlgorithmEx(handle, d.x, x, d.y, dy, d.conv, d.w, dw,
                                                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                    &returned, perf, ws->data(), ws->size()),
                      "cudnnFindConvolutionBackwardFilterAlgorithmEx"))
    return pick(perf, 0, fma_only, 0);
  return pick(perf, returned, fma_only, ws->size());
}

// What every direction shares, read once per call: whether TF32 is allowed (part of the cache key), the math
// type the search may use, and whether only FMA results count.
template <typename T>
struct Setup {
  bool tf32;
  cudnnMathType_t math;
  bool fma_only;

  Setup() {
    tf32 = std::is_same_v<T, float> && ::tl::cuda::tf32_allowed();
    math = search_math<T>(tf32);
    fma_only = std::is_same_v<T, float> && !tf32;
  }
};

// Bias descriptor [1, K, 1, 1]: cudnnAddTensor broadcasts it over N, P, Q; BackwardBias reduces to it.
template <typename T>
void set_bias(TensorDescriptor& desc, const Conv2dShape& s) {
  desc.set(cudnn_type<T>(), 1, s.out_channels, 1, 1);
}

}  // namespace

template <typename T>
void cudnn_conv2d_forward(int device, const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  ::tl::cuda::DeviceGuard guard(device);
  const Geometry g = geometry(s);
  if (!cudnn_can_run(s, g)) return ::tl::kernels::cuda::conv2d_forward<T>(device, s, x, w, bias, y);
  const Setup<T> setup;
  const Key key = make_key(device, Direction::Forward, cudnn_type<T>(), setup.tf32, s);
  std::optional<Choice> choice = cached_choice(key);
  if (choice && choice->native) return ::tl::kernels::cuda::conv2d_forward<T>(device, s, x, w, bias, y);

  cudnnHandle_t handle = ::tl::cuda::cudnn_handle(device);
  std::unique_ptr<::tl::cuda::Workspace> padded;
  const T* input = x;
  if (g.explicit_padding()) {
    padded = std::make_unique<::tl::cuda::Workspace>(device, padded_count(s, g) * sizeof(T));
    pad_input(device, s, g, x, padded->as<T>());
    input = padded->as<T>();
  }
  Descriptors d(s, g, cudnn_type<T>(), setup.math);
  if (!choice) {
    d.check_output(s);
    choice = find_forward<T>(handle, d, input, w, y, setup.fma_only, device);
    store_choice(key, *choice);
    if (choice->native) return ::tl::kernels::cuda::conv2d_forward<T>(device, s, x, w, bias, y);
  }
  TL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, choice->math));
  ::tl::cuda::Workspace ws(device, choice->workspace);
  const Scalars<T> k;
  TL_CUDNN_CHECK(cudnnConvolutionForward(handle, &k.one, d.x, input, d.w, w, d.conv,
                                         static_cast<cudnnConvolutionFwdAlgo_t>(choice->algo), ws.data(),
                                         ws.size(), &k.zero, d.y, y));
  if (bias) {
    TensorDescriptor b;
    set_bias<T>(b, s);
    TL_CUDNN_CHECK(cudnnAddTensor(handle, &k.one, b, bias, &k.one, d.y, y));
  }
}

template <typename T>
void cudnn_conv2d_backward_data(int device, const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  ::tl::cuda::DeviceGuard guard(device);
  if (!dx) return;
  const Geometry g = geometry(s);
  if (!cudnn_can_run(s, g)) return ::tl::kernels::cuda::conv2d_backward_data<T>(device, s, dy, w, dx);
  const Setup<T> setup;
  const Key key = make_key(device, Direction::BackwardData, cudnn_type<T>(), setup.tf32, s);
  std::optional<Choice> choice = cached_choice(key);
  if (choice && choice->native) return ::tl::kernels::cuda::conv2d_backward_data<T>(device, s, dy, w, dx);

  cudnnHandle_t handle = ::tl::cuda::cudnn_handle(device);
  // With explicit padding cuDNN produces the gradient of the padded input, cropped into dx afterwards.
  std::unique_ptr<::tl::cuda::Workspace> padded;
  T* target = dx;
  if (g.explicit_padding()) {
    padded = std::make_unique<::tl::cuda::Workspace>(device, padded_count(s, g) * sizeof(T));
    target = padded->as<T>();
  }
  Descriptors d(s, g, cudnn_type<T>(), setup.math);
  if (!choice) {
    d.check_output(s);
    choice = find_backward_data<T>(handle, d, dy, w, target, setup.fma_only, device);
    store_choice(key, *choice);
    if (choice->native) return ::tl::kernels::cuda::conv2d_backward_data<T>(device, s, dy, w, dx);
  }
  TL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, choice->math));
  ::tl::cuda::Workspace ws(device, choice->workspace);
  const Scalars<T> k;
  TL_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &k.one, d.w, w, d.y, dy, d.conv,
                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(choice->algo),
                                              ws.data(), ws.size(), &k.zero, d.x, target));
  if (padded) crop_gradient(device, s, g, target, dx);
}

template <typename T>
void cudnn_conv2d_backward_filter(int device, const Conv2dShape& s, const T* x, const T* dy, T* dw,
                                  T* dbias) {
  ::tl::cuda::DeviceGuard guard(device);
  if (!dw && !dbias) return;
  const Geometry g = geometry(s);
  if (!cudnn_can_run(s, g))
    return ::tl::kernels::cuda::conv2d_backward_filter<T>(device, s, x, dy, dw, dbias);
  cudnnHandle_t handle = ::tl::cuda::cudnn_handle(device);
  const Scalars<T> k;
  if (dw) {
    const Setup<T> setup;
    const Key key = make_key(device, Direction::BackwardFilter, cudnn_type<T>(), setup.tf32, s);
    std::optional<Choice> choice = cached_choice(key);
    if (choice && choice->native)
      return ::tl::kernels::cuda::conv2d_backward_filter<T>(device, s, x, dy, dw, dbias);

    std::unique_ptr<::tl::cuda::Workspace> padded;
    const T* input = x;
    if (g.explicit_padding()) {
      padded = std::make_unique<::tl::cuda::Workspace>(device, padded_count(s, g) * sizeof(T));
      pad_input(device, s, g, x, padded->as<T>());
      input = padded->as<T>();
    }
    Descriptors d(s, g, cudnn_type<T>(), setup.math);
    if (!choice) {
      d.check_output(s);
      choice = find_backward_filter<T>(handle, d, input, dy, dw, setup.fma_only, device);
      store_choice(key, *choice);
      if (choice->native) return ::tl::kernels::cuda::conv2d_backward_filter<T>(device, s, x, dy, dw, dbias);
    }
    TL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, choice->math));
    ::tl::cuda::Workspace ws(device, choice->workspace);
    TL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &k.one, d.x, input, d.y, dy, d.conv,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice->algo),
                                                  ws.data(), ws.size(), &k.zero, d.w, dw));
  }
  if (dbias) {
    TensorDescriptor dy_desc, b;
    dy_desc.set(cudnn_type<T>(), s.batch, s.out_channels, s.out_h(), s.out_w());
    set_bias<T>(b, s);
    TL_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle, &k.one, dy_desc, dy, &k.zero, b, dbias));
  }
}

std::string cudnn_chosen_algorithms() {
  AlgorithmCache& cache = algorithm_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  std::ostringstream out;
  for (const auto& [key, choice] : cache.choices) {
    const auto& v = key.shape;
    // v: batch, in_channels, in_h, in_w, out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_top,
    // pad_bottom, pad_left, pad_right, dilation_h, dilation_w, groups.
    out << "cuda:" << key.device << ' ' << direction_name(key.direction) << ' '
        << (key.type == CUDNN_DATA_DOUBLE ? "f64" : (key.tf32 ? "f32-tf32" : "f32")) << " n" << v[0] << " c"
        << v[1] << ' ' << v[2] << 'x' << v[3] << " k" << v[4] << ' ' << v[5] << 'x' << v[6] << " s" << v[7]
        << 'x' << v[8] << " p" << v[9] << ',' << v[10] << ',' << v[11] << ',' << v[12] << " d" << v[13] << 'x'
        << v[14] << " g" << v[15] << ": ";
    if (choice.native)
      out << "native (no usable cuDNN algorithm)";
    else
      out << "algo " << choice.algo << ' ' << algo_name(key.direction, choice.algo) << ", math "
          << math_name(choice.math) << ", workspace " << choice.workspace << " B, " << choice.time_ms
          << " ms";
    out << '\n';
  }
  return out.str();
}

#define TL_INSTANTIATE(T)                                                                           \
  template void cudnn_conv2d_forward<T>(int, const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void cudnn_conv2d_backward_data<T>(int, const Conv2dShape&, const T*, const T*, T*);     \
  template void cudnn_conv2d_backward_filter<T>(int, const Conv2dShape&, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::vendor
