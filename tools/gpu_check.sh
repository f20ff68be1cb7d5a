#!/usr/bin/env bash
# Runs tl's GPU checks from a bundle that tools/gpu_bundle.sh made, on the GPU machine, in under 8 minutes
# whatever hangs, and ends with one table: stage, status, figure.
#
#   bash gpu_bundle/gpu_check.sh            (the bundle is the folder this script is in)
#   bash tools/gpu_check.sh gpu_bundle      (or name the bundle)
#   eval "$(bash gpu_bundle/gpu_check.sh --env)"   (only unpack the bundle and put its bin/ and libraries on PATH and
#                                                  LD_LIBRARY_PATH, for running the binaries by hand)
#
# Stages, in order: bundle (its files; this machine's glibc against what the binaries need), libraries (cuDNN,
# cuBLAS and the driver's libcuda found: python3's site-packages nvidia/*/lib first, then /usr/local/cuda, then
# the loader's cache; their versions), load (every binary starts with all symbols bound), gpu (nvidia-smi sees
# a device), gpu_tests (tl_gpu_tests, one process per ctest area, with a row per area), kernel_bench
# (bench_cuda_kernels, a short filtered run), model_bench (bench_models' cuda_train_step cases for resnet50 and
# mobilenet_v2 at batch 64, a row per case), pytorch_peer (bench/peers/pytorch_cuda_train_step.py under the
# machine's python3 with torch, a row per model), memcheck and racecheck (compute-sanitizer over a fast subset
# of the GPU tests, with what time is left; SKIP where it does not work, e.g. under gVisor).
# Every stage has its own time limit, cut so that all of them end within TL_CHECK_BUDGET_S of the start (450 s;
# the script ends within about 8 minutes whatever hangs); a stage that runs out of time is killed with its whole
# process group and, if it will not die (stuck in the driver), left behind after 15 s more.
#
# Outputs, under ${OUT:-./gpu_out} (at most 7 files: the device tool brings back 8): summary.txt (the table, the
# device, the libraries), details.log (every stage's messages, nvidia-smi, load checks, benchmark output),
# gpu_tests.log, sanitizer.log, bench_cuda_kernels.json, bench_models.json, pytorch_peer.log. Logs are cut to 8 MiB.
#
# Statuses: PASS; FAIL (ran and failed, or timed out); SKIP (could not run here, and says why).
# Exit status: 0 every stage that ran passed; 1 a stage failed; 2 no NVIDIA GPU or driver (the GPU stages were
# skipped and nothing else failed); 3 usage error or no bundle.
#
# It only reads GPU state (nvidia-smi, nvidia-smi -L, nvidia-smi --query-gpu): it never changes clocks, power
# limits, persistence or compute mode, never touches MIG and never resets a GPU.
#
# Environment (all optional):
#   OUT                       output folder (the device tool sets it)
#   TL_CHECK_BUDGET_S         seconds for everything (450)
#   TL_PYTHON                 python3 with torch (/opt/torch/.venv/bin/python3 if there, else python3 on PATH)
#   TL_NVIDIA_LIB_DIRS        colon-separated folders searched first for libcudnn / libcublas
#   TL_GPU_TEST_FILTER        one tl_gpu_tests process with this gtest filter instead of the ctest areas
#   TL_GPU_TEST_ARGS          extra arguments for every tl_gpu_tests process
#   TL_SANITIZE_FILTER        gtest filter for compute-sanitizer (GpuDevice.*:*GpuKernels.*-*Model*:*Large*:*Tf32*)
#   TL_COMPUTE_SANITIZER      the compute-sanitizer binary (default: PATH, then /usr/local/cuda/bin)
#   TL_KERNEL_BENCH_FILTER    benchmark regex for bench_cuda_kernels (default: 4 layers and 2 SGEMM sizes; . = all)
#   TL_KERNEL_BENCH_MIN_TIME  seconds per case (0.05; empty: the binary's own)
#   TL_KERNEL_BENCH_TIMEOUT_S the kernel stage's limit (120)
#   TL_KERNEL_BENCH_ARGS      extra arguments for bench_cuda_kernels
#   TL_BENCH_MODELS_ARGS      extra arguments for bench_models
#   TL_BENCH_MODELS_MATCH     regex choosing bench_models cases from its list (resnet50 / mobilenet_v2 at b64; of
#                             those, the ones named cuda or gpu when there are such)
#   TL_PEER_ARGS              arguments for the PyTorch peer (default: --models resnet50,mobilenet_v2 --batch 64
#                             when the script has those flags)
#   TL_GPU_RUN_DIR            where --env unpacks the bundle (${TMPDIR:-/tmp}/tl_gpu_bundle)
set -euo pipefail

# ---- arguments, bundle, output folder ---------------------------------------------------------------------------
mode=check
bundle_arg=""
for arg in "$@"; do
  case "$arg" in
    --env) mode="env" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check: unknown option $arg (see --help)" >&2; exit 3 ;;
    *) bundle_arg="$arg" ;;
  esac
done

# Every stage must end by this many seconds after the start (SECONDS counts from it), setup included.
budget="${TL_CHECK_BUDGET_S:-450}"
deadline=$budget

here="$(cd "$(dirname "$0")" && pwd)"
is_bundle() { [[ -f "$1/MANIFEST.txt" && -d "$1/bin" ]]; }
if [[ -n "$bundle_arg" ]]; then
  bundle="$bundle_arg"
