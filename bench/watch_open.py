"""How fast `neuraterm watch` opens a long event log, and how much memory it takes.

    python bench/watch_open.py [--lines 100000] [--epochs 1000] [--repeats 3]

A tiny model folder is trained, then its events.jsonl is replaced by a log of `--lines` lines as a
long run writes it (`--epochs` epoch lines, step progress between them). Each case is a fresh process
that builds the app (`neuraterm watch`'s, headless, 80x24) and waits until the dashboard's state holds
every epoch: the seconds from the app's start to then, and the process's peak RSS. "reference" is the
same folder with a log of one epoch only, measured in the same run (start-up, imports and the first
screen), so "log cost" is what the long log adds; "full parse" is the long log read without skimming
(every step line parsed, as before the reader skimmed). Cases take turns; each figure is the best of
`--repeats` (this machine is shared: the best is the least disturbed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = r"""
import asyncio, resource, sys, time
t0 = time.perf_counter()
from neuraterm.core.run import event_log
if sys.argv[3] == "full":
    event_log.SKIM_TAIL = 1 << 62
from neuraterm.tui.app import make_app
run_dir, epochs = sys.argv[1], int(sys.argv[2])
async def main():
    app = make_app(watch_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        while len(app.run_state.history) < epochs:
            await pilot.pause(0.01)
        return time.perf_counter() - t0
seconds = asyncio.run(main())
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def write_log(path: Path, lines: int, epochs: int) -> None:
    steps = max(1, (lines - 2) // epochs - 1)
    t = time.time()
    with open(path, "w") as f:
        f.write(json.dumps({"type": "RunStarted", "time": t, "run_dir": str(path.parent), "config_name": "bench",
                            "device": "cpu", "parameters": 12730, "train_size": 60000, "val_size": 6000,
                            "test_size": 10000, "steps_per_epoch": steps, "start_epoch": 0, "epochs": epochs}) + "\n")
        for e in range(1, epochs + 1):
            for s in range(1, steps + 1):
                f.write(json.dumps({"type": "StepEnded", "time": t, "epoch": e, "step": s, "steps": steps,
                                    "loss": 0.5 + 1 / (e * steps + s), "samples_per_s": 20000.0}) + "\n")
            f.write(json.dumps({"type": "EpochEnded", "time": t, "epoch": e, "epochs": epochs, "train_loss": 0.4,
                                "train_acc": 0.9, "val_loss": 0.45, "val_acc": 0.88, "lr": 0.001,
                                "samples_per_s": 20000.0, "seconds": 3.0, "elapsed": 3.0 * e}) + "\n")


def probe(run: Path, epochs: int, mode: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(run), str(epochs), mode], capture_output=True, text=True,
                         timeout=600, env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "NO_COLOR": "1",
                                           "HOME": str(Path.home())})
    if out.returncode:
        raise SystemExit(out.stderr)
    seconds, rss = out.stdout.split()
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="neuraterm-watch-") as tmp:
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "neuraterm", "train", "--out", str(run), "--epochs", "1", "--set",
                        "data.limit=600", "--set", "model.hidden=[16]"], check=True, capture_output=True)
        short, long = Path(tmp) / "short", Path(tmp) / "long"
        for folder, lines, epochs in ((short, 10, 1), (long, args.lines, args.epochs)):
            subprocess.run(["cp", "-a", str(run), str(folder)], check=True)
            write_log(folder / "events.jsonl", lines, epochs)
        size = (long / "events.jsonl").stat().st_size
        results = {"ref": [], "skim": [], "full": []}
        for _ in range(args.repeats):
            results["ref"].append(probe(short, 1, "skim"))
            results["skim"].append(probe(long, args.epochs, "skim"))
            results["full"].append(probe(long, args.epochs, "full"))
        ref, skim, full = ((min(s for s, _ in r), min(m for _, m in r)) for r in results.values())
    print(f"log: {args.lines:,} lines, {args.epochs:,} epochs, {size / 2**20:.1f} MiB")
    print(f"{'case':12} {'seconds':>8} {'peak RSS MB':>12} {'log cost s':>11} {'log cost MB':>12}")
    for name, (s, rss) in (("reference", ref), ("skimming", skim), ("full parse", full)):
        print(f"{name:12} {s:8.2f} {rss / 2**20:12.0f} {s - ref[0]:11.2f} {(rss - ref[1]) / 2**20:12.0f}")
    print(f"skimming/reference: {skim[0] / ref[0]:.2f}x time, {skim[1] / ref[1]:.2f}x memory")


if __name__ == "__main__":
    main()
