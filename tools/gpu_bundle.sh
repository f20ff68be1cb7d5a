#!/usr/bin/env bash
# Builds, on this CPU-only machine, everything the GPU machine needs to run tl's GPU checks, and puts it in one
# folder that the device tool carries (`carry: ["gpu_bundle"]`); tools/gpu_check.sh runs it there.
#
#   tools/gpu_bundle.sh [extra CMake arguments]
#
# 1. Configures a build folder of its own (build-gpu/) with the CUDA backend ON, Release, for sm_90, with
#    cmake/bundle.cmake injected (TL_STATIC_DEPS=ON: HDF5, libjpeg-turbo, libpng, zlib, libgomp, GoogleTest,
#    the CUDA runtime and libstdc++/libgcc linked statically; see that file for each choice and why). The normal
#    build/ is not touched.
# 2. Builds only the bundle's targets, with one job under nice (the build machine is shared): tl_gpu_tests,
#    bench_cuda_kernels (when bench/CMakeLists.txt defines it), bench_models, tl_train, tl_predict, tl_convert.
#    Ninja keeps going past a target that fails, so the others still build.
# 3. Assembles gpu_bundle/: bin/ (stripped binaries), lib/ (the shared libraries that remain, as ldd lists them,
#    except glibc, the driver's libcuda, cuDNN and cuBLAS, which come from the GPU machine), lib/fallback/
#    (libstdc++ and libgcc_s, used there only if that machine's own are older), peers/ (bench/peers/*.py),
#    gpu_check.sh, and MANIFEST.txt (commit, build settings, the versions built against, each binary's ldd).
#    Every binary and library over 1 MiB is stored xz-compressed (name.xz; OpenBLAS alone is 36 MB, 4 MB
#    compressed): what travels stays a fraction of the device tool's 64 MiB; gpu_check.sh unpacks them there.
#
# Environment: TL_GPU_BUILD_DIR (build-gpu), TL_GPU_BUNDLE_DIR (gpu_bundle), TL_CUDA_ARCH (90; 90a for wgmma
# kernels), TL_JOBS (1), TL_STATIC_CXX_RUNTIME (ON; OFF links libstdc++ dynamically), TL_BUNDLE_MAX_MIB (56: a
# bigger bundle is an error, leaving room under the device tool's 64 MiB for the working tree).
# Exit status: 0 a complete bundle; 1 a partial bundle (a target failed to build: the bundle holds the others,
# and the message names the missing ones) or a bundle that breaks a rule (size, unresolved library); 2 nothing
# was bundled (missing tools, configure failed, no target built).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

build="${TL_GPU_BUILD_DIR:-build-gpu}"
bundle="${TL_GPU_BUNDLE_DIR:-gpu_bundle}"
arch="${TL_CUDA_ARCH:-90}"
jobs="${TL_JOBS:-1}"
static_cxx="${TL_STATIC_CXX_RUNTIME:-ON}"
max_mib="${TL_BUNDLE_MAX_MIB:-56}"
compress_over=$((1024 * 1024))

# Required targets first; bench_cuda_kernels is optional until bench/CMakeLists.txt defines it.
targets=(tl_gpu_tests bench_cuda_kernels bench_models tl_train tl_predict tl_convert)
optional_targets=" bench_cuda_kernels "

say() { echo "gpu_bundle: $*"; }
die() { echo "gpu_bundle: error: $*" >&2; exit 2; }

# ---- tools ----------------------------------------------------------------------------------------------------
for tool in cmake ninja strip ldd objdump; do
  command -v "$tool" > /dev/null || die "'$tool' is not installed (tools/install_deps.sh installs the build tools)"
done
nvcc="${CUDACXX:-}"
if [[ -z "$nvcc" ]]; then
  if command -v nvcc > /dev/null; then nvcc="$(command -v nvcc)"; else nvcc=/usr/local/cuda/bin/nvcc; fi
fi
[[ -x "$nvcc" ]] || die "no nvcc (looked at \$CUDACXX, PATH and /usr/local/cuda/bin/nvcc): the CUDA toolkit is needed"
have_xz=1
command -v xz > /dev/null || have_xz=0