elif is_bundle "$here"; then
  bundle="$here"
else
  bundle=gpu_bundle
fi
if ! is_bundle "$bundle"; then
  echo "gpu_check: no bundle at '$bundle' (no MANIFEST.txt and bin/): run tools/gpu_bundle.sh on the build" \
    "machine and carry its folder (device tool: carry [\"gpu_bundle\"])" >&2
  exit 3
fi
bundle="$(cd "$bundle" && pwd)"
repo_root="$PWD"  # the device tool runs commands in the repository root; the peer scripts may be there

manifest_value() { sed -n "s/^$1: *//p" "$bundle/MANIFEST.txt" | head -n 1; }
manifest_value_all() { sed -n "s/^$1: *//p" "$bundle/MANIFEST.txt"; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/tl_gpu_check.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# The bundle's binaries and libraries travel xz-compressed (*.xz); they run from an unpacked copy: the scratch
# folder for a check, a fixed folder for --env (it must outlive this script). bin/ and lib/ stay siblings, so
# the binaries' run path $ORIGIN/../lib finds the libraries.
if [[ "$mode" == env ]]; then
  run_dir="${TL_GPU_RUN_DIR:-${TMPDIR:-/tmp}/tl_gpu_bundle}"
  if [[ -e "$run_dir" && ! -f "$run_dir/.tl_gpu_bundle" ]]; then
    echo "gpu_check: $run_dir exists and was not made by gpu_check.sh: set TL_GPU_RUN_DIR" >&2
    exit 3
  fi
  rm -rf "$run_dir"
else
  run_dir="$scratch/bundle"
fi
mkdir -p "$run_dir"
touch "$run_dir/.tl_gpu_bundle"
unpack() {  # $1 packed file, $2 destination
  if command -v xz > /dev/null; then
    xz -dc "$1" > "$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$1" "$2"
  fi
}
while IFS= read -r -d '' f; do
  rel="${f#"$bundle"/}"
  mkdir -p "$run_dir/$(dirname "$rel")"
  if [[ "$f" == *.xz ]]; then unpack "$f" "$run_dir/${rel%.xz}"; else cp "$f" "$run_dir/$rel"; fi
done < <(find "$bundle/bin" "$bundle/lib" -type f -print0)
chmod +x "$run_dir"/bin/* 2> /dev/null || true

# ---- libraries: the bundle's own, then cuDNN / cuBLAS / libcuda from this machine -------------------------------
original_ld_path="${LD_LIBRARY_PATH:-}"
lib_report=""  # lines for summary.txt
lib_missing=""

python_bin="${TL_PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  if [[ -x /opt/torch/.venv/bin/python3 ]]; then python_bin=/opt/torch/.venv/bin/python3
  elif command -v python3 > /dev/null; then python_bin="$(command -v python3)"; fi
fi

# Python's site-packages (where NVIDIA's wheels put nvidia/<package>/lib) and the wheels' versions.
python_info=""
if [[ -n "$python_bin" ]]; then
  python_info="$(timeout 30 "$python_bin" - 2> /dev/null << 'EOF' || true
import site, sys
paths = []
try:
    paths += site.getsitepackages()
except Exception:
    pass
try:
    paths.append(site.getusersitepackages())
except Exception:
    pass
paths += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
for p in dict.fromkeys(paths):
    print("site", p)
try:
    from importlib import metadata
    for d in ("nvidia-cudnn-cu13", "nvidia-cudnn-cu12", "nvidia-cublas", "nvidia-cublas-cu13", "torch"):
        try:
            print("version", d, metadata.version(d))
        except Exception:
            pass
except Exception:
    pass
EOF
)"
fi

search_dirs=()
IFS=: read -r -a extra_dirs <<< "${TL_NVIDIA_LIB_DIRS:-}"
for d in "${extra_dirs[@]}"; do [[ -n "$d" ]] && search_dirs+=("$d"); done
while read -r kind path; do
  [[ "$kind" == site ]] || continue
  for d in "$path"/nvidia/*/lib "$path"/nvidia/*/lib64; do [[ -d "$d" ]] && search_dirs+=("$d"); done
done <<< "$python_info"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [[ -d "$d" ]] && search_dirs+=("$d")
done

ld_dirs=()
add_ld_dir() { local d; for d in "${ld_dirs[@]}"; do [[ "$d" == "$1" ]] && return; done; ld_dirs+=("$1"); }

# The loader's cache, read once (grep -q or awk's exit on a live pipe would fail it under pipefail).
ld_cache="$(ldconfig -p 2> /dev/null || /sbin/ldconfig -p 2> /dev/null || true)"
cached_lib() { awk -v n="$1" '$1 == n { print $NF; exit }' <<< "$ld_cache"; }

find_lib() {  # prints the path of soname $1: the search folders first, then the loader's cache
  local d
  for d in "${search_dirs[@]}"; do
    if [[ -e "$d/$1" ]]; then echo "$d/$1"; return 0; fi
  done
  d="$(cached_lib "$1")"
  [[ -n "$d" ]] && { echo "$d"; return 0; }
  return 1
}

for soname in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
  if path="$(find_lib "$soname")"; then
    add_ld_dir "$(dirname "$path")"
    lib_report+="  $soname: $path"$'\n'
  else
    lib_missing+=" $soname"
    lib_report+="  $soname: NOT FOUND"$'\n'
  fi
done
# cuDNN opens its engine libraries and NVRTC by name: the other folders of the same wheels go on the path too.
for d in "${search_dirs[@]}"; do
  [[ "$d" == */nvidia/*/lib* ]] && add_ld_dir "$d"
done
# The driver's libcuda: cudart loads it by name, so its folder must be on the path if the cache lacks it.
libcuda="$(cached_lib libcuda.so.1)"
if [[ -z "$libcuda" ]]; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
    if [[ -e "$d/libcuda.so.1" ]]; then libcuda="$d/libcuda.so.1"; add_ld_dir "$d"; break; fi
  done
fi
lib_report+="  libcuda.so.1: ${libcuda:-not found (no driver?)}"$'\n'
versions="$(awk '$1 == "version" { printf " %s %s;", $2, $3 }' <<< "$python_info")"
[[ -n "$versions" ]] && lib_report+="  python wheels ($python_bin):$versions"$'\n'

# libstdc++ / libgcc_s: this machine's own, unless it lacks the newest GLIBCXX version the bundle's files need
# (MANIFEST.txt's glibcxx-needed); then the bundle's copies in lib/fallback.
fallback_needed=0
system_cxx="$(cached_lib libstdc++.so.6)"
glibcxx_need="$(manifest_value glibcxx-needed)"
if [[ -f "$run_dir/lib/fallback/libstdc++.so.6" ]]; then
  if [[ -z "$system_cxx" ]]; then
    fallback_needed=1
  elif [[ -n "$glibcxx_need" && "$glibcxx_need" != none ]] \
    && ! grep -a -q -F "GLIBCXX_$glibcxx_need" "$system_cxx" 2> /dev/null; then
    fallback_needed=1
  fi
fi
lib_report+="  libstdc++.so.6: ${system_cxx:-none in the loader cache}"
((fallback_needed)) && lib_report+=" (older than needed or missing: the bundle's copy is used)"
lib_report+=$'\n'

tl_ld_path="$(IFS=:; echo "${ld_dirs[*]}")"
tl_ld_path="${tl_ld_path:+$tl_ld_path:}$run_dir/lib"
((fallback_needed)) && tl_ld_path+=":$run_dir/lib/fallback"
[[ -n "$original_ld_path" ]] && tl_ld_path+=":$original_ld_path"

if [[ "$mode" == env ]]; then
  echo "export PATH='$run_dir/bin':\"\$PATH\""
  echo "export LD_LIBRARY_PATH='$tl_ld_path'"
  echo "echo 'gpu_check: the bundle is unpacked in $run_dir; its binaries are on PATH' >&2"
  [[ -z "$lib_missing" ]] || echo "echo 'gpu_check: not found:$lib_missing' >&2"
  exit 0
fi

out="${OUT:-./gpu_out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
details="$out/details.log"
: > "$details"
log() { echo "$*" | tee -a "$details"; }

# ---- stage bookkeeping ------------------------------------------------------------------------------------------
rows=()      # "stage|status|figure"
any_fail=0
no_gpu=0
row() {  # stage status figure
  rows+=("$1|$2|$3")
  [[ "$2" == FAIL ]] && any_fail=1
  printf 'gpu_check: %-28s %-5s %s\n' "$1" "$2" "$3" | tee -a "$details"
}

# Runs "$@" with the time limit $1 (cut to what the budget leaves), output to file $2. Sets run_rc (124: timed
# out) and run_secs. The command gets its own process group, so a timeout ends its children too; a process that
# ignores even SIGKILL (stuck in the driver) is left behind after 15 s more, so the script still ends.
run_rc=0
run_secs=0
run_limited() {
  local limit="$1" logfile="$2"
  shift 2
  local left=$((deadline - SECONDS - 10))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    run_rc=125
    run_secs=0
    echo "(not run: the time budget of ${budget} s is spent)" >> "$logfile"
    return 0
  fi
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" >> "$logfile" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    if ((SECONDS - start > limit + 15)); then
      echo "(abandoned: still running $((SECONDS - start)) s after its limit of $limit s)" >> "$logfile"
      run_rc=124
      run_secs=$((SECONDS - start))
      return 0
    fi
    sleep 0.2
  done
  set +e
  wait "$pid"
  run_rc=$?
  set -e
  ((run_rc == 137)) && run_rc=124  # killed after the TERM grace: a timeout too
  run_secs=$((SECONDS - start))
  return 0
}

# The prefix that runs a bundle binary with its libraries (timeout runs commands, not shell functions).
# TL_GPU_TESTS_DEVICE=cpu (tests/gpu/gpu_test.h) would turn the GPU tests into CPU ones: never here.
tl_env=(env -u TL_GPU_TESTS_DEVICE "LD_LIBRARY_PATH=$tl_ld_path")

cap_log() {  # keeps a log under 8 MiB: the first and last 4 MiB
  local f="$1" max=$((8 * 1024 * 1024))
  [[ -f "$f" ]] || return 0
  if (($(stat -c %s "$f") > max)); then
    { head -c $((max / 2)) "$f"; printf '\n... (cut to 8 MiB by gpu_check) ...\n'; tail -c $((max / 2)) "$f"; } > "$f.cut"
    mv "$f.cut" "$f"
  fi
}

have_bin() { [[ -x "$run_dir/bin/$1" ]]; }

log "gpu_check: bundle $bundle ($(manifest_value commit), sm_$(manifest_value cuda-arch)); outputs in $out;" \
  "budget ${budget} s"

# ---- stage: bundle ----------------------------------------------------------------------------------------------
glibc_have="$(getconf GNU_LIBC_VERSION 2> /dev/null | awk '{ print $2 }' || true)"
glibc_need="$(manifest_value glibc-needed)"
binaries="$(cd "$run_dir/bin" && ls)"
if [[ -z "$binaries" ]]; then
  row bundle FAIL "no binaries in $bundle/bin"
elif [[ -n "$glibc_have" && -n "$glibc_need" && "$glibc_need" != unknown ]] \
  && [[ "$(printf '%s\n%s\n' "$glibc_need" "$glibc_have" | sort -V | head -n 1)" != "$glibc_need" ]]; then
  row bundle FAIL "glibc $glibc_have here, the binaries need $glibc_need: build the bundle on an older system"
else
  row bundle PASS "$(wc -w <<< "$binaries") binaries, glibc ${glibc_have:-?} (needs ${glibc_need:-?})"
fi
not_built="$(manifest_value not-built) $(manifest_value not-defined)"
read -r -a not_built_list <<< "$not_built"
not_built="${not_built_list[*]}"
[[ -n "$not_built" ]] && log "gpu_check: not in this bundle (failed to build or not defined): $not_built"

# ---- stage: libraries -------------------------------------------------------------------------------------------
{
  echo "== libraries"
  printf '%s' "$lib_report"
  echo "  folders searched: ${search_dirs[*]:-none}"
  echo "  LD_LIBRARY_PATH for the binaries: $tl_ld_path"
} >> "$details"
if [[ -n "$lib_missing" ]]; then
  row libraries FAIL "not found:$lib_missing (set TL_NVIDIA_LIB_DIRS)"
else
  cudnn_path="$(sed -n 's/^  libcudnn.so.9: //p' <<< "$lib_report")"
  cublaslt_path="$(sed -n 's/^  libcublasLt.so.13: //p' <<< "$lib_report")"
  # The libraries' own answers (cudnnGetVersion, cublasLtGetVersion: major*10000 + minor*100 + patch), through
  # python's ctypes: loading them starts no GPU work. The files' names carry no version in NVIDIA's wheels.
  found_versions=""
  if [[ -n "$python_bin" ]]; then
    found_versions="$(timeout 20 "$python_bin" -c '
import ctypes, sys
def show(name, path, symbol):
    try:
        f = getattr(ctypes.CDLL(path), symbol)
        f.restype = ctypes.c_size_t
        v = f()
        print(name, f"{v // 10000}.{v % 10000 // 100}.{v % 100}")
    except Exception:
        pass
show("cudnn", sys.argv[1], "cudnnGetVersion")
show("cublas", sys.argv[2], "cublasLtGetVersion")
' "$cudnn_path" "$cublaslt_path" 2> /dev/null || true)"
  fi
  cudnn_version="$(awk '$1 == "cudnn" { print $2 }' <<< "$found_versions")"
  cublas_version="$(awk '$1 == "cublas" { print $2 }' <<< "$found_versions")"
  built_cudnn="$(manifest_value built-against-cudnn)"
  figure="cuDNN ${cudnn_version:-?} (built with $built_cudnn), cuBLAS ${cublas_version:-?} (built with"
  figure+=" $(manifest_value built-against-cublas)), from $(dirname "$cudnn_path")"
  if [[ -n "$cudnn_version" && "$(printf '%s\n%s\n' "$cudnn_version" "$built_cudnn" | sort -V | head -n 1)" != \
    "$built_cudnn" ]]; then
    figure+="; cuDNN older than the build's: the load stage shows any missing symbol"
  fi
  row libraries PASS "$figure"
fi

# ---- stage: load ------------------------------------------------------------------------------------------------
# LD_BIND_NOW makes the loader resolve every symbol at start, so a cuDNN or cuBLAS older than the one the bundle
# was built against shows here, by symbol name, instead of as a crash in the middle of a test.
load_failed=""
echo "== load: each binary with LD_BIND_NOW=1 and a listing argument" >> "$details"
for b in $binaries; do
  case "$b" in
    tl_gpu_tests) args=(--gtest_list_tests) ;;
    bench_*) args=(--benchmark_list_tests=true) ;;
    *) args=(--help) ;;
  esac
  echo "-- $b ${args[*]}" >> "$details"
  run_limited 30 "$scratch/load.log" "${tl_env[@]}" LD_BIND_NOW=1 "$run_dir/bin/$b" "${args[@]}"
  tail -n 5 "$scratch/load.log" >> "$details"
  if ((run_rc != 0)); then
    why="$(grep -m 1 -E 'error while loading|symbol lookup error|undefined symbol|not found' "$scratch/load.log" || true)"
    load_failed+=" $b (status $run_rc${why:+: $why})"
  fi
  : > "$scratch/load.log"
done
if [[ -n "$load_failed" ]]; then
  row load FAIL "${load_failed# }"
else
  row load PASS "all $(wc -w <<< "$binaries") start (every symbol bound)"
fi

# ---- stage: gpu -------------------------------------------------------------------------------------------------
gpu_figure=""
gpu_cc=""
smi="$(command -v nvidia-smi || true)"
[[ -z "$smi" && -x /usr/local/nvidia/bin/nvidia-smi ]] && smi=/usr/local/nvidia/bin/nvidia-smi
if [[ -z "$smi" ]]; then
  no_gpu=1
  row gpu SKIP "no NVIDIA GPU / driver (no nvidia-smi): GPU stages skipped"
else
  echo "== nvidia-smi" >> "$details"
  run_limited 30 "$details" "$smi"
  : > "$scratch/smi.txt"
  run_limited 20 "$scratch/smi.txt" "$smi" -L
  gpus="$(grep -c '^GPU [0-9]' "$scratch/smi.txt" || true)"
  if ((gpus == 0)); then
    no_gpu=1
    row gpu SKIP "no NVIDIA GPU / driver ($(head -n 1 "$scratch/smi.txt")): GPU stages skipped"
  else
    : > "$scratch/query.txt"
    run_limited 20 "$scratch/query.txt" "$smi" --query-gpu=name,memory.total,driver_version,compute_cap \
      --format=csv,noheader
    q="$(head -n 1 "$scratch/query.txt")"
    if [[ "$q" == *,*,*,* ]]; then
      gpu_cc="$(awk -F', *' '{ print $4 }' <<< "$q")"
      gpu_figure="$(awk -F', *' '{ printf "%s, %s, driver %s, compute capability %s", $1, $2, $3, $4 }' <<< "$q")"
    else
      gpu_figure="$(sed -n '1s/ (UUID.*//p' "$scratch/smi.txt")"
    fi
    ((gpus > 1)) && gpu_figure+=" (and $((gpus - 1)) more)"
    arch="$(manifest_value cuda-arch)"
    if [[ -n "$gpu_cc" && "${gpu_cc/./}" != "${arch%a}" ]]; then
      gpu_figure+="; the bundle is built for sm_$arch"
    fi
    row gpu PASS "$gpu_figure"
  fi
fi

skip_gpu_stage() {  # $1 stage
  row "$1" SKIP "no NVIDIA GPU / driver"
}

# ---- stage: gpu_tests -------------------------------------------------------------------------------------------
gtest_counts() {  # "P passed, F failed, S skipped" from a gtest log
  local p f s
  p="$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)"
  f="$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)"
  s="$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)"
  echo "${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
}
tests_log="$out/gpu_tests.log"
: > "$tests_log"
if ((no_gpu)); then
  skip_gpu_stage gpu_tests
elif ! have_bin tl_gpu_tests; then
  row gpu_tests FAIL "tl_gpu_tests is not in the bundle (did it build?)"
else
  # One process per area, as ctest runs them (tests/CMakeLists.txt; gpu_bundle.sh copies the list into
  # MANIFEST.txt): GpuErrors may leave its process's device unusable, and an area whose tests all skip (exit 77)
  # is reported, not failed. TL_GPU_TEST_FILTER runs one process with that filter instead.
  areas=()
  if [[ -n "${TL_GPU_TEST_FILTER:-}" ]]; then
    areas=("filter $TL_GPU_TEST_FILTER")
  else
    while IFS= read -r a; do [[ -n "$a" ]] && areas+=("$a"); done < <(manifest_value_all gpu-test-area)
    ((${#areas[@]})) || areas=("all *")
  fi
  read -r -a test_args <<< "${TL_GPU_TEST_ARGS:-}"
  stage_end=$((SECONDS + 180))
  total_p=0 total_f=0 total_s=0 failed_areas="" area_rows=()
  for a in "${areas[@]}"; do
    name="${a%% *}" filter="${a#* }"
    echo "===== $name: tl_gpu_tests --gtest_filter=$filter" >> "$tests_log"
    before="$(stat -c %s "$tests_log")"
    run_limited $((stage_end - SECONDS)) "$tests_log" "${tl_env[@]}" "$run_dir/bin/tl_gpu_tests" --gtest_brief=1 \
      --gtest_color=no "--gtest_filter=$filter" "${test_args[@]}"
    tail -c +$((before + 1)) "$tests_log" > "$scratch/area.log"
    read -r p _ f _ sk _ <<< "$(gtest_counts "$scratch/area.log")"
    total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + sk))
    counts="$p passed, $f failed, $sk skipped"
    case "$run_rc" in
      0)
        if ((p == 0 && sk > 0)); then
          area_rows+=("  $name|SKIP|every test skipped: $(grep -A 1 -m 1 ': Skipped$' "$scratch/area.log" | tail -n 1 || true)")
        else
          area_rows+=("  $name|PASS|$counts in ${run_secs} s")
        fi
        ;;
      77) area_rows+=("  $name|SKIP|every test skipped: $(grep -A 1 -m 1 ': Skipped$' "$scratch/area.log" | tail -n 1 || true)") ;;
      124) area_rows+=("  $name|FAIL|timed out after ${run_secs} s ($counts so far)"); failed_areas+=" $name" ;;
      125) area_rows+=("  $name|SKIP|no time left"); failed_areas+=" $name" ;;
      *)
        names="$(sed -n 's/^\[  FAILED  \] \([^ ]*\.[^ ]*\).*/\1/p' "$scratch/area.log" | sort -u | head -n 3 | tr '\n' ' ')"
        area_rows+=("  $name|FAIL|status $run_rc: $counts${names:+; e.g. $names}")
        failed_areas+=" $name"
        ;;
    esac
  done
  counts="$total_p passed, $total_f failed, $total_s skipped in ${#areas[@]} process(es)"
  if [[ -n "$failed_areas" ]]; then
    row gpu_tests FAIL "$counts; failed or cut short:$failed_areas"
  elif grep -q 'no CUDA device on this machine' "$tests_log"; then
    # tests/gpu/gpu_test.h's skip reason when cudart finds no device: it did not reach the GPU nvidia-smi sees.
    row gpu_tests FAIL "$counts: tests skipped with 'no CUDA device on this machine' although nvidia-smi sees a GPU"
  elif ((total_p == 0)); then
    # nvidia-smi sees a GPU but no test ran on it: cudart did not reach the driver, or the filter matched none.
    row gpu_tests FAIL "$counts although nvidia-smi sees a GPU"
  else
    row gpu_tests PASS "$counts"
  fi
  for r in "${area_rows[@]}"; do
    IFS='|' read -r a st fig <<< "$r"
    row "$a" "$st" "$fig"
  done
