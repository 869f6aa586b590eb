"""Helpers for the fault-injection tests: run the CLI (as a process or in this one), read and damage
model folders, and compare two runs bit for bit."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from neuraterm import cli as cli_mod
from neuraterm.core.run import checkpoint

# A model small enough that a run is a fraction of a second: 420 train / 60 val / 120 test digits.
TINY = ["--set", "data.limit=600", "--set", "model.hidden=[16]"]
# Small batches: many steps per epoch, so a signal or a kill lands inside an epoch as often as in a save.
STEPPY = ["--set", "data.limit=1000", "--set", "model.hidden=[16]", "--set", "train.batch_size=8"]
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
REPORT_KEYS = ("test_accuracy", "test_loss", "macro_f1", "balanced_accuracy", "per_class", "confusion_matrix",
               "noise", "epochs_trained", "best_epoch", "early_stopped")


def command(*args) -> list[str]:
    return [sys.executable, "-m", "neuraterm", *map(str, args)]


def env_with(extra: dict | None = None) -> dict:
    return {**os.environ, "NO_COLOR": "1", **(extra or {})}


def cli(*args, cwd=None, env=None, timeout=180) -> subprocess.CompletedProcess:
    """`neuraterm ARGS` as a user runs it: a process of its own."""
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=env_with(env))


def spawn(*args, cwd=None, env=None) -> subprocess.Popen:
    return subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=env_with(env))


def main(capsys, *args) -> tuple[int, str, str]:
    """`neuraterm ARGS` inside this process (fast; an exception that escapes is a traceback a user would see)."""
    capsys.readouterr()
    code = cli_mod.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The single line a failing command printed (and nothing that looks like a traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def wait_for(condition, timeout: float = 60, what: str = "a condition", proc: subprocess.Popen | None = None):
    """Poll until `condition()` is truthy; fails after `timeout` seconds or when `proc` ended first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def tree(root: Path, skip=(checkpoint.LOCK_FILE,)) -> dict:
    """Every entry under `root` (links not followed): file bytes, link targets, folders with their mtime
    (a folder's mtime changes whenever something inside is created, removed or renamed)."""
    out = {}
    root = Path(root)
    out["."] = ("dir", os.stat(root).st_mtime_ns)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if rel in skip:
                continue
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", os.stat(path).st_mtime_ns)
            else:
                out[rel] = ("file", path.read_bytes())
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary names a save or a claim writes (`.tmp-` in the name) still present under `root`."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if ".tmp-" in p.name)


def current_number(run: Path) -> int | None:
    return checkpoint._checkpoint_number(Path(run), checkpoint.CURRENT)


def edit(run: Path, rel: str, data: bytes | None, which: str = checkpoint.CURRENT) -> None:
    """Rewrite (or with None, delete) one file of the current checkpoint and update its MANIFEST.json entry:
    a hand edit that kept the manifest consistent, so loading reaches the field checks behind it."""
    folder = checkpoint.checkpoint_dir(Path(run), which)
    manifest_path = folder / checkpoint.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    if data is None:
        (folder / rel).unlink()
        manifest["files"].pop(rel, None)
    else:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        manifest["files"][rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest_path.write_text(json.dumps(manifest, indent=1))


def read(run: Path, rel: str) -> bytes:
    return (checkpoint.checkpoint_dir(Path(run)) / rel).read_bytes()


def npy(array) -> bytes:
    return checkpoint._npy_bytes(np.asarray(array))


def top_level_weights(run: Path) -> dict[str, np.ndarray]:
    """What a user reads with numpy: `run/weights/*.npy` through the top-level link."""
    return {p.name: np.load(p, allow_pickle=False) for p in sorted((Path(run) / "weights").glob("*.npy"))}


def assert_same_run(a: Path, b: Path, report: bool = True) -> None:
    """Bit for bit: every weight (through the top-level links and through `load`), the optimizer state,
    every history column but the timings, and the report's numbers."""
    wa, wb = top_level_weights(a), top_level_weights(b)
    assert wa.keys() == wb.keys() and wa
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)
    sa, sb = checkpoint.load(a), checkpoint.load(b)
    assert sa.weights.keys() == sb.weights.keys() and sa.optimizer.keys() == sb.optimizer.keys()
    for name in sa.weights:
        np.testing.assert_array_equal(sa.weights[name], sb.weights[name], err_msg=name)
    for name in sa.optimizer:
        np.testing.assert_array_equal(sa.optimizer[name], sb.optimizer[name], err_msg=f"optimizer {name}")
    assert [[r[c] for c in HISTORY_COLUMNS] for r in sa.history] == \
        [[r[c] for c in HISTORY_COLUMNS] for r in sb.history]
    assert sa.epoch == sb.epoch and sa.train_state.get("partial") == sb.train_state.get("partial") is None
    if report:
        assert sa.report is not None and sb.report is not None
        assert {k: sa.report.get(k) for k in REPORT_KEYS} == {k: sb.report.get(k) for k in REPORT_KEYS}
