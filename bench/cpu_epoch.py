"""One epoch on random data: our engine vs PyTorch CPU eager, same process, same thread count.

    python bench/cpu_epoch.py [--samples 60000] [--repeats 3]

Ours twice: the autograd step, and the fused step the trainer runs for these MLPs (which also
gathers and normalizes uint8 rows itself). Prints seconds per epoch, samples/s of the fused step,
the ratio fused/PyTorch, and finally `min ratio vs PyTorch: X.XX`. Each figure is the best of
`--repeats` epochs (the machines are noisy).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from neuraterm.core.losses import cross_entropy
from neuraterm.core.mlp import MLP
from neuraterm.core.optimizers import build
from neuraterm.core.tensor import Tensor

CONFIGS = [
    ("784-128-10 SGD b64", [784, 128, 10], "sgd", {"lr": 0.1}, 64),
    ("784-400-240-120-47 Adam b512", [784, 400, 240, 120, 47], "adam", {"lr": 1e-3}, 512),
]


def ours_epoch(sizes, opt_name, opt_kw, batch, x, y, perm):
    net = MLP(sizes, seed=0)
    opt = build(opt_name, net.parameters(), **opt_kw)
    xb = np.empty((batch, x.shape[1]), np.float32)
    start = time.perf_counter()
    for i in range(0, len(perm) - batch + 1, batch):
        idx = perm[i:i + batch]
        np.take(x, idx, axis=0, out=xb, mode="clip")
        opt.zero_grad()
        loss = cross_entropy(net(Tensor(xb)), y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def fused_epoch(sizes, opt_name, opt_kw, batch, x, y, perm):
    from neuraterm.core.data.feeder import Feeder
    from neuraterm.core.data.normalize import Normalizer
    from neuraterm.core.fused.numpy_ops import NumpyOps
    from neuraterm.core.fused.step import FusedStep
    net = MLP(sizes, seed=0)
    opt = build(opt_name, net.parameters(), **opt_kw)
    step = FusedStep(NumpyOps(), net, opt, Feeder(np, x, y, Normalizer("scale"), batch), batch)
    batches = [perm[i:i + batch] for i in range(0, len(perm) - batch + 1, batch)]
    start = time.perf_counter()
    step.begin_epoch(batches)
    for idx in batches:
        step.run(len(idx))
    step.totals_on_host()
    return time.perf_counter() - start


def torch_epoch(sizes, opt_name, opt_kw, batch, x, y, perm):
    import torch
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[opt_name](net.parameters(), **opt_kw)
    tx, ty, tp = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(perm)
    start = time.perf_counter()
    for i in range(0, len(perm) - batch + 1, batch):
        idx = tp[i:i + batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 784), dtype=np.float32)
    x_uint8 = (x * 255).astype(np.uint8)
    ratios = []
    print(f"machine: {platform.machine()} {platform.processor() or ''} threads={threads} "
          f"numpy {np.__version__} torch {torch.__version__}")
    print(f"{'config':32} {'autograd s/ep':>13} {'fused s/ep':>10} {'torch s/ep':>10} {'fused smp/s':>11} "
          f"{'torch smp/s':>11} {'ratio':>6}")
    for label, sizes, opt_name, opt_kw, batch in CONFIGS:
        y = rng.integers(0, sizes[-1], args.samples)
        perm = rng.permutation(args.samples)
        autograd = min(ours_epoch(sizes, opt_name, opt_kw, batch, x, y, perm) for _ in range(args.repeats))
        ours = min(fused_epoch(sizes, opt_name, opt_kw, batch, x_uint8, y, perm) for _ in range(args.repeats))
        theirs = min(torch_epoch(sizes, opt_name, opt_kw, batch, x, y, perm) for _ in range(args.repeats))
        ratio = theirs / ours
        ratios.append(ratio)
        print(f"{label:32} {autograd:13.3f} {ours:10.3f} {theirs:10.3f} {args.samples / ours:11.0f} "
              f"{args.samples / theirs:11.0f} {ratio:6.2f}")
    print(f"min ratio vs PyTorch: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