fi

# ---- helpers for the benchmark JSON -----------------------------------------------------------------------------
# Prints one "name<TAB>figure" line per benchmark case: its images/s counter, else its other counters, else time.
bench_rows() {
  [[ -s "$1" && -n "$python_bin" ]] || return 0
  "$python_bin" - "$1" << 'EOF' 2> /dev/null || true
import json, re, sys
try:
    data = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for b in data.get("benchmarks", []):
    if b.get("run_type") == "aggregate":
        continue
    # Google Benchmark appends its settings to the name (/min_time:3.000/real_time); the case is the rest.
    name = re.sub(r"/(min_time:[^/]*|min_warmup_time:[^/]*|iterations:[^/]*|repeats:[^/]*|threads:[^/]*|"
                  r"real_time|manual_time)(?=/|$)", "", b.get("name", "?"))
    if b.get("error_occurred"):
        print(f"{name}\tERROR {b.get('error_message', '')}")
        continue
    skip = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
            "real_time", "cpu_time", "time_unit", "family_index", "per_family_instance_index", "label"}
    counters = {k: v for k, v in b.items() if k not in skip and isinstance(v, (int, float))}
    if "images/s" in counters:
        fig = f"{counters['images/s']:.1f} images/s"
    elif counters:
        fig = ", ".join(f"{k} {v:.4g}" for k, v in list(counters.items())[:3])
    else:
        fig = ""
    t = b.get("real_time", 0)
    t = f"{t:.1f}" if t >= 10 else f"{t:.3g}"
    fig += f"{'; ' if fig else ''}{t} {b.get('time_unit', '')}"
    print(f"{name}\t{fig}")
