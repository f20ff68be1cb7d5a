#!/usr/bin/env bash
# The sanitizer stage of tools/test.sh: builds the libraries, tools and tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (-O1 -g, no CUDA, no benchmarks) in their own folder and runs the unit tests, a subset
# of the model tests and the leak checks of the tools (label sanitize), every process under LeakSanitizer. Any
# sanitizer report fails the test it happens in. See tests/sanitize/README.md for the choice of tests.
#
#   tests/sanitize/run.sh [CMAKE_ARGS...]     e.g. tests/sanitize/run.sh -DTL_WERROR=ON
#
# TL_SANITIZE_BUILD_DIR picks the build folder (default: build-asan).
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${TL_SANITIZE_BUILD_DIR:-build-asan}"
jobs="$(nproc)"
# The caller's CMake arguments first (tools/test.sh passes its own, e.g. -DTL_WERROR=ON), then what this stage is.
cmake -S . -B "$build" -G Ninja "$@" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -DTL_SANITIZE=address,undefined -DTL_CUDA=OFF -DTL_BUILD_BENCHMARKS=OFF
cmake --build "$build" -j "$jobs"

# Every report halts the process with status 86, which no tl tool uses (a tool test that expects status 1 from a
# refused input must not pass on a sanitizer report); leaks are checked at every exit. These variables reach only
# the instrumented binaries in effect: the fixture scripts' /usr/bin/python3 is not instrumented and ignores them,
# and nothing is preloaded.
supp="$PWD/tests/sanitize/lsan.supp"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=86:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"

# Left out, the slowest under the sanitizers (tests/sanitize/README.md says why): the SIGKILL-and-resume runs of
# tl_train (a killed process never reaches the leak check, and their kill timing does not fit a tl_train three
# times slower), the 224-pixel torchvision parity cases (the 64-pixel ones run the same code) and the 20-step
# training parity with PyTorch (whose fixture alone takes half a minute). Everything else labelled unit or model
# runs, with the leak checks of the tools (label sanitize).
exclude='^(TrainCli\.AKilledRunResumesToTheSameWeights$|CrashSafety\.RandomKillsAndResumes|'
exclude+='Torchvision/TorchvisionParity\..*_224 |PyTorch/TrainingParity\.)'
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900 -L '^(unit|model|sanitize)$' -E "$exclude"
