#!/usr/bin/env bash
# Installs every Debian package that tl's build, tests and benchmarks need.
# Idempotent and non-interactive: packages already present are left alone, and
# `apt-get update` runs at most once per call (and not at all when nothing is missing).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang-format
  # the fuzz build (tests/fuzz/): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
  # libraries tl links
  libopenblas-dev libhdf5-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev libzip-dev libonnx-dev libprotobuf-dev
  libcli11-dev nlohmann-json3-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # fixture generators (tests/fixtures/*.py, run by Debian's /usr/bin/python3)
  python3-torch python3-torchvision python3-numpy python3-h5py python3-onnx python3-pil
  # the built-in Fashion-MNIST data source (engine/data/dataset.h)
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
