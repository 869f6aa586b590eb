"""Gaussian pixel noise for the robustness evaluation: accuracy as the inputs get noisier."""
from __future__ import annotations

import numpy as np


def gaussian(x01: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """`x + N(0, sigma^2)` on [0, 1]-scaled pixels, clipped back to [0, 1]; seeded, float32."""
    if sigma == 0:
        return x01
    rng = np.random.default_rng(seed)
    noisy = x01 + rng.standard_normal(x01.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(noisy, np.float32(0), np.float32(1), out=noisy)
