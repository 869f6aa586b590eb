"""Turning uint8 pixels into float32 inputs, with statistics that travel with the model.

'scale' divides by 255; 'standardize' also subtracts a per-feature mean and divides by a
per-feature std computed on the training split only (no test leakage), saved in the model folder
so evaluation later applies the very same transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuraterm.core.errors import NeuratermError

MODES = ("scale", "standardize")


@dataclass
class Normalizer:
    mode: str = "scale"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, mode: str, x_train_uint8: np.ndarray) -> "Normalizer":
        if mode not in MODES:
            raise NeuratermError(f"unknown normalization {mode!r}; expected one of {', '.join(MODES)}")
        if mode == "scale":
            return cls(mode)
        x = x_train_uint8.astype(np.float32) / np.float32(255)
        std = x.std(axis=0)
        return cls(mode, x.mean(axis=0), np.where(std > 1e-6, std, np.float32(1)).astype(np.float32))

    def __call__(self, x_uint8, xp=np, out=None):
        """float32 inputs from uint8 pixels (works on NumPy and CuPy arrays alike)."""
        return self.standardize(xp.multiply(x_uint8, xp.float32(1 / 255), out=out, dtype=xp.float32), xp)

    def standardize(self, x01, xp=np):
        """The per-feature part alone, in place, for inputs already on [0, 1] (noisy test images)."""
        if self.mode == "standardize":
            x01 -= xp.asarray(self.mean)
            x01 /= xp.asarray(self.std)
        return x01

    def arrays(self) -> dict[str, np.ndarray]:
        return {} if self.mode == "scale" else {"mean": self.mean, "std": self.std}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back the statistics saved with a model (the inverse of `arrays`)."""
        if arrays:
            self.mean, self.std = arrays["mean"], arrays["std"]
