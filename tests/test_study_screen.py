"""The Study screen on a real study: a `neuraterm study` driver trains the members as processes, and
the screen (a viewer like any other) shows them live, overlays a metric, compares two, and stops one."""
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from neuraterm.core.run import lock
from neuraterm.tui.app import make_app
from neuraterm.tui.screens.study import StudyScreen, differences, sparkline

STUDY = """name = "lr-trio"
description = "three learning rates, slowly"
preset = "quick"
[set]
"train.epochs" = 400
"data.limit" = 2000
"model.hidden" = [256, 256]
"train.batch_size" = 4
"train.threads" = 1
[grid]
"optimizer.lr" = [0.01, 0.001, 0.0001]
"""


def test_sparkline_draws_the_shape_of_the_last_values():
    assert sparkline([0.1, 0.5, 0.9]) == "▁▅█" and sparkline([0.5, 0.5]) == "▄▄" and sparkline([]) == ""
    assert len(sparkline([i / 40 for i in range(40)])) == 12


def test_the_study_screen_shows_live_members_overlays_them_and_stops_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr-trio.toml").write_text(STUDY)
    driver = subprocess.Popen([sys.executable, "-m", "neuraterm", "study", "lr-trio.toml", "--jobs", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "studies" / "lr-trio"
    deadline = time.monotonic() + 60
    while not (folder / "study.toml").is_file():
        assert time.monotonic() < deadline and driver.poll() is None, "the study never started"
        time.sleep(0.1)

    async def scenario():
        app = make_app("runs", deterministic=True, watch_dir=str(folder))
        async with app.run_test(size=(100, 32)) as pilot:
            async def until(condition, seconds=120):
                deadline = time.monotonic() + seconds
                while not condition():
                    assert time.monotonic() < deadline, "timed out"
                    await pilot.pause(0.1)

            await until(lambda: isinstance(app.screen, StudyScreen))
            screen = app.screen
            await until(lambda: sum(r.state == "running" and r.history != [] for r in screen.rows.values()) == 2)
            table = screen.query_one("#study-table")
            assert table.row_count == 3
            states = {str(table.get_row(k)[1]): str(table.get_row(k)[2]) for k in screen.rows}
            assert sorted(states.values()) == ["running", "running", "waiting"]
            chart = screen.query_one("#study-chart")
            assert {s.name for s in chart.series if not s.faint} >= {"lr-0.01", "lr-0.001"}  # one line per member
            await pilot.press("m")
            assert chart.title == "train accuracy %"
            await pilot.press("space", "down", "space")
            diff = str(screen.query_one("#study-diff").render())
            assert "optimizer.lr: 0.01 → 0.001" in diff
            first = screen.current()
            await pilot.press("up")
            stopped = screen.current()
            assert stopped != first or stopped == "lr-0.01"
            await pilot.press("x")
            await until(lambda: screen.rows[stopped].state == "interrupted", seconds=60)
            assert lock.holder(folder / stopped) is None
            assert str(table.get_row(stopped)[2]) == "interrupted"
    try:
        asyncio.run(scenario())
    finally:
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=60)
    assert driver.returncode == 143


def test_differences_name_the_config_keys_and_the_per_class_f1_gaps():
    from types import SimpleNamespace
    from neuraterm.core.config import Config
    a, b = Config(), Config()
    b.optimizer.lr, b.model.hidden = 0.5, [64]
    ra = SimpleNamespace(member=SimpleNamespace(config=a), f1={"0": 0.9, "1": 0.8})
    rb = SimpleNamespace(member=SimpleNamespace(config=b), f1={"0": 0.7, "1": 0.8})
    lines = differences(ra, rb)
    assert "model.hidden: [128] → [64]" in lines and "optimizer.lr: 0.1 → 0.5" in lines
    assert lines[-1].startswith("F1 0 0.90→0.70")
