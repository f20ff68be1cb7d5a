// The fuzz targets' entry functions, in one place: the libFuzzer mains (fuzz_main.cpp, one binary per target)
// and the regression test that replays the committed corpus in every normal build (test_fuzz_regressions.cpp)
// call the same code, so a corpus file means the same thing to both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tl::fuzz {

// Feeds one input to one reader. Throws tl::Error (or a subclass) when the reader refuses the input; that is
// the expected outcome for a hostile file. Any other exception, a crash or a sanitizer report is a finding.
using Entry = void (*)(const std::uint8_t* data, std::size_t size);

struct Target {
  const char* name;    // the binary: tl_fuzz_<name>
  const char* reader;  // what it exercises, for messages and the README
  Entry entry;
  const char* corpus;  // its corpus folder, tests/fuzz/corpus/<corpus>/ (the in-process HDF5 targets share
                       // their sandboxed twin's)
};

// Every target, in a fixed order.
const std::vector<Target>& targets();
// Throws tl::ValueError listing the known names when `name` is not one.
const Target& target(std::string_view name);

// Runs `target` on one input: true when the reader accepted it, false when it refused it with a tl::Error.
// Anything else propagates.
bool run(const Target& target, const std::uint8_t* data, std::size_t size);

}  // namespace tl::fuzz
