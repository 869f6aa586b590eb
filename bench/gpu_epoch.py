"""One epoch on the GPU, several ways in the same process, with the floors computed from FLOPs and launches.

    python bench/gpu_epoch.py [--quick]

Data are random uint8 images resident on the device (EMNIST-ByMerge-shaped: 566,667 x 784, 47
classes; MNIST-shaped: 60,000 x 784, 10 classes), full batches only. Ways, each in the same process
per config: our autograd step, our fused step eager, our fused step replayed as one CUDA graph per
step (FP32, and TF32), PyTorch eager with the data on the GPU, PyTorch with the whole step captured
in a CUDA graph. Also measured: the host cost of one CuPy kernel launch and the cost of one node in
a replayed CUDA graph. Prints a table per config; times are medians of `--repeats`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

CONFIGS = [
    ("emnist 784-400-240-120-47 Adam b512", 566_667, [784, 400, 240, 120, 47], "adam", 1e-3, 512),
    ("mnist 784-128-10 SGD b64", 60_000, [784, 128, 10], "sgd", 0.1, 64),
]
FP32_TFLOPS, TF32_TFLOPS, NODE_US = 60.0, 400.0, 2.0  # H100 SXM dense rates (paper); graph node ~2 us


def timed(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours_epoch_fns(cp, x_np, y_np, sizes, opt_name, lr, batch):
    """Our epochs: the fused step eager, replayed as a CUDA graph (FP32 and TF32), and the autograd step."""
    from neuraterm.core.data.feeder import Feeder
    from neuraterm.core.data.normalize import Normalizer
    from neuraterm.core.fused import ops_for
    from neuraterm.core.fused.step import FusedStep
    from neuraterm.core.nn.mlp import MLP
    from neuraterm.core.optim.optimizers import build
    from neuraterm.core.run.steps import AutogradStep
    n = len(y_np)

    def make(kind):
        net = MLP(sizes, seed=0, xp=cp)
        opt = build(opt_name, net.parameters(), lr=lr)
        feeder = Feeder(cp, x_np, y_np, Normalizer("scale"), batch, "device")
        if kind == "autograd":
            step = AutogradStep(net, opt, feeder, "benchmark")
        else:
            step = FusedStep(ops_for(cp, tf32=kind == "graph_tf32"), net, opt, feeder, batch, graphs=kind != "eager")

        def epoch():
            order = np.random.permutation(n)
            batches = [order[i:i + batch] for i in range(0, n - batch + 1, batch)]  # full batches, as torch
            step.begin_epoch(batches)
            for idx in batches:
                step.run(len(idx))
            step.totals_on_host()
        return epoch, step
    return {kind: make(kind) for kind in ("eager", "graph", "graph_tf32", "autograd")}


def torch_epoch_fns(torch, x_np, y_np, sizes, opt_name, lr, batch):
    dev = torch.device("cuda")
    x = torch.from_numpy(x_np).to(dev)
    y = torch.from_numpy(y_np).to(dev)
    n = len(y_np)

    def make():
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers).to(dev)
        if opt_name == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=lr, capturable=True)
        else:
            opt = torch.optim.SGD(net.parameters(), lr=lr)
        return net, opt

    net, opt = make()

    def eager():
        perm = torch.from_numpy(np.random.permutation(n)).to(dev)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            xb = x[idx].float().mul_(1 / 255)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(xb), y[idx]).backward()
            opt.step()

    gnet, gopt = make()
    static_x = torch.zeros(batch, sizes[0], device=dev)
    static_y = torch.zeros(batch, dtype=torch.long, device=dev)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            gopt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(gnet(static_x), static_y).backward()
            gopt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    gopt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = torch.nn.functional.cross_entropy(gnet(static_x), static_y)
        loss.backward()
        gopt.step()

    def graphed():
        # The permutation comes from the host: torch.randperm after a graph capture produced
        # out-of-range indices here (device-side assert), so both torch paths share this one.
        perm = torch.from_numpy(np.random.permutation(n)).to(dev)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            static_x.copy_(x[idx]).mul_(1 / 255)
            static_y.copy_(y[idx])
            graph.replay()
    return eager, graphed


def launch_costs(cp):
    """Host microseconds per eager CuPy launch, and device microseconds per node of a replayed graph."""
    a = cp.zeros(1024, cp.float32)
    kernel = cp.ElementwiseKernel("float32 x", "float32 y", "y = x + 1.0f", "nt_inc")
    kernel(a, a)
    cp.cuda.Device().synchronize()
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        kernel(a, a)
    cp.cuda.Device().synchronize()
    eager_us = (time.perf_counter() - start) / n * 1e6
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        for _ in range(n):
            kernel(a, a)
        graph = stream.end_capture()
    graph.upload(stream)
    graph.launch(stream)
    stream.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        graph.launch(stream)
    stream.synchronize()
    node_us = (time.perf_counter() - start) / (5 * n) * 1e6
    return eager_us, node_us


def floors(n, sizes, batch):
    steps = n // batch
    flops = 6 * steps * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    layers = len(sizes) - 1
    below = sum(1 if width <= 64 else 2 for width in sizes[2:])  # gradient into each lower layer (CudaOps.NARROW)
    kernels = 1 + (2 * layers - 1) + 1 + 2 * layers + below + 1  # gather, forward, loss, dW/db, below, update
    return flops, flops / (FP32_TFLOPS * 1e12), flops / (TF32_TFLOPS * 1e12), steps * kernels * NODE_US * 1e-6, steps


def measure(index: int, repeats: int, quick: bool) -> dict:
    import cupy as cp
    import torch
    label, n, sizes, opt_name, lr, batch = CONFIGS[index]
    n = n // 10 if quick else n
    rng = np.random.default_rng(0)
    x_np = rng.integers(0, 256, (n, sizes[0]), dtype=np.uint8)
    y_np = rng.integers(0, sizes[-1], n)
    row = {"label": label, "n": n}
    for kind, (epoch, step) in ours_epoch_fns(cp, x_np, y_np, sizes, opt_name, lr, batch).items():
        try:  # one way failing (on a first run on new hardware, say) still leaves the others' figures
            row[f"ours_{kind}"] = timed(epoch, repeats, cp.cuda.Device().synchronize)
            row[f"ours_{kind}_engine"] = step.describe()
        except Exception as exc:
            row[f"ours_{kind}"] = float("nan")
            row[f"ours_{kind}_engine"] = f"failed: {type(exc).__name__}: {exc}"
    eager, graphed = torch_epoch_fns(torch, x_np, y_np, sizes, opt_name, lr, batch)
    row["torch_eager"] = timed(eager, repeats, torch.cuda.synchronize)
    row["torch_graph"] = timed(graphed, repeats, torch.cuda.synchronize)
    flops, fp32, tf32, launch, steps = floors(n, sizes, batch)
    row.update(steps=steps, floor_fp32=fp32, floor_tf32=tf32, floor_launch=launch)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the samples")
    parser.add_argument("--config", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config is not None:
        print(json.dumps(measure(args.config, args.repeats, args.quick)))
        return
    import cupy as cp
    import torch
    eager_us, node_us = launch_costs(cp)
    print(f"device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}  cupy {cp.__version__}  torch {torch.__version__}")
    print(f"one eager CuPy launch: {eager_us:.1f} us host time; one node of a replayed graph: {node_us:.2f} us")
    rows = []
    for index in range(len(CONFIGS)):
        # One process per config: two CUDA graphs of PyTorch in one process tripped a device assert here.
        command = [sys.executable, __file__, "--config", str(index), "--repeats", str(args.repeats)]
        out = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{CONFIGS[index][0]}: failed\n{out.stderr[-3000:]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ways = [("ours_autograd", "ours autograd"), ("ours_eager", "ours fused eager"), ("ours_graph", "ours graph"),
            ("ours_graph_tf32", "ours graph TF32"), ("torch_eager", "torch eager"), ("torch_graph", "torch graph")]
    for r in rows:
        print(f"\n{r['label']}: {r['n']:,} samples, {r['steps']} steps; floors: FP32 compute {r['floor_fp32'] * 1e3:.1f} ms, "
              f"TF32 {r['floor_tf32'] * 1e3:.1f} ms, launches in a graph {r['floor_launch'] * 1e3:.1f} ms")
        print(f"  {'way':18} {'s/epoch':>9} {'samples/s':>12} {'vs torch eager':>15} {'vs torch graph':>15}")
        for key, name in ways:
            t = r[key]
            print(f"  {name:18} {t:9.4f} {r['n'] / t:12,.0f} {r['torch_eager'] / t:14.2f}x {r['torch_graph'] / t:14.2f}x")
        for key, name in ways[:4]:
            print(f"  {name}: {r[key + '_engine']}")


if __name__ == "__main__":
    main()
