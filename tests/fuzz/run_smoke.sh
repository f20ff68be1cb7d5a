#!/usr/bin/env bash
# The fuzz smoke run of CI: configures BUILD_DIR with clang and TL_FUZZ=ON, builds only the fuzz targets, then
# runs each for SECONDS seconds on a copy of its committed corpus (the corpus itself is never written). Prints
# the executions per target; exits non-zero on any crash, leak, timeout or sanitizer report, leaving the
# input that caused it in BUILD_DIR/fuzz-smoke/<target>/artifacts/.
#
#   bash tests/fuzz/run_smoke.sh build-fuzz 30
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
jobs=${TL_FUZZ_JOBS:-2}
# TL_FUZZ_SMOKE_TARGETS picks the targets (default: the ten that fuzz tl as users run it). The two HDF5
# targets fuzz the sandboxed readers; their in-process twins (weights_file_inprocess, keras_inprocess) hunt
# libhdf5's own bugs, which they find within seconds, so they are not in the default (README.md).
read -r -a targets <<<"${TL_FUZZ_SMOKE_TARGETS:-pickle pth safetensors weights_file keras sandbox_reply onnx jpeg png train_config}"

# -O1 keeps the sanitizers' reports accurate and the build short; the whole library is instrumented
# (CMakeLists.txt, TL_FUZZ).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DTL_CUDA=OFF -DTL_BUILD_BENCHMARKS=OFF -DTL_FUZZ=ON >/dev/null
cmake --build "$build" --target tl_fuzz_all -j "$jobs"

work="$build/fuzz-smoke"
rm -rf "$work"
failed=()
summary=()
for t in "${targets[@]}"; do
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$root/tests/fuzz/corpus/${t%_inprocess}/"* "$dir/corpus/"  # the in-process twins share the corpus
  status=0
  # -rss_limit_mb: a reader that uses more than 2 GiB on a small input is a finding; -timeout: so is one that
  # takes more than 10 s on one.
  # The suppressions name libhdf5's own bugs only (asan.supp, lsan.supp); an absurd allocation fails as glibc's
  # would (allocator_may_return_null), and single allocations up to 4 GiB are tolerated as long as the
  # resident size stays under 2 GiB, since libhdf5 allocates what damaged headers declare (README.md). They
  # matter to the in-process twins only: the sandboxed targets run libhdf5 in a child, whose crash, leak or
  # report is an error of tl's, never the fuzzer's finding.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:suppressions=$root/tests/fuzz/asan.supp \
    LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/tl_fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log.txt" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log.txt" | tail -1)
  summary+=("$(printf '%-13s %10s executions in %ss' "$t" "${runs:-?}" "$seconds")")
  if [ "$status" -ne 0 ] || ls "$dir/artifacts/"* >/dev/null 2>&1; then
    failed+=("$t")
    echo "run_smoke: tl_fuzz_$t found something (exit $status); log: $dir/log.txt" >&2
    grep -m 20 -E "ERROR|SUMMARY|runtime error|Test unit written" "$dir/log.txt" >&2 || tail -20 "$dir/log.txt" >&2
  fi
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "run_smoke: findings in ${failed[*]} (inputs in $work/<target>/artifacts/)" >&2
  exit 1
fi
echo "run_smoke: no findings in ${#targets[@]} targets (${targets[*]})"
