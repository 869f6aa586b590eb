"""A dataset as every loader returns it, so the rest of the program has one code path."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """A dataset as loaded: images (N, D), uint8 pixels or float features, int64 labels; test split may be absent."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]
    image_shape: tuple[int, ...]
    source: str
    joined: np.ndarray | None = None  # one array holding x_train then x_test, where they were read that way
    origin: dict | None = None  # your own data: its path, format and content hash
    notes: list = field(default_factory=list)  # one line each: what was read differently from how it was stored

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and test rows together: the array they were read into, or else a concatenated copy."""
        if self.x_test is None:
            return self.x_train, self.y_train
        x = self.joined if self.joined is not None else np.concatenate([self.x_train, self.x_test])
        return x, np.concatenate([self.y_train, self.y_test])


def joined(name: str, x: np.ndarray, y: np.ndarray, n_train: int, class_names: list[str],
           image_shape: tuple[int, ...], source: str) -> Dataset:
    """A Dataset whose train and test splits are the two parts of one array (pooling needs no copy)."""
    return Dataset(name, x[:n_train], y[:n_train], x[n_train:], y[n_train:], class_names, image_shape, source, x)
