"""One epoch on random data, our engine vs PyTorch CPU eager, and the Adam update alone.

    python bench/cpu_epoch.py [--repeats 5] [--scale 1.0]

Ours twice: the autograd step, and the fused step the trainer runs for these MLPs (which also
gathers and normalizes uint8 rows itself). PyTorch runs its fused Adam (`fused=True`), its fastest.
The engines take turns, epoch by epoch (autograd, fused, PyTorch, autograd, ...), and every figure is
the median of `--repeats` turns: run back to back, one engine's epochs and then the other's, the
ratio swung between 0.95 and 2.30 on the shared 2-core machines. Then the Adam update alone on flat
buffers of 235K and 3.62M parameters, each column saying its threads: NumPy passes and the compiled update
(the `fast` extra) run on one thread, so they are compared with PyTorch's fused Adam on one thread (its
fused Adam on every thread is shown beside it), and with its single-tensor loop (`fused=False,
foreach=False`, what PyTorch picks by default for CPU tensors) on one thread, interleaved the same way.
The last line is `min ratio vs PyTorch: X.XX`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from neuraterm.core.optim import adam_kernel
from neuraterm.core.nn.losses import cross_entropy
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build
from neuraterm.core.nn.tensor import Tensor

# label, sizes, optimizer, options, batch, samples per epoch
CONFIGS = [
    ("784-128-10 SGD b64", [784, 128, 10], "sgd", {"lr": 0.1}, 64, 60_000),
    ("784-400-240-120-47 Adam b512", [784, 400, 240, 120, 47], "adam", {"lr": 1e-3}, 512, 60_000),
    ("784-2000-1000-49 Adam b64", [784, 2000, 1000, 49], "adam", {"lr": 1e-3}, 64, 12_800),
]
ADAM_SIZES = [("235K (784-256-128-10)", [784, 256, 128, 10]), ("3.62M (784-2000-1000-49)", [784, 2000, 1000, 49])]


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


def torch_optimizer(torch, name, params, options):
    if name == "adam":
        return torch.optim.Adam(params, **options, fused=True)
    return torch.optim.SGD(params, **options)


def torch_epoch(sizes, opt_name, opt_kw, batch, x, y, perm):
    import torch
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch_optimizer(torch, opt_name, net.parameters(), opt_kw)
    tx, ty, tp = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(perm)
    start = time.perf_counter()
    for i in range(0, len(perm) - batch + 1, batch):
        idx = tp[i:i + batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median of `repeats` turns, the candidates taking turns within each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return {name: statistics.median(values) for name, values in times.items()}


def adam_steps(sizes, compiled: bool | None, reps: int):
    """A function timing `reps` of our Adam updates on a flat buffer (mean microseconds per update)."""
    net = MLP(sizes, seed=0)
    opt = build("adam", net.parameters(), lr=1e-3)
    if compiled is not None:
        opt.compiled = compiled
    opt.flat.grad[...] = np.random.default_rng(0).standard_normal(opt.flat.grad.size, dtype=np.float32)

    def run():
        opt.step(grad=opt.flat.grad)
        start = time.perf_counter()
        for _ in range(reps):
            opt.step(grad=opt.flat.grad)
        return (time.perf_counter() - start) / reps * 1e6
    return run, opt.flat.data.size


def torch_adam_steps(torch, sizes, fused: bool, reps: int, threads: int | None = None):
    params = [torch.nn.Parameter(torch.randn(a * b + b)) for a, b in zip(sizes[:-1], sizes[1:])]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-3, fused=fused) if fused else torch.optim.Adam(
        params, lr=1e-3, fused=False, foreach=False)

    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads or previous)
        opt.step()
        start = time.perf_counter()
        for _ in range(reps):
            opt.step()
        seconds = time.perf_counter() - start
        torch.set_num_threads(previous)
        return seconds / reps * 1e6
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every config's samples per epoch.")
    args = parser.parse_args()
    import torch
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()} {platform.processor() or ''} threads={threads} "
          f"numpy {np.__version__} torch {torch.__version__} compiled Adam: "
          f"{'yes' if adam_kernel.available() else 'no (install the fast extra)'}")
    print(f"medians of {args.repeats} interleaved turns")
    print(f"{'config':30} {'samples':>7} {'autograd s/ep':>13} {'fused s/ep':>10} {'torch s/ep':>10} "
          f"{'fused smp/s':>11} {'torch smp/s':>11} {'ratio':>6}")
    ratios = []
    for label, sizes, opt_name, opt_kw, batch, samples in CONFIGS:
        samples = max(batch, int(samples * args.scale))
        x = rng.random((samples, sizes[0]), dtype=np.float32)
        x_uint8 = (x * 255).astype(np.uint8)
        y = rng.integers(0, sizes[-1], samples)
        perm = rng.permutation(samples)
        med = interleaved({
            "autograd": lambda: ours_epoch(sizes, opt_name, opt_kw, batch, x, y, perm),
            "fused": lambda: fused_epoch(sizes, opt_name, opt_kw, batch, x_uint8, y, perm),
            "torch": lambda: torch_epoch(sizes, opt_name, opt_kw, batch, x, y, perm),
        }, args.repeats)
        ratio = med["torch"] / med["fused"]
        ratios.append(ratio)
        print(f"{label:30} {samples:>7} {med['autograd']:13.3f} {med['fused']:10.3f} {med['torch']:10.3f} "
              f"{samples / med['fused']:11.0f} {samples / med['torch']:11.0f} {ratio:6.2f}")
    print()
    print(f"{'Adam update alone (us)':30} {'NumPy 1t':>8} {'compiled 1t':>11} {'torch fused 1t':>14} "
          f"{f'torch fused {threads}t':>14} {'torch loop 1t':>13} {'ours/torch 1t':>13}")
    for label, sizes in ADAM_SIZES:
        reps = 200 if sizes[1] < 1000 else 20
        runs = {"numpy": adam_steps(sizes, False, reps)[0]}
        if adam_kernel.available():
            runs["compiled"] = adam_steps(sizes, True, reps)[0]
        runs["fused1"] = torch_adam_steps(torch, sizes, True, reps, threads=1)
        runs["fused"] = torch_adam_steps(torch, sizes, True, reps, threads=threads)
        runs["loop1"] = torch_adam_steps(torch, sizes, False, reps, threads=1)
        med = interleaved(runs, args.repeats * 3)
        best = med.get("compiled", med["numpy"])
        compiled = f"{med['compiled']:11.0f}" if "compiled" in med else f"{'-':>11}"
        print(f"{label:30} {med['numpy']:8.0f} {compiled} {med['fused1']:14.0f} {med['fused']:14.0f} "
              f"{med['loop1']:13.0f} {best / med['fused1']:13.2f}")
    print(f"min ratio vs PyTorch: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
