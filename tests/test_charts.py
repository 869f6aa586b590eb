"""Charts that tell the truth: read the rendered text back and check each point sits on the row
its labels say, with round ticks, and that step-loss smoothing never rewrites the past."""
import asyncio
import math
import re

import pytest
from hypothesis import given, settings, strategies as st
from textual.app import App

from neuraterm.tui.smoothing import WEIGHTS, Smoother, smooth
from neuraterm.tui.ticks import linear_axis, log_axis
from neuraterm.tui.widgets.curve_chart import MARKERS, CurveChart, Series, distinct_names

EPOCHS = list(range(1, 11))
COSINE = [0.0005 * (1 + math.cos(math.pi * e / 10)) for e in range(10)]
ACCURACY = [0.7183, 0.88, 0.91, 0.93, 0.945, 0.956, 0.965, 0.97, 0.975, 0.9794]
LOSS = [2.1, 1.05, 0.61, 0.43, 0.35, 0.29, 0.25, 0.21, 0.18, 0.16]


def render(series, size=(44, 16), **options) -> list[str]:
    """The chart's text as it appears on screen, one string per row."""
    class Host(App):
        def compose(self):
            yield CurveChart("chart", **options)

    lines = []

    async def scenario():
        async with Host().run_test(size=size) as pilot:
            chart = pilot.app.query_one(CurveChart)
            chart.set_series(series)
            await pilot.pause()
            lines.extend(chart.render().plain.splitlines())
    asyncio.run(scenario())
    return lines


def parse(lines):
    """(axis column, {row: label value}, {marker: [(column, row)]}, {column: x label}) of a rendered chart."""
    bottom = next(r for r, line in enumerate(lines) if "└" in line)
    axis = lines[bottom].index("└")
    labels = {r: float(lines[r][:axis]) for r in range(bottom) if lines[r][:axis].strip()}
    markers = {}
    for r in range(bottom):
        for c, char in enumerate(lines[r]):
            if c > axis and char in MARKERS:
                markers.setdefault(char, []).append((c, r))
    x_ticks = [c for c, char in enumerate(lines[bottom]) if char == "┬"]
    x_labels = [float(m.group()) for m in re.finditer(r"\S+", lines[bottom + 1])]
    assert len(x_labels) == len(x_ticks), lines[bottom:]  # plotext draws a tick only with its label
    ticks = dict(zip(x_ticks, x_labels))
    return axis, labels, markers, ticks


def value_of_row(labels: dict, row: int) -> tuple[float, float]:
    """The value a row stands for according to the labels, and half a row's worth of value."""
    (r0, v0), (r1, v1) = min(labels.items()), max(labels.items())
    per_row = (v0 - v1) / (r1 - r0)  # rows count down the screen, values up
    return v0 + (r0 - row) * per_row, abs(per_row) / 2


def assert_round_ticks(values):
    if len(values) < 2:
        return
    steps = [b - a for a, b in zip(values, values[1:])]
    step = steps[0]
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps), f"uneven ticks {values}"
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), f"step {step} is not round"
    assert all(math.isclose(v / step, round(v / step), abs_tol=1e-6) for v in values)


CHARTS = {
    "accuracy climbing to 97.94%": ([Series("train", EPOCHS, ACCURACY)], {"percent": True}),
    "constant LR 0.001": ([Series("lr", EPOCHS, [0.001] * 10)], {}),
    "cosine LR down to 0": ([Series("lr", EPOCHS, COSINE)], {}),
    "two losses": ([Series("train", EPOCHS, LOSS), Series("val", EPOCHS, [v + 0.9 for v in LOSS])], {}),
}