EOF
}

# ---- stage: kernel_bench ----------------------------------------------------------------------------------------
kernel_json="$out/bench_cuda_kernels.json"
if ((no_gpu)); then
  skip_gpu_stage kernel_bench
elif ! have_bin bench_cuda_kernels; then
  row kernel_bench SKIP "bench_cuda_kernels is not in the bundle (not defined or not built yet)"
else
  read -r -a kernel_args <<< "${TL_KERNEL_BENCH_ARGS:-}"
  # All ~280 cases take minutes; the default is one layer of each kind, every pass, native and vendor, and
  # two SGEMM sizes (TL_KERNEL_BENCH_FILTER=. for all, with TL_KERNEL_BENCH_TIMEOUT_S and the budget raised).
  kernel_filter="${TL_KERNEL_BENCH_FILTER:-cuda_conv2d/(resnet50\.layer1\.conv3|resnet50\.layer3\.conv2|mobilenet_v2\.dw\.144@56|mobilenet_v2\.expand\.24-144@56)/|cuda_sgemm/(2048|8192)/}"
  min_time="${TL_KERNEL_BENCH_MIN_TIME-0.05}"  # empty: the binary's own per-case times
  echo "===== bench_cuda_kernels --benchmark_filter=$kernel_filter" >> "$details"
  run_limited "${TL_KERNEL_BENCH_TIMEOUT_S:-120}" "$details" "${tl_env[@]}" "$run_dir/bin/bench_cuda_kernels" \
    "--benchmark_filter=$kernel_filter" ${min_time:+"--benchmark_min_time=$min_time"} \
    "--benchmark_out=$kernel_json" --benchmark_out_format=json "${kernel_args[@]}"
  cases="$(bench_rows "$kernel_json")"
  n="$(grep -c . <<< "$cases" || true)"
  errors="$(grep -c $'\tERROR' <<< "$cases" || true)"
  if ((run_rc == 125)); then
    row kernel_bench SKIP "no time left in the budget"
  elif ((run_rc == 124)); then
    row kernel_bench FAIL "timed out after ${run_secs} s ($n cases written; narrow TL_KERNEL_BENCH_FILTER)"
  elif ((run_rc != 0 || errors > 0)); then
    row kernel_bench FAIL "status $run_rc, $errors of $n cases in error (details.log)"
  elif ((n == 0)); then
    # It registers its cases only when it finds a device (and says so): none here, though nvidia-smi sees one.
    said="$(grep -m 1 '^bench_cuda_kernels:' "$details" || true)"
    row kernel_bench FAIL "no case ran${said:+: $said}"
  else
    row kernel_bench PASS "$n cases in ${run_secs} s (bench_cuda_kernels.json)"
  fi
