"""BLAS threads for a CPU run: 1 and 2 threads (and the automatic choice), on an idle machine and with
another process keeping one core busy, for `quick` and `fashion-mlp`.

    python bench/threads.py [--repeats 3] [--fashion-epochs 3]

Each run is a `neuraterm train` process (wall time: what a user waits) and reports the median seconds
of its epochs after the first. Threads settings take turns within each repeat; "loaded" runs beside a
process that multiplies matrices on one thread for as long as the runs last. Medians of the repeats.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = """
import os
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
a = np.random.rand(400, 400).astype(np.float32)
while True:
    a = (a @ a) / 400
"""


def run(preset: str, epochs: int, threads: str, folder: Path) -> tuple[float, float]:
    out = folder / "run"
    command = [sys.executable, "-m", "neuraterm", "train", "--preset", preset, "--epochs", str(epochs), "--out", str(out)]
    if threads != "auto":
        command += ["--threads", threads]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    seconds = [float(line.split(",")[6]) for line in (out / "history.csv").read_text().splitlines()[1:]]
    shutil.rmtree(out)
    return wall, statistics.median(seconds[1:] or seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fashion-epochs", type=int, default=3)
    args = parser.parse_args()
    cases = [("quick", 10), ("fashion-mlp", args.fashion_epochs)]
    settings = ["1", "2", "auto"]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("idle", "loaded"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "loaded" else None
            try:
                for k in range(args.repeats):
                    for preset, epochs in cases:
                        for threads in (settings if k % 2 == 0 else settings[::-1]):
                            results.setdefault((preset, load, threads), []).append(
                                run(preset, epochs, threads, Path(tmp)))
            finally:
                if busy is not None:
                    busy.kill()
    print(f"{'preset':12} {'machine':7} {'threads':>7} {'wall s':>8} {'s/epoch':>9}  runs (wall s)")
    for (preset, load, threads), values in results.items():
        wall = statistics.median(v[0] for v in values)
        epoch = statistics.median(v[1] for v in values)
        print(f"{preset:12} {load:7} {threads:>7} {wall:8.2f} {epoch:9.3f}  " + " ".join(f"{v[0]:.2f}" for v in values))


if __name__ == "__main__":
    main()
