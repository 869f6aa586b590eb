"""A fork: a new model folder that starts from one kept epoch of another and trains on with changes.

A fork is a resume into a new folder. Its first checkpoint is the parent's checkpoint of epoch K
(weights, optimizer moments, RNG states, data order, history rows 1..K, the early-stopping counters)
with the fork's settings, and without a report; the trainer then resumes it like any folder, so a fork
with nothing changed trained to the parent's total equals the parent bit for bit. What may change is
what a resume may change, plus the optimizer, whose moments then start from zero (a different
optimizer's moments mean something else). The parent is only read, so killing a fork at any moment
leaves the parent as it was.

The new folder's `model.json` holds its lineage: one entry per fork back to the first run (parent
folder, epoch, the parent checkpoint's manifest digest, the settings that changed), oldest first.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import checkpoint, folder_files, retention
from neuraterm.core.run.build import build_model, build_optimizer
from neuraterm.core.run.event_log import LOG_FILE

# What a resume cannot change, less the optimizer: a new folder can start fresh moments.
FROZEN_ON_FORK = tuple(k for k in config_mod.FROZEN_ON_RESUME if k != "optimizer.name")
# Settings that change where or how long a fork runs, not what it trains (its counters carry over).
BOOKKEEPING = ("train.epochs", "train.device", "train.threads", "train.keep", "train.tf32", "train.graphs",
               "data.data_dir", "data.placement")


@dataclass
class Source:
    """The parent's checkpoint of epoch K, read and verified."""
    parent: Path
    epoch: int
    folder: Path
    snap: checkpoint.Snapshot
    manifest_sha256: str
    best: checkpoint.Snapshot | None = None  # the parent's best epoch as of K, when it is another kept epoch
    named: Path | None = None  # the parent as the lineage names it, when `parent` is a copy of it (Ray's PBT)


@dataclass
class Plan:
    """What `create` wrote: the changed settings and whether the optimizer starts fresh."""
    run_dir: Path
    changes: dict = field(default_factory=dict)
    fresh_optimizer: bool = False
    lineage: list = field(default_factory=list)


def kept_epochs(parent: Path) -> list[int]:
    return sorted(checkpoint.epoch_checkpoints(parent))


def read(parent: Path, epoch: int) -> Source:
    """Checkpoint `epoch` of `parent` (one line naming the kept epochs if it has none); reading only."""
    parent = Path(parent).expanduser()
    if not checkpoint.is_run_folder(parent):
        raise NeuratermError(f"{parent}: not a neuraterm model folder")
    ends = checkpoint.epoch_checkpoints(parent)
    if epoch not in ends:
        kept = retention.describe(list(ends)) if ends else "none (the folder keeps no epoch's checkpoint)"
        raise NeuratermError(f"{parent}: epoch {epoch} is not kept; kept epochs: {kept}")
    folder = ends[epoch]
    try:
        manifest = folder_files.read_bytes(parent, f"{checkpoint.CHECKPOINTS}/{folder.name}/{checkpoint.MANIFEST}",
                                           checkpoint.TEXT_LIMIT)
        snap = checkpoint.load_checkpoint(folder)
        best = None
        best_epoch = snap.train_state.get("early", {}).get("best_epoch")
        if best_epoch not in (None, 0, epoch) and best_epoch in ends:
            best = checkpoint.load_checkpoint(ends[best_epoch])
    except FileNotFoundError:
        raise NeuratermError(f"{parent}: the checkpoint of epoch {epoch} was removed while it was read (the run "
                             f"trained on and no longer keeps it); kept epochs now: "
                             f"{retention.describe(kept_epochs(parent))}") from None
    except OSError as exc:  # a link or an oversized file where the manifest should be (folder_files.Refused)
        raise NeuratermError(f"{folder}: cannot be read ({exc})") from None
    if snap.epoch != epoch or len(snap.history) != epoch:
        raise NeuratermError(f"{folder}: holds epoch {snap.epoch}, not {epoch}")
    return Source(parent.resolve(), epoch, folder, snap, hashlib.sha256(manifest).hexdigest(), best)


def changes(before: config_mod.Config, after: config_mod.Config) -> dict:
    """{key: [old, new]} of every setting that differs ('optimizer.lr': [0.1, 0.01])."""
    a, b = before.to_dict(), after.to_dict()
    out = {}
    for section, values in b.items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": [a[section][k], v] for k, v in values.items() if a[section][k] != v})
    return out


