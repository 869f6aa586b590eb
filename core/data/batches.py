"""Mini-batch order: a seeded shuffle whose generator state is saved for exact resume.

The generator is advanced exactly once per epoch (one permutation), so saving its state at an
epoch boundary and restoring it reproduces every later epoch's order bit for bit. When the split is
a set of rows of a larger array, batches are those rows (`rows[permutation]`): the same batches a
copy of the split would give, without the copy.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from neuraterm.core.errors import NeuratermError


class BatchOrder:
    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, drop_last: bool = False,
                 rows: np.ndarray | None = None):
        if batch_size < 1:
            raise NeuratermError(f"batch size must be >= 1; got {batch_size}")
        if n < 1:
            raise NeuratermError("cannot make batches from an empty split")
        self.n, self.batch_size = n, min(batch_size, n)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rng = np.random.default_rng(seed)
        if rows is not None and len(rows) != n:
            raise ValueError(f"{len(rows)} rows for a split of {n}")
        self.rows = rows

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch(self) -> Iterator[np.ndarray]:
        """Index arrays for one epoch; the last one may be partial unless `drop_last`."""
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.rows is not None:
            order = self.rows[order]
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) < self.batch_size and self.drop_last:
                return
            yield idx

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
