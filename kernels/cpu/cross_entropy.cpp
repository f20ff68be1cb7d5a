// Softmax cross-entropy with integer labels and label smoothing, mean over rows. Each row's log-sum-exp is
// taken after subtracting the row maximum, in double, so large logits neither overflow nor lose the small
// ones.
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/cpu.h"

namespace tl::kernels::cpu {
namespace {

void check_labels(int64_t rows, int64_t classes, const int64_t* labels) {
  for (int64_t r = 0; r < rows; ++r)
    TL_CHECK(labels[r] >= 0 && labels[r] < classes, ValueError, "cross_entropy: label ", labels[r],
             " at row ", r, " is outside [0, ", classes, ")");
}

}  // namespace

template <typename T>
T cross_entropy_forward(int64_t rows, int64_t classes, const T* logits, const int64_t* labels,
                        double label_smoothing, T* probs) {
  check_labels(rows, classes, labels);
  std::vector<double> row_loss(rows);
#pragma omp parallel for schedule(static) if (rows * classes > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * classes;
    double max = z[0];
    for (int64_t j = 1; j < classes; ++j) max = std::max(max, static_cast<double>(z[j]));
    double sum_exp = 0, sum_logits = 0;
    for (int64_t j = 0; j < classes; ++j) {
      sum_exp += std::exp(z[j] - max);
      sum_logits += z[j];
    }
    const double log_sum = max + std::log(sum_exp);
    for (int64_t j = 0; j < classes; ++j) probs[r * classes + j] = static_cast<T>(std::exp(z[j] - log_sum));
    // -sum_j target_j * log p_j, with target = (1 - eps) onehot + eps / C.
    const double nll = log_sum - z[labels[r]];
    const double uniform = log_sum - sum_logits / static_cast<double>(classes);
    row_loss[r] = (1 - label_smoothing) * nll + label_smoothing * uniform;
  }
  double total = 0;
  for (double l : row_loss) total += l;
  return static_cast<T>(total / static_cast<double>(rows));
}

template <typename T>
void cross_entropy_backward(int64_t rows, int64_t classes, const T* probs, const int64_t* labels,
                            double label_smoothing, T dloss, T* dlogits) {
  check_labels(rows, classes, labels);
  const double scale = static_cast<double>(dloss) / static_cast<double>(rows);
  const double off_target = label_smoothing / static_cast<double>(classes);
#pragma omp parallel for schedule(static) if (rows * classes > 16384)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < classes; ++j) {
      const double target = off_target + (j == labels[r] ? 1 - label_smoothing : 0.0);
      dlogits[r * classes + j] = static_cast<T>(scale * (probs[r * classes + j] - target));
    }
}

template float cross_entropy_forward<float>(int64_t, int64_t, const float*, const int64_t*, double, float*);
template double cross_entropy_forward<double>(int64_t, int64_t, const double*, const int64_t*, double,
                                              double*);
template void cross_entropy_backward<float>(int64_t, int64_t, const float*, const int64_t*, double, float,
                                            float*);
template void cross_entropy_backward<double>(int64_t, int64_t, const double*, const int64_t*, double, double,
                                             double*);

}  // namespace tl::kernels::cpu
