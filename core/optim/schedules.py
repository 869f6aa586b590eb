"""Learning-rate schedules, stepped once per epoch.

A schedule is a pure function of the epoch number (optax's view), so a resumed run needs only the
epoch to continue exactly. ReduceLROnPlateau is the exception: it reacts to a metric, so its
small state (best value, bad-epoch count, current LR) is a plain dict saved with the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

from neuraterm.core.errors import NeuratermError

Schedule = Callable[[int], float]


def constant(lr0: float) -> Schedule:
    return lambda epoch: lr0


def linear(lr0: float, epochs: int, lr_min: float) -> Schedule:
    """`max(lr_min, lr0 * (1 - t / T))`: linear decay that saturates at `lr_min`."""
    return lambda epoch: max(lr_min, lr0 * (1.0 - epoch / epochs))


def exponential(lr0: float, gamma: float) -> Schedule:
    return lambda epoch: lr0 * gamma ** epoch


def step(lr0: float, step_size: int, gamma: float) -> Schedule:
    return lambda epoch: lr0 * gamma ** (epoch // step_size)


def cosine(lr0: float, epochs: int, lr_min: float, warmup: int = 0) -> Schedule:
    """Linear warm-up over `warmup` epochs, then half a cosine from `lr0` down to `lr_min`."""
    def lr(epoch: int) -> float:
        if epoch < warmup:
            return lr0 * (epoch + 1) / (warmup + 1)
        span = max(epochs - warmup, 1)
        return lr_min + 0.5 * (lr0 - lr_min) * (1.0 + math.cos(math.pi * min(epoch - warmup, span) / span))
    return lr


SCHEDULES = ("constant", "linear", "exponential", "step", "cosine", "plateau")


def build(name: str, lr0: float, epochs: int, **options) -> Schedule:
    """A schedule by name; 'plateau' is driven by `ReduceLROnPlateau` and is constant here. The defaults
    of the options a preset may leave out are here, in one place."""
    makers = {
        "constant": lambda: constant(lr0),
        "plateau": lambda: constant(lr0),
        "linear": lambda: linear(lr0, options.get("decay_epochs", epochs), options.get("lr_min", 0.0)),
        "exponential": lambda: exponential(lr0, options.get("gamma", 0.95)),
        "step": lambda: step(lr0, options.get("step_size", 10), options.get("gamma", 0.1)),
        "cosine": lambda: cosine(lr0, epochs, options.get("lr_min", 0.0), options.get("warmup", 0)),
    }
    if name not in makers:
        raise NeuratermError(f"unknown schedule {name!r}; expected one of {', '.join(makers)}")
    return makers[name]()


@dataclass
class ReduceLROnPlateau:
    """Multiply the LR by `factor` after `patience` epochs without relative improvement of `threshold`.

    Same rule as PyTorch's default ('min' mode, relative threshold 1e-4).
    """
    lr: float
    factor: float = 0.1
    patience: int = 10
    min_lr: float = 0.0
    threshold: float = 1e-4
    mode: str = "min"
    best: float | None = None
    bad_epochs: int = 0

    def step(self, value: float) -> float:
        improved = self.best is None or (
            value < self.best * (1 - self.threshold) if self.mode == "min" else value > self.best * (1 + self.threshold))
        if improved:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:
                self.lr = new
            self.bad_epochs = 0
        return self.lr

    def state(self) -> dict:
        return asdict(self)