# ---- configure --------------------------------------------------------------------------------------------------
mkdir -p "$build"
say "configuring $build/ (CUDA ON, Release, sm_$arch, static dependencies; nvcc $nvcc)"
if ! cmake -S . -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DTL_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" \
      -DCMAKE_CUDA_ARCHITECTURES="$arch" \
      -DCMAKE_PROJECT_tl_INCLUDE="$root/cmake/bundle.cmake" \
      -DTL_STATIC_DEPS=ON \
      -DTL_STATIC_CXX_RUNTIME="$static_cxx" \
      -DTL_BUILD_TESTS=ON -DTL_BUILD_BENCHMARKS=ON \
      "$@" > "$build/gpu_bundle.configure.log" 2>&1; then
  tail -n 40 "$build/gpu_bundle.configure.log" >&2
  die "configure failed (whole log: $build/gpu_bundle.configure.log)"
fi
grep -E '^-- tl( bundle)?:' "$build/gpu_bundle.configure.log" | sed 's/^-- /  /' || true
grep -q 'CUDA backend ON' "$build/gpu_bundle.configure.log" \
  || die "the configure step did not turn the CUDA backend on (log: $build/gpu_bundle.configure.log)"

# ---- build ------------------------------------------------------------------------------------------------------
# Which of our targets the build defines: `ninja -t targets all` lists each as "<name>: phony".
defined_targets="$(ninja -C "$build" -t targets all 2> /dev/null | sed -n 's/^\([A-Za-z0-9_.+-]*\): phony$/\1/p')"
wanted=()
not_defined=()
for t in "${targets[@]}"; do
  if grep -qx "$t" <<< "$defined_targets"; then
    wanted+=("$t")
  elif [[ "$optional_targets" == *" $t "* ]]; then
    not_defined+=("$t")
    say "note: target $t is not defined yet (bench/CMakeLists.txt); it is bundled once it exists"
  else
    die "the build defines no target $t (CMakeLists.txt changed?)"
  fi
done

say "building ${wanted[*]} with $jobs job(s) under nice (log: $build/gpu_bundle.build.log)"
build_start=$SECONDS
set +e
nice -n 10 cmake --build "$build" -j "$jobs" --target "${wanted[@]}" -- -k 0 > "$build/gpu_bundle.build.log" 2>&1
build_rc=$?
set -e
say "build finished in $(( (SECONDS - build_start) / 60 )) min $(( (SECONDS - build_start) % 60 )) s (status $build_rc)"

# A target is good when Ninja has nothing left to do for it; a failed one may still have an old binary on disk.
built=()
failed=()
for t in "${wanted[@]}"; do
  if ninja -C "$build" -n "$t" 2> /dev/null | grep -q '^ninja: no work to do'; then
    built+=("$t")
  else
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  say "FAILED to build: ${failed[*]}; the first errors:"
  grep -E -m 15 'error|FAILED:' "$build/gpu_bundle.build.log" | sed 's/^/  /' >&2 || true
