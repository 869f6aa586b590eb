"""What layer health costs a run: epoch time with `train.health_every` at its default (50) vs off (0).

    python bench/health_cost.py [--presets quick,fashion-mlp,emnist] [--epochs 4] [--repeats 3]

Each run is a real `Trainer` over its model folder (checkpoints, event log and all); the two modes take
turns (off, on, off, on...) so drift of this shared machine hits both, and the table shows medians.
An epoch's time is the gap between two `EpochEnded` events, so it holds everything an epoch costs: the
steps (with the sampled ones), the validation pass, the end-of-epoch health measurement (probe batch
forward, percentiles) and the checkpoint; the first epoch is left out (start-up).

"emnist" is the EMNIST ByMerge model of the M3a preset (784-400-240-120-47 GELU, dropout, AdamW, batch
512) on synthetic data of EMNIST's shape (47 classes; 2,000 rows per class, so 65,800 training rows and
129 steps an epoch against ByMerge's ~1,100): the end-of-epoch measurement weighs about 8x more here
than on the real dataset, so its ratio is an upper bound.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neuraterm import presets
from neuraterm.core.run import events
from neuraterm.core.run.trainer import Trainer


def emnist_like(folder: Path) -> str:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(47), 2000)
    centers = rng.integers(0, 256, (47, 784))
    x = np.clip(centers[y] + rng.normal(0, 60, (len(y), 784)), 0, 255).astype(np.uint8)
    path = folder / "emnist-like.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def config_for(name: str, folder: Path, epochs: int, every: int):
    if name == "emnist":
        c = presets.load("emnist-m3a")
        c.data.dataset, c.data.pool = emnist_like(folder) if not (folder / "emnist-like.npz").exists() \
            else str(folder / "emnist-like.npz"), False
        c.train.early_stopping = 0
    else:
        c = presets.load(name)
    c.train.epochs, c.train.health_every = epochs, every
    c.train.noise = [0.0]
    return c


def epoch_times(name: str, folder: Path, epochs: int, every: int, k: int) -> list[float]:
    stamps: list[float] = []
    seen: list = []

    def listen(event):
        if isinstance(event, events.EpochEnded):
            stamps.append(time.perf_counter())
        seen.append(type(event).__name__)
    Trainer(config_for(name, folder, epochs, every), folder / f"{name}-{every}-{k}", listeners=[listen]).run()
    assert ("HealthMeasured" in seen) == (every > 0)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="quick,fashion-mlp,emnist")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.presets.split(","):
            times = {0: [], 50: []}
            for k in range(args.repeats):
                for every in (0, 50):
                    times[every] += epoch_times(name, folder, args.epochs, every, k)
                    print(f"{name} health_every={every} repeat {k + 1}: "
                          f"{', '.join(f'{t:.3f}' for t in times[every][-(args.epochs - 1):])} s", file=sys.stderr)
            off, on = statistics.median(times[0]), statistics.median(times[50])
            rows.append((name, off, on, len(times[0])))
    print(f"{'model':12} {'epoch, off':>11} {'epoch, on':>10} {'cost':>7}  epochs per mode")
    for name, off, on, n in rows:
        print(f"{name:12} {off:>10.3f}s {on:>9.3f}s {100 * (on / off - 1):>+6.1f}%  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
