// Shapes and strides, counted in elements, outermost dimension first (NCHW).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tl {

using Shape = std::vector<std::int64_t>;
using Strides = std::vector<std::int64_t>;

// Product of the sizes; 1 for a scalar (empty shape).
std::int64_t shape_numel(const Shape& shape);

// Row-major strides for a densely packed tensor of this shape.
Strides contiguous_strides(const Shape& shape);

// "[2, 3, 224, 224]".
std::string shape_str(const Shape& shape);

// Maps a possibly negative dimension index (-1 is the last) into [0, ndim); throws ShapeError naming `op`
// and the shape when it is out of range.
std::int64_t normalize_dim(std::int64_t dim, std::int64_t ndim, const char* op, const Shape& shape);

}  // namespace tl
