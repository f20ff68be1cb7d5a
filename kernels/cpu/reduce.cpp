// Sums accumulated in double. The full sum adds fixed-size blocks in parallel, then the block sums in order,
// so the result is the same bit for bit whatever the thread count.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace tl::kernels::cpu {

template <typename T>
T sum(int64_t n, const T* x) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    double acc = 0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) acc += x[i];
    partial[b] = acc;
  }
  double total = 0;
  for (double p : partial) total += p;
  return static_cast<T>(total);
}

template <typename T>
void sum_dim(int64_t outer, int64_t reduced, int64_t inner, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (outer > 1 && outer * reduced * inner > kParallelGrain)
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<double> acc(inner, 0.0);
    for (int64_t r = 0; r < reduced; ++r) {
      const T* row = x + (o * reduced + r) * inner;
      for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
    }
    for (int64_t i = 0; i < inner; ++i) y[o * inner + i] = static_cast<T>(acc[i]);
  }
}

template float sum<float>(int64_t, const float*);
template double sum<double>(int64_t, const double*);
template void sum_dim<float>(int64_t, int64_t, int64_t, const float*, float*);
template void sum_dim<double>(int64_t, int64_t, int64_t, const double*, double*);

}  // namespace tl::kernels::cpu
