#include "engine/shape.h"

#include "engine/error.h"

namespace tl {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::int64_t normalize_dim(std::int64_t dim, std::int64_t ndim, const char* op, const Shape& shape) {
  const std::int64_t d = dim < 0 ? dim + ndim : dim;
  TL_CHECK(d >= 0 && d < ndim, ShapeError, op, ": dimension ", dim, " is out of range for a tensor of shape ",
           shape_str(shape));
  return d;
}

}  // namespace tl
