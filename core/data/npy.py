"""Arrays from `.npy` files and `.npz` archives, never unpickled, memory-mapped where stored plainly.

A `.npy` file, or an `.npz` member written by `numpy.savez` (stored, not compressed), is mapped
read-only from the disk: no copy, no load time, and data larger than memory is paged in as batches
touch it (advised as random access, so a fault reads the row's page, not a readahead window). A compressed member (`savez_compressed`) is decompressed chunk by chunk into one array.
Arrays of Python objects are refused: reading them would mean unpickling.
"""
from __future__ import annotations

import math
import mmap
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from neuraterm.core.errors import NeuratermError

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (fixed fields), name length, extra length


def _read_header(stream, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except ValueError as exc:
        raise NeuratermError(f"{name}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise NeuratermError(f"{name}: holds Python objects (pickled data); neuraterm never unpickles, "
                             f"store numbers or fixed-width strings")
    return shape, fortran, dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: a header's (1e10, 1e10) does not wrap around


def available_memory() -> int | None:
    """Bytes this machine can still give (MemAvailable), None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None


def _check_size(name: str, shape, dtype: np.dtype, holds: int, compressed: bool) -> None:
    """Before anything is allocated: a header's shape must fit in the bytes the file (or the archive
    member, uncompressed) holds, and a compressed member must fit in the memory available."""
    need = _nbytes(shape, dtype)
    if need > holds:
        raise NeuratermError(f"{name}: its header says {tuple(shape)} {dtype} ({need:,} bytes) but the "
                             f"{'member' if compressed else 'file'} holds {max(holds, 0):,} bytes of data")
    have = available_memory() if compressed else None
    if have is not None and need > have:
        raise NeuratermError(f"{name}: {tuple(shape)} {dtype} needs {need / 2**30:,.1f} GiB once decompressed; "
                             f"{have / 2**30:,.1f} GiB are available")


def load_npy(path: Path) -> np.ndarray:
    """A `.npy` file, memory-mapped."""
    with open(path, "rb") as fh:
        shape, fortran, dtype = _read_header(fh, str(path))
        offset = fh.tell()
        _check_size(str(path), shape, dtype, os.fstat(fh.fileno()).st_size - offset, compressed=False)
    return _map(path, dtype, shape, fortran, offset)


def _map(path: Path, dtype: np.dtype, shape: tuple[int, ...], fortran: bool, offset: int) -> np.ndarray:
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    try:
        array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except ValueError as exc:  # the file is shorter than its header says
        raise NeuratermError(f"{path}: truncated array data ({exc})") from None
    if hasattr(mmap, "MADV_RANDOM") and getattr(array, "_mmap", None) is not None:
        # Batches touch rows in shuffled order: without this, each fault on an evicted page read ahead
        # ~100 KB for one 784-byte row, and data larger than memory read the disk ~700 times an epoch.
        array._mmap.madvise(mmap.MADV_RANDOM)
    return array


def npz_members(path: Path, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` archive by key (those in `only`, if given): mapped when stored, read when
    compressed. `npz_headers` gives every member's shape and dtype without reading any data."""
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            arrays = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key, name = info.filename[:-4], f"{path}:{info.filename}"
                if only is not None and key not in only:
                    continue
                with zf.open(info) as member:
                    shape, fortran, dtype = _read_header(member, name)
                    _check_size(name, shape, dtype, info.file_size - member.tell(),
                                compressed=info.compress_type != zipfile.ZIP_STORED)
                    if info.compress_type == zipfile.ZIP_STORED:
                        raw.seek(info.header_offset)
                        signature, name_len, extra_len = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
                        if signature != b"PK\x03\x04":
                            raise NeuratermError(f"{name}: damaged archive entry")
                        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + member.tell()
                        arrays[key] = _map(path, dtype, shape, fortran, start)
                    else:
                        arrays[key] = _read_compressed(member, name, shape, fortran, dtype)
            return arrays
    except (zipfile.BadZipFile, OSError, EOFError, struct.error) as exc:
        raise NeuratermError(f"{path}: not a readable .npz archive ({exc})") from None


def _read_compressed(member, name: str, shape, fortran: bool, dtype: np.dtype) -> np.ndarray:
    """Decompressed into one array sized from the header, which `_check_size` has bounded."""
    out = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(out.reshape(-1, order="A")).cast("B")
    done = 0
    while done < len(view):
        n = member.readinto(view[done:done + (1 << 24)])
        if not n:
            raise NeuratermError(f"{name}: truncated array data")
        done += n
    return out


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every member of an `.npz` archive, from the headers alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            headers = {}
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as member:
                        shape, _, dtype = _read_header(member, f"{path}:{info.filename}")
                    headers[info.filename[:-4]] = (shape, dtype)
            return headers
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise NeuratermError(f"{path}: not a readable .npz archive ({exc})") from None
