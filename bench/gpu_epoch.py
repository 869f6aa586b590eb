"""One epoch on the GPU, several ways in the same process, with the floors computed from FLOPs and launches.

    python bench/gpu_epoch.py [--quick]

Data are random uint8 images resident on the device (EMNIST-ByMerge-shaped: 566,667 x 784, 47
classes; MNIST-shaped: 60,000 x 784, 10 classes). Ways: ours eager (CuPy), PyTorch eager, PyTorch
with the whole step captured in a CUDA graph. Also measured: the host cost of one CuPy kernel launch
and the cost of one node in a replayed CUDA graph. Prints a table; times are medians of `--repeats`.
"""
from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the samples")
    args = parser.parse_args()
    import cupy as cp
    import torch
    eager_us, node_us = launch_costs(cp)
    print(f"device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}  cupy {cp.__version__}  torch {torch.__version__}")
    print(f"one eager CuPy launch: {eager_us:.1f} us host time; one node of a replayed graph: {node_us:.2f} us")
    rows = []
    for label, n, sizes, opt_name, lr, batch in CONFIGS:
        n = n // 10 if args.quick else n
        rng = np.random.default_rng(0)
        x_np = rng.integers(0, 256, (n, sizes[0]), dtype=np.uint8)
        y_np = rng.integers(0, sizes[-1], n)
        sync = cp.cuda.Device().synchronize
        print(f"  {label}: ours eager...", flush=True)
        ours = timed(ours_epoch_fn(cp, cp.asarray(x_np), cp.asarray(y_np), sizes, opt_name, lr, batch), args.repeats, sync)
        eager, graphed = torch_epoch_fns(torch, x_np, y_np, sizes, opt_name, lr, batch)
        print(f"  {label}: torch eager and graph...", flush=True)
        t_eager = timed(eager, args.repeats, torch.cuda.synchronize)
        t_graph = timed(graphed, args.repeats, torch.cuda.synchronize)
        flops, fp32, tf32, launch, steps = floors(n, sizes, batch)
        rows.append((label, n, steps, ours, t_eager, t_graph, fp32, tf32, launch))
    print(f"{'config':38} {'samples':>8} {'steps':>6} {'ours eager':>10} {'torch eager':>11} {'torch graph':>11} "
          f"{'floor fp32':>10} {'floor tf32':>10} {'launch floor':>12}")
    for label, n, steps, ours, te, tg, fp32, tf32, launch in rows:
        print(f"{label:38} {n:8,} {steps:6} {ours:9.3f}s {te:10.3f}s {tg:10.3f}s {fp32 * 1e3:8.1f}ms {tf32 * 1e3:8.1f}ms "
              f"{launch * 1e3:10.1f}ms")
    for label, n, steps, ours, te, tg, *_ in rows:
        print(f"{label}: ours eager vs torch eager {te / ours:.2f}x, vs torch graph {tg / ours:.2f}x "
              f"({n / ours:,.0f} samples/s)")


if __name__ == "__main__":
    main()
