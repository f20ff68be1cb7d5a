// NumPy .npy files (format 1.0/2.0, little-endian, C order) for exchanging tensors with scripts: float32,
// float64 and int64.
#pragma once

#include <string>

#include "engine/tensor.h"

namespace tl {

// Throws Error naming the file for anything but a C-ordered little-endian <f4, <f8 or <i8 array.
Tensor load_npy(const std::string& path);
// Writes atomically (temporary file, then rename).
void save_npy(const std::string& path, const Tensor& tensor);

}  // namespace tl