fi

# ---- stage: model_bench -----------------------------------------------------------------------------------------
models_json="$out/bench_models.json"
if ((no_gpu)); then
  skip_gpu_stage model_bench
elif ! have_bin bench_models; then
  row model_bench FAIL "bench_models is not in the bundle (did it build?)"
else
  read -r -a model_args <<< "${TL_BENCH_MODELS_ARGS:-}"
  : > "$scratch/models_list.txt"
  run_limited 30 "$scratch/models_list.txt" "${tl_env[@]}" "$run_dir/bin/bench_models" "${model_args[@]}" \
    --benchmark_list_tests=true
  # The cases for resnet50 and mobilenet_v2 at batch 64; of those, the ones on the GPU when the names say so.
  match="${TL_BENCH_MODELS_MATCH:-(resnet50|mobilenet_v2).*[/_:]b?64([/_:]|$)}"
  chosen="$(grep -E "$match" "$scratch/models_list.txt" || true)"
  on_gpu="$(grep -i -E 'cuda|gpu' <<< "$chosen" || true)"
  [[ -n "$on_gpu" ]] && chosen="$on_gpu"
  {
    echo "===== bench_models ${model_args[*]}"
    echo "registered cases: $(tr '\n' ' ' < "$scratch/models_list.txt")"
  } >> "$details"
  if ((run_rc == 125)); then
    row model_bench SKIP "no time left in the budget"
  elif ((run_rc != 0)); then
    row model_bench FAIL "bench_models ${model_args[*]:+${model_args[*]} }--benchmark_list_tests: status $run_rc (details.log)"
    cat "$scratch/models_list.txt" >> "$details"
  elif [[ -z "$chosen" ]]; then
    row model_bench SKIP "no case matches $match: it registers $(head -n 4 "$scratch/models_list.txt" | tr '\n' ' ')..."
  else
    # An exact filter from the listed names (regex characters escaped).
    # shellcheck disable=SC2001,SC2016  # a sed bracket expression, in single quotes on purpose
    filter="^($(sed 's/[][\.*^$()+?{}|]/\\&/g' <<< "$chosen" | paste -sd '|'))\$"
    run_limited 200 "$details" "${tl_env[@]}" "$run_dir/bin/bench_models" "${model_args[@]}" \
      "--benchmark_filter=$filter" "--benchmark_out=$models_json" --benchmark_out_format=json
    cases="$(bench_rows "$models_json")"
    if ((run_rc == 125)); then
      row model_bench SKIP "no time left in the budget"
    elif ((run_rc == 124)); then
      row model_bench FAIL "timed out after ${run_secs} s"
    elif ((run_rc != 0)); then
      row model_bench FAIL "status $run_rc (details.log)"
    else
      note=""
      [[ -z "$on_gpu" ]] && note=" (no cuda/gpu in their names: the device is what TL_BENCH_MODELS_ARGS says)"
      row model_bench PASS "$(grep -c . <<< "$chosen") cases in ${run_secs} s$note"
    fi
    while IFS=$'\t' read -r name figure; do
      [[ -n "$name" ]] || continue
      if [[ "$figure" == ERROR* ]]; then row "  $name" FAIL "${figure#ERROR }"; else row "  $name" PASS "$figure"; fi
    done <<< "$cases"
  fi
