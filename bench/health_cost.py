"""What layer health costs a run: epoch time with `train.health_every` at its default (50) vs off (0).

    python bench/health_cost.py [--presets quick,fashion-mlp,emnist] [--epochs 4] [--repeats 3] [--dir /dev/shm] [--device gpu]

Each run is a real `Trainer` over its model folder (checkpoints, event log and all); the two modes take
turns (off, on, then on, off, ...) so drift of this shared machine hits both, and the table shows medians.
An epoch's time is the gap between two `EpochEnded` events, so it holds everything an epoch costs: the
steps (with the sampled ones), the validation pass, the end-of-epoch health measurement (probe batch
forward, percentiles) and the checkpoint; the first epoch is left out (start-up).

On a busy shared machine the on/off difference drowns in noise (epochs vary by 2x), so the health
runs also time what health costs the run's main thread (wrapped here with a clock): the sampled steps
(`before_step`, `after_step`), the epoch handed to the health thread (`_measure_health`) and its
measurement taken (`_take_health`: waiting for it if it is not done, the event logged, the alerts
checked); the table shows that time as a share of the same run's epoch time, a ratio measured under the
same load, which is what the 2% target is checked against. "beside" is the health thread's own work
(`measure`, `record`, and `_keep_health`: the history kept, health.npz's bytes made) as a share of the
epoch: done while the main thread waits on fsyncs, and shown so that a machine without that wait
(tmpfs: `--dir /dev/shm`) can be judged. What health.npz adds to each checkpoint (its bytes hashed,
written, fsynced) is timed directly too, on the run's last one (`save_cost`).

"emnist" is the EMNIST ByMerge model of the M3a preset (784-400-240-120-47 GELU, dropout, AdamW, batch
512) on synthetic data of EMNIST's shape (47 classes; 2,000 rows per class, so 65,800 training rows and
129 steps an epoch against ByMerge's ~1,100): the end-of-epoch measurement weighs about 8x more here
than on the real dataset, so its ratio is an upper bound.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neuraterm import presets
from neuraterm.core.run import checkpoint, events, health
from neuraterm.core.run.trainer import Trainer

SPENT = [0.0]  # seconds the run's main thread spent on health
BESIDE = [0.0]  # seconds the health thread spent measuring (while the main one wrote files)


def timed(method, into=SPENT):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into[0] += time.perf_counter() - start
    return wrapper


# the main thread: the sampled steps, handing the epoch to the health thread, and taking its measurement
# (waiting for it if it is not done, the event written to the log, the alerts checked)
for _name in ("before_step", "after_step"):
    setattr(health.HealthMonitor, _name, timed(getattr(health.HealthMonitor, _name)))
Trainer._measure_health = timed(Trainer._measure_health)
Trainer._take_health = timed(Trainer._take_health)
# the health thread: the monitor's `measure` (probe forward, statistics, bands), the event built, the
# history kept and health.npz made
health.HealthMonitor.measure = timed(health.HealthMonitor.measure, BESIDE)
health.record = timed(health.record, BESIDE)
Trainer._keep_health = timed(Trainer._keep_health, BESIDE)


def emnist_like(folder: Path) -> str:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(47), 2000)
    centers = rng.integers(0, 256, (47, 784))
    x = np.clip(centers[y] + rng.normal(0, 60, (len(y), 784)), 0, 255).astype(np.uint8)
    path = folder / "emnist-like.npz"
    np.savez(path, x=x, y=y)
    return str(path)


DEVICE = ["cpu"]


def config_for(name: str, folder: Path, epochs: int, every: int):
    if name == "emnist":
        c = presets.load("emnist-m3a")
        c.data.dataset, c.data.pool = emnist_like(folder) if not (folder / "emnist-like.npz").exists() \
            else str(folder / "emnist-like.npz"), False
        c.train.early_stopping = 0
    else:
        c = presets.load(name)
    c.train.epochs, c.train.health_every, c.train.device = epochs, every, DEVICE[0]
    c.train.noise = [0.0]
    return c


def epoch_times(name: str, folder: Path, epochs: int, every: int, k: int) -> tuple[list[float], float]:
    """The gaps between epoch ends after the first, and the share of them spent measuring health."""
    stamps: list[float] = []
    spent: list[tuple[float, float]] = []
    seen: list = []

    def listen(event):
        if isinstance(event, events.EpochEnded):
            stamps.append(time.perf_counter())
            spent.append((SPENT[0], BESIDE[0]))
        seen.append(type(event).__name__)
    Trainer(config_for(name, folder, epochs, every), folder / f"{name}-{every}-{k}", listeners=[listen]).run()
    assert ("HealthMeasured" in seen) == (every > 0)
    window = stamps[-1] - stamps[0]  # the last epoch's measure is outside it, the first epoch's inside:
    shares = [(spent[-1][i] - spent[0][i]) / window for i in (0, 1)]  # one per gap
    return [b - a for a, b in zip(stamps, stamps[1:])], shares


def save_cost(run_dir: Path, times: int = 61) -> float:
    """Median seconds that health.npz adds to a checkpoint's save: the run's last health.npz (its bytes, as
    the health thread hands them over) hashed for the manifest, written and fsynced as a new file beside
    the checkpoints, `times` times. Whole saves with and without it, in turns, differ by more than this
    from one save to the next on this machine (other jobs' writes, the retention sweep), so their
    difference could not resolve it."""
    data = checkpoint.health_file(checkpoint.load(run_dir).health)
    scratch = run_dir / "health-cost"
    scratch.mkdir()
    spent = []
    for k in range(times):
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        with open(scratch / f"{k}.npz", "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="quick,fashion-mlp,emnist")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the runs' folders go (default: the system's temporary "
                        "folder; /dev/shm for a tmpfs, whose fsyncs cost nothing)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    args = parser.parse_args()
    DEVICE[0] = args.device
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        for name in args.presets.split(","):
            times = {0: [], 50: []}
            shares, beside = [], []
            for k in range(args.repeats):
                for every in ((0, 50) if k % 2 == 0 else (50, 0)):  # the order reversed every other repeat
                    gaps, share = epoch_times(name, folder, args.epochs, every, k)
                    times[every] += gaps
                    if every:
                        shares.append(share[0])
                        beside.append(share[1])
                    print(f"{name} health_every={every} repeat {k + 1}: "
                          f"{', '.join(f'{t:.3f}' for t in times[every][-(args.epochs - 1):])} s", file=sys.stderr)
            off, on = statistics.median(times[0]), statistics.median(times[50])
            rows.append((name, off, on, statistics.median(shares), statistics.median(beside), len(times[0]),
                         save_cost(folder / f"{name}-50-0")))
    print(f"{'model':12} {'epoch, off':>11} {'epoch, on':>10} {'on/off':>7} {'main thread':>11} {'health.npz':>11} "
          f"{'total':>7} {'beside':>7}  epochs per mode")
    for name, off, on, share, aside, n, extra in rows:
        print(f"{name:12} {off:>10.3f}s {on:>9.3f}s {100 * (on / off - 1):>+6.1f}% {100 * share:>10.2f}% "
              f"{1000 * extra:>9.1f}ms {100 * (share + extra / off):>6.2f}% {100 * aside:>6.2f}%  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
