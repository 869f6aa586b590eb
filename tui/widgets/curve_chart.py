"""A line chart of named series, drawn with plotext inside the terminal.

The widget holds its data and draws it in `render`, where its size is known: ticks come from
`ticks.py` so every label sits on the row of its value, lines are drawn in braille dots (half
blocks on the Linux console, which has no braille glyphs), and each series puts its own marker on
its data points (epochs), so curves stay apart without color. Braille dots are placed so the
character cell they fall in is the cell a marker of the same value would take. The legend sits in
the border title, with names shortened in the middle.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

from rich.markup import escape
from textual_plotext import PlotextPlot

from neuraterm.tui.ticks import Axis, linear_axis, log_axis, nice_steps

MARKERS = ("•", "x", "+", "o", "*", "#")
COLORS = ("cyan", "magenta", "yellow", "green", "red", "blue")
FAINT = "gray"
MIN_MARKER_GAP = 3  # columns between two markers of one series


@dataclass
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    markers: bool = True  # a marker on each point (epochs); off for dense per-step series
    faint: bool = False  # drawn grey behind the others (the raw series under a smoothed one)


def line_marker() -> tuple[str, int, int]:
    """plotext's line marker and how many dots it puts across and down one character cell."""
    return ("hd", 2, 2) if os.environ.get("TERM") == "linux" else ("braille", 2, 4)


