"""Model folders: plain `.npy`, JSON, TOML and CSV that users own, saved so that no crash can lose them.

Layout of a run folder (format 2):

    .neuraterm               marks the folder as a neuraterm model folder (format, creation time)
    .lock                    held by the one process that trains it (see `lock.py`)
    checkpoints/000007/      one complete checkpoint per save (the files below plus MANIFEST.json)
    current -> checkpoints/000007      the checkpoint that counts; switched by one atomic rename
    best -> checkpoints/000005         the checkpoint of the best epoch so far
    config.toml model.json history.csv report.json weights/ normalization/ state/
                             links into `current/`, so `numpy.load("run/weights/0.weight.npy")` reads
                             the current checkpoint

Inside a checkpoint:

    config.toml            the resolved configuration (every key written)
    model.json             architecture, dataset, class names, normalization, version, array shapes
    weights/<name>.npy     one file per parameter or buffer (`0.weight.npy`, PyTorch-style names)
    normalization/*.npy    per-feature mean/std when the inputs are standardized
    state/train.json       epoch, step, RNG states, early-stopping and plateau counters
    state/optimizer/*.npy  optimizer moments and step count
    history.csv            one row per epoch
    report.json            the final evaluation (once the run has finished)
    health.npz             layer health per epoch (core/run/health.py; at most 512 epochs, the older ones
                           thinned: `health.kept_epochs`), when it is on, in one file (each
                           file of a checkpoint costs an fsync): values (epochs x layers x fields, float32),
                           epochs, confidence (epochs x classes), probe (the probe batch's rows in the
                           training split), and the names: layers, kinds (activations), fields, percentiles
    MANIFEST.json          size and SHA-256 of every file above

A save (LevelDB's CURRENT file, as a symlink) writes a new checkpoint under a temporary name, fsyncs
every file and folder, renames it into place, then replaces the `current` link atomically; the
checkpoints that are neither current nor best go only after that switch. A crash at any instant
therefore leaves the previous complete checkpoint current, and the next writer sweeps the leftovers.
The folder itself is created once and never renamed, replaced or deleted, and files the program did
not write are never touched. Loading never unpickles, verifies every file against the manifest, and
checks every field, so a damaged folder is one `NeuratermError` naming the file, never a traceback.
"""
from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from neuraterm import __version__
from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError, RunFailed
from neuraterm.core.run import events, folder_files
from neuraterm.core.run import retention
from neuraterm.core.run.lock import LOCK_FILE, WriterLock, busy, holder

FORMAT = 2
MARKER, CHECKPOINTS, CURRENT, BEST, MANIFEST = ".neuraterm", "checkpoints", "current", "best", "MANIFEST.json"
LOG_FILE = "events.jsonl"  # event_log's; its compaction's leftover (`events.jsonl.tmp-*`) is swept here
LINKED = ("config.toml", "model.json", "history.csv", "report.json", "weights", "normalization", "state",
          "health.npz")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s")
HEALTH_FILE, HEALTH_ARRAYS, HEALTH_NAMES = "health.npz", ("values", "epochs", "confidence", "probe"), \
    ("layers", "kinds", "fields")
ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")
NUMBERED = re.compile(r"^\d{6,}$")
TEXT_LIMIT = 64 << 20  # the most a JSON, TOML or CSV file of a folder may hold (epochs of history included)
# Test-only: seconds to sleep between writing a checkpoint and switching to it (widens kill windows).
SAVE_DELAY_ENV = "NEURATERM_TEST_SAVE_DELAY"


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
    # {"layout": dict, "values", "epochs", "confidence", "probe": arrays}, or a function that returns it
    # or the file's bytes (`health_file`), or None: a run measures an epoch's health on a second thread
    # while this checkpoint's other files are written and fsynced, and takes it when they are (`_write_tree`).
    health: dict | Callable[[], dict | bytes | None] | None = None

    @property
    def epoch(self) -> int:
        return int(self.train_state.get("epoch", 0))


# -- writing --------------------------------------------------------------------------------------
def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (repr(float(v)) if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _checkpoint_files(snap: Snapshot) -> dict[str, bytes]:
    """Every file of a checkpoint, by relative path, as the bytes to write."""
    meta = dict(snap.meta, format=FORMAT,
                arrays={n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in snap.weights.items()})
    files = {"config.toml": config_mod.to_toml(snap.config).encode(), "model.json": json.dumps(meta, indent=2).encode(),
             "history.csv": history_csv(snap.history).encode(),
             "state/train.json": json.dumps(snap.train_state, indent=1).encode()}
    for folder, arrays in (("weights", snap.weights), ("normalization", snap.normalization),
                           ("state/optimizer", snap.optimizer)):
        for name, array in arrays.items():
            files[f"{folder}/{name}.npy"] = _npy_bytes(array)
    if snap.report is not None:
        files["report.json"] = json.dumps(snap.report, indent=2).encode()
    if callable(snap.health):  # last: made while the files above are written
        files[HEALTH_FILE] = lambda: health_file(snap.health())
    elif snap.health is not None:
        files[HEALTH_FILE] = health_file(snap.health)
    return files


def health_file(health: dict | bytes | None) -> bytes | None:
    """health.npz's bytes from its arrays (`Snapshot.health`)."""
    if health is None or isinstance(health, bytes):
        return health
    layout = health["layout"]
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(health[name]) for name in HEALTH_ARRAYS},
             **{name: np.array(layout[name], dtype=str) for name in HEALTH_NAMES},
             percentiles=np.array(layout["percentiles"], np.int64), every=np.array(layout["every"], np.int64),
             probe_seed=np.array(layout["probe_seed"], np.int64))
    return buffer.getvalue()


