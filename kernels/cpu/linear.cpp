// Linear layers as GEMMs on the policy's path: y = x w^T + b; dx = dy w; dw = dy^T x; db = column sums of dy.
#include "kernels/cpu/cpu.h"

namespace tl::kernels::cpu {

template <typename T>
void linear_forward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                    const T* b, T* y) {
  if (b) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) y[r * out + o] = b[o];
  }
  gemm<T>(ctx, false, true, rows, out, in, T(1), x, in, w, in, b ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(const Context& ctx, int64_t rows, int64_t in, int64_t out, const T* x, const T* w,
                     const T* dy, T* dx, T* dw, T* db) {
  if (dx) gemm<T>(ctx, false, false, rows, in, out, T(1), dy, out, w, in, T(0), dx, in);
  if (dw) gemm<T>(ctx, true, false, out, in, rows, T(1), dy, out, x, in, T(0), dw, in);
  if (db) sum_dim<T>(1, rows, out, dy, db);
}

template void linear_forward<float>(const Context&, int64_t, int64_t, int64_t, const float*, const float*,
                                    const float*, float*);
template void linear_forward<double>(const Context&, int64_t, int64_t, int64_t, const double*, const double*,
                                     const double*, double*);
template void linear_backward<float>(const Context&, int64_t, int64_t, int64_t, const float*, const float*,
                                     const float*, float*, float*, float*);
template void linear_backward<double>(const Context&, int64_t, int64_t, int64_t, const double*, const double*,
                                      const double*, double*, double*, double*);

}  // namespace tl::kernels::cpu
