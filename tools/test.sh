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
  # The two HDF5 targets (weights_file, keras) are left out: Debian's libhdf5 1.10.8 crashes inside itself on
  # inputs the fuzzer finds within seconds (tests/fuzz/known/, tests/fuzz/README.md); tl cannot fix those.
  TL_FUZZ_SMOKE_TARGETS="${TL_FUZZ_SMOKE_TARGETS:-pickle pth safetensors onnx jpeg png train_config}" \
    bash tests/fuzz/run_smoke.sh "${TL_FUZZ_BUILD_DIR:-build-fuzz}" 30
fi
