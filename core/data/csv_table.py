"""A CSV file as a dataset: one sample per line, a label column, numeric features.

The label column is the first one unless named (`data.csv#species`, which needs a header line).
Labels may be words or numbers; classes are their sorted distinct values. Features are parsed by
NumPy's C reader a block of lines at a time into an array sized from the line count, as uint8 when
every value is an integer in 0..255 (pixels, as in the CSV releases of MNIST: a quarter of float32's
size), else float32, so a large file never sits in memory as text and float64 at once.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from neuraterm.core.errors import NeuratermError

BLOCK = 4096  # lines per parse


def split_spec(spec: str) -> tuple[str, str]:
    """`data.csv#species` -> ("data.csv", "species"); a plain path names no column."""
    if "#" in spec and not Path(spec).expanduser().exists():
        path, column = spec.rsplit("#", 1)
        return path, column
    return spec, ""


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _layout(path: Path, first: str, label_column: str) -> tuple[str, bool, list[str], int]:
    """Delimiter, whether the first line is a header, the column names and the label's index."""
    delimiter = "," if "," in first or not ("\t" in first or ";" in first) else ("\t" if "\t" in first else ";")
    fields = next(csv.reader([first], delimiter=delimiter))
    if label_column:
        if label_column not in fields:
            raise NeuratermError(f"{path}: no column named {label_column!r} in the first line "
                                 f"(columns: {', '.join(fields[:12])}{', ...' if len(fields) > 12 else ''})")
        return delimiter, True, fields, fields.index(label_column)
    header = not all(_is_number(f) for f in fields[1:])
    return delimiter, header, fields if header else [], 0


def _labels(lines: list[str], delimiter: str, k: int) -> list[str]:
    if any('"' in line for line in lines):
        return [row[k] if len(row) > k else "" for row in csv.reader(lines, delimiter=delimiter)]
    return [parts[k] if len(parts) > k else "" for parts in (line.split(delimiter, k + 1) for line in lines)]


def read(path: Path, label_column: str = "") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (uint8 pixels or float32), labels 0..K-1 and the K class names, in file order."""
    try:
        with open(path, "rb") as fh:
            line_count = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b"")) + 1
            size = fh.tell()
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise NeuratermError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        first = fh.readline().rstrip("\r\n")
        if not first.strip():
            raise NeuratermError(f"{path}: empty CSV file")
        delimiter, header, names, k = _layout(path, first, label_column)
        width = len(next(csv.reader([first], delimiter=delimiter)))
        if width < 2:
            raise NeuratermError(f"{path}: one column only; a CSV dataset needs a label column and features")
        usecols = [c for c in range(width) if c != k]
        # A data line of `width` fields holds at least 2 * width - 1 bytes and a newline: the array is
        # sized from what the file can hold, not from a line count that blank lines can inflate.
        rows = min(line_count, size // (2 * width) + 1)
        x = np.empty((rows, width - 1), np.uint8)
        labels: list[str] = []
        line_no = 1 if header else 0
        pending = [] if header else [first]
        n = 0
        while True:
            raw = [fh.readline() for _ in range(BLOCK - len(pending))]
            at_end = not raw or raw[-1] == ""  # readline gives "" only past the last line
            block = [line.rstrip("\r\n") for line in pending + raw if line.strip()]
            pending = []
            if not block:
                if at_end:
                    break
                continue
            ragged = _ragged(block, delimiter, width)
            if ragged is not None:
                raise NeuratermError(f"{path}: line {line_no + ragged[0] + 1} has {ragged[1]} fields; every line "
                                     f"needs {width}, as the first line has")
            try:
                values = np.loadtxt(io.StringIO("\n".join(block)), delimiter=delimiter, usecols=usecols,
                                    dtype=np.float64, ndmin=2, quotechar='"')
            except ValueError as exc:
                raise NeuratermError(f"{path}: {_where(str(exc), line_no)}") from None
            if n + len(values) > len(x):  # cannot happen for a well-formed file; never write past the end
                raise NeuratermError(f"{path}: more data lines than its size allows")
            if x.dtype == np.uint8 and not _pixels(values):
                x = _widen(x, n)
            x[n:n + len(values)] = values
            labels += _labels(block, delimiter, k)
            n += len(values)
            line_no += len(block)
            if at_end:
                break
    if n == 0:
        raise NeuratermError(f"{path}: no data lines")
    return x[:n], *_classes(path, labels, 2 if header else 1)


def _ragged(lines: list[str], delimiter: str, width: int) -> tuple[int, int] | None:
    """The first line (index, field count) whose field count is not `width`: NumPy reads the columns
    it is told and silently drops an extra field, and words a missing one as a column index."""
    if any('"' in line for line in lines):
        counts = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
    else:
        counts = [line.count(delimiter) + 1 for line in lines]
    return next(((i, n) for i, n in enumerate(counts) if n != width), None)


def _where(message: str, line_offset: int) -> str:
    """NumPy's 'at row R, column C' made a line of the file (1-based, header counted)."""
    message = message.rstrip(".")
    match = re.search(r"at row (\d+), column (\d+)", message)
    if match:
        row, column = int(match[1]), int(match[2])
        message = message[:match.start()] + f"on line {line_offset + row + 1}, column {column}"
    return message


def _pixels(values: np.ndarray) -> bool:
    return bool(np.all((values >= 0) & (values <= 255) & (values == np.floor(values))))


def _widen(x: np.ndarray, filled: int) -> np.ndarray:
    wide = np.empty(x.shape, np.float32)
    wide[:filled] = x[:filled]
    return wide


def _classes(path: Path, labels: list[str], first_line: int) -> tuple[np.ndarray, list[str]]:
    values = np.array([label.strip().strip('"') for label in labels])
    if np.any(values == ""):
        raise NeuratermError(f"{path}: line {int(np.argmax(values == '')) + first_line}: empty label")
    names, y = np.unique(values, return_inverse=True)
    if all(_is_number(v) for v in names):  # numbers sort as numbers: 2 before 10
        order = np.argsort([float(v) for v in names], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        names, y = names[order], rank[y]
    return y.astype(np.int64), [str(v) for v in names]
