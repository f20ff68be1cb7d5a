#!/usr/bin/python3
"""PyTorch on the work bench_models times in tl, for side-by-side figures in bench/RESULTS.md.

  pytorch_train_step.py [--threads N] [--min-time S] [--models resnet18,mobilenet_v2]

For each model at batch 16, 224 x 224, float32, 10 classes: a training step in train mode (forward,
cross-entropy, backward, SGD with momentum 0.9) and an eval-mode forward under no_grad, two untimed steps first,
then as many steps as fit in --min-time seconds. Prints one line per case, images/s over wall-clock time.
--threads defaults to the machine's core count, the number of OpenMP threads tl uses.
Run with Debian's python3 (torch 1.13, torchvision 0.14).
"""
import argparse
import os
import time

import torch
import torchvision

BATCH, CLASSES, SIZE = 16, 10, 224


def rate(step, min_time):
    for _ in range(2):
        step()
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return BATCH * steps / elapsed, 1e3 * elapsed / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=5.0)
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    labels = torch.arange(BATCH) % CLASSES
    print(f"torch {torch.__version__}, {args.threads} threads")
    for arch in args.models.split(","):
        model = getattr(torchvision.models, arch)(num_classes=CLASSES)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def train_step():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()

        def eval_step():
            with torch.no_grad():
                model(x)

        model.train()
        images_per_s, ms = rate(train_step, args.min_time)
        print(f"train_step/{arch}/b16  {ms:8.1f} ms/step  {images_per_s:7.1f} images/s")
        model.eval()
        images_per_s, ms = rate(eval_step, args.min_time)
        print(f"eval/{arch}/b16        {ms:8.1f} ms/step  {images_per_s:7.1f} images/s")


if __name__ == "__main__":
    main()
