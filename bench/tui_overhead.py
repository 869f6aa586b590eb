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
import statistics
import tempfile
from pathlib import Path

from neuraterm import presets
from neuraterm.core import events
from neuraterm.core.trainer import Trainer
from neuraterm.tui.app import make_app


def headless(config, folder: Path) -> float:
    rates = []
    Trainer(config, folder, [lambda e: rates.append(e.samples_per_s) if isinstance(e, events.EpochEnded) else None]).run()
    return statistics.mean(rates[1:] or rates)


def in_app(config, folder: Path) -> float:
    async def scenario():
        app = make_app(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.start_run(config)
            await app.workers.wait_for_complete()
            await pilot.pause()
            rates = [e.samples_per_s for e in app.run_state.history]
            return statistics.mean(rates[1:] or rates)
    return asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-mlp")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = presets.load(args.preset)
    config.train.epochs = args.epochs
    plain, app = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):  # interleaved, so drift of the machine hits both sides
            plain.append(headless(config, Path(tmp) / f"headless-{k}"))
            app.append(in_app(config, Path(tmp) / f"app-{k}"))
    a, b = statistics.median(plain), statistics.median(app)
    print(f"{'mode':10} {'samples/s (median of ' + str(args.repeats) + ')':>28}")
    print(f"{'headless':10} {a:28,.0f}")
    print(f"{'in app':10} {b:28,.0f}")
    print(f"UI overhead: {100 * (a - b) / a:.1f}% of training throughput")


if __name__ == "__main__":
    main()
