// Where tests find their inputs: fixtures generated at test time by the committed scripts in tests/fixtures/
// (ctest runs them first, into the build tree), and the real data and ImageNet weights in ../shared, which a
// fresh machine may not have. CMake compiles both folders in (TL_FIXTURE_DIR, TL_SHARED_DIR); environment
// variables of the same names override them.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace tl::testing {

// $TL_FIXTURE_DIR/<relative>; empty when the variable is unset (the test was not started by ctest).
inline std::string folder_setting(const char* variable, const char* built_in) {
  const char* env = std::getenv(variable);
  return env && *env ? env : built_in;
}

// <fixture folder>/<relative>.
inline std::string fixture_path(const std::string& relative) {
  return (std::filesystem::path(folder_setting("TL_FIXTURE_DIR", TL_FIXTURE_DIR)) / relative).string();
}

// <shared folder>/<relative> when that file or folder exists, else empty (tests then skip, saying so).
inline std::string shared_path(const std::string& relative) {
  const std::filesystem::path p =
      std::filesystem::path(folder_setting("TL_SHARED_DIR", TL_SHARED_DIR)) / relative;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

}  // namespace tl::testing

// Fails the current test unless the fixture exists (ctest generates fixtures before the tests that need
// them); yields its path.
#define TL_REQUIRE_FIXTURE(var, relative)                        \
  const std::string var = ::tl::testing::fixture_path(relative); \
  if (!std::filesystem::exists(var))                             \
  GTEST_FAIL() << "fixture " << var << " is missing: run the tests through ctest, which generates it first"

// Skips the current test unless ../shared holds `relative`.
#define TL_REQUIRE_SHARED(var, relative)                        \
  const std::string var = ::tl::testing::shared_path(relative); \
  if (var.empty()) GTEST_SKIP() << "../shared/" << (relative) << " is not on this machine"