def _manifest(files: dict[str, bytes], snap: Snapshot) -> bytes:
    manifest = {"format": FORMAT,
                "files": {rel: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                          for rel, data in files.items() if rel != MANIFEST},
                "epoch": snap.epoch, "epoch_end": _ends_epoch(snap), "keep": snap.config.train.keep}
    return json.dumps(manifest, indent=1).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tree(root: Path, files: dict, fresh: bool = False) -> None:
    """Every file written and fsynced, in order, then every folder fsynced, deepest first; `root` was just
    made (`fresh`) or is created here, and files are created exclusively (`xb`: never through a link).
    A value may be a function that returns the bytes (or None: no such file), called when its turn comes,
    so it can use what was written before it (the manifest) or wait for what the fsyncs give time for
    (the epoch's health); `files` is left holding the bytes written."""
    folders = {root}
    if not fresh:
        root.mkdir()
    for rel, data in list(files.items()):
        if callable(data):
            data = files[rel] = data()
            if data is None:
                del files[rel]
                continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        folders.update(p for p in path.parents if p.is_relative_to(root))
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _fsync_dir(folder)


def _point(run_dir: Path, name: str, target: str) -> None:
    """Make `run_dir/name` a link to `target`, atomically (a new link renamed over the old one)."""
    tmp = run_dir / f".{name}.tmp-{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    try:
        os.replace(tmp, run_dir / name)
    except OSError:
        tmp.unlink()
        raise


def _checkpoint_number(run_dir: Path, name: str) -> int | None:
    link = run_dir / name
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return int(target.name) if target.parent == Path(CHECKPOINTS) and NUMBERED.match(target.name) else None


def sanitize_name(name: str, default: str = "run", limit: int | None = 80) -> str:
    """One safe path component for a folder named after a preset or a study member: runs of other
    characters become '-' ('my preset/x' -> 'my-preset-x', 'a/../b' -> 'a-..-b', one name, no separator),
    dots and dashes are trimmed at the ends ('..' -> the default)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:limit] or default


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh model folder path, `<root>/<name>-<date>-<time>`, with `-2`, `-3`... if that one exists."""
    base = Path(root) / f"{sanitize_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists() or path.is_symlink():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def is_run_folder(path: Path) -> bool:
    return (Path(path) / MARKER).is_file() or _legacy(Path(path))


def _legacy(path: Path) -> bool:
    """A format-1 folder (neuraterm 0.1 before checkpoints/): plain files at the top level."""
    model = path / "model.json"
    return model.is_file() and not model.is_symlink() and not (path / MARKER).exists()


