"""Every chart the app shows, on its real screen at 80x24 and 120x40: each epoch's marker sits in the
column of that epoch's tick (on the row its labels say), read back from the rendered text. The Runs
overlay, the Study screen's chart for every metric (epochs and noise sigma), the Evaluate noise curve."""
import asyncio
import csv
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_charts import parse, value_of_column, value_of_row
from test_tui import tiny_config
from neuraterm.core.run.trainer import Trainer
from neuraterm.tui.app import make_app
from neuraterm.tui.screens.evaluate import EvaluateScreen
from neuraterm.tui.screens.study import METRICS, StudyScreen
from neuraterm.tui.widgets.curve_chart import MARKERS, CurveChart

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
STUDY = """name = "align"
description = "two learning rates, three epochs"
preset = "quick"
[set]
"data.limit" = 600
"model.hidden" = [16]
"train.epochs" = 3
[grid]
"optimizer.lr" = [0.01, 0.001]
"""


def assert_markers_on_ticks(lines: list[str], points: list[tuple[list, list]], percent: bool) -> None:
    """`points`: each series' (xs, ys) as stored (fractions for percent charts). Every point whose x has a
    tick is a marker in that tick's column, on its row; every marker is a point of its series."""
    screen = "\n".join(lines)
    axis, labels, markers, ticks = parse(lines)
    assert len(labels) >= 2 and len(ticks) >= 2, screen
    scale = 100 if percent else 1
    on_tick = 0
    for k, (xs, ys) in enumerate(points):
        for x, y in zip(xs, ys):
            if y != y:
                continue
            column = next((c for c, label in ticks.items() if math.isclose(label, x, abs_tol=1e-9)), None)
            if column is None:
                continue
            cells = {(c, r) for found in markers.values() for c, r in found}  # another series' marker may cover it
            rows = [r for c, r in cells if c == column]
            assert rows, f"no marker in the column of tick {x:g}:\n{screen}"
            assert any(abs(value_of_row(labels, r)[0] - scale * y) <= value_of_row(labels, r)[1] + 1e-9
                       for r in rows), f"no marker for {scale * y:g} at tick {x:g}:\n{screen}"
            on_tick += 1
        for column, row in markers.get(MARKERS[k % len(MARKERS)], []):
            x, half_column = value_of_column(ticks, column)
            near = [i for i, px in enumerate(xs) if abs(px - x) <= half_column + 1e-9]
            assert near, f"marker {MARKERS[k]} at column {column} (x {x:g}) is no point of its series:\n{screen}"
            row_value, half_row = value_of_row(labels, row)
            assert any(abs(row_value - scale * ys[i]) <= half_row + 1e-9 for i in near), screen
    assert on_tick >= 2, screen


def chart_points(chart: CurveChart) -> list[tuple[list, list]]:
    return [(list(s.xs), list(s.ys)) for s in chart.series]


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs-root")
    Trainer(tiny_config("alpha"), root / "runs" / "alpha").run()
    Trainer(tiny_config("beta", epochs=4, hidden=(32,)), root / "runs" / "beta").run()
    return root


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("study-root")
    (root / "align.toml").write_text(STUDY)
    result = subprocess.run([sys.executable, "-m", "neuraterm", "study", "align.toml"], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "studies" / "align"


def on_screen(root: Path, size, steps, **app_options) -> None:
    async def scenario():
        app = make_app(root / "runs", deterministic=True, **app_options)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(app, pilot)
    asyncio.run(scenario())


async def until(pilot, condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


@pytest.mark.parametrize("size", SIZES)
def test_runs_overlay_markers_sit_on_their_ticks(runs_folder, size, monkeypatch):
    monkeypatch.chdir(runs_folder)
    checked = []

    async def steps(app, pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("space", "down", "space")
        await pilot.pause()
        chart = app.screen.query_one("#overlay-chart", CurveChart)
        assert [s.name for s in chart.series] == ["alpha", "beta"]
        history = {name: list(csv.DictReader(open(runs_folder / "runs" / name / "history.csv")))
                   for name in ("alpha", "beta")}
        points = [([int(r["epoch"]) for r in history[n]], [float(r["val_acc"]) for r in history[n]])
                  for n in ("alpha", "beta")]
        assert chart_points(chart) == points
        assert_markers_on_ticks(chart.render().plain.splitlines(), points, percent=True)
        checked.append(size)
    on_screen(runs_folder, SIZES[size], steps)
    assert checked


@pytest.mark.parametrize("size", SIZES)
def test_evaluate_noise_curve_markers_sit_on_their_ticks(runs_folder, size, monkeypatch):
    monkeypatch.chdir(runs_folder)
    checked = []

    async def steps(app, pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EvaluateScreen)
                    and app.screen.query_one("#noise-chart", CurveChart).series)
        await pilot.pause()
        chart = app.screen.query_one("#noise-chart", CurveChart)
        points = chart_points(chart)
        assert len(points) == 1 and len(points[0][0]) >= 3 and points[0][0][0] == 0
        assert_markers_on_ticks(chart.render().plain.splitlines(), points, percent=True)
        checked.append(size)
    on_screen(runs_folder, SIZES[size], steps)
    assert checked


@pytest.mark.parametrize("size", SIZES)
def test_study_chart_markers_sit_on_their_ticks_for_every_metric(study_folder, size, monkeypatch):
    monkeypatch.chdir(study_folder.parent.parent)
    seen = []

    async def steps(app, pilot):
        await until(pilot, lambda: isinstance(app.screen, StudyScreen))
        screen = app.screen
        await until(pilot, lambda: len(screen.rows) == 2 and all(r.state == "finished" for r in screen.rows.values()))
        await pilot.pause()
        chart = screen.query_one("#study-chart", CurveChart)
        for title, column, percent in METRICS:
            await until(pilot, lambda: chart.title == title)
            await pilot.pause()
            points = chart_points(chart)
            assert len(points) == 2 and all(len(xs) >= 3 for xs, _ in points), (title, points)
            assert_markers_on_ticks(chart.render().plain.splitlines(), points, percent)
            seen.append(column)
            await pilot.press("m")
    on_screen(study_folder.parent.parent, SIZES[size], steps, watch_dir=str(study_folder))
    assert seen == [c for _, c, _ in METRICS]
