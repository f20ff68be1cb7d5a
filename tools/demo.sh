#!/usr/bin/env bash
# The main job on data any machine can install (Debian's dataset-fashion-mnist): pre-train a ResNet-18 on five
# Fashion-MNIST classes (T-shirt, trouser, pullover, dress, coat), then fine-tune it on the other five (sandal,
# shirt, sneaker, bag, ankle boot) from 10 images per class, and the same recipe from random weights beside it.
# Runs in runs/demo/ (about 3 minutes on 2 cores after the build). TL_BUILD_DIR picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
build="${TL_BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j "$(nproc)" --target tl_train
train="$build/tools/tl_train"
rm -rf runs/demo

echo "== 1. pre-train resnet18 on Fashion-MNIST classes 0-4, 1000 images each, 32 px"
"$train" --data fashion-mnist:0,1,2,3,4:1000 --model resnet18 --image-size 32 --epochs 2 --batch-size 64 \
  --lr 1e-3 --no-augment --out runs/demo/pretrain

echo "== 2. fine-tune it on classes 5-9 from 10 images each (new head, layer4 + head train), and from scratch"
"$train" --data fashion-mnist:5,6,7,8,9:10 --weights runs/demo/pretrain/best.h5 --reset-head \
  --strategy finetune --epochs 15 --batch-size 16 --lr 1e-3 --no-augment --compare-scratch --out runs/demo/finetune
