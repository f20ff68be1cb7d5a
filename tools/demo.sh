#!/usr/bin/env bash
# The main job: installs the dependencies, builds tl, and trains a small conv net on generated images,
# printing the falling loss and the held-out accuracy. Arguments go to tl_demo (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
build="${TL_BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j "$(nproc)" --target tl_demo
"$build/tools/tl_demo" "$@"
