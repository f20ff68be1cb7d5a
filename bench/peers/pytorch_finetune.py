#!/usr/bin/python3
"""PyTorch on the same fine-tuning recipe as tl_train, for side-by-side figures.

  pytorch_finetune.py --weights W.h5 --data DIR --strategy feature-extract|finetune --epochs N
                      [--batch-size 16] [--lr 1e-3] [--base-lr 1e-4] [--augment] [--train-frozen-bn]

W.h5 is a tl weight file of a torchvision MobileNetV2 (tl_convert's output; the tensor names are torchvision's),
loaded into torchvision.models.mobilenet_v2 with a new head for the data's classes. The recipe follows tl_train's:
Adam, the head at --lr and the unfrozen last stage (features.17, features.18) at --base-lr, frozen BatchNorm in
eval mode unless --train-frozen-bn (PyTorch's usual model.train() puts every BatchNorm in training mode, which is
what --train-frozen-bn reproduces), torchvision's transforms (RandomResizedCrop + flip with --augment, else
Resize(256) + CenterCrop(224)) and the weights' mean/std. Prints one line per epoch and a final JSON line.
Run with Debian's python3 (torch 1.13, torchvision 0.14, h5py).
"""
import argparse
import json
import time

import h5py
import torch
import torchvision
from torchvision import datasets, transforms


def load_tl_weights(path):
    state, attrs = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("_extra"):
                state[name.replace("/", ".")] = torch.as_tensor(obj[()])  # scalars (num_batches_tracked) too
        f.visititems(visit)
        attrs = {k: f.attrs[k] for k in ("mean", "std")}
    return state, attrs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--strategy", choices=["feature-extract", "finetune"], required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--base-lr", type=float, default=1e-4)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--train-frozen-bn", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    state, attrs = load_tl_weights(args.weights)
    model = torchvision.models.mobilenet_v2(num_classes=int(state["classifier.1.weight"].shape[0]))
    model.load_state_dict(state)
    normalize = transforms.Normalize(list(attrs["mean"]), list(attrs["std"]))
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize]) if args.augment else \
        transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    eval_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    # torchvision's ImageFolder skips files without an image extension (the stray GIF included).
    train_set = datasets.ImageFolder(f"{args.data}/train", train_tf)
    val_set = datasets.ImageFolder(f"{args.data}/val", eval_tf)
    classes = len(train_set.classes)
    model.classifier[1] = torch.nn.Linear(model.last_channel, classes)

    for p in model.parameters():
        p.requires_grad = False
    trainable = ["classifier.1"] + (["features.17", "features.18"] if args.strategy == "finetune" else [])
    head, rest = [], []
    for name, p in model.named_parameters():
        if any(name.startswith(t + ".") for t in trainable):
            p.requires_grad = True
            (head if name.startswith("classifier.1.") else rest).append(p)
    groups = [{"params": head, "lr": args.lr}] + ([{"params": rest, "lr": args.base_lr}] if rest else [])
    optimizer = torch.optim.Adam(groups)

    def set_train_mode():
        model.train()
        if not args.train_frozen_bn:  # frozen BatchNorm keeps its running statistics, as tl_train does
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()

    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=2)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=32, num_workers=2)
    best, start = 0.0, time.time()
    for epoch in range(args.epochs):
        set_train_mode()
        for x, y in train_loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        best = max(best, correct / total)
        print(f"pytorch epoch {epoch + 1}/{args.epochs}: val acc {100 * correct / total:.1f}%", flush=True)
    print(json.dumps({"framework": "pytorch", "strategy": args.strategy, "best_val_accuracy": best,
                      "seconds": time.time() - start}))


if __name__ == "__main__":
    main()
