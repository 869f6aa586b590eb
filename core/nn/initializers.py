"""Weight initializers, seeded and drawn on the host in float32.

Drawing on the host with NumPy's `Generator` gives the same weights on CPU and GPU for the same
seed, which is what makes a GPU run comparable with a CPU one.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from neuraterm.core.errors import NeuratermError

Initializer = Callable[[np.random.Generator, tuple, int, int], np.ndarray]


def _uniform(rng, shape, limit):
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _normal(rng, shape, std):
    return (rng.standard_normal(size=shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": lambda rng, shape, fi, fo: np.zeros(shape, np.float32),
    "ones": lambda rng, shape, fi, fo: np.ones(shape, np.float32),
    "uniform": lambda rng, shape, fi, fo: _uniform(rng, shape, 0.05),
    "normal": lambda rng, shape, fi, fo: _normal(rng, shape, 0.05),
    "he_normal": lambda rng, shape, fi, fo: _normal(rng, shape, math.sqrt(2.0 / fi)),
    "he_uniform": lambda rng, shape, fi, fo: _uniform(rng, shape, math.sqrt(6.0 / fi)),
    "glorot_normal": lambda rng, shape, fi, fo: _normal(rng, shape, math.sqrt(2.0 / (fi + fo))),
    "glorot_uniform": lambda rng, shape, fi, fo: _uniform(rng, shape, math.sqrt(6.0 / (fi + fo))),
    "lecun_normal": lambda rng, shape, fi, fo: _normal(rng, shape, math.sqrt(1.0 / fi)),
    "lecun_uniform": lambda rng, shape, fi, fo: _uniform(rng, shape, math.sqrt(3.0 / fi)),
    # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    "torch_default": lambda rng, shape, fi, fo: _uniform(rng, shape, 1.0 / math.sqrt(fi)),
}


def resolve(name: str, activation: str | None = None) -> str:
    """'auto' picks He for the ReLU family and Glorot for saturating activations."""
    if name == "auto":
        return "glorot_uniform" if activation in ("tanh", "sigmoid", None, "none", "identity") else "he_uniform"
    return name


def initialize(name: str, rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int,
               std: float | None = None, limit: float | None = None) -> np.ndarray:
    """Draw an array of `shape`; `normal` and `uniform` accept their own std / limit."""
    if name == "normal" and std is not None:
        return _normal(rng, shape, std)
    if name == "uniform" and limit is not None:
        return _uniform(rng, shape, limit)
    if name not in INITIALIZERS:
        raise NeuratermError(f"unknown initializer {name!r}; expected auto or one of {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name](rng, shape, fan_in, fan_out)
