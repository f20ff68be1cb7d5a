// Argument checks shared by the ops. Each throws with the op's name and the offending tensor's description,
// so a message reads like "conv2d: weight must have 4 dimensions, got float32[3, 3] cpu".
#pragma once

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/ops.h"

namespace tl::ops {

inline void require_defined(const Tensor& t, const char* op, const char* what) {
  TL_CHECK(t.defined(), Error, op, ": ", what, " is an undefined tensor");
}

inline void require_floating(const Tensor& t, const char* op, const char* what) {
  require_defined(t, op, what);
  TL_CHECK(is_floating(t.dtype()), DTypeError, op, ": ", what, " must be float32 or float64, got ",
           t.description());
}

inline void require_dim(const Tensor& t, std::int64_t dims, const char* op, const char* what) {
  TL_CHECK(t.dim() == dims, ShapeError, op, ": ", what, " must have ", dims, " dimensions, got ",
           t.description());
}

inline void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* what) {
  TL_CHECK(t.shape() == shape, ShapeError, op, ": ", what, " must have shape ", shape_str(shape), ", got ",
           t.description());
}

// Same dtype and device as the reference tensor (the op's main input).
inline void require_like(const Tensor& t, const Tensor& like, const char* op, const char* what) {
  require_defined(t, op, what);
  TL_CHECK(t.dtype() == like.dtype(), DTypeError, op, ": ", what, " is ", t.description(),
           " but the input is ", like.description());
  TL_CHECK(t.device() == like.device(), DeviceError, op, ": ", what, " is on ", t.device().str(),
           " but the input is on ", like.device().str());
}

inline kernels::Context context_for(const Tensor& t) {
  return kernels::Context::current(t.device());
}

// The values of t as a dense buffer of T; t must be contiguous (callers hold a .contiguous() copy).
template <typename T>
const T* cdata(const Tensor& t) {
  return t.defined() ? t.device_data<T>() : nullptr;
}

}  // namespace tl::ops
