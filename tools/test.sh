#!/usr/bin/env bash
# Installs the dependencies, configures, builds, and runs every test this machine can run (GPU tests skip
# themselves where there is no GPU). Extra arguments go to CMake, e.g. tools/test.sh -DTL_WERROR=ON.
# TL_BUILD_DIR picks the build folder (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
build="${TL_BUILD_DIR:-build}"
jobs="$(nproc)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600