class RunWriter:
    """The one process allowed to write a model folder: it holds the lock, writes checkpoints and
    switches `current` (and `best`) to them. `new=True` claims a folder for a new run: one that does
    not exist yet, an empty one, or a model folder that never got its first checkpoint."""

    def __init__(self, run_dir: Path, new: bool):
        run_dir = Path(run_dir).expanduser().resolve()
        if new:
            self._claim(run_dir)
        elif not run_dir.is_dir():
            raise NeuratermError(f"{run_dir}: no such model folder")
        elif _legacy(run_dir):
            raise NeuratermError(f"{run_dir}: written by an older neuraterm (format 1); evaluate or export it, "
                                 f"or train a new run")
        elif not (run_dir / MARKER).is_file():
            raise NeuratermError(f"{run_dir}: not a neuraterm model folder")
        self.run_dir = run_dir
        try:
            self.lock = WriterLock(run_dir).acquire()
        except OSError as exc:  # the lock could not be written down: a full disk
            raise _save_failed(exc, run_dir, _previous(run_dir)) from None
        try:
            if not (run_dir / MARKER).exists():
                try:
                    write_atomic(run_dir / MARKER, json.dumps({"format": FORMAT, "created": time.time(),
                                                                   "neuraterm_version": __version__}).encode())
                except OSError as exc:
                    raise _save_failed(exc, run_dir, "no checkpoint was saved yet") from None
            if not new and _checkpoint_number(run_dir, CURRENT) is None:
                raise NeuratermError(f"{run_dir}: has no checkpoint to resume from")
            if new and _checkpoint_number(run_dir, CURRENT) is not None:
                raise NeuratermError(f"{run_dir} already holds a model; use 'neuraterm resume {run_dir}' or another --out")
            self.sweep()
        except BaseException:
            self.lock.release()
            raise

    @staticmethod
    def check_new(run_dir: Path) -> None:
        """Whether a new run may claim `run_dir`, asked before anything is created (so bad input leaves
        no folder behind); the claim itself checks again under the lock."""
        run_dir = Path(run_dir).expanduser().resolve()
        if run_dir.exists() and not run_dir.is_dir():
            raise NeuratermError(f"{run_dir}: exists and is not a folder")
        if run_dir.is_dir():
            if _legacy(run_dir) or (run_dir / MARKER).is_file():
                who = holder(run_dir)
                if who is not None:
                    raise busy(run_dir, who)
                if _legacy(run_dir) or _checkpoint_number(run_dir, CURRENT) is not None:
                    raise NeuratermError(f"{run_dir} already holds a model; use 'neuraterm resume {run_dir}' "
                                         f"or another --out")
            elif any(not _claim_leftover(p.name) for p in run_dir.iterdir()):  # a claim killed after its lock
                raise NeuratermError(f"{run_dir} is not empty and is not a neuraterm model folder; "
                                     f"pass a new or empty folder to --out")

    @classmethod
    def _claim(cls, run_dir: Path) -> None:
        cls.check_new(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _save_failed(exc, run_dir, "no checkpoint was saved yet") from None
            raise NeuratermError(f"{run_dir}: cannot create the model folder ({exc.strerror})") from None

    def sweep(self) -> None:
        """Remove what a killed save left (temporary checkpoints and links) and checkpoints that are
        neither current, best nor an epoch `train.keep` keeps (see `retention.py`); only names this
        program writes, only files its manifests list."""
        keep = {_checkpoint_number(self.run_dir, CURRENT), _checkpoint_number(self.run_dir, BEST)}
        keep |= set(kept_checkpoints(self.run_dir).values())
        for name, kind in folder_files.list_dir(self.run_dir):
            if name.startswith((f".{CURRENT}.tmp-", f".{BEST}.tmp-")) and kind == "link":  # `_point`'s
                folder_files.remove_link(self.run_dir, name)
            elif name.startswith((MARKER + ".tmp-", LOG_FILE + ".tmp-")) and kind == "file":
                folder_files.remove_file(self.run_dir, name)
        if (self.run_dir / CHECKPOINTS).is_symlink():
            raise NeuratermError(f"{self.run_dir / CHECKPOINTS}: is a symbolic link; links are not followed "
                                 f"(move it away to train this folder)")
        if not folder_files.is_dir(self.run_dir, CHECKPOINTS):
            return
        for name, kind in folder_files.list_dir(self.run_dir, CHECKPOINTS):
            if kind != "dir":  # a link named like a checkpoint is never entered
                continue
            if name.startswith(".tmp-"):
                folder_files.remove_tree(self.run_dir, f"{CHECKPOINTS}/{name}")
            elif NUMBERED.match(name) and int(name) not in keep:
                _remove_checkpoint(self.run_dir, f"{CHECKPOINTS}/{name}")

    def save(self, snap: Snapshot, best: bool = False, best_snap: Snapshot | None = None) -> Path:
        """Write `snap` as a new checkpoint and make it current (and best); returns its folder.
        `best_snap` (a fork's first save) is written just before it as the `best` checkpoint, and both
        links switch only once both are complete."""
        folder = self.run_dir / CHECKPOINTS
        try:
            if not folder.is_symlink():
                folder.mkdir(exist_ok=True)
            entries = folder_files.list_dir(self.run_dir, CHECKPOINTS)  # refuses a link to elsewhere
        except folder_files.Refused as exc:
            raise NeuratermError(f"{exc}; move it away to save into this folder") from None
        except OSError as exc:
            raise _save_failed(exc, self.run_dir, _previous(self.run_dir)) from None
        numbers = [int(n) for n, _ in entries if NUMBERED.match(n)]
        number = max(numbers + [_checkpoint_number(self.run_dir, CURRENT) or 0]) + 1
        order = ([(number, best_snap)] if best_snap is not None else []) + [(number + (best_snap is not None), snap)]
        names = [f"{n:06d}" for n, _ in order]
        tmp = None
        try:
            for name, (_, s) in zip(names, order):
                files = _checkpoint_files(s)
                files[MANIFEST] = partial(_manifest, files, s)  # last: the sizes and hashes of all the others
                tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=folder))  # a fresh folder, never a planted one
                _write_tree(tmp, files, fresh=True)
                if os.environ.get(SAVE_DELAY_ENV):
                    time.sleep(float(os.environ[SAVE_DELAY_ENV]))
                os.rename(tmp, folder / name)
                tmp = None
                _fsync_dir(folder)
            if best_snap is not None:
                _point(self.run_dir, BEST, f"{CHECKPOINTS}/{names[0]}")
            _point(self.run_dir, CURRENT, f"{CHECKPOINTS}/{names[-1]}")
            if best:
                _point(self.run_dir, BEST, f"{CHECKPOINTS}/{names[-1]}")
            _fsync_dir(self.run_dir)
        except OSError as exc:
            if tmp is not None:
                folder_files.remove_tree(self.run_dir, f"{CHECKPOINTS}/{tmp.name}")
            for n, name in zip([n for n, _ in order], names):
                if n not in (_checkpoint_number(self.run_dir, CURRENT), _checkpoint_number(self.run_dir, BEST)):
                    folder_files.remove_tree(self.run_dir, f"{CHECKPOINTS}/{name}")
            raise _save_failed(exc, self.run_dir, _previous(self.run_dir)) from None
        self._link_top_level(folder / names[-1])
        self.sweep()
        return folder / names[-1]

    def _link_top_level(self, checkpoint: Path) -> None:
        """Static links (`weights -> current/weights`...) for what the checkpoint holds; a name the user
        already uses for something else is left alone."""
        for name in LINKED:
            top = self.run_dir / name
            if (checkpoint / name).exists() and not top.exists() and not top.is_symlink():
                try:
                    os.symlink(f"{CURRENT}/{name}", top)
                except OSError:
                    pass  # a filesystem without links: readers go through `current/`

    def close(self) -> None:
        self.lock.release()


