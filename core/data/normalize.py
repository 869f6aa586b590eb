"""Turning stored values into float32 inputs, with statistics that travel with the model.

'scale' maps uint8 pixels to [0, 1] (divide by 255) and leaves float features in their own units.
'standardize' also subtracts a per-feature mean and divides by a deviation, both computed on the
training split only (no test leakage) and saved in the model folder, so evaluation later applies the
very same transform. For pixels that deviation is one number for the whole image: per-pixel deviations
of border pixels that are almost always blank go down to 0.0004, and dividing by them magnified
noise there thousands of times (Fashion-MNIST: 90% clean, 52% at noise sigma 0.1). Float features
keep one deviation each, since their columns have units of their own; constant ones get 1.

The statistics are accumulated over chunks of rows in float64 (Chan et al.'s pairwise update of the
mean and the sum of squared deviations), so they cost a few megabytes whatever the data's size and
agree with a one-shot float64 computation to float32 rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuraterm.core.errors import NeuratermError

MODES = ("scale", "standardize")
CHUNK_ROWS = 1024  # 6 MiB of float64 per chunk: stays in cache (8192 rows took twice as long)


def unit(x) -> np.float32:
    """The factor that takes stored values to the units noise and statistics are expressed in."""
    return np.float32(1 / 255) if x.dtype == np.uint8 else np.float32(1)


def moments(x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance (float64) of `x[rows] * unit(x)`, chunk by chunk."""
    n_rows = len(x) if rows is None else len(rows)
    features = x.shape[1]
    mean, m2, count = np.zeros(features), np.zeros(features), 0
    buffer = np.empty((min(CHUNK_ROWS, max(n_rows, 1)), features), np.float64)
    for start in range(0, n_rows, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n_rows)
        chunk = x[start:stop] if rows is None else np.take(x, rows[start:stop], axis=0)
        block = buffer[:stop - start]
        np.multiply(chunk, unit(x), out=block, dtype=np.float64)
        n = stop - start
        chunk_mean = block.mean(axis=0)
        block -= chunk_mean
        np.square(block, out=block)
        chunk_m2 = block.sum(axis=0)
        delta = chunk_mean - mean
        total = count + n
        mean += delta * (n / total)
        m2 += chunk_m2 + delta * delta * (count * n / total)
        count = total
    return mean, m2 / max(count, 1)


@dataclass
class Normalizer:
    mode: str = "scale"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, mode: str, x: np.ndarray, rows: np.ndarray | None = None) -> "Normalizer":
        """Statistics of the rows `rows` of `x` (all rows when None): uint8 pixels or float features."""
        if mode not in MODES:
            raise NeuratermError(f"unknown normalization {mode!r}; expected one of {', '.join(MODES)}")
        if mode == "scale":
            return cls(mode)
        mean, var = moments(x, rows)
        if x.dtype == np.uint8:
            std = np.full_like(var, np.sqrt(var.mean()))
        else:
            std = np.sqrt(var)
        std = np.where(std > 1e-6 * np.maximum(1, np.abs(mean)), std, 1)
        return cls(mode, mean.astype(np.float32), std.astype(np.float32))

    def __call__(self, x, xp=np, out=None):
        """float32 inputs from stored values (works on NumPy and CuPy arrays alike)."""
        return self.standardize(xp.multiply(x, xp.float32(unit(x)), out=out, dtype=xp.float32), xp)

    def standardize(self, x_unit, xp=np):
        """The per-feature part alone, in place, for inputs already in units (noisy test images)."""
        if self.mode == "standardize":
            x_unit -= xp.asarray(self.mean)
            x_unit /= xp.asarray(self.std)
        return x_unit

    def arrays(self) -> dict[str, np.ndarray]:
        return {} if self.mode == "scale" else {"mean": self.mean, "std": self.std}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back the statistics saved with a model (the inverse of `arrays`)."""
        if arrays:
            self.mean, self.std = arrays["mean"], arrays["std"]
