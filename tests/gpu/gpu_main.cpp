// The GPU suite's main. ctest runs it once per area (tests/CMakeLists.txt), so that a handful of processes
// pay for CUDA context and library start-up instead of one per test. A run in which every selected test
// skipped (no device here) exits with kAllSkipped, which ctest reports as skipped; any failure exits non-zero
// as usual, so a skip can never hide a failure next to it.
#include <gtest/gtest.h>

namespace {
constexpr int kAllSkipped = 77;  // SKIP_RETURN_CODE in tests/CMakeLists.txt
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  if (status != 0) return status;
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  if (unit.test_to_run_count() > 0 && unit.skipped_test_count() == unit.test_to_run_count())
    return kAllSkipped;
  return 0;
}
