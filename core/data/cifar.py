"""CIFAR-10/100 from their binary releases: fixed-size records, no pickle involved.

A CIFAR-10 record is 1 label byte + 3072 pixel bytes; CIFAR-100 has a coarse and a fine label
byte first. Pixels are planar (1024 red, 1024 green, 1024 blue), kept that way: an MLP does not care.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from neuraterm.core.errors import NeuratermError

PIXELS = 3072


def parse_records(raw: bytes, name: str, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    size = label_bytes + PIXELS
    if len(raw) == 0 or len(raw) % size:
        raise NeuratermError(f"{name}: {len(raw):,} bytes is not a whole number of {size}-byte CIFAR records")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    return records[:, label_bytes:].copy(), records[:, label_bytes - 1].copy()


def read_archive(path: Path, members: dict[str, list[str]], label_bytes: int, names_member: str):
    """Read split -> member files out of the release tarball; returns arrays and class names."""
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            by_name = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for split, files in members.items():
                parts = []
                for file in files:
                    if file not in by_name:
                        raise NeuratermError(f"{path}: archive has no {file}")
                    parts.append(parse_records(tar.extractfile(by_name[file]).read(), f"{path}:{file}", label_bytes))
                out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            names_raw = tar.extractfile(by_name[names_member]).read().decode() if names_member in by_name else ""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise NeuratermError(f"{path}: not a readable CIFAR archive ({exc})") from None
    names = [line.strip() for line in names_raw.splitlines() if line.strip()]
    return out, names
