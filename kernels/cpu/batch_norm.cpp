// BatchNorm over [N, C, spatial], one channel per OpenMP task. Statistics are two-pass (mean, then squared
// deviations) and accumulated in double: a one-pass E[x^2] - E[x]^2 loses everything on large-mean
// activations.
#include <cmath>

#include "kernels/cpu/cpu.h"

namespace tl::kernels::cpu {
namespace {

// Visits the N planes of channel c: fn(plane pointer offset).
template <typename Fn>
void for_each_plane(const BatchNormShape& s, int64_t c, Fn&& fn) {
  for (int64_t n = 0; n < s.batch; ++n) fn((n * s.channels + c) * s.spatial);
}

// y = (x - mean) * scale + beta. Subtracting the mean first, in double, matters: the folded form
// x * scale + (beta - mean * scale) cancels catastrophically in float when |mean| is much larger than the
// spread, and train-mode gradients of deep networks amplify that error a thousandfold.
template <typename T>
void normalize_channel(const BatchNormShape& s, int64_t c, const T* x, double mean, double scale, double beta,
                       T* y) {
  for_each_plane(s, c, [&](int64_t at) {
    for (int64_t i = 0; i < s.spatial; ++i) y[at + i] = static_cast<T>((x[at + i] - mean) * scale + beta);
  });
}

}  // namespace

template <typename T>
void batch_norm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta, double eps,
                              double momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                              T* save_invstd) {
  const double count = static_cast<double>(s.batch * s.spatial);
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial > 4096)
  for (int64_t c = 0; c < s.channels; ++c) {
    double total = 0;
    for_each_plane(s, c, [&](int64_t at) {
      for (int64_t i = 0; i < s.spatial; ++i) total += x[at + i];
    });
    const double mean = total / count;
    double squares = 0;
    for_each_plane(s, c, [&](int64_t at) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double d = x[at + i] - mean;
        squares += d * d;
      }
    });
    const double var = squares / count;
    const double invstd = 1.0 / std::sqrt(var + eps);
    normalize_channel(s, c, x, mean, gamma[c] * invstd, beta[c], y);
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
    if (running_var) {
      const double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
    }
  }
}

template <typename T>
void batch_norm_backward_train(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta) {
  const double count = static_cast<double>(s.batch * s.spatial);
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial > 4096)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for_each_plane(s, c, [&](int64_t at) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        sum_dy += dy[at + i];
        sum_dy_xhat += dy[at + i] * ((x[at + i] - mean) * invstd);
      }
    });
    if (dbeta) dbeta[c] = static_cast<T>(sum_dy);
    if (dgamma) dgamma[c] = static_cast<T>(sum_dy_xhat);
    if (!dx) continue;
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)): the batch statistics depend on x too.
    const double k = gamma[c] * invstd, mean_dy = sum_dy / count, mean_dy_xhat = sum_dy_xhat / count;
    for_each_plane(s, c, [&](int64_t at) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double xhat = (x[at + i] - mean) * invstd;
        dx[at + i] = static_cast<T>(k * (dy[at + i] - mean_dy - xhat * mean_dy_xhat));
      }
    });
  }
}

template <typename T>
void batch_norm_forward_eval(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, double eps, T* y) {
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial > 4096)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    normalize_channel(s, c, x, running_mean[c], gamma[c] * invstd, beta[c], y);
  }
}

template <typename T>
void batch_norm_backward_eval(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma,
                              T* dbeta) {
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial > 4096)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    if (dx) {
      const T scale = static_cast<T>(gamma[c] * invstd);
      for_each_plane(s, c, [&](int64_t at) {
        for (int64_t i = 0; i < s.spatial; ++i) dx[at + i] = dy[at + i] * scale;
      });
    }
    if (!dgamma && !dbeta) continue;
    double sum_dy = 0, sum_dy_xhat = 0;
    for_each_plane(s, c, [&](int64_t at) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        sum_dy += dy[at + i];
        sum_dy_xhat += dy[at + i] * ((x[at + i] - running_mean[c]) * invstd);
      }
    });
    if (dbeta) dbeta[c] = static_cast<T>(sum_dy);
    if (dgamma) dgamma[c] = static_cast<T>(sum_dy_xhat);
  }
}

#define TL_INSTANTIATE(T)                                                                                   \
  template void batch_norm_forward_train<T>(const BatchNormShape&, const T*, const T*, const T*, double,    \
                                            double, T*, T*, T*, T*, T*);                                    \
  template void batch_norm_backward_train<T>(const BatchNormShape&, const T*, const T*, const T*, const T*, \
                                             const T*, T*, T*, T*);                                         \
  template void batch_norm_forward_eval<T>(const BatchNormShape&, const T*, const T*, const T*, const T*,   \
                                           const T*, double, T*);                                           \
  template void batch_norm_backward_eval<T>(const BatchNormShape&, const T*, const T*, const T*, const T*,  \
                                            const T*, double, T*, T*, T*);
TL_INSTANTIATE(float)
TL_INSTANTIATE(double)
#undef TL_INSTANTIATE

}  // namespace tl::kernels::cpu