# -- kept epochs (train.keep) ---------------------------------------------------------------------
def _ends_epoch(snap: Snapshot) -> bool:
    """A checkpoint taken at the end of an epoch, as training left it: not inside an epoch (save now,
    a stop) and not the report's, whose weights may be the best epoch's restored."""
    return snap.report is None and not snap.train_state.get("partial") and snap.epoch >= 1


def _manifest_summary(run_dir: Path, rel: str) -> tuple[int, bool, object] | None:
    """(epoch, ends an epoch, keep policy) of the checkpoint `run_dir/rel`, from its manifest; from its
    state/train.json for one saved before manifests said so. None when neither can be read."""
    try:
        manifest = json.loads(folder_files.read_bytes(run_dir, f"{rel}/{MANIFEST}", TEXT_LIMIT))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            return None
        if _is_int(manifest.get("epoch")) and isinstance(manifest.get("epoch_end"), bool):
            return manifest["epoch"], manifest["epoch_end"], manifest.get("keep", "auto")
        state = json.loads(folder_files.read_bytes(run_dir, f"{rel}/state/train.json", TEXT_LIMIT))
        epoch = state.get("epoch") if isinstance(state, dict) else None
        ends = _is_int(epoch) and epoch >= 1 and not state.get("partial") and "report.json" not in manifest["files"]
        return (epoch, ends, "auto") if _is_int(epoch) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def epoch_checkpoints(run_dir: Path) -> dict[int, Path]:
    """{epoch: checkpoint folder} of the checkpoints that end an epoch, up to the current one (a
    checkpoint numbered past it is a save killed before its switch). Reading only; links not followed."""
    run_dir = Path(run_dir)
    current = _checkpoint_number(run_dir, CURRENT)
    try:
        entries = folder_files.list_dir(run_dir, CHECKPOINTS) if current is not None else []
    except OSError:
        return {}
    found: dict[int, int] = {}
    for name, kind in entries:
        if kind != "dir" or not NUMBERED.match(name) or int(name) > current:
            continue
        summary = _manifest_summary(run_dir, f"{CHECKPOINTS}/{name}")
        if summary is not None and summary[1] and found.get(summary[0], -1) < int(name):
            found[summary[0]] = int(name)
    return {epoch: run_dir / CHECKPOINTS / f"{number:06d}" for epoch, number in sorted(found.items())}


def kept_checkpoints(run_dir: Path) -> dict[int, int]:
    """{epoch: checkpoint number} of the epoch-end checkpoints the current checkpoint's `train.keep` keeps."""
    ends = epoch_checkpoints(run_dir)
    if not ends:
        return {}
    current = _checkpoint_number(run_dir, CURRENT)
    summary = _manifest_summary(run_dir, f"{CHECKPOINTS}/{current:06d}") if current is not None else None
    policy = summary[2] if summary is not None else "auto"
    last = max(ends)
    return {epoch: int(path.name) for epoch, path in ends.items() if retention.keeps(policy, epoch, last)}


def _claim_leftover(name: str) -> bool:
    """What a claim killed before its first checkpoint leaves in a folder: the lock, a half-written marker."""
    return name == LOCK_FILE or name.startswith(MARKER + ".tmp-")


def _previous(run_dir: Path) -> str:
    return "the previous checkpoint is intact" if _checkpoint_number(run_dir, CURRENT) else "no checkpoint was saved yet"


