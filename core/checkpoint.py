"""Model folders: plain `.npy`, JSON, TOML and CSV that users own, written atomically.

Layout of a run folder:

    config.toml            the resolved configuration
    model.json             architecture, dataset, class names, normalization, version, array shapes
    weights/<name>.npy     one file per parameter or buffer (`0.weight.npy`, PyTorch-style names)
    normalization/*.npy    per-feature mean/std when the inputs are standardized
    state/train.json       epoch, step, RNG states, early-stopping and plateau counters
    state/optimizer/*.npy  optimizer moments and step count
    state/best/*.npy       best weights so far (early stopping's restore_best)
    history.csv            one row per epoch
    report.json            the final evaluation (once the run has finished)

A save writes a complete sibling folder, then swaps it in with two renames. If the process dies
between them, only `<name>.old` exists and `load` takes it back, so some complete checkpoint is
always there. Loading never unpickles (`allow_pickle=False`) and checks every array's shape and dtype
against `model.json`.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError

FORMAT = 1
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s")


@dataclass
class Snapshot:
    config: config_mod.Config
    meta: dict
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    train_state: dict
    history: list[dict] = field(default_factory=list)
    normalization: dict[str, np.ndarray] = field(default_factory=dict)
    best_weights: dict[str, np.ndarray] = field(default_factory=dict)
    report: dict | None = None


def _write_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(array), allow_pickle=False)


def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def save(run_dir: Path, snap: Snapshot) -> Path:
    """Write `snap` as `run_dir`, replacing the previous checkpoint only once the new one is complete."""
    run_dir = Path(run_dir)
    parent = run_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{run_dir.name}.tmp-{os.getpid()}"
    old = parent / f"{run_dir.name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "config.toml").write_text(config_mod.to_toml(snap.config), encoding="utf-8")
    meta = dict(snap.meta, format=FORMAT,
                arrays={n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in snap.weights.items()})
    (tmp / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    _write_arrays(tmp / "weights", snap.weights)
    if snap.normalization:
        _write_arrays(tmp / "normalization", snap.normalization)
    _write_arrays(tmp / "state" / "optimizer", snap.optimizer)
    if snap.best_weights:
        _write_arrays(tmp / "state" / "best", snap.best_weights)
    (tmp / "state" / "train.json").write_text(json.dumps(snap.train_state, indent=1), encoding="utf-8")
    (tmp / "history.csv").write_text(history_csv(snap.history), encoding="utf-8")
    if snap.report is not None:
        (tmp / "report.json").write_text(json.dumps(snap.report, indent=2), encoding="utf-8")
    if run_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(run_dir, old)
        os.rename(tmp, run_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, run_dir)
    return run_dir


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh model folder path, `<root>/<name>-<date>-<time>`, with `-2`, `-3`... if that one exists."""
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def recover(run_dir: Path) -> Path:
    """The folder to read: `run_dir`, or its `.old` twin left by a save that was killed mid-swap."""
    run_dir = Path(run_dir)
    old = run_dir.parent / f"{run_dir.name}.old"
    if not run_dir.exists() and old.is_dir():
        os.rename(old, run_dir)
    if not run_dir.is_dir():
        raise NeuratermError(f"{run_dir}: no such model folder")
    return run_dir


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NeuratermError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NeuratermError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise NeuratermError(f"{path}: expected a JSON object")
    return value


def read_array(path: Path) -> np.ndarray:
    """One `.npy` file, refusing pickled objects and anything that is not a plain numeric array."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise NeuratermError(f"{path}: missing") from None
    except (ValueError, OSError, EOFError) as exc:
        reason = "holds pickled objects" if "pickle" in str(exc) else f"not a valid .npy file ({exc})"
        raise NeuratermError(f"{path}: {reason}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise NeuratermError(f"{path}: not a numeric array")
    return array


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    if not folder.is_dir():
        return {}
    return {p.name[:-4]: read_array(p) for p in sorted(folder.glob("*.npy"))}


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    try:
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
            rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in (None, "")})
    except (ValueError, csv.Error) as exc:
        raise NeuratermError(f"{path}: malformed history ({exc})") from None
    return rows


def load(run_dir: Path) -> Snapshot:
    """Read and validate a model folder; every problem is one NeuratermError naming the file."""
    run_dir = recover(Path(run_dir))
    meta = read_json(run_dir / "model.json")
    if meta.get("format") != FORMAT or not isinstance(meta.get("arrays"), dict):
        raise NeuratermError(f"{run_dir / 'model.json'}: not a neuraterm model description (format {meta.get('format')!r})")
    config = config_mod.load_toml(run_dir / "config.toml")
    weights = {}
    for name, spec in meta["arrays"].items():
        array = read_array(run_dir / "weights" / f"{name}.npy")
        if list(array.shape) != spec.get("shape") or str(array.dtype) != spec.get("dtype"):
            raise NeuratermError(f"{run_dir / 'weights' / (name + '.npy')}: shape {list(array.shape)} {array.dtype} "
                                 f"does not match model.json ({spec.get('shape')} {spec.get('dtype')})")
        weights[name] = array
    extra = sorted(p.name for p in (run_dir / "weights").glob("*.npy") if p.name[:-4] not in weights)
    if extra:
        raise NeuratermError(f"{run_dir / 'weights'}: unexpected files {extra}")
    state_path = run_dir / "state" / "train.json"
    train_state = read_json(state_path) if state_path.exists() else {}
    report_path = run_dir / "report.json"
    return Snapshot(config, meta, weights, _read_folder(run_dir / "state" / "optimizer"), train_state,
                    read_history(run_dir / "history.csv"), _read_folder(run_dir / "normalization"),
                    _read_folder(run_dir / "state" / "best"),
                    read_json(report_path) if report_path.exists() else None)
