"""Inverted dropout: scale kept units by 1/(1-p) in training so evaluation needs no rescaling.

The mask comes from the layer's own seeded generator, whose state is saved with a checkpoint
so a resumed run draws the same masks it would have drawn.
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.nn.module import Module
from neuraterm.core.nn.tensor import Tensor


def dropout(x: Tensor, mask) -> Tensor:
    """`x * mask`, where `mask` already holds 0 or 1/(1-p); the gradient uses the same mask."""
    return Tensor.from_op(x.data * mask, (x,), lambda g: x.accumulate(g * mask))


class Dropout(Module):
    def __init__(self, p: float, seed: int = 0, xp=np):
        self.p = p
        self.seed = seed  # also keys the GPU fused step's counter-based masks
        self.xp = xp
        self.rng = xp.random.default_rng(seed)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        t = x.dtype.type
        keep = self.rng.random(x.shape, dtype=x.dtype) >= t(self.p)
        return dropout(x, keep.astype(x.dtype) * t(1.0 / (1.0 - self.p)))

    def get_rng_state(self) -> dict | None:
        """The mask generator's state for a checkpoint; NumPy's is a plain dict. CuPy's generator
        exposes no state, so the autograd step on a GPU draws fresh masks after a resume (the fused
        step's masks are a hash of seed and step count, and resume exactly there too)."""
        state = getattr(getattr(self.rng, "bit_generator", None), "state", None)
        return state if isinstance(state, dict) else None

    def set_rng_state(self, state: dict | None) -> None:
        if isinstance(state, dict) and isinstance(self.get_rng_state(), dict):
            self.rng.bit_generator.state = state

    def __repr__(self) -> str:
        return f"Dropout({self.p})"
