"""What the Inside screen draws from a run's `HealthMeasured` events: a table of layers with a sparkline
per figure over the epochs, percentile bands of one layer over the epochs, pictures of the first layer's
weights, and per-class confidence. Plain functions from data to Rich renderables, so they are tested
and snapshotted without a run."""
from __future__ import annotations

import math

import numpy as np
from rich.table import Table
from rich.text import Text

from neuraterm.core.screen_text import visible
from neuraterm.tui.widgets.pixels import diverging, half_blocks, image_side

TICKS = "▁▂▃▄▅▆▇█"
BAND_SHADES = (("░", "grey42"), ("▒", "steel_blue"), ("▓", "deep_sky_blue3"), ("█", "cyan1"))  # widest first


def resample(values: list, width: int) -> list:
    """`values` squeezed (bucket means) or kept as they are to at most `width` points; None stays a gap."""
    if len(values) <= width:
        return list(values)
    out = []
    for k in range(width):
        part = [v for v in values[k * len(values) // width:(k + 1) * len(values) // width] if v is not None]
        out.append(sum(part) / len(part) if part else None)
    return out


def sparkline(values: list, width: int, lo: float | None = None, hi: float | None = None) -> Text:
    points = resample(values, width)
    finite = [v for v in points if v is not None and math.isfinite(v)]
    if not finite:
        return Text("·" * min(width, max(len(points), 1)), style="grey42")
    lo = min(finite) if lo is None else lo
    hi = max(finite) if hi is None else hi
    span = hi - lo
    chars = []
    for v in points:
        if v is None or not math.isfinite(v):
            chars.append(" ")
        else:
            level = 0 if span <= 0 else int((min(max(v, lo), hi) - lo) / span * (len(TICKS) - 1) + 0.5)
            chars.append(TICKS[level])
    return Text("".join(chars).rjust(width), style="cyan")


def log10_or_none(v):
    return None if v is None or v <= 0 else math.log10(v)


def _short(v, kind: str = "g") -> str:
    if v is None:
        return "-"
    if kind == "%":
        return f"{100 * v:.0f}%"
    if kind == "log":
        return "-inf" if v <= 0 else f"{math.log10(v):.1f}"
    return f"{v:.3g}"


KIND_LABELS = {"identity": "linear", "leaky_relu": "lrelu", "sigmoid": "sigm"}  # Keras' "linear": no activation


def layer_table(health: list, width: int, alerted: set) -> Table:
    """A row per layer; per figure, its sparkline over every epoch and its latest value. A layer with an
    alert at the latest epoch is named in red."""
    last = health[-1]
    spark = max(4, min(16, (width - 22) // 5 - 7))
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1), expand=False)
    table.add_column("layer", no_wrap=True)
    for title in ("log10 upd/W", "dead/sat", "act std", "|W|", "|grad|"):
        table.add_column(title, justify="right", no_wrap=True)
    for i, name in enumerate(last.layers):
        def series(field, transform=lambda v: v):
            return [transform(getattr(h, field)[i]) if i < len(h.layers) else None for h in health]
        dead = last.dead_fraction[i] if last.dead_fraction[i] is not None else last.saturated_fraction[i]
        dead_series = series("dead_fraction") if last.dead_fraction[i] is not None else series("saturated_fraction")
        cells = [
            (sparkline(series("update_ratio_median", log10_or_none), spark), _short(last.update_ratio_median[i], "log")),
            (sparkline(dead_series, spark, 0.0, 1.0), _short(dead, "%")),
            (sparkline(series("act_std"), spark), _short(last.act_std[i])),
            (sparkline(series("weight_norm"), spark), _short(last.weight_norm[i])),
            (sparkline(series("grad_norm"), spark), _short(last.grad_norm[i])),
        ]
        label = Text(visible(f"{name} {KIND_LABELS.get(last.kinds[i], last.kinds[i][:5])}", 40),
                     style="bold red" if name in alerted else "")
        table.add_row(label, *(Text.assemble(s, " ", (v.rjust(5), "bold")) for s, v in cells))
    return table


def bands_chart(health: list, layer: int, which: str, width: int, height: int) -> Text:
    """Percentile bands (min..max, 7..93, 16..84, 31..69 and the median) of a layer's weights or
    activations, one column per epoch (squeezed to `width`), as TensorBoard's distributions."""
    key = "weight_bands" if which == "weights" else "act_bands"
    epochs = [h.epoch for h in health]
    columns = [h_bands[layer] if layer < len(h_bands) else None for h_bands in (getattr(h, key) for h in health)]
    label_width = 8
    plot_w = max(4, width - label_width)
    # one column per epoch squeezed into the width, or each epoch widened to fill it
    idx = [k * len(columns) // plot_w for k in range(plot_w)] if len(columns) > plot_w else \
        [k for k in range(len(columns)) for _ in range(plot_w // len(columns))]
    columns, epochs = [columns[k] for k in idx], [epochs[k] for k in idx]
    values = [v for c in columns if c for v in c if v is not None]
    if not values:
        return Text("no values yet", style="grey42")
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1e-12
    rows = max(3, height)
    grid = [[(" ", "")] * len(columns) for _ in range(rows)]
    step = (hi - lo) / rows
    for x, c in enumerate(columns):
        if not c or any(v is None for v in c):
            continue
        for r in range(rows):
            top, bottom = hi - r * step, hi - (r + 1) * step
            for depth in range(4):  # the deepest band reaching into this row's range shows
                if c[depth] <= top and c[8 - depth] >= bottom:
                    grid[r][x] = BAND_SHADES[depth]
            if bottom <= c[4] <= top:
                grid[r][x] = ("━", "bold white")
    text = Text()
    for r, line in enumerate(grid):
        label = f"{hi:.3g}" if r == 0 else f"{lo:.3g}" if r == rows - 1 else ""
        label = label[:label_width - 1]
        text.append(label, style="grey62")
        text.append(" " * (label_width - len(label)))  # a segment of its own: an SVG export trims spaces that
        for ch, style in line:                         # begin or end a segment holding text
            text.append(ch, style=style)
        text.append("\n")
    first, last = epochs[0], epochs[-1]
    axis = str(first).ljust(max(len(columns) - len(str(last)), len(str(first)) + 1)) + str(last)
    text.append("epoch", style="grey62")
    text.append(" " * (label_width - 5))
    text.append(axis[:plot_w], style="grey62")
    return text


def weight_tiles(weights: np.ndarray, width: int, height: int, epoch: int, learned: bool = False) -> Text:
    """The first layer's units with the largest weight norms, each as its input image (28x28 for
    784 inputs, blue negative and red positive); inputs that are not a square image show as a heatmap
    of units x inputs instead. `learned`: the weights are the change since initialization (W - W0)."""
    what = "W - W0 (learned)" if learned else "W"
    norms = np.linalg.norm(weights, axis=1)
    order = np.argsort(-norms, kind="stable")
    side = image_side(weights.shape[1])
    if side is None:
        rows = min(len(order), 2 * max(1, height - 2))
        cols = min(weights.shape[1], width)
        picked = weights[np.sort(order[:rows])]
        edges = np.linspace(0, weights.shape[1], cols + 1).astype(int)
        small = np.stack([picked[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges, edges[1:])], axis=1)
        text = Text(f"layer 1 {what}, epoch {epoch}: {rows} units (rows) x {weights.shape[1]} inputs "
                    f"(columns), blue < 0 < red\n", style="bold")
        text.append_text(half_blocks(diverging(small)))
        return text
    per_row = max(1, (width + 1) // (side + 1))
    tile_rows = max(1, (height - 1) // ((side + 1) // 2 + 1))
    k = min(len(order), per_row * tile_rows)
    text = Text(f"layer 1 {what}, epoch {epoch}: top {k} of {len(order)} units by norm, blue<0<red",
                style="bold")
    for start in range(0, k, per_row):
        units = order[start:start + per_row]
        pictures = [half_blocks(diverging(weights[u].reshape(side, side))).split("\n") for u in units]
        captions = [f"#{u} |w| {norms[u]:.2f}"[:side].ljust(side) for u in units]
        text.append("\n" + " ".join(captions), style="grey62")
        _append_side_by_side(text, pictures)
    return text


def _append_side_by_side(text: Text, pictures: list) -> None:
    """Pictures of equal height (lists of half-block lines) appended as one row, a space apart."""
    for line in range(len(pictures[0])):
        text.append("\n")
        for j, picture in enumerate(pictures):
            if j:
                text.append(" ")
            text.append_text(picture[line])


def confidence_lines(health: list, class_names: list[str] | None, width: int, rows: int | None = None) -> Text:
    """Per class, the mean probability of the true class on the probe batch over the epochs
    (Karpathy's prediction dynamics): a sparkline each, several classes a line. With `rows` (the lines
    there are room for, the title's included), the classes that fit, those the model gets least right
    first (shown in class order), and the title says how many of how many."""
    last = health[-1]
    k = len(last.class_confidence)
    names = [visible(n, 40) for n in class_names] if class_names and len(class_names) == k else \
        [str(i) for i in range(k)]
    spark = 8
    label = max(1, min(max(len(n) for n in names), 12, width - spark - 6))  # "ankle boot" whole where it fits
    cell = label + spark + 6
    per_line = max(1, width // (cell + 1))
    shown = list(range(k))
    titles = [f"confidence in the true class, probe batch, epochs 1..{last.epoch}", f"epochs 1..{last.epoch}"]
    if rows is not None and k > per_line * max(rows - 1, 1):
        room = per_line * max(rows - 1, 1)
        worst = sorted(range(k), key=lambda i: (last.class_confidence[i] is None, last.class_confidence[i] or 0.0, i))
        shown = sorted(worst[:room])
        titles = [f"true-class confidence (probe batch): the {room} lowest of {k} classes",
                  f"the {room} lowest of {k} classes", f"lowest {room} of {k}"]
    fitting = next((t for t in titles if len(t) <= width), titles[-1]) if rows is not None else titles[0]
    text = Text(fitting, style="bold")  # with `rows`, one line that fits, never wrapped
    for n, i in enumerate(shown):
        if n % per_line == 0:
            text.append("\n")
        series = [h.class_confidence[i] if i < len(h.class_confidence) else None for h in health]
        value = last.class_confidence[i]
        text.append(names[i][:label].rjust(label) + " ")
        text.append_text(sparkline(series, spark, 0.0, 1.0))
        text.append(f" {'-' if value is None else f'{100 * value:3.0f}%'} ", style="bold")
    return text


def mistake_tiles(result: dict, width: int) -> Text:
    """The most confident mistakes: each image with its true class, the prediction and its probability."""
    mistakes = result["mistakes"]
    text = Text(f"the {len(mistakes)} most confident mistakes of {result['wrong']:,} on {result['test_size']:,} "
                f"test samples after epoch {result['epoch']}: true→predicted, confidence, sample #", style="bold")
    if not mistakes:
        return text
    side = image_side(int(np.asarray(mistakes[0]["image"]).size))
    if side is None:
        for m in mistakes:
            text.append(f"\n#{m['index']}: {visible(m['true'])} predicted {visible(m['predicted'])} "
                        f"({100 * m['confidence']:.0f}%)")
        return text
    from neuraterm.tui.widgets.pixels import gray
    per_row = max(1, (width + 1) // (side + 1))
    for start in range(0, len(mistakes), per_row):
        group = mistakes[start:start + per_row]
        pictures = [half_blocks(gray(np.asarray(m["image"], np.float64).reshape(side, side))).split("\n") for m in group]
        text.append("\n")
        for j, m in enumerate(group):
            half = max(5, (side - 1) // 2)  # each name gets half the tile ("Ankle boot→Sandal" whole on 28 columns)
            pair = f"{visible(m['true'])[:half]}→{visible(m['predicted'])[:half]}"
            text.append(("" if not j else " ") + pair.ljust(side)[:side], style="bold")
        text.append("\n")
        for j, m in enumerate(group):
            text.append(("" if not j else " ") + f"{100 * m['confidence']:.1f}% #{m['index']}".ljust(side)[:side],
                        style="grey62")
        _append_side_by_side(text, pictures)
    return text
