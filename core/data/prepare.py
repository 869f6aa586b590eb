"""From a loaded `Dataset` to train/validation/test index splits and a fitted normalizer.

Images stay uint8 (a quarter of the memory); batches are normalized as they are gathered. With a
published test split, validation is carved out of train; without one (the embedded set), train,
validation and test are all stratified cuts of the same pool.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.data.registry import Dataset
from neuraterm.core.data.splits import class_counts, stratified_split, stratified_subset
from neuraterm.core.errors import NeuratermError


@dataclass
class Split:
    x: np.ndarray  # uint8 (N, D)
    y: np.ndarray  # int64 (N,)


@dataclass
class Prepared:
    train: Split
    val: Split
    test: Split
    class_names: list[str]
    normalizer: Normalizer

    @property
    def num_features(self) -> int:
        return int(self.train.x.shape[1])

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
    x, y = dataset.x_train, dataset.y_train
    if pool and dataset.x_test is not None:
        x, y = np.concatenate([x, dataset.x_test]), np.concatenate([y, dataset.y_test])
    if limit:
        keep = stratified_subset(y, limit, seed)
        x, y = x[keep], y[keep]
    if dataset.x_test is None or pool:
        train, val, test = stratified_split(y, [1 - val_fraction - test_fraction, val_fraction, test_fraction], seed)
        test_split = Split(x[test], y[test])
    else:
        train, val = stratified_split(y, [1 - val_fraction, val_fraction], seed)
        test_split = Split(dataset.x_test, dataset.y_test)
    if len(train) == 0:
        raise NeuratermError(f"{dataset.name}: no training samples left after the split")
    x_train = x[train]
    return Prepared(Split(x_train, y[train]), Split(x[val], y[val]), test_split, list(dataset.class_names),
                    Normalizer.fit(normalize, x_train))