def _save_failed(exc: OSError, run_dir: Path, previous: str) -> RunFailed:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunFailed(f"no space left on device while saving {run_dir}; {previous}")
    return RunFailed(f"could not save {run_dir} ({exc.strerror or exc}); {previous}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing (see `folder_files.write_atomic`: an exclusive temporary sibling
    under an unpredictable name, renamed over `path`)."""
    folder_files.write_atomic(path, data)


def _remove_checkpoint(run_dir: Path, rel: str) -> None:
    """Delete the regular files a checkpoint's manifest lists (plain names inside it, never through a
    link), then its folders if they are empty: a file a user put there stays (with its folders).
    Without a readable manifest (a removal killed after deleting it) only empty folders go."""
    try:
        listed = json.loads(folder_files.read_bytes(run_dir, f"{rel}/{MANIFEST}", TEXT_LIMIT)).get("files", {})
    except (OSError, ValueError, AttributeError, RecursionError):
        listed = None  # not a checkpoint we can account for: no file of it is deleted
    for name in [*listed, MANIFEST] if isinstance(listed, dict) else []:
        if folder_files.plain_relative(name):
            folder_files.remove_file(run_dir, f"{rel}/{name}")
    _remove_empty_folders(run_dir, rel)


def _remove_empty_folders(run_dir: Path, rel: str) -> None:
    try:
        entries = folder_files.list_dir(run_dir, rel)
    except OSError:
        return
    for name, kind in entries:
        if kind == "dir":
            _remove_empty_folders(run_dir, f"{rel}/{name}")
    folder_files.remove_empty_dir(run_dir, rel)


# -- reading --------------------------------------------------------------------------------------
class _Vanished(Exception):
    """A checkpoint file disappeared while it was read: a writer switched and swept meanwhile."""


class _Reader:
    """Reads one checkpoint's files through `folder_files` (no link followed below the model folder),
    each checked against its manifest entry (when there is one) before its bytes are read."""

    def __init__(self, folder: Path, shown: Path, manifest: dict | None):
        self.folder, self.shown, self.manifest = folder, shown, manifest
        self.root, self.prefix = _root_and_prefix(folder)

    def _rel(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def exists(self, rel: str) -> bool:
        return rel in self.manifest if self.manifest is not None else folder_files.is_file(self.root, self._rel(rel))

    def names(self, sub: str) -> list[str]:
        if self.manifest is not None:
            return sorted(rel[len(sub) + 1:-4] for rel in self.manifest
                          if rel.startswith(sub + "/") and rel.endswith(".npy") and "/" not in rel[len(sub) + 1:])
        return self.on_disk(sub)

    def on_disk(self, sub: str) -> list[str]:
        """The `.npy` files really in `sub` (regular files only; a link there is not one of them)."""
        if not folder_files.is_dir(self.root, self._rel(sub)):
            return []
        return sorted(n[:-4] for n, kind in folder_files.list_dir(self.root, self._rel(sub))
                      if kind == "file" and n.endswith(".npy"))

    def bytes(self, rel: str) -> bytes:
        shown = self.shown / rel
        entry = self.manifest.get(rel) if self.manifest is not None else None
        if self.manifest is not None and entry is None:
            if not folder_files.is_file(self.root, self._rel(rel)):
                raise _Vanished(rel)
            raise NeuratermError(f"{shown}: not part of the checkpoint")
        try:  # a manifest bounds what is read: a file bigger than listed is refused unread
            data = folder_files.read_bytes(self.root, self._rel(rel), entry["bytes"] if entry else None)
        except FileNotFoundError:
            if self.manifest is not None:
                raise _Vanished(rel) from None
            raise NeuratermError(f"{shown}: missing") from None
        except folder_files.Refused as exc:
            if entry is not None and "bytes" in exc.why:
                raise NeuratermError(f"{shown}: changed since it was saved (size differs from "
                                     f"{self.shown / MANIFEST})") from None
            raise NeuratermError(f"{shown}: {exc.why}") from None
        except OSError as exc:
            raise NeuratermError(f"{shown}: cannot be read ({exc.strerror})") from None
        if entry is not None:
            if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise NeuratermError(f"{shown}: changed since it was saved (size or SHA-256 differs from "
                                     f"{self.shown / MANIFEST})")
        return data

    def json(self, rel: str) -> dict:
        return parse_json(self.bytes(rel), self.shown / rel)

    def array(self, rel: str) -> np.ndarray:
        return parse_array(self.bytes(rel), self.shown / rel)

    def arrays(self, sub: str) -> dict[str, np.ndarray]:
        return {name: self.array(f"{sub}/{name}.npy") for name in self.names(sub)}


def parse_json(data: bytes, shown: Path) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise NeuratermError(f"{shown}: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise NeuratermError(f"{shown}: expected a JSON object")
    return value


def read_file(path: Path, limit: int | None = TEXT_LIMIT) -> bytes:
    """A file of a model folder (see `in_model_folder`) or any file by name in its folder, never
    through a link the program did not make."""
    path = Path(path)
    try:
        return folder_files.read_bytes(*in_model_folder(path), limit)
    except FileNotFoundError:
        raise NeuratermError(f"{path}: missing") from None
    except folder_files.Refused as exc:
        raise NeuratermError(f"{path}: {exc.why}") from None
    except OSError as exc:
        raise NeuratermError(f"{path}: cannot be read ({exc.strerror})") from None


def read_json(path: Path) -> dict:
    return parse_json(read_file(path), Path(path))


def parse_array(data: bytes, shown: Path) -> np.ndarray:
    """One `.npy` file's bytes: a plain numeric array, or one line saying what the file really is."""
    if not data.startswith(b"\x93NUMPY"):
        raise NeuratermError(f"{shown}: not a .npy file" + (" (it is empty)" if not data else ""))
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise NeuratermError(f"{shown}: holds Python objects (pickled), which are never loaded") from None
        raise NeuratermError(f"{shown}: a damaged .npy file ({exc})") from None
    except (OSError, EOFError, SyntaxError) as exc:
        raise NeuratermError(f"{shown}: a damaged .npy file ({exc.__class__.__name__})") from None
    if array.dtype.kind not in "fiub":
        raise NeuratermError(f"{shown}: not a numeric array (dtype {array.dtype})")
    return array


def read_array(path: Path) -> np.ndarray:
    return parse_array(read_file(path, None), Path(path))


def parse_history(text: str, shown: Path) -> list[dict]:
    """history.csv: exactly the known columns, numbers in every cell, epochs 1, 2, 3..."""
    rows = []
    try:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != HISTORY_COLUMNS:
            raise NeuratermError(f"{shown}: unexpected columns {header}; expected {list(HISTORY_COLUMNS)}")
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(HISTORY_COLUMNS):
                raise NeuratermError(f"{shown}: line {line} has {len(cells)} fields, expected {len(HISTORY_COLUMNS)}")
            row = {k: (int(v) if k == "epoch" else float(v)) for k, v in zip(HISTORY_COLUMNS, cells)}
            if row["epoch"] != len(rows) + 1:
                raise NeuratermError(f"{shown}: line {line} is epoch {row['epoch']}, expected {len(rows) + 1}")
            rows.append(row)
    except (ValueError, csv.Error) as exc:
        raise NeuratermError(f"{shown}: malformed history ({exc})") from None
    return rows


