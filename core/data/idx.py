"""The IDX format of MNIST and its siblings, parsed with NumPy alone.

Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one big-endian
uint32 per dimension; the data follows. Plain and gzip files are both accepted, and every way a
file can be wrong is reported with its name.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from neuraterm.core.errors import NeuratermError


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4:
        raise NeuratermError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise NeuratermError(f"{name}: not an IDX uint8 file (magic {raw[:4].hex()}, expected 000008xx)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise NeuratermError(f"{name}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise NeuratermError(f"{name}: IDX header promises {expected:,} bytes of data for shape {dims}, "
                             f"file holds {len(raw) - header:,} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_bytes(path: Path) -> bytes:
    """A file's contents, gunzipped when it is a gzip file (by magic, not by name)."""
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise NeuratermError(f"{path}: cannot read ({exc})") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))


def read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images flattened to (N, H*W) uint8 and labels (N,), checked to have the same count."""
    x, y = read_idx(images), read_idx(labels)
    if y.ndim != 1:
        raise NeuratermError(f"{labels}: expected a 1-D label file, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise NeuratermError(f"{images} holds {x.shape[0]:,} images but {labels} holds {y.shape[0]:,} labels")
    return x.reshape(x.shape[0], -1), y
