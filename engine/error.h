// Exceptions thrown by tl. Every message names the tensor, shape, file or flag at fault, so a user can act on
// it without a debugger. This header depends on the standard library only, so kernels/ may use it too.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Incompatible or invalid shapes, e.g. adding [2, 3] to [3, 2].
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An operation given a dtype it does not support, or two tensors whose dtypes differ.
class DTypeError : public Error {
 public:
  using Error::Error;
};

// A tensor on the wrong device, or a device this build or machine does not have.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// An argument with a value that makes no sense (negative stride, label out of range, unknown policy name).
class ValueError : public Error {
 public:
  using Error::Error;
};

// Concatenates anything printable into one string: tl::str("got ", n, " dims").
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

}  // namespace tl

// Throws `ErrorType(tl::str(...))` when `cond` is false.
#define TL_CHECK(cond, ErrorType, ...)                    \
  do {                                                    \
    if (!(cond)) throw ErrorType(::tl::str(__VA_ARGS__)); \
  } while (0)