def read_history(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    try:
        text = read_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NeuratermError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    return parse_history(text, path)


def _root_and_prefix(folder: Path) -> tuple[Path, str]:
    """A checkpoint folder as (model folder, `checkpoints/NNNNNN`), a format-1 folder as (itself, '')."""
    folder = Path(folder)
    if NUMBERED.match(folder.name) and folder.parent.name == CHECKPOINTS:
        return folder.parent.parent, f"{CHECKPOINTS}/{folder.name}"
    return folder, ""


def in_model_folder(path: Path) -> tuple[Path, str]:
    """`path` as (folder, relative name) for `folder_files`, with the program's own links read through:
    `run/current/x`, `run/best/x` and the top-level `run/weights/x` (-> current/weights) become
    `checkpoints/NNNNNN/...`, but only when the link has exactly the shape this program writes; any
    other link stays a link and is refused when opened."""
    path = Path(path)
    for depth, folder in enumerate(path.parents):
        if folder.is_symlink():  # `current` or `best`: read through from the model folder above
            continue
        if NUMBERED.match(folder.name) and folder.parent.name == CHECKPOINTS:  # already below the checkpoints
            root = folder.parent.parent
            return root, path.relative_to(root).as_posix()
        if (folder / MARKER).is_file() or _legacy(folder):
            parts = path.relative_to(folder).parts
            which = parts[0] if parts[0] in (CURRENT, BEST) else CURRENT if parts[0] in LINKED and \
                (folder / parts[0]).is_symlink() and os.readlink(folder / parts[0]) == f"{CURRENT}/{parts[0]}" else None
            number = _checkpoint_number(folder, which) if which else None
            if number is not None:
                rest = parts[1:] if parts[0] in (CURRENT, BEST) else parts
                return folder, "/".join((CHECKPOINTS, f"{number:06d}", *rest))
            return folder, "/".join(parts)
        if depth >= 3:  # a model folder's files are at most three levels down (state/optimizer/x.npy)
            break
    return path.parent, path.name


def read_checkpoint_file(folder: Path, rel: str, limit: int | None = TEXT_LIMIT) -> bytes:
    """One file of a checkpoint folder (as `checkpoint_dir` names it), read without following links."""
    root, prefix = _root_and_prefix(folder)
    return folder_files.read_bytes(root, f"{prefix}/{rel}" if prefix else rel, limit)


def checkpoint_dir(run_dir: Path, which: str = CURRENT) -> Path | None:
    """The folder of the current (or best) checkpoint; a format-1 folder is its own checkpoint."""
    run_dir = Path(run_dir)
    number = _checkpoint_number(run_dir, which)
    if number is not None:
        return run_dir / CHECKPOINTS / f"{number:06d}"
    return run_dir if which == CURRENT and _legacy(run_dir) else None


def check_report(report: dict, shown: Path) -> dict:
    """report.json with every field a viewer shows of its type (the schema a `RunFinished` event has)."""
    try:
        return events.check_report(report)
    except events.Invalid as exc:
        raise NeuratermError(f"{shown}: {exc}") from None


def _check_meta(meta: dict, shown: Path) -> None:
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict) or not arrays:
        raise NeuratermError(f"{shown}: 'arrays' must be a table of the model's arrays")
    for name, spec in arrays.items():
        if not ARRAY_NAME.match(name) or ".." in name:
            raise NeuratermError(f"{shown}: array name {name!r} is not a plain file name")
        if (not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) or not isinstance(spec.get("dtype"), str)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec["shape"])):
            raise NeuratermError(f"{shown}: arrays.{name} needs a shape (list of sizes) and a dtype")
    names = meta.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise NeuratermError(f"{shown}: 'class_names' must be a list of names")
    if meta.get("normalization") not in ("scale", "standardize"):
        raise NeuratermError(f"{shown}: 'normalization' must be 'scale' or 'standardize'")
    arch = meta.get("architecture")
    if not (isinstance(arch, dict) and isinstance(arch.get("sizes"), list) and len(arch["sizes"]) >= 2
            and all(_is_int(n) and n >= 1 for n in arch["sizes"]) and isinstance(arch.get("layers"), list)
            and all(isinstance(layer, str) for layer in arch["layers"])):
        raise NeuratermError(f"{shown}: 'architecture' must hold the layer sizes (integers >= 1) and the layers")


