#!/usr/bin/env bash
# Installs the dependencies, configures, builds, and runs every test this machine can run (GPU tests skip
# themselves where there is no GPU). Extra arguments go to CMake, e.g. tools/test.sh -DTL_WERROR=ON.
# TL_BUILD_DIR picks the build folder (default: build).
# Then the sanitizer stage (tests/sanitize/run.sh: ASan + UBSan + LeakSanitizer, its own build folder,
# TL_SANITIZE_BUILD_DIR, default build-asan; TL_SKIP_SANITIZE=1 skips it) and, where tests/fuzz/run_smoke.sh
# exists, the fuzzers' smoke run (TL_FUZZ_BUILD_DIR, default build-fuzz; TL_SKIP_FUZZ=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
build="${TL_BUILD_DIR:-build}"
jobs="$(nproc)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600

if [[ "${TL_SKIP_SANITIZE:-0}" == 1 ]]; then
  echo "tools/test.sh: sanitizer stage skipped (TL_SKIP_SANITIZE=1)"
else
  bash tests/sanitize/run.sh "$@"
fi

if [[ ! -f tests/fuzz/run_smoke.sh ]]; then
  :
elif [[ "${TL_SKIP_FUZZ:-0}" == 1 ]]; then
  echo "tools/test.sh: fuzz smoke stage skipped (TL_SKIP_FUZZ=1)"
else
  # Every target that fuzzes tl as users run it, the sandboxed HDF5 readers included (run_smoke.sh's default;
  # the in-process HDF5 twins, which hunt libhdf5's own bugs, are not in it: tests/fuzz/README.md).
  bash tests/fuzz/run_smoke.sh "${TL_FUZZ_BUILD_DIR:-build-fuzz}" 30
fi