fi
((${#built[@]})) || die "no target built (log: $build/gpu_bundle.build.log)"

# ---- assemble ---------------------------------------------------------------------------------------------------
# Only a folder this script made (it has our MANIFEST.txt) or an empty one is replaced.
if [[ -e "$bundle" ]]; then
  if [[ -f "$bundle/MANIFEST.txt" ]] && head -n 1 "$bundle/MANIFEST.txt" | grep -q '^tl GPU bundle'; then
    rm -rf "$bundle"
  elif [[ -d "$bundle" && -z "$(ls -A "$bundle")" ]]; then
    rmdir "$bundle"
  else
    die "$bundle exists and is not a bundle made by this script; move it away or set TL_GPU_BUNDLE_DIR"
  fi
fi
mkdir -p "$bundle/bin" "$bundle/lib/fallback" "$bundle/peers"

binary_path() {  # the executable CMake built for target $1
  find "$build" -path "$build/CMakeFiles" -prune -o -type f -name "$1" -perm -u+x -print | grep -v /CMakeFiles/ \
    | head -n 1 || true
}
for t in "${built[@]}"; do
  path="$(binary_path "$t")"
  [[ -n "$path" ]] || die "target $t built but no executable named $t was found under $build/"
  strip --strip-unneeded -o "$bundle/bin/$t" "$path"
done

# The libraries that must travel. ldd lists the whole closure. glibc is the GPU machine's (it is newer than
# this machine's 2.36, see MANIFEST.txt's glibc-needed); the driver, cuDNN and cuBLAS must be that machine's.
is_system_lib() {
  case "$1" in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libmvec.so.* | libdl.so.* | libpthread.so.* | \
      librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.*) return 0 ;;
  esac
  return 1
}
is_gpu_machine_lib() {
  case "$1" in
    libcuda.so* | libcudnn*.so* | libcublas.so* | libcublasLt.so* | libnvidia-*.so*) return 0 ;;
  esac
  return 1
}
unresolved=()
declare -A copied=()
gpu_machine_libs=""
for bin in "$bundle"/bin/*; do
  while read -r name arrow path _; do
    [[ "$arrow" == "=>" ]] || continue  # the loader and vdso lines have no "=>"
    is_system_lib "$name" && continue
    if is_gpu_machine_lib "$name"; then
      [[ " $gpu_machine_libs " == *" $name "* ]] || gpu_machine_libs+=" $name"
      continue
    fi
    if [[ "$path" == "not" ]]; then
      unresolved+=("$(basename "$bin"): $name")
      continue
    fi
    [[ -n "${copied[$name]:-}" ]] && continue
    copied[$name]="$path"
    case "$name" in
      # The C++ runtime is in every image that has cuDNN (which needs it); the copy is a fallback only.
      libstdc++.so.* | libgcc_s.so.*) cp -L "$path" "$bundle/lib/fallback/$name" ;;
      *) cp -L "$path" "$bundle/lib/$name" ;;
    esac
  done < <(ldd "$bin")
done
if ((${#unresolved[@]})); then
  printf '  %s\n' "${unresolved[@]}" >&2
  say "error: the libraries above are not found here, so they cannot be bundled"
fi

cp tools/gpu_check.sh "$bundle/gpu_check.sh"
cp bench/peers/*.py "$bundle/peers/" 2> /dev/null || true
# The GPU tests read no fixture files today; a future one that does must be added here (TL_FIXTURE_DIR).

# ---- manifest ---------------------------------------------------------------------------------------------------
version_needed() {  # the highest version $1_x.y of the symbols that files $2... import (objdump's *UND* rows)
  local prefix="$1"
  shift
  objdump -T "$@" 2> /dev/null | grep -F '*UND*' | grep -o "(${prefix}_[0-9][0-9.]*)" | tr -d '()' \
    | sed "s/^${prefix}_//" | sort -uV | tail -n 1 || true
}
version_of() {  # "9.19.0" from the #defines MAJOR/MINOR/PATCH* of header $1 with prefix $2
  local h="$1" p="$2"
  [[ -f "$h" ]] || { echo unknown; return; }
  local major minor patch
  major="$(sed -n "s/^#define ${p}MAJOR[[:space:]]\+\([0-9]\+\).*/\1/p" "$h" | head -n 1)"
  minor="$(sed -n "s/^#define ${p}MINOR[[:space:]]\+\([0-9]\+\).*/\1/p" "$h" | head -n 1)"
  patch="$(sed -n "s/^#define ${p}PATCH[A-Z]*[[:space:]]\+\([0-9]\+\).*/\1/p" "$h" | head -n 1)"
  echo "${major:-?}.${minor:-?}.${patch:-?}"
}
cuda_include="$(dirname "$(dirname "$(readlink -f "$nvcc")")")/include"
lib_files=()
while IFS= read -r -d '' f; do lib_files+=("$f"); done < <(find "$bundle/lib" -name '*.so*' -print0)
# The copies in lib/fallback are left out: gpu_check.sh uses them only when the machine's own are too old.
# (A static libstdc++/libgcc raises the glibc floor to 2.36 here: GCC 12's random_device calls arc4random and
# its unwinder _dl_find_object; with TL_STATIC_CXX_RUNTIME=OFF it is 2.34.)
runtime_files=("$bundle"/bin/*)
for f in "${lib_files[@]}"; do [[ "$f" == */fallback/* ]] || runtime_files+=("$f"); done
need="$(version_needed GLIBC "${runtime_files[@]}")"
cxx_need="$(version_needed GLIBCXX "${runtime_files[@]}")"
# The GPU test areas as ctest runs them (tests/CMakeLists.txt: one tl_gpu_tests process per --gtest_filter);
# gpu_check.sh runs the same processes. "NN: Test command: ... "--gtest_filter=F"" precedes "Test #NN: name".
gpu_areas="$(ctest --test-dir "$build" -N -V -L gpu 2> /dev/null | awk '
  /Test command:/ { n = $1; sub(/:$/, "", n)
                    if (match($0, /--gtest_filter=[^" ]*/)) filter[n] = substr($0, RSTART + 15, RLENGTH - 15) }
  /Test +#[0-9]+: / { n = $2; gsub(/[#:]/, "", n); if (n in filter) print $3, filter[n] }' || true)"
