"""A line chart of named series, drawn with plotext inside the terminal.

The widget holds its data and draws in one place (`replot`); callers replace the data and the
chart redraws on the UI thread. Each series has its own marker, so curves stay apart without
color (NO_COLOR, 16-color consoles), and the legend sits in the border title, not over the curves.
"""
from __future__ import annotations

from textual_plotext import PlotextPlot

MARKERS = ("dot", "x", "+", "o", "*", "@")
GLYPHS = {"dot": "•"}
COLORS = ("cyan", "magenta", "yellow", "green", "red", "blue")
MAX_POINTS = 400


def downsample(xs: list, ys: list, limit: int = MAX_POINTS) -> tuple[list, list]:
    """Every k-th point (and the last), so long histories draw fast."""
    if len(xs) <= limit:
        return xs, ys
    step = -(-len(xs) // limit)
    keep = list(range(0, len(xs), step))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


class CurveChart(PlotextPlot):
    def __init__(self, title: str, percent: bool = False, x_label: str = "epoch", **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.percent = percent
        self.x_label = x_label
        self.series: dict[str, tuple[list, list]] = {}
        self.x_max: float | None = None

    def on_mount(self) -> None:
        self.replot()

    def set_series(self, series: dict[str, tuple[list, list]], x_max: float | None = None) -> None:
        self.series = series
        self.x_max = x_max
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        legend = []
        low, high = None, None
        longest = 0
        for k, (name, (xs, ys)) in enumerate(self.series.items()):
            points = [(x, y) for x, y in zip(xs, ys) if y == y]  # drop NaN
            if not points:
                continue
            px, py = downsample([p[0] for p in points], [100 * p[1] if self.percent else p[1] for p in points])
            plt.plot(px, py, marker=MARKERS[k % len(MARKERS)], color=COLORS[k % len(COLORS)])
            marker = MARKERS[k % len(MARKERS)]
            legend.append(f"[{COLORS[k % len(COLORS)]}]{GLYPHS.get(marker, marker)} {name}[/]")
            low = min(py) if low is None else min(low, min(py))
            high = max(py) if high is None else max(high, max(py))
            longest = max(longest, max(px))
        x_max = self.x_max or max(longest, 1)
        if self.x_label == "sigma":
            plt.xlim(0, x_max)
        else:
            plt.xlim(1, max(x_max, 2))
        if self.x_label in ("epoch", "step"):
            first = 1
            step = max(1, int(x_max) // 6)
            plt.xticks(list(range(first, int(x_max) + 1, step)))
        if low is not None:
            pad = max((high - low) * 0.1, 1e-3 if not self.percent else 0.5)
            plt.ylim(low - pad if not self.percent else max(0, low - pad), high + pad if not self.percent else min(100, high + pad))
        self.border_title = f"{self.title}  " + "  ".join(legend) if legend else self.title
        self.refresh()
