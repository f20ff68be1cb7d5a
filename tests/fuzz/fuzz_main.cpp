// One libFuzzer binary per target: TL_FUZZ_TARGET names it (tests/fuzz/CMakeLists.txt). A tl::Error is the
// reader refusing the input, which is fine; anything else escapes to libFuzzer and is reported as a crash.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const tl::fuzz::Target& target = tl::fuzz::target(TL_FUZZ_TARGET);
  (void)tl::fuzz::run(target, data, size);
  return 0;
}
