"""The IDX format of MNIST and its siblings, read with NumPy alone, straight into the final array.

Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one big-endian
uint32 per dimension; the data follows. Plain and gzip files are both accepted (by magic, not by
name), as are members of an archive. Several files (a train and a test split) are read into one
array allocated from their headers, chunk by chunk, so the file's bytes are never held beside the
decoded images. Every way a file can be wrong is reported with its name.
"""
from __future__ import annotations

import contextlib
import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np

from neuraterm.core.errors import NeuratermError

CHUNK = 1 << 24
# A file, or an archive member as (its name for messages, a function that opens it).
Source = Union[Path, str, tuple[str, Callable[[], BinaryIO]]]


def _open(source: Source, stack: contextlib.ExitStack) -> tuple[BinaryIO, str]:
    if isinstance(source, tuple):
        name, opener = source
        raw = stack.enter_context(opener())
    else:
        name = str(source)
        raw = stack.enter_context(open(source, "rb"))
    if raw.peek(2)[:2] == b"\x1f\x8b":
        raw = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw, name


MAX_DIMS = 8


def _header(stream: BinaryIO, name: str) -> tuple[int, ...]:
    head = stream.read(4)
    if len(head) < 4:
        raise NeuratermError(f"{name}: not an IDX file (only {len(head)} bytes)")
    if head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        raise NeuratermError(f"{name}: not an IDX uint8 file (magic {head.hex()}, expected 000008xx)")
    if head[3] > MAX_DIMS:  # NumPy refuses more than 64 with a bare ValueError; images and labels need 1 to 4
        raise NeuratermError(f"{name}: IDX header says {head[3]} dimensions; at most {MAX_DIMS} are read")
    raw_dims = stream.read(4 * head[3])
    if head[3] == 0 or len(raw_dims) < 4 * head[3]:
        raise NeuratermError(f"{name}: truncated IDX header")
    return tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))


def _fill(stream: BinaryIO, name: str, out: np.ndarray, dims: tuple[int, ...]) -> None:
    view = memoryview(out.reshape(-1)).cast("B")
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:done + CHUNK])
        if not n:
            break
        done += n
    if done < len(view) or stream.read(1):
        held = f"{done:,}" if done < len(view) else "more"
        raise NeuratermError(f"{name}: IDX header promises {len(view):,} bytes of data for shape {dims}, "
                             f"file holds {held} (truncated or corrupt)")


def read_stack(sources: list[Source]) -> tuple[np.ndarray, list[int]]:
    """IDX files of equal row shape as one uint8 array (rows, features) and each file's row count."""
    try:
        with contextlib.ExitStack() as stack:
            opened = [_open(s, stack) for s in sources]
            dims = [_header(stream, name) for stream, name in opened]
            features = {int(np.prod(d[1:])) for d in dims}
            if len(features) > 1:
                raise NeuratermError(f"{opened[0][1]} and {opened[1][1]}: images of different sizes")
            counts = [d[0] for d in dims]
            out = np.empty((sum(counts), features.pop()), dtype=np.uint8)
            start = 0
            for (stream, name), d, n in zip(opened, dims, counts):
                _fill(stream, name, out[start:start + n], d)
                start += n
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise NeuratermError(f"{sources[0] if not isinstance(sources[0], tuple) else sources[0][0]}: "
                             f"cannot read ({exc})") from None
    return out, counts


def read_idx(source: Source) -> np.ndarray:
    """One IDX file in the shape its header gives."""
    try:
        with contextlib.ExitStack() as stack:
            stream, name = _open(source, stack)
            dims = _header(stream, name)
            out = np.empty(dims, dtype=np.uint8)
            _fill(stream, name, out, dims)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise NeuratermError(f"{source if not isinstance(source, tuple) else source[0]}: cannot read ({exc})") from None
    return out


def read_pairs(pairs: list[tuple[Source, Source]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(images, labels) file pairs as one image array (N, H*W), one label array and each pair's count."""
    x, counts = read_stack([images for images, _ in pairs])
    labels = []
    for (images, label_source), n in zip(pairs, counts):
        y = read_idx(label_source)
        name = label_source[0] if isinstance(label_source, tuple) else label_source
        if y.ndim != 1:
            raise NeuratermError(f"{name}: expected a 1-D label file, got shape {y.shape}")
        if len(y) != n:
            image_name = images[0] if isinstance(images, tuple) else images
            raise NeuratermError(f"{image_name} holds {n:,} images but {name} holds {len(y):,} labels")
        labels.append(y)
    return x, np.concatenate(labels).astype(np.int64), counts


def read_pair(images: Source, labels: Source) -> tuple[np.ndarray, np.ndarray]:
    """Images flattened to (N, H*W) uint8 and labels (N,), checked to have the same count."""
    x, y, _ = read_pairs([(images, labels)])
    return x, y
