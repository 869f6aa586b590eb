"""Your own data: a path in `data.dataset` instead of a registry name.

Four layouts are read, each into the same `Dataset` as the named sets:
- a `.npz` archive with `x` (N x D, N x H x W or N x H x W x C; uint8 pixels or float features) and `y`
  (integer labels 0..K-1), optionally `x_test`/`y_test` and `class_names` (strings);
- a folder holding the same arrays as `x.npy`, `y.npy`, ... (for data larger than an archive is handy);
- a CSV file, the label in the first column or in a named one (`data.csv#species`);
- a folder of images per class, `root/<class>/*.png` (Pillow, the `images` extra).
Arrays stored uncompressed are memory-mapped (see `npy`), so data larger than memory trains in
shuffled batches read from the disk. Everything is checked before training (shapes, label range,
non-finite values) with one-line errors. The absolute path, the format and a SHA-256 of the content
go into the model folder (`model.json`'s `dataset_source`): `eval` and `resume` find the data through
it from any working directory, and refuse it if it changed since.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuraterm.core.data import csv_table, image_folder, npy
from neuraterm.core.data.dataset import Dataset
from neuraterm.core.errors import NeuratermError

SUFFIXES = (".npz", ".csv", ".tsv")
ARRAY_FILES = ("x", "y", "x_test", "y_test", "class_names")
CHECK_ELEMENTS = 1 << 22  # values per chunk when scanning for NaN or converting


@dataclass(frozen=True)
class Summary:
    """What a listing shows of a path dataset (`neuraterm datasets PATH`, the app's picker)."""
    name: str  # as given
    path: str  # absolute
    format: str
    classes: int
    train: int
    test: int  # 0: carved out of train by `data.test_fraction`
    image_shape: tuple[int, ...]
    class_names: tuple = ()  # when the data was read and checked (`validate`)
    notes: tuple = ()  # what was read differently from how it is stored (labels 1..K, say)


def is_path(name: str) -> bool:
    """Whether `data.dataset` names your own data rather than a registry dataset."""
    return ("/" in name or os.sep in name or name.startswith(("~", ".")) or
            csv_table.split_spec(name)[0].lower().endswith(SUFFIXES) or Path(name).exists())


def locate(spec: str, recorded: dict | None = None) -> tuple[Path, str]:
    """The data's absolute path and CSV label column; the model folder's record where the given path is gone."""
    given, column = csv_table.split_spec(spec)
    path = Path(given).expanduser()
    # a hand-edited model.json may hold anything here: "" would be the working directory
    trained_on = recorded.get("path") if isinstance(recorded, dict) else None
    trained_on = trained_on if isinstance(trained_on, str) and trained_on else None
    if not path.exists() and trained_on and Path(trained_on).exists():
        path = Path(trained_on)
    if not path.exists():
        was = f" (the model was trained on {trained_on})" if trained_on else ""
        raise NeuratermError(f"{given}: no such file or folder{was}")
    return path.resolve(), column


def format_of(path: Path) -> str:
    if path.is_dir():
        return "npy" if (path / "x.npy").is_file() else "images"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".npy":
        raise NeuratermError(f"{path}: a .npy file holds one array; put x and y in an .npz "
                             f"(numpy.savez) or x.npy and y.npy in a folder")
    raise NeuratermError(f"{path}: not a dataset neuraterm reads (.npz, .csv, a folder with x.npy and y.npy, "
                         f"or a folder of images per class)")


def _arrays(path: Path, fmt: str, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    if fmt == "npz":
        return npy.npz_members(path, only)
    return {k: npy.load_npy(path / f"{k}.npy") for k in ARRAY_FILES
            if (path / f"{k}.npy").is_file() and (only is None or k in only)}


def _files(path: Path, fmt: str) -> list[Path]:
    """The files that make the dataset, in a fixed order: what the content hash covers."""
    if fmt == "images":
        return [p for found in image_folder.class_files(path)[1] for p in found]
    if fmt == "npy":
        return [path / f"{k}.npy" for k in ARRAY_FILES if (path / f"{k}.npy").is_file()]
    return [path]


def digest(path: Path, fmt: str) -> str:
    """SHA-256 over the dataset's files (for a folder: each file's relative name and bytes)."""
    h = hashlib.sha256()
    for file in _files(path, fmt):
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _features(name: str, key: str, x: np.ndarray) -> np.ndarray:
    """`x` as (N, D): uint8 pixels or float features, checked finite; other integers must be pixels."""
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise NeuratermError(f"{name}: {key} must be N x D, N x H x W or N x H x W x C with N >= 1; "
                             f"got shape {x.shape}")
    flat = x.reshape(len(x), -1)
    rows = max(1, CHECK_ELEMENTS // max(flat.shape[1], 1))
    kind = x.dtype.kind
    if kind == "f":
        for start in range(0, len(flat), rows):
            finite = np.isfinite(flat[start:start + rows]).all(axis=1)
            if not finite.all():
                raise NeuratermError(f"{name}: {key} holds NaN or infinite values (first in row "
                                     f"{start + int(np.argmin(finite))})")
        return flat
    if x.dtype == np.uint8:
        return flat
    if kind in "iub":
        out = np.empty(flat.shape, np.uint8)
        for start in range(0, len(flat), rows):
            block = flat[start:start + rows]
            if block.size and (block.min() < 0 or block.max() > 255):
                raise NeuratermError(f"{name}: {key} holds integers outside 0..255; store pixels as uint8 "
                                     f"or features as float")
            out[start:start + rows] = block
        return out
    raise NeuratermError(f"{name}: {key} has dtype {x.dtype}; expected uint8 pixels or float features")


def _labels(name: str, key: str, y: np.ndarray, rows: int) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise NeuratermError(f"{name}: {key} must be a 1-D array of integer class labels; got {y.dtype} "
                             f"of shape {y.shape}")
    if len(y) != rows:
        raise NeuratermError(f"{name}: {'x' if key == 'y' else 'x_test'} has {rows:,} rows but {key} has "
                             f"{len(y):,} labels")
    y = np.asarray(y, dtype=np.int64)
    if len(y) and y.min() < 0:
        raise NeuratermError(f"{name}: {key} holds negative labels ({int(y.min())}); labels run 0..K-1")
    return y


def from_arrays(name: str, arrays: dict[str, np.ndarray], image_shape: tuple[int, ...] | None = None) -> Dataset:
    """Validate arrays keyed like the `.npz` layout into a Dataset (the checks every format shares)."""
    for key in ("x", "y"):
        if key not in arrays:
            raise NeuratermError(f"{name}: no array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise NeuratermError(f"{name}: x_test and y_test go together; found only "
                             f"{'x_test' if 'x_test' in arrays else 'y_test'}")
    x = _features(name, "x", arrays["x"])
    y = _labels(name, "y", arrays["y"], len(x))
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _features(name, "x_test", arrays["x_test"])
        y_test = _labels(name, "y_test", arrays["y_test"], len(x_test))
        if x_test.shape[1] != x.shape[1] or x_test.dtype.kind != x.dtype.kind:
            raise NeuratermError(f"{name}: x_test rows are {x_test.shape[1]} {x_test.dtype} values, "
                                 f"x rows {x.shape[1]} {x.dtype}")
    top = int(max(y.max(), y_test.max() if y_test is not None and len(y_test) else 0))
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "USiu":
            raise NeuratermError(f"{name}: class_names must be a 1-D array of strings")
        class_names = [str(v) for v in names]
    y, y_test, class_names, notes = _classes(name, y, y_test, top, class_names)
    if len(class_names) < 2:
        raise NeuratermError(f"{name}: one class only; a classifier needs at least two")
    shape = image_shape or tuple(int(d) for d in arrays["x"].shape[1:])
    return Dataset(name, x, y, x_test, y_test, class_names, shape, name, notes=notes)


def _classes(name: str, y: np.ndarray, y_test: np.ndarray | None, top: int, class_names: list[str] | None):
    """Labels 0..K-1 with every class present in the data, and their names. Labels 1..K (no 0, the
    way R and MATLAB count) are read as 0..K-1 with a note of the mapping, the names keeping the
    labels as given; any other class without a sample is refused, named (it would train an output
    that can never be right and count as F1 0 in macro-F1)."""
    samples = len(y) + (len(y_test) if y_test is not None else 0)
    if top > samples:  # more classes than samples: some have none (and counting them would take top x 8 bytes)
        raise NeuratermError(f"{name}: label {top} with {samples:,} samples; labels must run 0..K-1 with a sample "
                             f"of every class")
    counts = np.bincount(y, minlength=top + 1)
    if y_test is not None and len(y_test):
        counts = counts + np.bincount(y_test, minlength=top + 1)
    one_based = counts[0] == 0 and (counts[1:] > 0).all() and top >= 2 and \
        (class_names is None or len(class_names) == top)
    if one_based:
        names = class_names or [str(i) for i in range(1, top + 1)]
        note = (f"{name}: labels run 1..{top} (no 0); read as classes 0..{top - 1} (label k is class k-1"
                + (f", named {names[0]!r}..{names[-1]!r})" if class_names else ")"))
        return y - 1, (y_test - 1 if y_test is not None else None), names, [note]
    if class_names is not None and top >= len(class_names):
        raise NeuratermError(f"{name}: label {top} but only {len(class_names)} class names (labels run 0..K-1)")
    names = class_names or [str(i) for i in range(top + 1)]
    counts = np.pad(counts, (0, len(names) - len(counts)))
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(f"{int(k)}" + (f" ({names[k]!r})" if class_names else "") for k in empty[:5])
        raise NeuratermError(f"{name}: no sample has label {shown}{', ...' if len(empty) > 5 else ''}; labels "
                             f"must run 0..{len(names) - 1} with a sample of every class (renumber them, or "
                             f"drop the unused class names)")
    return y, y_test, names, []


def _read(path: Path, fmt: str, column: str) -> Dataset:
    if column and fmt != "csv":
        raise NeuratermError(f"{path}: '#{column}' names a CSV label column, but this is not a CSV file")
    name = str(path)
    if fmt in ("npz", "npy"):
        return from_arrays(name, _arrays(path, fmt))
    if fmt == "csv":
        x, y, class_names = csv_table.read(path, column)
        return from_arrays(name, {"x": x, "y": y, "class_names": np.array(class_names)})
    x, y, class_names, shape = image_folder.read(path)
    return from_arrays(name, {"x": x, "y": y, "class_names": np.array(class_names)}, shape)


def load(spec: str, recorded: dict | None = None) -> Dataset:
    """Read and validate your own dataset; with `recorded` (from a model folder), refuse changed data."""
    path, column = locate(spec, recorded)
    fmt = format_of(path)
    dataset = _read(path, fmt, column)
    dataset.name, dataset.source = spec, str(path)
    dataset.origin = {"path": str(path), "format": fmt, "sha256": digest(path, fmt)}
    if column:
        dataset.origin["label_column"] = column
    check(dataset.origin, recorded)
    return dataset


def check(origin: dict, recorded: dict | None) -> None:
    """Refuse data whose content differs from what the model folder recorded."""
    if recorded and recorded.get("sha256") and recorded["sha256"] != origin["sha256"]:
        raise NeuratermError(f"{origin['path']} changed since this model was trained on it (sha256 "
                             f"{recorded['sha256'][:12]}... then, {origin['sha256'][:12]}... now); "
                             f"put the original back or train a new model")


def describe(spec: str, validate: bool = False) -> Summary:
    """A description for listings: cheap by default (array headers and labels, image files counted, not
    decoded; a CSV is parsed); `validate` reads and checks everything as training would first."""
    path, column = locate(spec)
    fmt = format_of(path)
    if validate:
        d = load(spec)
        return Summary(spec, str(path), fmt, len(d.class_names), len(d.y_train),
                       0 if d.y_test is None else len(d.y_test), d.image_shape, tuple(d.class_names), tuple(d.notes))
    if fmt in ("npz", "npy"):
        arrays = _arrays(path, fmt, ("y", "y_test", "class_names"))
        headers = npy.npz_headers(path) if fmt == "npz" else {k: (a.shape, a.dtype) for k, a in
                                                               _arrays(path, fmt, ("x",)).items()}
        if "x" not in headers or "y" not in arrays:
            raise NeuratermError(f"{path}: needs arrays 'x' and 'y' (found: {', '.join(sorted(headers))})")
        labels = [arrays[k] for k in ("y", "y_test") if k in arrays and arrays[k].size]
        top = int(max(a.max() for a in labels)) if labels else -1
        one_based = labels and min(int(a.min()) for a in labels) == 1  # read as 0..K-1 (see _classes)
        classes = len(arrays["class_names"]) if "class_names" in arrays else top if one_based else top + 1
        test = len(arrays["y_test"]) if "y_test" in arrays else 0
        return Summary(spec, str(path), fmt, classes, len(arrays["y"]), test, tuple(headers["x"][0][1:]))
    if fmt == "csv":
        x, y, class_names = csv_table.read(path, column)
        return Summary(spec, str(path), fmt, len(class_names), len(y), 0, (x.shape[1],))
    classes, files = image_folder.class_files(path)
    shape: tuple[int, ...] = ()
    try:
        Image = image_folder.pillow()
        with Image.open(files[0][0]) as image:
            shape = (image.size[1], image.size[0]) + (() if image.mode in image_folder.GRAY_MODES else (3,))
    except (NeuratermError, OSError, ValueError):
        pass
    except Exception as exc:  # noqa: BLE001 - Pillow's DecompressionBombError: the size stays unknown here
        if type(exc).__name__ != "DecompressionBombError":
            raise
    return Summary(spec, str(path), fmt, len(classes), sum(len(f) for f in files), 0, shape)
