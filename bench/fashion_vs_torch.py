"""The `fashion-mlp` preset in our engine and in PyTorch, same initial weights and same batches.

    python bench/fashion_vs_torch.py [--epochs 20]

Both sides get the same training/validation split, the same standardization, the same initial
weights (ours, copied into torch) and the same mini-batch order and cosine schedule; only dropout
masks differ (each engine draws its own). Prints test accuracy and seconds for each.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neuraterm import presets
from neuraterm.core.data.batches import BatchOrder
from neuraterm.core.run.build import build_model, build_schedule, load_data
from neuraterm.core.run.trainer import Trainer


def torch_run(config, data, init_state, epochs):
    import torch
    torch.manual_seed(config.train.seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    sizes = [data.num_features, *config.model.hidden, data.num_classes]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [torch.nn.ReLU(), torch.nn.Dropout(config.model.dropout)]
    net = torch.nn.Sequential(*layers)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    ours = sorted((n for n, a in init_state.items() if n.endswith(".weight") and a.ndim == 2),
                  key=lambda n: int(n.split(".")[0]))
    with torch.no_grad():
        for name, lin in zip(ours, linears):
            lin.weight.copy_(torch.from_numpy(init_state[name]))
            lin.bias.copy_(torch.from_numpy(init_state[name.replace("weight", "bias")]))
    opt = torch.optim.Adam(net.parameters(), lr=config.optimizer.lr)
    schedule = build_schedule(config)
    order = BatchOrder(len(data.train.y), config.train.batch_size, config.train.seed)
    x = torch.from_numpy(data.normalizer(data.train.x))
    y = torch.from_numpy(data.train.y)
    start = time.perf_counter()
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = schedule(epoch)
        net.train()
        for idx in order.epoch():
            t = torch.from_numpy(idx)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[t]), y[t]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(data.normalizer(data.test.x)))
    return float((logits.argmax(1).numpy() == data.test.y).mean()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default="/tmp/neuraterm-fashion-bench")
    args = parser.parse_args()
    config = presets.load("fashion-mlp")
    if args.epochs:
        config.train.epochs = args.epochs
    data = load_data(config)
    import shutil
    shutil.rmtree(args.out, ignore_errors=True)
    init = build_model(config, data.num_features, data.num_classes, np).state_dict()
    start = time.perf_counter()
    ours = Trainer(config, __import__("pathlib").Path(args.out), data=data).run()
    ours_seconds = time.perf_counter() - start
    theirs, torch_seconds = torch_run(config, data, init, config.train.epochs)
    print(f"{'engine':10} {'test acc':>9} {'seconds':>8}")
    print(f"{'neuraterm':10} {100 * ours['test_accuracy']:8.2f}% {ours_seconds:8.1f}")
    print(f"{'pytorch':10} {100 * theirs:8.2f}% {torch_seconds:8.1f}")


if __name__ == "__main__":
    main()
