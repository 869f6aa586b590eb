"""The training step the trainer runs: the fused step where it covers the model, autograd elsewhere.

Both keep the epoch's summed loss and correct count on the compute device and hand them over only
when asked (`totals_on_host`), so a step never waits for the GPU; the trainer asks at the rate it
publishes progress and at the end of an epoch.
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.backend import to_host
from neuraterm.core.fused import ops_for
from neuraterm.core.fused.step import FusedStep, unsupported
from neuraterm.core.nn.losses import cross_entropy
from neuraterm.core.nn.tensor import Tensor


class AutogradStep:
    """The general step (any layer, batch norm included), through the autograd engine."""

    def __init__(self, model, optimizer, feeder, reason: str):
        self.model, self.optimizer, self.feeder = model, optimizer, feeder
        self.xp = feeder.xp
        self.totals = self.xp.zeros(2, self.xp.float64)
        self.reason = reason

    def describe(self) -> str:
        return f"autograd ({self.reason})"

    def begin_epoch(self, batches: list, loss_sum: float = 0.0, correct: int = 0) -> None:
        self.stream = self.feeder.stream(batches)
        self.totals[...] = self.xp.asarray(np.array([loss_sum, correct], np.float64))

    def run(self, rows: int) -> None:
        _, xb, yb = next(self.stream)
        self.optimizer.zero_grad()
        logits = self.model(Tensor(xb))
        loss = cross_entropy(logits, yb)
        loss.backward()
        self.optimizer.step()
        self.totals[0] += loss.data * rows
        self.totals[1] += (logits.data.argmax(axis=1) == yb).sum()

    def totals_on_host(self) -> tuple[float, int]:
        loss_sum, correct = to_host(self.totals)
        return float(loss_sum), int(correct)


def make_step(model, optimizer, feeder, batch_size: int, tf32: bool = False, graphs: bool = True):
    """The fused step where it covers the model and its kernels load; the autograd step otherwise,
    with the reason in its description (printed as the run's `training step:` line)."""
    reason = unsupported(model, optimizer)
    if reason is None:
        try:
            ops = ops_for(feeder.xp, tf32)
        except Exception as exc:  # e.g. no runtime compiler or cuBLAS for our kernels: still train
            lines = str(exc).strip().splitlines()
            reason = f"fused kernels unavailable: {lines[0] if lines else type(exc).__name__}"
        else:
            return FusedStep(ops, model, optimizer, feeder, batch_size, graphs)
    return AutogradStep(model, optimizer, feeder, reason)
