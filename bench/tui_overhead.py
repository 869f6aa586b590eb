"""What the terminal app costs a training run: samples/s headless vs inside the app.

    python bench/tui_overhead.py [--preset fashion-mlp] [--epochs 4] [--repeats 3]

Both sides run the same seeded preset in the same process, interleaved so that drift of the machine
hits both (`quick`'s epochs last ~60 ms, so use a real dataset for a stable figure).
The app runs headless (Textual's test driver at 80x24) with its live charts redrawing at 4 Hz;
throughput is the mean of the epochs' own samples/s after the first epoch (the first also pays for
building the dashboard, a one-off). Prints both and the overhead in percent.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from neuraterm import presets
from neuraterm.core import events
from neuraterm.core.trainer import Trainer
from neuraterm.tui.app import make_app


def headless(config, folder: Path) -> float:
    rates = []
    Trainer(config, folder, [lambda e: rates.append(e.samples_per_s) if isinstance(e, events.EpochEnded) else None]).run()
    return statistics.mean(rates[1:] or rates)


def in_thread(config, folder: Path) -> float:
    """Headless, but in a worker thread as the app runs it: separates threading from UI cost."""
    import threading
    result = []
    worker = threading.Thread(target=lambda: result.append(headless(config, folder)))
    worker.start()
    worker.join()
    return result[0]


def in_app(config, folder: Path) -> tuple[float, float]:
    """(samples/s, UI-thread CPU seconds per second of training after the first epoch)."""
    async def scenario():
        app = make_app(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.start_run(config)
            while len(app.run_state.history) < 1 and app.run_state.status in ("starting", "running"):
                await asyncio.sleep(0.01)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            await app.workers.wait_for_complete()
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
            await pilot.pause()
            rates = [e.samples_per_s for e in app.run_state.history]
            return statistics.mean(rates[1:] or rates), cpu / wall
    return asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-mlp")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = presets.load(args.preset)
    config.train.epochs = args.epochs
    plain, threaded, app = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):  # interleaved, so drift of the machine hits both sides
            plain.append(headless(config, Path(tmp) / f"headless-{k}"))
            threaded.append(in_thread(config, Path(tmp) / f"thread-{k}"))
            app.append(in_app(config, Path(tmp) / f"app-{k}"))
    a, b = statistics.median(plain), statistics.median(r for r, _ in app)
    ui_cpu = statistics.median(c for _, c in app)
    print(f"{'mode':10} {'samples/s (median of ' + str(args.repeats) + ')':>28}")
    print(f"{'headless':10} {a:28,.0f}")
    print(f"{'thread':10} {statistics.median(threaded):28,.0f}")
    print(f"{'in app':10} {b:28,.0f}")
    print(f"UI overhead: {100 * (a - b) / a:.1f}% of training throughput (noisy: compare several runs)")
    print(f"UI thread CPU: {100 * ui_cpu:.1f}% of one core while training "
          f"({100 * ui_cpu / os.cpu_count():.1f}% of this machine's {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
