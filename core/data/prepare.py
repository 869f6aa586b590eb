"""From a loaded `Dataset` to train/validation/test splits and a fitted normalizer, without copies.

A split is a sorted array of row indices into one of the dataset's image arrays, never a copy of
its pixels: copies per split (and a second copy for pooling) had a run hold 2-9x the raw bytes.
Images stay as stored (uint8 pixels are a quarter of float32's size) and are normalized as batches
are gathered. With a published test split, validation is carved out of train; without one (the
embedded set, most of your own data) or with `pool`, train, validation and test are all stratified
cuts of the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.data.registry import Dataset
from neuraterm.core.data.splits import class_counts, stratified_split, stratified_subset
from neuraterm.core.errors import NeuratermError


class Rows:
    """Rows of an array picked by an index array, read a slice at a time (what evaluation needs)."""

    def __init__(self, images: np.ndarray, rows: np.ndarray):
        self.images, self.rows = images, rows
        self.first = int(rows[0]) if len(rows) else 0
        self.contiguous = len(rows) == 0 or int(rows[-1]) - self.first == len(rows) - 1

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.images.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    def __getitem__(self, part: slice) -> np.ndarray:
        if not isinstance(part, slice):
            raise TypeError("rows of a split are read by slices")
        if self.contiguous:
            start, stop, step = part.indices(len(self.rows))
            return self.images[self.first + start:self.first + stop:step]
        return np.take(self.images, self.rows[part], axis=0)

    def __array__(self, dtype=None, copy=None):
        """All the rows as one array (a copy unless they are contiguous), for small data and tests."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)


@dataclass
class Split:
    images: np.ndarray  # (N, D) every row of the array this split draws from, shared with other splits
    labels: np.ndarray  # (N,) int64, likewise shared
    rows: np.ndarray  # this split's rows, ascending
    y: np.ndarray = field(init=False)  # this split's labels (a copy: labels are small)

    def __post_init__(self):
        self.y = self.labels[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def x(self) -> Rows:
        return Rows(self.images, self.rows)


@dataclass
class Prepared:
    train: Split
    val: Split
    test: Split
    class_names: list[str]
    normalizer: Normalizer
    origin: dict | None = None  # path and content hash of your own data (None for a named dataset)
    notes: list = field(default_factory=list)  # one line each, said before training (a remapping, an empty class)
    image_shape: tuple = ()  # one sample's shape as stored (28 x 28), before it is flattened into a row

    @property
    def num_features(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, list[int]]:
        """Samples per class in each split, for display (imbalance matters)."""
        c = self.num_classes
        return {name: class_counts(s.y, c).tolist() for name, s in
                (("train", self.train), ("val", self.val), ("test", self.test))}


def prepare(dataset: Dataset, val_fraction: float = 0.1, test_fraction: float = 0.2, limit: int = 0,
            normalize: str = "scale", seed: int = 0, pool: bool = False) -> Prepared:
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise NeuratermError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must leave data to train on")
    images, labels = dataset.pooled() if pool else (dataset.x_train, dataset.y_train)
    pick = stratified_subset(labels, limit, seed) if limit else np.arange(len(labels))
    y = labels[pick]
    if dataset.x_test is None or pool:
        train, val, test = stratified_split(y, [1 - val_fraction - test_fraction, val_fraction, test_fraction], seed)
        test_split = Split(images, labels, pick[test])
    else:
        train, val = stratified_split(y, [1 - val_fraction, val_fraction], seed)
        test_split = Split(dataset.x_test, dataset.y_test, np.arange(len(dataset.y_test)))
    if len(train) == 0:
        raise NeuratermError(f"{dataset.name}: no training samples left after the split")
    train_split = Split(images, labels, pick[train])
    return Prepared(train_split, Split(images, labels, pick[val]), test_split, list(dataset.class_names),
                    Normalizer.fit(normalize, images, train_split.rows), dataset.origin, list(dataset.notes),
                    tuple(int(d) for d in dataset.image_shape))
