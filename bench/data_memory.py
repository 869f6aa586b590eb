"""Peak memory of a one-epoch CPU run against the raw bytes of its images, ours vs a PyTorch pipeline.

    python bench/data_memory.py [--rows 560000] [--keep DIR]

Writes `--rows` x 784 uint8 images (560,000: EMNIST ByMerge's size, 418.7 MiB) to a temporary folder,
made from Fashion-MNIST's images shifted in brightness where Debian's copy is installed (random
blobs otherwise), as IDX files named like MNIST's (plus a 10,000-image test split) and as an
uncompressed `.npz` (x, y). Then, each in its own process, one epoch of the `quick` model
(784-128-10, Adam, batch 64) with `scale` and with `standardize`: through the CLI on the IDX files
(`--data-dir`), through the CLI on the `.npz` path, through the Python API on the `.npz`, and a plain
PyTorch pipeline on the same `.npz` (arrays to float32 tensors, a `TensorDataset`, `random_split`, a
shuffling `DataLoader`). Peak RSS is the child's `ru_maxrss`; the ratio is against the training
file's image bytes. Also prints the time of the standardization statistics alone on 90% of the rows.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")

API = r'''
import sys
from pathlib import Path
from neuraterm import presets
from neuraterm.core.run.build import load_data
from neuraterm.core.run.trainer import Trainer
config = presets.load("quick")
config.train.epochs, config.data.dataset, config.data.normalize = 1, sys.argv[1], sys.argv[2]
Trainer(config, Path(sys.argv[3]), data=load_data(config)).run()
'''

TORCH = r'''
import sys, numpy as np, torch
from torch.utils.data import DataLoader, TensorDataset, random_split
torch.manual_seed(0)
torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
with np.load(sys.argv[1]) as d:
    x = torch.from_numpy(d["x"]).reshape(len(d["y"]), -1).float().div_(255)
    y = torch.from_numpy(d["y"].astype(np.int64))
train, val, test = random_split(TensorDataset(x, y), [0.7, 0.1, 0.2])
if sys.argv[2] == "standardize":
    rows = torch.as_tensor(train.indices)
    mean, std = x[rows].mean(0), x[rows].std(0).clamp_min(1e-6)
    x.sub_(mean).div_(std)
net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), 1e-3)
for xb, yb in DataLoader(train, batch_size=64, shuffle=True):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(xb), yb).backward()
    opt.step()
with torch.no_grad():
    for part in (val, test):
        idx = torch.as_tensor(part.indices)
        (net(x[idx]).argmax(1) == y[idx]).float().mean()
'''

STATS = r'''
import sys, time, numpy as np
from neuraterm.core.data import registry
from neuraterm.core.data.normalize import Normalizer
x = registry.load(sys.argv[1]).x_train
rows = np.sort(np.random.default_rng(0).permutation(len(x))[:len(x) * 9 // 10])
np.asarray(x[::1000])
start = time.perf_counter()
Normalizer.fit("standardize", x, rows)
print(f"{time.perf_counter() - start:.3f}")
'''


def make_data(folder: Path, rows: int) -> None:
    """IDX files in `folder/idx` and `folder/data.npz`."""
    rng = np.random.default_rng(0)
    if (FASHION / "train-images-idx3-ubyte.gz").exists():
        from neuraterm.core.data import idx
        base, labels = idx.read_pair(FASHION / "train-images-idx3-ubyte.gz", FASHION / "train-labels-idx1-ubyte.gz")
    else:
        base = (rng.random((6000, 784)) ** 4 * 255).astype(np.uint8)
        labels = rng.integers(0, 10, 6000)
    x = np.empty((rows, 784), np.uint8)
    y = np.resize(labels, rows).astype(np.uint8)
    for start in range(0, rows, len(base)):
        n = min(len(base), rows - start)
        shift = rng.integers(-12, 13, (n, 1), dtype=np.int16)
        x[start:start + n] = np.clip(base[:n] + shift * (base[:n] > 0), 0, 255)
    (folder / "idx").mkdir(parents=True, exist_ok=True)

    def write_idx(name, a):
        (folder / "idx" / name).write_bytes(bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes())
    write_idx("train-images-idx3-ubyte", x.reshape(rows, 28, 28))
    write_idx("train-labels-idx1-ubyte", y)
    write_idx("t10k-images-idx3-ubyte", x[:10000].reshape(-1, 28, 28))
    write_idx("t10k-labels-idx1-ubyte", y[:10000])
    np.savez(folder / "data.npz", x=x, y=y)


def peak(command: list[str]) -> tuple[int, float, str, str]:
    """Peak RSS (bytes), wall seconds, stdout and (if the child failed) its last stderr line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # reaped here: its rusage is this child's alone
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        failure = (err.read().decode().strip().splitlines() or ["?"])[-1] if os.waitstatus_to_exitcode(status) else ""
        return usage.ru_maxrss * 1024, seconds, out.read().decode(), failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=560_000)
    parser.add_argument("--keep", help="Write the data here and keep it (default: a temporary folder).")
    parser.add_argument("--make-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_only:
        make_data(Path(args.make_only), args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        # In a child: Linux carries a parent's peak RSS over into its children's `ru_maxrss` (through
        # fork and exec), so this process must stay small for the children's figures to be theirs.
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--make-only", str(folder)], check=True)
        raw = args.rows * 784
        npz = str(folder / "data.npz")
        print(f"{args.rows:,} x 784 uint8 images: {raw / 2**20:.1f} MiB raw; python {sys.version.split()[0]}, "
              f"numpy {np.__version__}")
        print(f"{'path':40} {'normalize':12} {'peak RSS MiB':>12} {'x raw':>6} {'seconds':>8}")
        py = sys.executable
        for normalize in ("scale", "standardize"):
            runs = [
                ("CLI, IDX files as `mnist` (--data-dir)",
                 [py, "-m", "neuraterm", "train", "--preset", "quick", "--set", "data.dataset=mnist",
                  "--data-dir", str(folder / "idx")]),
                ("CLI, your own .npz (data.dataset=PATH)",
                 [py, "-m", "neuraterm", "train", "--preset", "quick", "--set", f"data.dataset={npz}"]),
                ("Python API, your own .npz", [py, "-c", API, npz, normalize]),
                ("PyTorch TensorDataset + DataLoader, .npz", [py, "-c", TORCH, npz, normalize]),
            ]
            for k, (label, command) in enumerate(runs):
                out = str(folder / f"run-{normalize}-{k}")
                if command[1] == "-m":
                    command = command + ["--set", f"data.normalize={normalize}", "--epochs", "1", "--out", out]
                elif label.startswith("Python"):
                    command = command + [out]
                rss, seconds, _, failure = peak(command)
                note = f"  FAILED: {failure}" if failure else ""
                print(f"{label:40} {normalize:12} {rss / 2**20:12,.0f} {rss / raw:6.2f} {seconds:8.1f}{note}",
                      flush=True)
        stats = peak([py, "-c", STATS, npz])[2].strip()
        print(f"standardization statistics on {args.rows * 9 // 10:,} rows: {stats} s")


if __name__ == "__main__":
    main()
