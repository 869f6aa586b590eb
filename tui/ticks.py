"""Round-number axis ticks that fall exactly on character rows (or columns).

A terminal chart has a dozen rows, so a tick label is only true if it sits on the very row where a
point of that value is drawn. plotext draws a value v on row `round((rows - 1) * (v - lo) / (hi - lo))`
and puts a tick label on the row its value maps to the same way. Starting the axis on a tick
(`lo`) and ending it at `lo + (rows - 1) * step / k` puts consecutive ticks exactly `k` rows apart,
so every label names its own row and a point is drawn within half a row of its value.

Steps are 1, 2, 2.5 or 5 times a power of ten; on a log axis they are whole decades.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MANTISSAS = (1, 2, 2.5, 5)
DECADE_STEPS = (1, 2, 3, 5, 10, 20, 50, 100)
EPS = 1e-9


@dataclass
class Axis:
    lo: float  # the value of the first row (or column)
    hi: float  # the value of the last one
    ticks: list[float]  # in the axis's units: values, or exponents on a log axis
    labels: list[str]


def nice_steps(smallest: float):
    """(step, mantissa, exponent) for steps of 1, 2, 2.5, 5 x 10^exponent, increasing from the first
    one >= `smallest`; the mantissa and exponent say how many digits a label needs."""
    e = math.floor(math.log10(smallest)) if smallest > 0 else 0
    while True:
        for m in MANTISSAS:
            if m * 10.0 ** e >= smallest * (1 - EPS):
                yield m * 10.0 ** e, m, e
        e += 1


def _fit(vmin: float, vmax: float, cells: int, steps, max_ticks: int, min_count: int):
    """The first step (the finest) whose ticks fall a whole number of cells apart, at least two
    cells on a chart of five or more, with at most `max_ticks` of them; returns
    (that step's tuple, lo, hi, tick count)."""
    min_gap = 2 if cells >= 5 else 1
    span = vmax - vmin
    for candidate in steps:
        step = candidate[0]
        if step > 10 * (abs(vmin) + abs(vmax) + span):
            break  # coarser steps put every value between the same two ticks
        lo = math.floor(vmin / step + EPS) * step
        need = vmax - lo
        k = math.floor((cells - 1) * step / need + EPS) if need > 0 else cells - 1
        if k >= 1 and lo + (cells - 1) * step / k < vmax - EPS * span:
            k -= 1  # EPS forgives rounding, never a value off the top
        count = (cells - 1) // max(k, 1) + 1
        if k >= min_gap and min_count <= count <= max_ticks:
            return candidate, lo, lo + (cells - 1) * step / k, count
        if count < min_count:
            break  # steps only get coarser from here
    raise ValueError(f"no step fits {vmin}..{vmax} in {cells} cells")


def linear_axis(vmin: float, vmax: float, cells: int, max_ticks: int = 6, ceiling: float | None = None) -> Axis:
    """Ticks on multiples of a nice step. The axis starts at or above 0 whenever every value does
    (a positive LR never gets a negative axis); `ceiling` drops labels above it (no `105` on an
    accuracy axis)."""
    vmin, vmax = min(vmin, vmax), max(vmin, vmax)
    if vmax - vmin <= max(abs(vmin), abs(vmax), 1e-6) * 1e-6:  # a constant (to float precision): a window around it
        pad = next(nice_steps(abs(vmin) * 0.1))[0] if vmin else 1.0
        vmin, vmax = (vmin - pad if vmin < 0 else max(vmin - pad, 0.0)), vmax + pad
    if cells < 2:
        return Axis(vmin, vmax, [], [])
    try:
        (step, m, e), lo, hi, count = _fit(vmin, vmax, cells, nice_steps((vmax - vmin) / (cells - 1)), max_ticks,
                                           min_count=2)
        ticks = [lo + j * step for j in range(count)]
    except ValueError:  # two or three rows: the nice values inside the data, on their nearest rows
        lo, hi = vmin, vmax
        (step, m, e), ticks = ticks_inside(vmin, vmax, max(1, min(max_ticks, cells // 2)))
    if ceiling is not None:
        ticks = [t for t in ticks if t <= ceiling + EPS]
    return Axis(lo, hi, ticks, format_ticks(ticks, step, m, e))


def ticks_inside(vmin: float, vmax: float, most: int):
    """The finest nice step with between one and `most` multiples inside [vmin, vmax], and those."""
    previous = None
    for candidate in nice_steps((vmax - vmin) / (4 * most)):  # fine enough to start with several
        step = candidate[0]
        ticks = [j * step for j in range(math.ceil(vmin / step - EPS), math.floor(vmax / step + EPS) + 1)]
        if 1 <= len(ticks) <= most:
            return candidate, ticks
        if not ticks and previous is not None:  # one step too many ticks, the next none: thin them out
            (step, m, e), ticks = previous
            stride = -(-len(ticks) // most)
            return (step * stride, m, e), ticks[::stride]
        previous = candidate, ticks
    raise AssertionError("unreachable: the first step is under the range, so it has multiples inside")


def format_ticks(ticks: list[float], step: float, m: float, e: int) -> list[str]:
    """The same number of decimals on every label, just enough for the step; scientific notation
    when that would take more than five decimals."""
    ticks = [0.0 if abs(t) < step * 1e-6 else t for t in ticks]
    decimals = max(0, -e) + (1 if m == 2.5 else 0)
    if decimals <= 5:  # zero is "0": "0.0000" reads as a value rounded to zero
        return ["0" if t == 0 else f"{t:.{decimals}f}" for t in ticks]
    top = max(abs(t) for t in ticks) or step
    digits = max(0, math.floor(math.log10(top)) - e) + (1 if m == 2.5 else 0)
    return [f"{t:.{digits}e}" for t in ticks]


def log_axis(vmin: float, vmax: float, cells: int, max_ticks: int = 6) -> Axis:
    """An axis in log10 units (plot `log10(value)`), labelled with the values themselves; values
    must be > 0. Ticks are whole decades, exactly on rows. A range too narrow for two decades
    gets the linear axis's round values instead, each on the row nearest its logarithm."""
    lmin, lmax = math.log10(min(vmin, vmax)), math.log10(max(vmin, vmax))
    if lmax - lmin < 1e-9:  # a constant: from half to twice the value
        lmin, lmax = lmin - math.log10(2), lmax + math.log10(2)
    if cells < 2:
        return Axis(lmin, lmax, [], [])
    try:
        (step,), lo, hi, count = _fit(lmin, lmax, cells, ((s,) for s in DECADE_STEPS), max_ticks, min_count=2)
    except ValueError:
        (step, m, e), ticks = ticks_inside(10 ** lmin, 10 ** lmax, max(1, min(max_ticks, cells // 2)))
        return Axis(lmin, lmax, [math.log10(t) for t in ticks], format_ticks(ticks, step, m, e))
    ticks = [round(lo + j * step) for j in range(count)]
    return Axis(lo, hi, [float(t) for t in ticks], [decade_label(t) for t in ticks])


def decade_label(exponent: int) -> str:
    return f"{10.0 ** exponent:.{max(0, -exponent)}f}" if -4 <= exponent <= 4 else f"1e{exponent}"