@pytest.mark.parametrize("size", [(44, 16), (30, 8), (70, 11)])
@pytest.mark.parametrize("name", CHARTS)
def test_each_point_is_drawn_on_the_row_its_labels_say(name, size):
    series, options = CHARTS[name]
    lines = render(series, size, **options)
    axis, labels, markers, x_ticks = parse(lines)
    assert len(labels) >= 2, lines
    assert_round_ticks([labels[r] for r in sorted(labels, reverse=True)])
    scale = 100 if options.get("percent") else 1
    for k, s in enumerate(series):
        found = sorted(markers.get(MARKERS[k], []))
        assert len(found) >= min(len(s.ys), 4) and found[-1][0] == max(x_ticks), "\n".join(lines)
        for column, row in found:
            x, half_column = value_of_column(x_ticks, column)
            epoch = round(x)
            assert abs(x - epoch) <= half_column + 1e-9
            y = s.ys[s.xs.index(epoch)]
            row_value, half_row = value_of_row(labels, row)
            assert abs(row_value - scale * y) <= half_row + 1e-9, (name, epoch, y, row, "\n".join(lines))
            if column in x_ticks:
                assert x_ticks[column] == epoch  # a marker under an x label is that label's epoch


def value_of_column(x_ticks: dict, column: int) -> tuple[float, float]:
    (c0, x0), (c1, x1) = min(x_ticks.items()), max(x_ticks.items())
    per_column = (x1 - x0) / (c1 - c0)
    return x0 + (column - c0) * per_column, per_column / 2


def test_a_positive_lr_never_gets_a_negative_axis_and_accuracy_stops_at_100():
    _, labels, _, _ = parse(render([Series("lr", EPOCHS, COSINE)]))
    assert min(labels.values()) == 0
    _, labels, _, _ = parse(render([Series("acc", EPOCHS, ACCURACY)], percent=True))
    assert max(labels.values()) <= 100


def test_log_scale_labels_decades_and_keeps_points_between_their_labels():
    lines = render([Series("loss", EPOCHS, [2.3 * 0.6 ** e for e in range(10)])], log_scale=True)
    _, labels, markers, _ = parse(lines)
    exponents = sorted(math.log10(v) for v in labels.values())
    assert len(exponents) >= 2 and all(math.isclose(e, round(e)) for e in exponents)
    for (column, row), y in zip(sorted(markers["•"]), [2.3 * 0.6 ** e for e in range(10)]):
        above = [v for r, v in labels.items() if r <= row]
        below = [v for r, v in labels.items() if r >= row]
        row_value, half_row = value_of_row({r: math.log10(v) for r, v in labels.items()}, row)
        assert abs(row_value - math.log10(y)) <= half_row + 1e-9, "\n".join(lines)
        assert (not above or y <= max(above) * 10 ** (2 * half_row)) and (not below or y >= min(below) / 10 ** (2 * half_row))


def test_lines_are_braille_with_markers_only_at_epochs():
    lines = render([Series("train", [1, 2, 3], [1.0, 0.5, 0.25])], size=(44, 12))
    canvas = "".join(line[parse(lines)[0] + 1:] for line in lines[:-2])
    assert any("\u2800" <= c <= "\u28ff" for c in canvas)  # braille dots between the epochs
    assert canvas.count("•") == 3 and "x" not in canvas and "." not in canvas


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e3, 1e3), st.floats(0, 1e3), st.integers(2, 40))
def test_ticks_are_round_cover_the_data_and_fall_on_whole_rows(low, span, rows):
    axis = linear_axis(low, low + span, rows)
    slack = 1e-8 * max(span, abs(low), 1)  # a tick a hair above the data still puts it on that row
    assert axis.lo <= low + slack and axis.hi >= low + span - slack
    assert_round_ticks(axis.ticks)
    if rows < 4:
        return  # too few rows for exact ticks: nice values inside the data, on their nearest rows
    assert len(axis.ticks) >= 2
    for t in axis.ticks:
        position = (rows - 1) * (t - axis.lo) / (axis.hi - axis.lo)
        assert abs(position - round(position)) < 1e-6
    if low >= 0:
        assert axis.lo >= 0


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-8, 1e3), st.floats(1, 1e4), st.integers(2, 40))
def test_log_ticks_cover_the_data(low, factor, rows):
    axis = log_axis(low, low * factor, rows)
    assert axis.lo <= math.log10(low) + 1e-9 and axis.hi >= math.log10(low * factor) - 1e-9
    assert axis.ticks and all(axis.lo - 1e-9 <= t <= axis.hi + 1e-9 for t in axis.ticks)


