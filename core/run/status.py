"""Model folders seen from outside: what each one is and how far it got, for `neuraterm runs` and the
app's Runs screen. Reading only: nothing here takes a lock, writes, renames or verifies hashes (that
is `checkpoint.load`'s job when a run is actually opened)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from neuraterm.core.run import checkpoint, events, lock
from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run.event_log import last_events

# running/paused: a process holds the lock; finished: the current checkpoint has a report; failed: the
# log ends in a failure; interrupted: stopped or killed with a checkpoint to resume; empty: no checkpoint.
STATUSES = ("running", "paused", "finished", "failed", "interrupted", "empty", "damaged")
SORT_KEYS = ("name", "status", "dataset", "epoch", "val_acc", "best_val_acc", "test_acc", "parameters", "updated")


@dataclass
class RunInfo:
    path: Path
    name: str
    status: str  # one of STATUSES
    failure: str = ""  # the failed run's message
    dataset: str = ""
    epoch: int = 0  # epochs completed in the current checkpoint
    epochs: int = 0  # epochs asked for
    val_acc: float | None = None  # of the last epoch
    best_val_acc: float | None = None
    best_epoch: int | None = None
    test_acc: float | None = None
    parameters: int | None = None
    updated: float = 0.0  # when the current checkpoint was made current (seconds since the epoch)
    holder: dict | None = None  # the process training it, when running
    problem: str = ""  # why it is 'damaged'
    history: list[dict] = field(default_factory=list)
    report: dict | None = None  # the current checkpoint's report.json, once the run has finished


def _state_from_log(path: Path, live: bool) -> tuple[str | None, str]:
    """'paused' or 'running' for a live run, 'failed' for a dead one whose last session failed."""
    last = [e for e in last_events(path) if isinstance(e, (events.RunStarted, events.Paused, events.Resumed,
                                                              events.Heartbeat, events.RunFailed, events.RunFinished))]
    if live:  # a long pause leaves only heartbeats in the log's tail; they say it is still paused
        paused = last and (isinstance(last[-1], events.Paused) or getattr(last[-1], "paused", False))
        return ("paused" if paused else "running"), ""
    if last and isinstance(last[-1], events.RunFailed):
        return "failed", last[-1].message
    return None, ""


def describe(path: Path) -> RunInfo:
    path = Path(path)
    info = RunInfo(path, path.name, "empty", holder=lock.holder(path))
    logged, info.failure = _state_from_log(path, info.holder is not None)
    folder = checkpoint.checkpoint_dir(path)
    if folder is None:
        info.status = logged or "empty"
        return info
    for _ in range(20):  # a writer may switch to a new checkpoint and sweep this one while it is read
        try:
            config = config_mod.parse_toml(checkpoint.read_file(folder / "config.toml"),
                                           str(folder / "config.toml"))
            info.history = checkpoint.read_history(folder / "history.csv")
            report = checkpoint.check_report(checkpoint.read_json(folder / "report.json"), folder / "report.json") \
                if (folder / "report.json").exists() else None
            meta = checkpoint.read_json(folder / "model.json")
            problem = None
        except (NeuratermError, OSError) as exc:
            problem = str(exc)
        now = checkpoint.checkpoint_dir(path)
        if now == folder or now is None:
            break
        folder = now
    if problem is not None:
        info.status, info.problem = "damaged", problem
        return info
    info.dataset, info.epochs, info.epoch = config.data.dataset, config.train.epochs, len(info.history)
    if info.history:
        info.val_acc = info.history[-1]["val_acc"]
        best = max(info.history, key=lambda r: r["val_acc"] if r["val_acc"] == r["val_acc"] else -1)
        info.best_val_acc, info.best_epoch = best["val_acc"], best["epoch"]
    info.report = report
    info.test_acc = report.get("test_accuracy") if report else None
    info.parameters = meta.get("parameters") if isinstance(meta.get("parameters"), int) else None
    try:
        info.updated = os.lstat(path / checkpoint.CURRENT).st_mtime if (path / checkpoint.CURRENT).is_symlink() \
            else os.stat(folder / "model.json").st_mtime
    except OSError:
        pass
    info.status = logged or ("finished" if report else "interrupted")
    return info


def find(root: Path) -> list[RunInfo]:
    """`root` itself if it is a model folder, else the model folders directly inside it."""
    root = Path(root)
    if checkpoint.is_run_folder(root):
        return [describe(root)]
    if not root.is_dir():
        raise NeuratermError(f"{root}: no such folder")
    return [describe(p) for p in sorted(root.iterdir()) if p.is_dir() and checkpoint.is_run_folder(p)]


def sort(runs: list[RunInfo], key: str) -> list[RunInfo]:
    """By `key`; metrics best first, names and states in order, runs without the value last."""
    if key not in SORT_KEYS:
        raise NeuratermError(f"cannot sort by {key!r}; choose one of {', '.join(SORT_KEYS)}")
    present = [r for r in runs if getattr(r, key) is not None]
    missing = [r for r in runs if getattr(r, key) is None]
    descending = key not in ("name", "status", "dataset")
    return sorted(present, key=lambda r: getattr(r, key), reverse=descending) + missing
