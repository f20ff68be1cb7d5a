// Element types. float32 is what models run in; float64 exists for finite-difference gradient checks; int64
// holds labels and counters such as BatchNorm's num_batches_tracked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"

namespace tl {

enum class DType : std::uint8_t { Float32, Float64, Int64 };

constexpr std::size_t dtype_size(DType t) {
  return t == DType::Float32 ? 4 : 8;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
  }
  return "?";
}

constexpr bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64;
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::Int64;
}

// Calls fn.template operator()<T>() with T the C++ type of a floating dtype:
//   visit_floating(t, "conv2d", [&]<typename T>() { ... });
// `op` names the operation in the error for a non-floating dtype.
template <typename Fn>
decltype(auto) visit_floating(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
    default:
      break;
  }
  throw DTypeError(str(op, ": expected a float32 or float64 tensor, got ", dtype_name(t)));
}

// As visit_floating, for every dtype.
template <typename Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
    case DType::Int64:
      return fn.template operator()<std::int64_t>();
  }
  throw DTypeError("unknown dtype");
}

}  // namespace tl