fi

# ---- stage: pytorch_peer ----------------------------------------------------------------------------------------
peer_log="$out/pytorch_peer.log"
: > "$peer_log"
peer=""
for p in "$repo_root/bench/peers/pytorch_cuda_train_step.py" "$bundle/peers/pytorch_cuda_train_step.py"; do
  if [[ -f "$p" ]]; then peer="$p"; break; fi
done
if ((no_gpu)); then
  skip_gpu_stage pytorch_peer
elif [[ -z "$peer" ]]; then
  row pytorch_peer SKIP "bench/peers/pytorch_cuda_train_step.py does not exist yet"
elif [[ -z "$python_bin" ]]; then
  row pytorch_peer SKIP "no python3 here"
else
  if [[ -n "${TL_PEER_ARGS+set}" ]]; then
    read -r -a peer_args <<< "$TL_PEER_ARGS"
  else
    # The same work as model_bench, in the flags the script has (read from its source: no torch import needed).
    peer_args=()
    grep -q -- '"--models"' "$peer" && peer_args+=(--models "resnet50,mobilenet_v2")
    if grep -q -- '"--batch-size"' "$peer"; then peer_args+=(--batch-size 64)
    elif grep -q -- '"--batch"' "$peer"; then peer_args+=(--batch 64); fi
  fi
  echo "$python_bin $peer ${peer_args[*]}" >> "$peer_log"
  # The machine's own library path: the bundle's libraries are for tl's binaries, not for torch.
  run_limited 200 "$peer_log" env LD_LIBRARY_PATH="$original_ld_path" PYTHONUNBUFFERED=1 \
    "$python_bin" "$peer" "${peer_args[@]}"
  if ((run_rc == 125)); then
    row pytorch_peer SKIP "no time left in the budget"
  elif ((run_rc == 124)); then
    row pytorch_peer FAIL "timed out after ${run_secs} s"
  elif ((run_rc != 0)); then
    row pytorch_peer FAIL "status $run_rc: $(grep -v '^\s*$' "$peer_log" | tail -n 1)"
  else
    # The script prints JSON lines: a header (torch, device), then one object per model with images_per_s.
    peer_rows="$("$python_bin" - "$peer_log" << 'EOF' 2> /dev/null || true
