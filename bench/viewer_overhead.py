"""What watching costs a run: samples/s of the same seeded run with no viewer, with its event log
switched off, and with one or two `neuraterm watch` viewers attached in real terminals (tmux, 80x24).

    python bench/viewer_overhead.py [--preset fashion-mlp] [--epochs 3] [--repeats 5]

Every run is a `neuraterm train` process, as users run it; the modes take turns (no viewer, no log,
one viewer, two viewers, then again) so that drift of this shared machine hits all of them, and the
table shows medians. Throughput is the median of the run's own per-epoch samples/s after its first
epoch (read from its event log), so start-up and data loading do not count. "no event log" runs the
trainer in a process whose log writer is a no-op: the difference to "no viewer" is what the log costs.
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

NO_LOG = """
import sys
from neuraterm.core.run import trainer
class NoLog:
    def __init__(self, run_dir, *a, **k): self.last_write = 0.0
    def __call__(self, event): pass
    def write(self, event): pass
    def close(self): pass
trainer.EventLog = NoLog
from neuraterm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def epochs_from_history(run: Path) -> list[float]:
    lines = (run / "history.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[7]) for line in lines]


def one_run(mode: str, preset: str, epochs: int, folder: Path) -> float:
    run = folder / "run"
    args = ["train", "--preset", preset, "--epochs", str(epochs), "--out", str(run)]
    command = [sys.executable, "-c", NO_LOG, *args] if mode == "no event log" else [sys.executable, "-m", "neuraterm", *args]
    viewers = {"one viewer": 1, "two viewers": 2}.get(mode, 0)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sessions = []
    try:
        if viewers:
            deadline = time.time() + 300
            while not (run / "events.jsonl").exists() and time.time() < deadline:
                time.sleep(0.05)
            for k in range(viewers):
                name = f"ntbench{k}-{proc.pid}"
                subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24",
                                f"{sys.executable} -m neuraterm watch {run}"], check=True)
                sessions.append(name)
        proc.wait()
    finally:
        for name in sessions:
            subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    measured = epochs_from_history(run)[1:] or epochs_from_history(run)
    shutil.rmtree(run)
    return statistics.median(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-mlp")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    modes = ["no viewer", "no event log", "one viewer", "two viewers"]
    if shutil.which("tmux") is None:
        modes = modes[:2]
    results: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for mode in (modes if k % 2 == 0 else modes[::-1]):  # alternate the order, too
                results[mode].append(one_run(mode, args.preset, args.epochs, Path(tmp)))
                print(f"  repeat {k + 1}: {mode:13} {results[mode][-1]:10,.0f} samples/s", flush=True)
    base = statistics.median(results["no viewer"])
    print(f"\n{args.preset}, {args.epochs} epochs, {args.repeats} interleaved repeats (median of per-epoch samples/s)")
    print(f"{'mode':14} {'samples/s':>10} {'vs no viewer':>13}  all runs")
    for mode in modes:
        value = statistics.median(results[mode])
        spread = " ".join(f"{v:,.0f}" for v in results[mode])
        print(f"{mode:14} {value:10,.0f} {100 * (value - base) / base:+12.1f}%  {spread}")


if __name__ == "__main__":
    main()