def _check_architecture(meta: dict, config: config_mod.Config, shown: Path) -> None:
    """config.toml, model.json's sizes and the arrays describe one model, so nothing is built (or
    allocated) from a hand-edited size that the saved weights do not have."""
    sizes, layers = meta["architecture"]["sizes"], meta["architecture"]["layers"]
    if sizes[1:-1] != config.model.hidden:
        raise NeuratermError(f"{shown / 'config.toml'}: model.hidden {config.model.hidden} does not match the saved "
                             f"model's sizes {sizes} ({shown / 'model.json'})")
    index = {name: name.split(".", 1)[0] for name in meta["arrays"]}
    if not all(i.isdigit() and int(i) < len(layers) for i in index.values()):
        raise NeuratermError(f"{shown / 'model.json'}: the arrays {sorted(meta['arrays'])} do not fit its "
                             f"{len(layers)} layers")
    linear = [tuple(spec["shape"]) for name, spec in sorted(meta["arrays"].items(), key=lambda kv: int(index[kv[0]]))
              if name.endswith(".weight") and len(spec["shape"]) == 2]
    if linear != [(b, a) for a, b in zip(sizes, sizes[1:])]:
        raise NeuratermError(f"{shown / 'model.json'}: the weight shapes {linear} do not match the sizes {sizes}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _is_generator_state(state) -> bool:
    """A NumPy PCG64 state (what `default_rng` uses for the batch order and dropout masks)."""
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


def _is_plateau_state(plateau) -> bool:
    """ReduceLROnPlateau's fields, each of its type (they are set back on the schedule one by one)."""
    from neuraterm.core.optim.schedules import ReduceLROnPlateau
    if not isinstance(plateau, dict) or not set(plateau) <= {f.name for f in dataclasses.fields(ReduceLROnPlateau)}:
        return False
    rules = {"lr": lambda v: _is_number(v) and v > 0, "factor": _is_number, "min_lr": _is_number,
             "threshold": _is_number, "patience": lambda v: _is_int(v) and v >= 0,
             "bad_epochs": lambda v: _is_int(v) and v >= 0, "mode": lambda v: v in ("min", "max"),
             "best": lambda v: v is None or _is_number(v)}
    return all(rules[k](v) for k, v in plateau.items())


def check_train_state(state: dict, shown: Path) -> None:
    """Every field the trainer reads, with its type and range (a hand-edited file is one line, not a traceback)."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise NeuratermError(f"{shown}: {what}")
    need(_is_int(state.get("epoch")) and state["epoch"] >= 0, "'epoch' must be an integer >= 0")
    need(_is_generator_state(state.get("order_rng")), "'order_rng' must be a NumPy PCG64 generator state")
    dropout = state.get("dropout_rng", [])
    need(isinstance(dropout, list) and all(s is None or _is_generator_state(s) for s in dropout),
         "'dropout_rng' must be a list of NumPy PCG64 generator states")
    early = state.get("early")
    need(isinstance(early, dict) and (early.get("best") is None or _is_number(early.get("best")))
         and _is_int(early.get("best_epoch")) and early["best_epoch"] >= 0 and _is_int(early.get("wait"))
         and early["wait"] >= 0, "'early' must hold best (a number or null), best_epoch and wait (integers >= 0)")
    need(state.get("plateau") is None or _is_plateau_state(state["plateau"]),
         "'plateau' must be null or the plateau schedule's fields (lr, best, bad_epochs...) with their types")
    partial = state.get("partial")
    need(partial is None or (isinstance(partial, dict) and _is_int(partial.get("step")) and partial["step"] >= 0
                             and _is_number(partial.get("loss_sum")) and _is_int(partial.get("correct"))
                             and _is_int(partial.get("seen")) and 0 <= partial["correct"] <= partial["seen"]),
         "'partial' must be null or hold step, loss_sum, correct and seen (integers >= 0) and order_rng")
    need(partial is None or _is_generator_state(partial.get("order_rng")),
         "'partial.order_rng' must be a NumPy PCG64 generator state")
    need(state.get("reference_loss") is None or _is_number(state["reference_loss"]), "'reference_loss' must be a number")


def load(run_dir: Path, which: str = CURRENT, with_best: bool = False) -> Snapshot:
    """Read and validate a model folder's current (or best) checkpoint; never writes anything.

    A writer may switch and sweep while this reads: a file that vanishes under a checkpoint that is no
    longer current sends the read to the new current one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NeuratermError(f"{run_dir}: no such model folder")
    for _ in range(20):
        folder = checkpoint_dir(run_dir, which)
        best = checkpoint_dir(run_dir, BEST) if which == CURRENT and with_best else None
        if folder is None:
            if (run_dir / MARKER).is_file():
                raise NeuratermError(f"{run_dir}: no checkpoint saved yet")
            raise NeuratermError(f"{run_dir}: not a neuraterm model folder (no {CURRENT} checkpoint, no model.json)")
        try:
            legacy = folder == run_dir
            snap = _load_checkpoint(folder, run_dir if legacy else run_dir / which, legacy)
            if best is not None:  # a resume needs the best weights (restore_best); readers do not
                snap.best_weights = dict(snap.weights) if best == folder else \
                    _load_checkpoint(best, run_dir / BEST, False).weights
            return snap
        except _Vanished:  # a writer switched and swept meanwhile: read again, unless nothing moved
            moved = checkpoint_dir(run_dir, which) != folder or (
                best is not None and checkpoint_dir(run_dir, BEST) != best)
            if not moved:
                raise NeuratermError(f"{folder}: incomplete checkpoint (a file listed in its manifest is missing)") from None
    raise NeuratermError(f"{run_dir}: the checkpoint kept changing while it was read")


def load_checkpoint(folder: Path) -> Snapshot:
    """One numbered checkpoint (a kept epoch's), verified like `load`; FileNotFoundError when a writer
    removed it while it was read."""
    try:
        return _load_checkpoint(Path(folder), Path(folder), False)
    except _Vanished as exc:
        raise FileNotFoundError(str(exc)) from None


def _load_checkpoint(folder: Path, shown: Path, legacy: bool) -> Snapshot:
    manifest = None
    if not legacy:
        try:
            manifest = parse_json(read_checkpoint_file(folder, MANIFEST), shown / MANIFEST)
        except FileNotFoundError:
            raise _Vanished(MANIFEST) from None
        except OSError as exc:
            raise NeuratermError(f"{shown / MANIFEST}: {getattr(exc, 'why', None) or exc.strerror}") from None
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, dict) and _is_int(v.get("bytes")) and v["bytes"] >= 0
                                                  and isinstance(v.get("sha256"), str) for v in files.values()):
            raise NeuratermError(f"{shown / MANIFEST}: not a checkpoint manifest")
        bad = sorted(rel for rel in files if not folder_files.plain_relative(rel))
        if bad:
            raise NeuratermError(f"{shown / MANIFEST}: lists {bad[0]!r}, not a plain name inside the checkpoint")
        manifest = files
    read = _Reader(folder, shown, manifest)
    meta = read.json("model.json")
    if meta.get("format") not in (1, FORMAT):
        raise NeuratermError(f"{shown / 'model.json'}: not a neuraterm model description (format {meta.get('format')!r})")
    _check_meta(meta, shown / "model.json")
    config = config_mod.parse_toml(read.bytes("config.toml"), str(shown / "config.toml"), complete=True)
    _check_architecture(meta, config, shown)
    weights = {}
    for name, spec in meta["arrays"].items():
        rel = f"weights/{name}.npy"
        array = read.array(rel)
        if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
            raise NeuratermError(f"{shown / rel}: shape {list(array.shape)} {array.dtype} does not match model.json "
                                 f"({spec['shape']} {spec['dtype']})")
        if not np.isfinite(array).all():
            raise NeuratermError(f"{shown / rel}: holds NaN or infinite values")
        weights[name] = array
    on_disk = set(read.names("weights")) | set(read.on_disk("weights"))
    extra = sorted(on_disk - set(weights))
    if extra:
        raise NeuratermError(f"{shown / 'weights'}: unexpected files {extra}")
    normalization = read.arrays("normalization")
    if meta["normalization"] == "standardize":
        features = meta.get("architecture", {}).get("sizes", [None])[0]
        for key in ("mean", "std"):
            array = normalization.get(key)
            if array is None or array.shape != (features,) or not np.isfinite(array).all():
                raise NeuratermError(f"{shown / 'normalization' / (key + '.npy')}: missing, or not {features} finite values")
        if (normalization["std"] <= 0).any():
            raise NeuratermError(f"{shown / 'normalization' / 'std.npy'}: deviations must be > 0")
    train_state = read.json("state/train.json") if read.exists("state/train.json") else {}
    history = parse_history(read.bytes("history.csv").decode("utf-8", "replace"), shown / "history.csv") \
        if read.exists("history.csv") else []
    if train_state:
        check_train_state(train_state, shown / "state" / "train.json")
        if len(history) != train_state["epoch"]:
            raise NeuratermError(f"{shown / 'history.csv'}: {len(history)} epochs, but state/train.json says "
                                 f"{train_state['epoch']}")
    report = check_report(read.json("report.json"), shown / "report.json") if read.exists("report.json") else None
    best = read.arrays("state/best")  # format 1 kept the best weights here
    health = _read_health(read, shown, len(meta["architecture"]["sizes"]) - 1, len(meta["class_names"]))
    return Snapshot(config, meta, weights, read.arrays("state/optimizer"), train_state, history, normalization,
                    best, report, health)


