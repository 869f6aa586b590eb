"""Gaussian noise for the robustness evaluation: accuracy as the inputs get noisier.

Sigma is in the units `normalize.unit` gives the stored values: for uint8 pixels, the [0, 1] pixel
scale (sigma 0.1 is about 25 gray levels), with noisy pixels clipped back to [0, 1]; for float
features, the data's own units, unclipped. The noise is drawn before any standardization, so it
means the same whatever the model's normalization.
"""
from __future__ import annotations

import numpy as np


def gaussian(x_unit: np.ndarray, sigma: float, seed: int = 0, clip: bool = True) -> np.ndarray:
    """`x + N(0, sigma^2)` on values in units, clipped to [0, 1] for pixels; seeded, float32."""
    if sigma == 0:
        return x_unit
    return Gaussian(sigma, seed, clip)(x_unit)


class Gaussian:
    """Noise for consecutive batches from one seeded stream: batch by batch equals all at once."""

    def __init__(self, sigma: float, seed: int = 0, clip: bool = True):
        self.sigma, self.clip = np.float32(sigma), clip
        self.rng = np.random.default_rng(seed)

    def __call__(self, x_unit: np.ndarray) -> np.ndarray:
        noisy = x_unit + self.rng.standard_normal(x_unit.shape, dtype=np.float32) * self.sigma
        return np.clip(noisy, np.float32(0), np.float32(1), out=noisy) if self.clip else noisy
