// Element-wise arithmetic, squeeze-excitation scaling, strided gathers and dtype casts.
#include <cstring>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {

template <typename T>
void binary(BinaryOp op, int64_t n, const T* a, const T* b, T* y) {
  switch (op) {
    case BinaryOp::Add:
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
      return;
    case BinaryOp::Sub:
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i];
      return;
    case BinaryOp::Mul:
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
      return;
    case BinaryOp::Div:
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) y[i] = a[i] / b[i];
      return;
  }
}

template <typename T>
void affine(int64_t n, const T* x, T scale, T shift, T* y) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + shift;
}

template <typename T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y) {
  if (beta == T(0)) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
  }
}

template <typename T>
void fill(int64_t n, T value, T* y) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

template <typename T>
void channel_mul_forward(int64_t planes, int64_t spatial, const T* x, const T* scale, T* y) {
#pragma omp parallel for schedule(static) if (planes * spatial > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < spatial; ++i) y[p * spatial + i] = x[p * spatial + i] * scale[p];
}

template <typename T>
void channel_mul_backward(int64_t planes, int64_t spatial, const T* x, const T* scale, const T* dy, T* dx,
                          T* dscale) {
#pragma omp parallel for schedule(static) if (planes * spatial > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T* dy_p = dy + p * spatial;
    if (dx)
      for (int64_t i = 0; i < spatial; ++i) dx[p * spatial + i] = dy_p[i] * scale[p];
    if (dscale) {
      double acc = 0;
      for (int64_t i = 0; i < spatial; ++i) acc += static_cast<double>(dy_p[i]) * x[p * spatial + i];
      dscale[p] = static_cast<T>(acc);
    }
  }
}

void copy_strided(int64_t element_size, int64_t ndim, const int64_t* sizes, const int64_t* src_strides,
                  const void* src, const int64_t* dst_strides, void* dst) {
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  if (ndim == 0) {
    std::memcpy(out, in, element_size);
    return;
  }
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < ndim; ++d) rows *= sizes[d];
  const int64_t inner = sizes[ndim - 1], src_inner = src_strides[ndim - 1], dst_inner = dst_strides[ndim - 1];
  if (rows * inner == 0) return;
    // A "row" runs along the innermost dimension; its start offsets follow from the row index.
#pragma omp parallel for schedule(static) if (rows * inner > kParallelGrain)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t src_at = 0, dst_at = 0, rest = row;
    for (int64_t d = ndim - 2; d >= 0; --d) {
      const int64_t i = rest % sizes[d];
      src_at += i * src_strides[d];
      dst_at += i * dst_strides[d];
      rest /= sizes[d];
    }
    if (src_inner == 1 && dst_inner == 1) {
      std::memcpy(out + dst_at * element_size, in + src_at * element_size, inner * element_size);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        std::memcpy(out + (dst_at + i * dst_inner) * element_size,
                    in + (src_at + i * src_inner) * element_size, element_size);
    }
  }
}

namespace {

template <typename From, typename To>
void convert(int64_t n, const void* src, void* dst) {
  const From* in = static_cast<const From*>(src);
  To* out = static_cast<To*>(dst);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<To>(in[i]);
}

}  // namespace

void cast(int64_t n, DType from, const void* src, DType to, void* dst) {
  visit_dtype(from, [&]<typename From>() {
    visit_dtype(to, [&]<typename To>() { convert<From, To>(n, src, dst); });
  });
}

#define TL_INSTANTIATE(T)                                                         \
  template void binary<T>(BinaryOp, int64_t, const T*, const T*, T*);             \
  template void affine<T>(int64_t, const T*, T, T, T*);                           \
  template void axpby<T>(int64_t, T, const T*, T, T*);                            \
  template void channel_mul_forward<T>(int64_t, int64_t, const T*, const T*, T*); \
  template void channel_mul_backward<T>(int64_t, int64_t, const T*, const T*, const T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE
template void fill<float>(int64_t, float, float*);
template void fill<double>(int64_t, double, double*);
template void fill<int64_t>(int64_t, int64_t, int64_t*);

}  // namespace tl::kernels::cpu