def check(source: Source, config: config_mod.Config) -> None:
    """Frozen keys and a total that leaves nothing to train are one line each."""
    frozen = [k for k in FROZEN_ON_FORK if k in changes(source.snap.config, config)]
    if frozen:
        raise NeuratermError(f"{', '.join(frozen)} cannot change in a fork (they define the data split, the model "
                             f"or its initialization); train a new run instead")
    if config.train.epochs <= source.epoch:
        raise NeuratermError(f"a fork at epoch {source.epoch} needs more epochs than that; pass --epochs N with "
                             f"N > {source.epoch} (the parent asked for {source.snap.config.train.epochs})")


def folder_for(parent: Path, epoch: int) -> Path:
    """Beside the parent: `<parent's name>-e<K>-<date>-<time>`."""
    parent = Path(parent).expanduser().resolve()
    return checkpoint.new_run_dir(parent.parent, f"{parent.name}-e{epoch}")


def default_folder(source: Source) -> Path:
    return folder_for(source.parent, source.epoch)


def _fresh_optimizer(config: config_mod.Config, snap: checkpoint.Snapshot) -> dict[str, np.ndarray] | None:
    """Zero moments for the fork's optimizer when the saved ones do not belong to it (another optimizer,
    or momentum switched on or off); None when the saved moments carry over."""
    sizes = snap.meta["architecture"]["sizes"]
    model = build_model(config, sizes[0], sizes[-1], np)
    fresh = build_optimizer(config, model).state_dict()
    same = (config.optimizer.name == snap.config.optimizer.name and set(fresh) == set(snap.optimizer)
            and all(fresh[k].shape == snap.optimizer[k].shape for k in fresh))
    return None if same else fresh


def _events_up_to(parent: Path, epoch: int) -> bytes:
    """The parent's event log up to the end of `epoch`: every line to the last one that names an epoch
    <= K, less those that name a later one (whatever their type, so events this version does not know,
    such as layer health, come along)."""
    try:
        lines = folder_files.read_bytes(parent, LOG_FILE).splitlines(keepends=True)
    except OSError:
        return b""
    marks = []
    for line in lines:
        try:
            record = json.loads(line)
            at = record.get("epoch") if isinstance(record, dict) else None
        except ValueError:
            at = None
        marks.append(at if isinstance(at, int) and not isinstance(at, bool) else None)
    last = max((i for i, at in enumerate(marks) if at is not None and at <= epoch), default=-1)
    return b"".join(line for line, at in zip(lines[:last + 1], marks) if (at is None or at <= epoch)
                    and line.endswith(b"\n"))


def create(source: Source, config: config_mod.Config, run_dir: Path) -> Plan:
    """Write the fork's folder: its first checkpoint (and the best epoch's, when that is an earlier kept
    one) and the parent's event log up to K. The trainer then resumes it."""
    check(source, config)
    snap = source.snap
    plan = Plan(Path(run_dir), changes(snap.config, config))
    for key in ("name", "description"):
        plan.changes.pop(key, None)
    fresh = _fresh_optimizer(config, snap)
    plan.fresh_optimizer = fresh is not None
    entry = {"parent": str(source.named or source.parent), "epoch": source.epoch, "checkpoint": source.folder.name,
             "manifest_sha256": source.manifest_sha256, "changes": plan.changes,
             "fresh_optimizer": plan.fresh_optimizer, "created": time.time()}
    earlier = snap.meta.get("lineage")
    plan.lineage = [*(earlier if isinstance(earlier, list) else []), entry]

    def as_fork(s: checkpoint.Snapshot) -> checkpoint.Snapshot:
        state = dict(s.train_state, partial=None)
        if set(plan.changes) - set(BOOKKEEPING) and state.get("early"):  # a changed experiment: early
            # stopping counts afresh from the fork's start
            state["early"] = dict(state["early"], wait=0)
        if s.train_state.get("plateau") and any(k.startswith("schedule.") or k == "optimizer.lr" for k in plan.changes):
            state["plateau"] = None  # a changed LR or schedule starts its plateau counter afresh
        return replace(s, config=config, meta=dict(s.meta, lineage=plan.lineage), train_state=state,
                       optimizer=fresh if fresh is not None else s.optimizer, report=None, best_weights={})

    target = Path(run_dir).expanduser().resolve()
    if target == source.parent or source.parent in target.parents:
        raise NeuratermError(f"{run_dir}: inside the parent {source.parent}, which a fork only reads; "
                             f"pass another --out")
    writer = checkpoint.RunWriter(run_dir, new=True)
    try:
        plan.run_dir = writer.run_dir
        log = _events_up_to(source.parent, source.epoch)
        if log:
            checkpoint.write_atomic(writer.run_dir / LOG_FILE, log)
        writer.save(as_fork(snap), best=source.best is None,
                    best_snap=as_fork(source.best) if source.best is not None else None)
    finally:
        writer.close()
    return plan