def _read_health(read: _Reader, shown: Path, layers: int, classes: int) -> dict | None:
    """health.npz, never unpickled, its shapes checked against each other and the model (None when absent)."""
    if not read.exists(HEALTH_FILE):
        return None
    where = shown / HEALTH_FILE
    try:
        with np.load(io.BytesIO(read.bytes(HEALTH_FILE)), allow_pickle=False) as z:
            arrays = {name: z[name] for name in (*HEALTH_ARRAYS, *HEALTH_NAMES, "percentiles", "every", "probe_seed")}
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise NeuratermError(f"{where}: not a layer-health file ({exc.__class__.__name__}: {exc})") from None
    values, epochs, confidence, probe = (arrays[n] for n in HEALTH_ARRAYS)
    names, kinds, fields = (arrays[n] for n in HEALTH_NAMES)
    ok = (names.shape == (layers,) and kinds.shape == (layers,) and fields.ndim == 1
          and all(a.dtype.kind == "U" for a in (names, kinds, fields))
          and values.dtype.kind == "f" and values.ndim == 3 and values.shape[1:] == (layers, len(fields))
          and epochs.dtype.kind in "iu" and epochs.shape == (len(values),)
          and confidence.dtype.kind == "f" and confidence.shape == (len(values), classes)
          and probe.dtype.kind in "iu" and probe.ndim == 1
          and all(arrays[n].dtype.kind in "iu" for n in ("percentiles", "every", "probe_seed")))
    if not ok:
        raise NeuratermError(f"{where}: its arrays do not describe {layers} layers and {classes} classes")
    layout = {"layers": names.tolist(), "kinds": kinds.tolist(), "fields": fields.tolist(),
              "percentiles": arrays["percentiles"].tolist(), "every": int(arrays["every"]),
              "probe_seed": int(arrays["probe_seed"])}
    return {"layout": layout, "values": values, "epochs": epochs, "confidence": confidence, "probe": probe}
