// Dropout masks and random fills from the Philox stream: element i depends only on (seed, offset, i), so the
// parallel loops give the same values as a serial one, and dropout_backward rebuilds forward's mask.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"
#include "kernels/philox.h"

namespace tl::kernels::cpu {
namespace {

// Calls fn(i, kept) for every element, one Philox block (four draws) per four elements.
template <typename Fn>
void for_each_mask_element(int64_t n, double p, std::uint64_t seed, std::uint64_t offset, Fn&& fn) {
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    const PhiloxBlock bits = philox4x32(seed, offset / 4 + static_cast<std::uint64_t>(b));
    for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
      fn(4 * b + k, philox_uniform_float(bits[static_cast<std::size_t>(k)]) >= p);
  }
}

}  // namespace

template <typename T>
void dropout_forward(int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* x, T* y) {
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  for_each_mask_element(n, p, seed, offset, [&](int64_t i, bool kept) { y[i] = kept ? x[i] * scale : T(0); });
}

template <typename T>
void dropout_backward(int64_t n, double p, std::uint64_t seed, std::uint64_t offset, const T* dy, T* dx) {
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  for_each_mask_element(n, p, seed, offset,
                        [&](int64_t i, bool kept) { dx[i] = kept ? dy[i] * scale : T(0); });
}

// Both fills work a Philox block (four 32-bit draws) at a time: one block yields four floats, or one double.
template <typename T>
void fill_uniform(int64_t n, std::uint64_t seed, std::uint64_t offset, double low, double high, T* y) {
  const double range = high - low;
  const std::uint64_t first_block = offset / 4;
  if constexpr (sizeof(T) == 4) {
    const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t b = 0; b < blocks; ++b) {
      const PhiloxBlock bits = philox4x32(seed, first_block + static_cast<std::uint64_t>(b));
      for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
        y[4 * b + k] = static_cast<T>(low + range * philox_uniform_float(bits[static_cast<std::size_t>(k)]));
    }
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const PhiloxBlock bits = philox4x32(seed, first_block + static_cast<std::uint64_t>(i));
      y[i] = static_cast<T>(low + range * philox_uniform_double(bits[0], bits[1]));
    }
  }
}

template <typename T>
void fill_normal(int64_t n, std::uint64_t seed, std::uint64_t offset, double mean, double stddev, T* y) {
  const std::uint64_t first_block = offset / 4;
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    const std::array<double, 4> z =
        philox_normals(philox4x32(seed, first_block + static_cast<std::uint64_t>(b)));
    for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
      y[4 * b + k] = static_cast<T>(mean + stddev * z[static_cast<std::size_t>(k)]);
  }
}

#define TL_INSTANTIATE(T)                                                                         \
  template void dropout_forward<T>(int64_t, double, std::uint64_t, std::uint64_t, const T*, T*);  \
  template void dropout_backward<T>(int64_t, double, std::uint64_t, std::uint64_t, const T*, T*); \
  template void fill_uniform<T>(int64_t, std::uint64_t, std::uint64_t, double, double, T*);       \
  template void fill_normal<T>(int64_t, std::uint64_t, std::uint64_t, double, double, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu
