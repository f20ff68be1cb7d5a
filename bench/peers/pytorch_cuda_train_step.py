#!/usr/bin/env python3
"""PyTorch on the GPU training step bench_models times in tl (cuda_train_step/<model>/b64/<policy>), for
side-by-side figures in bench/RESULTS.md.

  pytorch_cuda_train_step.py [--device cuda|cuda:N|cpu] [--models resnet50,mobilenet_v2] [--batch 64]
                             [--size 224] [--warmup 5] [--min-time 5] [--no-sync]

For each model: train mode, float32, NCHW, 10 classes (a transfer-learning head), one step = zero_grad,
forward, cross-entropy, backward, SGD (lr 1e-3, momentum 0.9), then reading the loss (tl's step ends the same
way; --no-sync lets PyTorch queue steps ahead instead). TF32 is off for matrix products and cuDNN
convolutions, so both sides do float32 arithmetic; cudnn.benchmark is on (PyTorch's own algorithm search, tl's
cudnnFind equivalent). The --warmup steps are untimed (the search, the caching allocator's first blocks,
momentum buffers); then as many steps as fit in --min-time seconds, measured from a short calibration, are
timed between CUDA events, one event per step boundary. images/s = batch * steps / total time; the median
step is reported too. Prints one JSON object per line: a header, then one per model.

--device cpu runs the same logic on the CPU with a host clock (a check of the script at a tiny size, e.g.
--device cpu --batch 2 --size 64 --min-time 0.2 --warmup 1). The GPU machine has torch 2.11 and torchvision
0.26; Debian's python3 here has torch 1.13 (CPU only). Both are handled.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torchvision

CLASSES = 10


def disable_tf32():
    """float32 arithmetic in cuBLAS and cuDNN, through whichever API this torch has (2.9 added fp32_precision
    and deprecates allow_tf32; mixing the two is refused by some versions). Returns what is now in force."""
    matmul = torch.backends.cuda.matmul
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        matmul.fp32_precision = "ieee"
        conv.fp32_precision = "ieee"
        return {"matmul": matmul.fp32_precision, "cudnn_conv": conv.fp32_precision}
    matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return {"matmul_allow_tf32": matmul.allow_tf32, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


class Clock:
    """Marks between steps: CUDA events on the current stream on a GPU, the host clock on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, start, end):
        if self.cuda:
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return end - start


def time_steps(step, steps, clock):
    """Per-step seconds of `steps` consecutive steps."""
    marks = [clock.mark()]
    for _ in range(steps):
        step()
        marks.append(clock.mark())
    return [clock.seconds(a, b) for a, b in zip(marks, marks[1:])]


def run_model(arch, args, device, clock):
    torch.manual_seed(1234)
    model = getattr(torchvision.models, arch)(num_classes=CLASSES).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    labels = (torch.arange(args.batch) % CLASSES).to(device)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        if not args.no_sync:
            loss.item()  # waits for the step, as tl's bench_models step does

    for _ in range(args.warmup):
        step()
    if clock.cuda:
        torch.cuda.synchronize(device)
    calibration = time_steps(step, 3, clock)
    steps = max(5, math.ceil(args.min_time / max(statistics.median(calibration), 1e-6)))
    times = time_steps(step, steps, clock)
    total = sum(times)
    return {
        "name": f"{'cuda_' if clock.cuda else ''}train_step/{arch}/b{args.batch}/pytorch",
        "model": arch,
        "batch": args.batch,
        "size": args.size,
        "steps": steps,
        "images_per_s": round(args.batch * steps / total, 2),
        "ms_per_step": round(1e3 * total / steps, 3),
        "median_ms_per_step": round(1e3 * statistics.median(times), 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--min-time", type=float, default=5.0, help="seconds of timed steps (default 5)")
    parser.add_argument("--no-sync", action="store_true", help="do not read the loss after each step")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device; "
                     "use --device cpu")
    header = {"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(device)}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        header["gpu"] = torch.cuda.get_device_name(device)
        header["cudnn"] = torch.backends.cudnn.version()
        header["tf32"] = disable_tf32()
        torch.backends.cudnn.benchmark = True
        header["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    else:
        header["threads"] = torch.get_num_threads()
    print(json.dumps(header), flush=True)
    clock = Clock(device)
    for arch in args.models.split(","):
        print(json.dumps(run_model(arch, args, device, clock)), flush=True)


if __name__ == "__main__":
    main()