import json, sys
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if not isinstance(o, dict):
        continue
    if "images_per_s" in o:
        extra = f" (median {o['median_ms_per_step']} ms/step)" if "median_ms_per_step" in o else ""
        print(f"{o.get('name', o.get('model', '?'))}\t{o['images_per_s']} images/s{extra}")
    elif "torch" in o:
        print(f"header\ttorch {o['torch']}, {o.get('device', '?')}")
EOF
)"
    header="$(awk -F '\t' '$1 == "header" { print $2; exit }' <<< "$peer_rows")"
    row pytorch_peer PASS "in ${run_secs} s${header:+: $header}"
    while IFS=$'\t' read -r name figure; do
      [[ -n "$name" && "$name" != header ]] && row "  $name" PASS "$figure"
    done <<< "$peer_rows"
  fi
fi

# ---- stages: memcheck, racecheck --------------------------------------------------------------------------------
# Last: under the sanitizers the tests run 10 to 100 times slower, so they get what the budget leaves, and the
# timings above are never squeezed out by them.
sanitizer_log="$out/sanitizer.log"
: > "$sanitizer_log"
sanitizer="${TL_COMPUTE_SANITIZER:-}"
if [[ -z "$sanitizer" ]]; then
  for c in "$(command -v compute-sanitizer || true)" /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/compute-sanitizer/compute-sanitizer; do
    if [[ -n "$c" && -x "$c" ]]; then sanitizer="$c"; break; fi
  done
