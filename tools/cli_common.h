// What every tl command-line tool shares: the error-to-exit-code convention and a few formatting helpers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "engine/atomic_file.h"
#include "engine/device.h"
#include "engine/error.h"
#include "kernels/cuda/device.h"
#include "models/registry.h"

namespace tl::tools {

// Runs `body`; a tl::Error (or any other exception) is printed as "<tool>: <message>" on stderr and becomes
// exit status 1. Usage errors are CLI11's (status 2 and up).
template <typename Body>
int run_reporting_errors(const char* tool, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 1;
  }
}

// 25557032 -> "25,557,032".
inline std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// Throws ValueError naming the flag when `path` cannot be written as an output file (its folder is missing or
// not writable, or a folder stands at `path`), so that a tool fails before its work, not after it.
inline void check_output_path(const std::string& path, const char* flag) {
  try {
    const AtomicFile probe(path);  // reserves a temporary name only; nothing is created
  } catch (const Error& e) {
    throw ValueError(str(flag, ": ", e.what()));
  }
}

// Throws ValueError naming the flag when `name` is not a registry architecture.
inline void check_architecture(const std::string& name, const char* flag) {
  if (!models::architecture_names(name).empty() && name.find_first_of("*?") == std::string::npos) return;
  std::string known;
  for (const auto& a : models::architectures()) known += (known.empty() ? "" : ", ") + a.name;
  throw ValueError(str(flag, ": unknown architecture '", name, "' (known: ", known, ")"));
}

// --device cpu | cuda | cuda:N, checked against this build and machine; errors name the flag and the text.
inline Device parse_device_flag(const std::string& text, const char* flag) {
  Device device;
  try {
    device = Device::parse(text);
  } catch (const ValueError& e) {
    throw ValueError(str(flag, ": ", e.what()));
  }
  if (device.is_cuda()) cuda::require_device(device.index, str(flag, " ", text));
  return device;
}

}  // namespace tl::tools
