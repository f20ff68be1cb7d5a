#include "kernels/policy.h"

#include <cstdlib>

#include "engine/error.h"

namespace tl::kernels {
namespace {
// Scoped per-thread override set by PolicyGuard; empty outside any guard.
thread_local std::optional<Policy> guarded_policy;
}  // namespace

const char* policy_name(Policy policy) {
  switch (policy) {
    case Policy::Auto:
      return "auto";
    case Policy::Native:
      return "native";
    case Policy::Vendor:
      return "vendor";
    case Policy::Reference:
      return "reference";
  }
  return "?";
}

Policy parse_policy(const std::string& text, const std::string& source) {
  if (text == "auto") return Policy::Auto;
  if (text == "native") return Policy::Native;
  if (text == "vendor") return Policy::Vendor;
  if (text == "reference") return Policy::Reference;
  throw ValueError(
      str(source, ": unknown kernel policy '", text, "' (expected auto, native, vendor or reference)"));
}

Policy current_policy() {
  if (guarded_policy) return *guarded_policy;
  const char* env = std::getenv("TL_KERNELS");
  if (!env || !*env) return Policy::Auto;
  return parse_policy(env, "environment variable TL_KERNELS");
}

PolicyGuard::PolicyGuard(Policy policy) : previous_(guarded_policy) {
  guarded_policy = policy;
}
PolicyGuard::~PolicyGuard() {
  guarded_policy = previous_;
}

}  // namespace tl::kernels