def distinct_names(names: list[str], width: int) -> list[str]:
    """Names in `width` characters, shortened in the middle: the start (the preset a run is named
    after) and as much of the end as tells them apart (its start time) both stay."""
    if all(len(n) <= width for n in names):
        return list(names)
    if width < 3 or len(set(names)) < len(names):
        return [n if len(n) <= width else n[:width - 1] + "…" for n in names]
    for tail in range(max(1, (width - 1) // 2), width - 1):
        head = width - 1 - tail
        out = [n if len(n) <= width else n[:head] + "…" + n[len(n) - tail:] for n in names]
        if len(set(out)) == len(out):
            return out
    return [n[-width:] for n in names]


def downsample(xs: list, ys: list, limit: int) -> tuple[list, list]:
    """Every k-th point (and the last), so long histories draw fast."""
    if len(xs) <= limit:
        return xs, ys
    step = -(-len(xs) // limit)
    keep = list(range(0, len(xs), step))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


class CurveChart(PlotextPlot):
    def __init__(self, title: str, percent: bool = False, x_label: str = "epoch", log_scale: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.percent = percent
        self.x_label = x_label  # "epoch" and "step" have integer ticks from 1; "sigma" starts at 0
        self.log_scale = log_scale
        self.series: list[Series] = []
        self.x_max: float | None = None
        self.note = ""  # under the chart, in the bottom border: its keys and settings

    def on_mount(self) -> None:
        self.plt.xaxes(True, False)  # no top and right frame: one more row and column for data
        self.plt.yaxes(True, False)
        self.update_legend()

    def on_resize(self) -> None:
        self.update_legend()

    def set_series(self, series: list[Series] | dict[str, tuple[list, list]], x_max: float | None = None) -> None:
        if isinstance(series, dict):
            series = [Series(name, list(xs), list(ys)) for name, (xs, ys) in series.items()]
        self.series = series
        self.x_max = x_max
        self.update_legend()
        self.refresh()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.update_legend()
        self.refresh()

    def set_note(self, note: str) -> None:
        self.note = note
        self.border_subtitle = escape(note)

    # -- drawing ----------------------------------------------------------------------------
    def values(self, series: Series) -> tuple[list[float], list[float]]:
        """The points as drawn: NaN dropped, percent scaled, and on a log axis only positive values."""
        xs, ys = [], []
        for x, y in zip(series.xs, series.ys):
            if y != y or (self.log_scale and y <= 0):
                continue
            xs.append(float(x))
            ys.append(math.log10(y) if self.log_scale else (100 * y if self.percent else float(y)))
        return xs, ys

    def x_range(self) -> tuple[float, float]:
        """Epochs and steps from 1 (at least to 2); sigma from 0 to the largest."""
        first = 0.0 if self.x_label == "sigma" else 1.0
        longest = max((max(s.xs) for s in self.series if len(s.xs)), default=0.0)
        last = self.x_max or longest
        return first, max(last, first + 1) if self.x_label != "sigma" else (last if last > 0 else 1.0)

    def y_axis(self, ys: list[float], rows: int) -> Axis:
        if self.log_scale:
            return log_axis(10 ** min(ys), 10 ** max(ys), rows)
        return linear_axis(min(ys), max(ys), rows, ceiling=100 if self.percent else None)

    def x_ticks(self, x_lo: float, x_hi: float, columns: int) -> tuple[list[float], list[str]]:
        """Round ticks, the finest step whose labels have room; epochs and steps label 1 too."""
        integer = self.x_label in ("epoch", "step")
        if columns < 4:  # no room for labels; one keeps the layout (a row of labels) the same
            return [x_lo], [f"{x_lo:g}"]
        for step, m, e in nice_steps(1.0 if integer else (x_hi - x_lo) / max(columns, 1)):
            decimals = 0 if integer else max(0, -e) + (1 if m == 2.5 else 0)
            ticks = [k * step for k in range(math.ceil(x_lo / step - 1e-9), math.floor(x_hi / step + 1e-9) + 1)]
            if integer and (not ticks or ticks[0] - x_lo >= step / 2):
                ticks.insert(0, x_lo)  # epoch 1 is always labelled
            labels = [f"{t:.{decimals}f}" for t in ticks]
            room = (columns - 1) * step / (x_hi - x_lo)
            if room >= max(len(label) for label in labels) + 3:  # plotext drops labels that touch
                if integer and ticks[-1] < x_hi - 1e-9 and float(x_hi).is_integer():
                    end = f"{x_hi:.0f}"  # the last epoch is always labelled too, in place of a tick too near
                    gap = (columns - 1) * (x_hi - ticks[-1]) / (x_hi - x_lo)
                    if gap < (len(labels[-1]) + len(end)) / 2 + 3 and len(ticks) > 1 and ticks[-1] != x_lo:
                        ticks, labels = ticks[:-1], labels[:-1]
                    ticks, labels = [*ticks, x_hi], [*labels, end]
                return ticks, labels
        raise AssertionError("unreachable: the room grows with the step")

    def render(self):
        self.draw(self.size.width, self.size.height)
        return super().render()

    def draw(self, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_data()
        drawn = [(k, s, *self.values(s)) for k, s in enumerate(self.series)]
        drawn = [(k, s, xs, ys) for k, s, xs, ys in drawn if xs]
        x_lo, x_hi = self.x_range()
        plt.xlim(x_lo, x_hi)
        rows = height - 2  # below the canvas: the x axis line and its labels
        if not drawn or rows < 2:
            plt.xticks(*self.x_ticks(x_lo, x_hi, width - 8))
            plt.yticks([], [])
            return
        axis = self.y_axis([y for *_, ys in drawn for y in ys], rows)
        plt.ylim(axis.lo, axis.hi)
        plt.yticks(axis.ticks, axis.labels)
        columns = width - 1 - max((len(label) for label in axis.labels), default=0)
        plt.xticks(*self.x_ticks(x_lo, x_hi, columns))
        marker, across, down = line_marker()

        def dots(xs, ys):
            """Positions whose dots fall in the character cell where a marker of that value goes."""
            px = [x_lo + (x_hi - x_lo) * (across * (columns - 1) * (x - x_lo) / (x_hi - x_lo) + across / 2 - 0.5)
                  / (across * columns - 1) for x in xs]
            py = [axis.lo + (axis.hi - axis.lo) * (down * (rows - 1) * (y - axis.lo) / (axis.hi - axis.lo) + down / 2 - 0.5)
                  / (down * rows - 1) for y in ys]
            return px, py

        limit = 2 * across * columns
        for k, s, xs, ys in sorted(drawn, key=lambda d: not d[1].faint):
            color = FAINT if s.faint else COLORS[k % len(COLORS)]
            plt.plot(*dots(*downsample(xs, ys, limit)), marker=marker, color=color)
        for k, s, xs, ys in drawn:
            if s.markers and not s.faint:
                stride = max(1, math.ceil(len(xs) * MIN_MARKER_GAP / max(columns, 1)))
                keep = sorted(set(range(len(xs) - 1, -1, -stride)))
                plt.scatter([xs[i] for i in keep], [ys[i] for i in keep], marker=MARKERS[k % len(MARKERS)],
                            color=COLORS[k % len(COLORS)])

    def update_legend(self) -> None:
        title = self.title + (" (log)" if self.log_scale else "")
        shown = [(k, s) for k, s in enumerate(self.series) if any(y == y for y in s.ys)]
        if len(shown) == 1 and shown[0][1].name == self.title:
            shown = []  # "lr" needs no legend saying "lr"
        budget = max(6, (self.size.width - len(title) - 4) // max(len(shown), 1) - 3) if self.size.width else 24
        names = distinct_names([s.name for _, s in shown], budget)
        legend = []  # (markup, its width on screen, faint)
        for (k, s), name in zip(shown, names):
            if s.faint:
                legend.append((f"[{FAINT}]· {escape(name)}[/]", len(name) + 2, True))
            else:
                glyph = MARKERS[k % len(MARKERS)] if s.markers else "─"
                legend.append((f"[{COLORS[k % len(COLORS)]}]{escape(glyph)} {escape(name)}[/]", len(name) + 2, False))
        room = self.size.width - 4 if self.size.width else 1_000  # the border's corners and dashes
        while legend and len(title) + sum(1 + width for _, width, _ in legend) > room:
            faint = [entry for entry in legend if entry[2]]
            legend.remove(faint[0] if faint else legend[-1])  # the title stays whole; the faint entry goes first
        self.border_title = " ".join([escape(title), *(markup for markup, _, _ in legend)])