@given(st.lists(st.floats(-1e6, 1e6), max_size=60), st.integers(0, 60), st.sampled_from([0.0, 0.6, 0.9, 0.99]))
def test_smoothing_never_rewrites_the_past(values, n, weight):
    assert smooth(values[:n], weight) == smooth(values, weight)[:n]
    incremental = Smoother(weight)
    incremental.extend(values[:n])
    assert incremental.extend(values[n:]) == smooth(values, weight)


def ema_oracle(values, weight):
    """The debiased EMA written as its closed form: at each finite value, the weighted mean of the finite
    values so far, weight**age each, normalised by the weights' sum (1 - weight**k) / (1 - weight);
    a NaN step (a diverged batch) is shown as a gap and neither counts nor moves the average."""
    out, seen = [], []
    for v in values:
        if math.isnan(v):
            out.append(math.nan)
            continue
        seen.append(v)
        k = len(seen)
        weights = [(1 - weight) * weight ** (k - 1 - i) for i in range(k)]
        out.append(sum(w * x for w, x in zip(weights, seen)) / (1 - weight ** k))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), max_size=60),
       st.sampled_from([0.0, 0.6, 0.8, 0.9, 0.95, 0.99]))
def test_smoothing_skips_nan_steps_and_otherwise_is_the_debiased_mean(values, weight):
    got, expected = smooth(values, weight), ema_oracle(values, weight)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, rel=1e-9, abs=1e-6), (values, weight)


def test_smoothing_after_nan_steps_by_hand():
    assert smooth([1.0, math.nan, math.nan, 3.0], 0.5)[3] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


def test_the_smoothing_key_steps_from_raw_through_valid_weights():
    """`m` cycles these: first 0 (the raw series), then ever smoother, each one a weight Smoother accepts."""
    assert WEIGHTS == (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
    for weight in WEIGHTS:
        Smoother(weight)
    assert smooth([3.0, 1.0, 2.0], WEIGHTS[0]) == [3.0, 1.0, 2.0]
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="smoothing weight must be in"):
            Smoother(bad)


def test_smoothing_is_debiased():
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    assert smooth([1.0, 3.0], 0.5) == pytest.approx([1.0, (0.25 * 1 + 0.5 * 3) / 0.75])


def test_legend_names_stay_distinct_when_cut():
    names = ["fashion-mlp-20261122-233511", "fashion-mlp-20261122-233622"]
    assert len(set(n[:24] for n in names)) == 1  # what the overlay used to show
    short = distinct_names(names, 12)
    assert len(set(short)) == 2 and all(len(n) <= 12 for n in short)
    assert distinct_names(["alpha", "beta"], 12) == ["alpha", "beta"]


@pytest.mark.parametrize("size", [(3, 2), (8, 3), (12, 4)])
def test_tiny_charts_draw_without_hanging(size):
    lines = render([Series("train", EPOCHS, LOSS)], size=size)
    assert len(lines) == size[1]


def test_epoch_axis_fits_the_epochs_seen_with_headroom_not_the_plan():
    from neuraterm.tui.screens.dashboard import epoch_axis_end
    assert epoch_axis_end(30, 600) == 40
    assert epoch_axis_end(843, 3000) == 1250
    assert epoch_axis_end(3, 10) == 10 and epoch_axis_end(0, 600) == 10 and epoch_axis_end(600, 600) == 600
    assert epoch_axis_end(0, 1) == 2


def test_legend_names_are_shortened_in_the_middle_keeping_the_preset():
    names = ["fashion-mlp-20261202-164653", "fashion-mlp-20261202-171210"]
    for width in (24, 18, 14):
        short = distinct_names(names, width)
        assert len(set(short)) == 2 and all(len(n) <= width and "…" in n for n in short), short
        assert all(n.startswith("fashion") for n in short), short  # the preset stays
        assert short[0].endswith("4653") and short[1].endswith("1210"), short
    assert distinct_names(["quick-20261202-164653", "fashion-mlp-20261202-164653"], 16) == [
        "quick-20…-164653", "fashion-…-164653"]


def test_an_lr_that_decays_to_zero_is_labelled_0_not_0_0000():
    from neuraterm.tui.ticks import linear_axis
    axis = linear_axis(0.0, 0.001, 6)
    assert axis.labels[0] == "0" and all(label != "0.0000" for label in axis.labels)
