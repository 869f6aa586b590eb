"""Smoothing for the step-loss chart: a debiased exponential moving average.

Each output depends only on the values before it, so new points never rewrite the curve already
drawn (`smooth(x[:n]) == smooth(x)[:n]`), and the curve can be extended as points arrive instead of
recomputed. Dividing by `1 - weight**t` removes the pull towards zero that a plain EMA started at
zero has, so the first points are not biased low (as in Adam, or TensorBoard's smoothing).
"""
from __future__ import annotations

WEIGHTS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)  # the smoothing key steps through these


class Smoother:
    """The smoothed series so far, extended in place as raw values arrive."""

    def __init__(self, weight: float):
        if not 0 <= weight < 1:
            raise ValueError(f"smoothing weight must be in [0, 1), not {weight}")
        self.weight = weight
        self.values: list[float] = []
        self._average = 0.0
        self._steps = 0

    def extend(self, raw) -> list[float]:
        w = self.weight
        for x in raw:
            if x != x:  # NaN: skip it, keep the average
                self.values.append(float("nan"))
                continue
            self._steps += 1
            self._average = w * self._average + (1 - w) * x
            self.values.append(self._average / (1 - w ** self._steps))
        return self.values


def smooth(values, weight: float) -> list[float]:
    return list(Smoother(weight).extend(values))