fi
# The device check and the kernel tests (tests/gpu/test_kernels_gpu.cpp, small shapes); the whole-model and
# op-harness suites are left out: under the sanitizers a kernel runs 10 to 100 times slower.
sanitize_filter="${TL_SANITIZE_FILTER:-GpuDevice.*:*GpuKernels.*-*Model*:*Large*:*Tf32*}"
for tool in memcheck racecheck; do
  if ((no_gpu)); then skip_gpu_stage "$tool"; continue; fi
  if ! have_bin tl_gpu_tests; then row "$tool" SKIP "no tl_gpu_tests in the bundle"; continue; fi
  if [[ -z "$sanitizer" ]]; then row "$tool" SKIP "no compute-sanitizer on this machine"; continue; fi
  echo "===== compute-sanitizer --tool $tool, tests $sanitize_filter" >> "$sanitizer_log"
  before="$(stat -c %s "$sanitizer_log")"
  run_limited 100 "$sanitizer_log" "${tl_env[@]}" "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 50 \
    "$run_dir/bin/tl_gpu_tests" --gtest_brief=1 --gtest_color=no "--gtest_filter=$sanitize_filter"
  tail -c +$((before + 1)) "$sanitizer_log" > "$scratch/this_sanitizer.log"
  summary="$(grep -m 1 -E '(ERROR|RACECHECK) SUMMARY' "$scratch/this_sanitizer.log" | sed 's/^========= //' || true)"
  counts="$(gtest_counts "$scratch/this_sanitizer.log")"
  # compute-sanitizer refuses some virtualised GPUs (seen under gVisor: "Device not supported", error 999).
  unsupported="$(grep -m 1 -i -E 'device not supported|not supported on|unable to find injection|failed to initialize|no attachable|error 999|cuda_error_unknown' "$scratch/this_sanitizer.log" || true)"
  if ((run_rc == 125)); then
    row "$tool" SKIP "no time left in the budget"
  elif ((run_rc == 124)); then
    row "$tool" FAIL "timed out after ${run_secs} s ($counts so far; set TL_SANITIZE_FILTER)"
  elif ((run_rc == 86)); then
    row "$tool" FAIL "${summary:-errors found} ($counts)"
  elif ((run_rc == 77)) || [[ $run_rc == 0 && "$counts" == "0 passed, "* ]]; then
    row "$tool" FAIL "no test passed under compute-sanitizer ($counts; filter $sanitize_filter)"
  elif ((run_rc != 0)) && [[ -n "$unsupported" ]]; then
    row "$tool" SKIP "compute-sanitizer does not work here: ${unsupported#========= }"
  elif ((run_rc != 0)); then
    row "$tool" FAIL "status $run_rc: $counts${summary:+; $summary}"
  else
    row "$tool" PASS "${summary:-no errors}; $counts in ${run_secs} s"
  fi
done

# ---- summary ----------------------------------------------------------------------------------------------------
for f in "$details" "$tests_log" "$sanitizer_log" "$peer_log"; do cap_log "$f"; done
# Empty files carry nothing: leave them out of what comes back.
for f in "$tests_log" "$sanitizer_log" "$peer_log"; do [[ -s "$f" ]] || rm -f "$f"; done

if ((any_fail)); then status=1; verdict="FAILED: a stage failed"
elif ((no_gpu)); then status=2; verdict="NO GPU: no NVIDIA GPU / driver here, the GPU stages were skipped"
else status=0; verdict="PASSED: every stage that ran passed"; fi

{
  echo "tl GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname), ${SECONDS} s"
  echo "bundle: $bundle (commit $(manifest_value commit), built $(manifest_value made))"
  echo "device: ${gpu_figure:-none}"
  echo
  width=12
  for r in "${rows[@]}"; do
    s="${r%%|*}"
    ((${#s} > width)) && width=${#s}
  done
  printf "%-${width}s  %-6s %s\n" stage status figure
  printf "%-${width}s  %-6s %s\n" "$(printf '%*s' "$width" '' | tr ' ' -)" ------ "$(printf '%42s' '' | tr ' ' -)"
  for r in "${rows[@]}"; do
    IFS='|' read -r s st fig <<< "$r"
    printf "%-${width}s  %-6s %s\n" "$s" "$st" "$fig"
  done
  echo
  echo "$verdict (exit $status)"
  echo
  echo "libraries:"
  printf '%s' "$lib_report"
} > "$out/summary.txt"
echo
cat "$out/summary.txt"
exit "$status"
