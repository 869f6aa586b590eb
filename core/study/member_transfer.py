"""A member's model folder carried between machines that share no disk (`neuraterm study --storage`).

`pack` copies what a model folder needs to be resumed or read (its marker, its event log, and the
current and best checkpoints, each with its manifest) into a folder Ray Tune uploads as a trial
checkpoint; `unpack` turns such a folder back into a model folder: on a worker, to resume the
member there; in the driver, to materialize the member in the study folder. Links are not packed
(object stores have none): `packed.json` names the checkpoints that `current` and `best` point at.

`unpack` keeps the model-folder rules: a checkpoint arrives under a temporary name and is renamed
into place before `current` switches to it (one atomic rename), and only checkpoints with a manifest
(ones this program wrote) are ever removed, so a reader of the driver's folder always sees a
complete checkpoint and nothing the user put there is touched.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import checkpoint
from neuraterm.core.run.checkpoint import BEST, CHECKPOINTS, CURRENT, LINKED, MANIFEST, MARKER, NUMBERED
from neuraterm.core.run.event_log import LOG_FILE

PACKED = "packed.json"


def pack(run_dir: Path, dest: Path) -> None:
    """Copy `run_dir`'s marker, event log and current and best checkpoints into `dest`."""
    run_dir, dest = Path(run_dir), Path(dest)
    links = {}
    for link in (CURRENT, BEST):
        source = checkpoint.checkpoint_dir(run_dir, link)
        if source is None or source == run_dir:  # none yet, or a format-1 folder (never trained by a study)
            continue
        links[link] = source.name
        if not (dest / CHECKPOINTS / source.name).exists():
            shutil.copytree(source, dest / CHECKPOINTS / source.name)
    for name in (MARKER, LOG_FILE):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, dest / name)
    (dest / PACKED).write_text(json.dumps({"format": 1, "links": links}), encoding="utf-8")


def unpack(src: Path, run_dir: Path) -> None:
    """Make `run_dir` the model folder packed in `src` (created, or brought up to date)."""
    src, run_dir = Path(src), Path(run_dir)
    try:
        links = json.loads((src / PACKED).read_text(encoding="utf-8"))["links"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NeuratermError(f"{src}: not a packed neuraterm member ({exc})") from None
    if not isinstance(links, dict) or not all(k in (CURRENT, BEST) and isinstance(v, str) and NUMBERED.match(v)
                                               for k, v in links.items()):
        raise NeuratermError(f"{src / PACKED}: unexpected checkpoint names {links!r}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / MARKER).exists() and (src / MARKER).is_file():
        checkpoint.write_atomic(run_dir / MARKER, (src / MARKER).read_bytes())
    folder = run_dir / CHECKPOINTS
    folder.mkdir(exist_ok=True)
    current = checkpoint.checkpoint_dir(run_dir)
    for name in sorted(set(links.values())):
        final = folder / name
        if final.is_dir() and _same(final, src / CHECKPOINTS / name):
            continue
        tmp = folder / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src / CHECKPOINTS / name, tmp)
        was_current = final.is_dir() and final == current
        if final.is_dir():  # an older attempt's checkpoint of that number (a retry from further back)
            if was_current:  # readers keep a complete checkpoint while the old one goes
                checkpoint._point(run_dir, CURRENT, f"{CHECKPOINTS}/{tmp.name}")
            checkpoint._remove_checkpoint(final)
        os.rename(tmp, final)
        if was_current:
            checkpoint._point(run_dir, CURRENT, f"{CHECKPOINTS}/{name}")
    if (src / LOG_FILE).is_file():
        checkpoint.write_atomic(run_dir / LOG_FILE, (src / LOG_FILE).read_bytes())
    for link in (BEST, CURRENT):
        if link in links:
            checkpoint._point(run_dir, link, f"{CHECKPOINTS}/{links[link]}")
    if CURRENT in links:
        for name in LINKED:
            top = run_dir / name
            if (folder / links[CURRENT] / name).exists() and not top.exists() and not top.is_symlink():
                try:
                    os.symlink(f"{CURRENT}/{name}", top)
                except OSError:
                    pass
    keep = set(links.values())
    for entry in folder.iterdir():
        if NUMBERED.match(entry.name) and entry.name not in keep and (entry / MANIFEST).is_file():
            checkpoint._remove_checkpoint(entry)


def _same(a: Path, b: Path) -> bool:
    try:
        return (a / MANIFEST).read_bytes() == (b / MANIFEST).read_bytes()
    except OSError:
        return False


def packed_bytes(run_dir: Path) -> bytes:
    """`pack` as one tar archive in memory: how a member interrupted on the driver's machine reaches
    the worker that resumes it."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        pack(run_dir, Path(d))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(d, arcname=".")
        return buffer.getvalue()


def unpack_bytes(data: bytes, run_dir: Path) -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(d, filter="data")
        unpack(Path(d), run_dir)
