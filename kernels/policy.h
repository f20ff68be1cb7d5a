// Which implementation of a kernel runs. Chosen per call: first by the tensor's device, then by the policy:
//   auto       per kernel, the path measured fastest (bench/RESULTS.md): on the CPU tl's own SGEMM for
//              float32 and OpenBLAS for float64; on a GPU cuDNN/cuBLAS where they have the kernel
//   native     our own fast kernels only (kernels/cpu, kernels/cuda)
//   vendor     the vendor path where it exists (OpenBLAS; cuDNN/cuBLAS), else native
//   reference  the plain CPU reference loops (slow; the ground truth tests compare against); on a GPU,
//              which has no reference path, the native kernels
// The default comes from the environment variable TL_KERNELS (unset means auto); PolicyGuard overrides it for
// the current thread within a scope (tests use it to run one computation down every path).
#pragma once

#include <optional>
#include <string>

#include "engine/device.h"

namespace tl::kernels {

enum class Policy { Auto, Native, Vendor, Reference };

const char* policy_name(Policy policy);

// Parses "auto", "native", "vendor" or "reference"; `source` names where the text came from (a flag or the
// environment variable) so the error can say what to fix.
Policy parse_policy(const std::string& text, const std::string& source);

// The policy in force on this thread: the innermost PolicyGuard, else TL_KERNELS, else auto.
Policy current_policy();

class PolicyGuard {
 public:
  explicit PolicyGuard(Policy policy);
  ~PolicyGuard();
  PolicyGuard(const PolicyGuard&) = delete;
  PolicyGuard& operator=(const PolicyGuard&) = delete;

 private:
  std::optional<Policy> previous_;
};

// What every kernel receives: where the data lives and which path to take.
struct Context {
  Device device = Device::cpu();
  Policy policy = Policy::Auto;

  static Context current(Device device = Device::cpu()) { return {device, current_policy()}; }
};

}  // namespace tl::kernels
