// Softmax cross-entropy: the loss most fine-tuning runs minimise.
#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/ops/checks.h"

namespace tl {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing) {
  const char* op = "cross_entropy";
  ops::require_floating(logits, op, "the logits");
  ops::require_dim(logits, 2, op, "the logits (rows, classes)");
  ops::require_defined(labels, op, "the labels");
  TL_CHECK(labels.dtype() == DType::Int64, DTypeError, op, ": labels must be int64 class indices, got ",
           labels.description());
  TL_CHECK(labels.shape() == Shape({logits.size(0)}), ShapeError, op, ": labels ", labels.description(),
           " do not match logits ", logits.description(), " (expected ", shape_str({logits.size(0)}), ")");
  TL_CHECK(logits.size(0) >= 1 && logits.size(1) >= 1, ShapeError, op, ": empty logits ",
           logits.description());
  TL_CHECK(label_smoothing >= 0 && label_smoothing <= 1, ValueError, op,
           ": label_smoothing must be in [0, 1], got ", label_smoothing);
  TL_CHECK(labels.device() == logits.device(), DeviceError, op, ": labels are on ", labels.device().str(),
           " but the logits on ", logits.device().str());
  const std::int64_t rows = logits.size(0), classes = logits.size(1);
  const Tensor zc = logits.contiguous(), yc = labels.contiguous();
  Tensor probs = empty(logits.shape(), logits.dtype(), logits.device());
  Tensor loss = empty({}, logits.dtype(), logits.device());
  visit_floating(logits.dtype(), op, [&]<typename T>() {
    // The kernel returns the loss to the host; fill_ puts it where the tensor lives (exact: T -> double ->
    // T).
    loss.fill_(static_cast<double>(kernels::cross_entropy_forward<T>(
        ops::context_for(logits), rows, classes, zc.device_data<T>(), yc.device_data<std::int64_t>(),
        label_smoothing, probs.device_data<T>())));
  });
  return record(op, loss, {logits},
                [probs, yc, rows, classes, label_smoothing](const Tensor& g, const std::vector<bool>&) {
                  Tensor dz = empty(probs.shape(), probs.dtype(), probs.device());
                  visit_floating(probs.dtype(), "cross_entropy backward", [&]<typename T>() {
                    kernels::cross_entropy_backward<T>(ops::context_for(probs), rows, classes,
                                                       probs.device_data<T>(), yc.device_data<std::int64_t>(),
                                                       label_smoothing, g.item<T>(), dz.device_data<T>());
                  });
                  return std::vector<Tensor>{dz};
                });
}

}  // namespace tl