commit="$(git rev-parse --short=12 HEAD 2> /dev/null || echo unknown)"
git diff --quiet HEAD 2> /dev/null || commit+=" (with uncommitted changes)"
{
  echo "tl GPU bundle, made by tools/gpu_bundle.sh"
  echo "commit: $commit"
  echo "made: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname) ($(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release))"
  echo "cuda-arch: $arch"
  echo "nvcc: $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "built-against-cudnn: $(version_of "$cuda_include/cudnn_version.h" CUDNN_)"
  echo "built-against-cublas: $(version_of "$cuda_include/cublas_api.h" CUBLAS_VER_)"
  echo "glibc-needed: ${need:-unknown}"
  echo "glibcxx-needed: ${cxx_need:-none}"
  echo "static-cxx-runtime: $static_cxx"
  echo "from-gpu-machine:$gpu_machine_libs"
  echo "binaries: ${built[*]}"
  echo "not-built: ${failed[*]:-}"
  echo "not-defined: ${not_defined[*]:-}"
  while IFS= read -r area; do [[ -z "$area" ]] || echo "gpu-test-area: $area"; done <<< "$gpu_areas"
  echo "compressed: files over $((compress_over / 1024)) KiB in bin/ and lib/ are stored as NAME.xz"
  echo
  for bin in "$bundle"/bin/*; do
    echo "== ldd $(basename "$bin") ($(stat -c %s "$bin") bytes)"
    ldd "$bin" | sed 's/ (0x[0-9a-f]*)$//'
  done
} > "$bundle/MANIFEST.txt"

# ---- compress ---------------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
unpacked_bytes="$(du -sb "$bundle" | cut -f1)"
declare -A unpacked_size=()
if ((have_xz)); then
  while IFS= read -r -d '' f; do
    if (($(stat -c %s "$f") > compress_over)); then
      unpacked_size["$f.xz"]="$(stat -c %s "$f")"
      xz -6 -T1 "$f"
    fi
  done < <(find "$bundle/bin" "$bundle/lib" -type f -print0)
else
  say "warning: xz is not installed: the bundle travels uncompressed"
fi

# ---- report -----------------------------------------------------------------------------------------------------
total_bytes="$(du -sb "$bundle" | cut -f1)"
echo
say "bundle $bundle/ (commit $commit, sm_$arch): stored MiB (unpacked)"
while IFS= read -r f; do
  size="$(stat -c %s "$f")"
  printf '  %-40s %7s' "${f#"$bundle"/}" "$(mib "$size")"
  [[ -n "${unpacked_size[$f]:-}" ]] && printf '  (%s)' "$(mib "${unpacked_size[$f]}")"
  printf '\n'
done < <(find "$bundle" -type f | sort)
say "total $(mib "$total_bytes") MiB stored, $(mib "$unpacked_bytes") MiB unpacked (the device tool carries" \
  "64 MiB with the working tree; this script's limit: $max_mib MiB)"
say "from the GPU machine:${gpu_machine_libs:-none (no binary links cuDNN or cuBLAS yet)}; glibc >= ${need:-?} there"
if ! git check-ignore -q "$bundle/MANIFEST.txt" 2> /dev/null; then
  say "warning: $bundle/ is not git-ignored: add the line '/$bundle/' to .gitignore (and never commit it)"
fi
((${#not_defined[@]})) && say "not in the bundle (no such target yet): ${not_defined[*]}"

status=0
if ((${#failed[@]})); then
  say "PARTIAL bundle: ${failed[*]} failed to build (log: $build/gpu_bundle.build.log)"
  status=1
fi
if ((${#unresolved[@]})); then
  say "broken bundle: unresolved libraries (above)"
  status=1
fi
if ((total_bytes > max_mib * 1024 * 1024)); then
  say "error: the bundle is over $max_mib MiB"
  status=1
fi
((status == 0)) && say "ready: device run with carry [\"$bundle\"], command: bash $bundle/gpu_check.sh"
exit "$status"
