"""One epoch on the GPU, several ways in the same process, with the floors computed from FLOPs and launches.

    python bench/gpu_epoch.py [--quick]

Data are random uint8 images resident on the device (EMNIST-ByMerge-shaped: 566,667 x 784, 47
classes; MNIST-shaped: 60,000 x 784, 10 classes). Ways: ours eager (CuPy), PyTorch eager, PyTorch
with the whole step captured in a CUDA graph. Also measured: the host cost of one CuPy kernel launch
and the cost of one node in a replayed CUDA graph. Prints a table; times are medians of `--repeats`.
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


def ours_epoch_fn(cp, x, y, sizes, opt_name, lr, batch):
    from neuraterm.core.data.normalize import Normalizer
    from neuraterm.core.losses import cross_entropy
    from neuraterm.core.mlp import MLP
    from neuraterm.core.optimizers import build
    from neuraterm.core.tensor import Tensor
    net = MLP(sizes, seed=0, xp=cp)
    opt = build(opt_name, net.parameters(), lr=lr)
    norm = Normalizer("scale")
    n = len(y)
    xb = cp.empty((batch, x.shape[1]), cp.float32)
    xu = cp.empty((batch, x.shape[1]), cp.uint8)

    def epoch():
        perm = cp.random.permutation(n)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            cp.take(x, idx, axis=0, out=xu)
            norm(xu, cp, out=xb)
            opt.zero_grad()
            cross_entropy(net(Tensor(xb)), y[idx]).backward()
            opt.step()
    return epoch


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
    kernels = 3 * (len(sizes) - 1) + 4  # fused fwd, bwd dW/dx, loss, update, gather
    return flops, flops / (FP32_TFLOPS * 1e12), flops / (TF32_TFLOPS * 1e12), steps * kernels * NODE_US * 1e-6, steps


def measure(index: int, repeats: int, quick: bool) -> dict:
    import cupy as cp
    import torch
    label, n, sizes, opt_name, lr, batch = CONFIGS[index]
    n = n // 10 if quick else n
    rng = np.random.default_rng(0)
    x_np = rng.integers(0, 256, (n, sizes[0]), dtype=np.uint8)
    y_np = rng.integers(0, sizes[-1], n)
    ours = timed(ours_epoch_fn(cp, cp.asarray(x_np), cp.asarray(y_np), sizes, opt_name, lr, batch), repeats,
                 cp.cuda.Device().synchronize)
    eager, graphed = torch_epoch_fns(torch, x_np, y_np, sizes, opt_name, lr, batch)
    t_eager = timed(eager, repeats, torch.cuda.synchronize)
    t_graph = timed(graphed, repeats, torch.cuda.synchronize)
    flops, fp32, tf32, launch, steps = floors(n, sizes, batch)
    return {"label": label, "n": n, "steps": steps, "ours": ours, "torch_eager": t_eager, "torch_graph": t_graph,
            "floor_fp32": fp32, "floor_tf32": tf32, "floor_launch": launch}


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
        out = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'config':38} {'samples':>8} {'steps':>6} {'ours eager':>10} {'torch eager':>11} {'torch graph':>11} "
          f"{'floor fp32':>10} {'floor tf32':>10} {'launch floor':>12}")
    for r in rows:
        print(f"{r['label']:38} {r['n']:8,} {r['steps']:6} {r['ours']:9.3f}s {r['torch_eager']:10.3f}s "
              f"{r['torch_graph']:10.3f}s {r['floor_fp32'] * 1e3:8.1f}ms {r['floor_tf32'] * 1e3:8.1f}ms "
              f"{r['floor_launch'] * 1e3:10.1f}ms")
    for r in rows:
        print(f"{r['label']}: ours eager vs torch eager {r['torch_eager'] / r['ours']:.2f}x, "
              f"vs torch graph {r['torch_graph'] / r['ours']:.2f}x ({r['n'] / r['ours']:,.0f} samples/s)")


if __name__ == "__main__":
    main()
