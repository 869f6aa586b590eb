"""The Study screen on a real study: a `neuraterm study` driver trains the members as processes, and
the screen (a viewer like any other) shows them live, overlays a metric, compares two, and stops one."""
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
            await pilot.pause(0.2)
            shown = [strip.text for strip in app.screen._compositor.render_strips()]
            assert any(stopped in row and "interrupted" in row for row in shown), shown  # the state whole, not cut
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


def test_a_member_that_ray_retries_reads_retrying_with_the_drivers_note_until_it_writes_again(tmp_path):
    """The Ray driver's own callback notes a lost node in the member's log; any viewer then reads the member
    as retrying (state, note, the Study screen's row and note line) while the driver holds the study and the
    member has written nothing since; the member's next event, or the driver gone, ends it."""
    import os
    from types import SimpleNamespace

    tune = pytest.importorskip("ray.tune")

    from neuraterm.core.study import ray_tune, results, spec
    from neuraterm.core.study.folder import StudyFolder

    (tmp_path / "trio.toml").write_text(STUDY.replace("lr-trio", "trio"))
    folder = StudyFolder.create(spec.load(str(tmp_path / "trio.toml")), tmp_path / "studies" / "trio")
    name = folder.members[1].name
    error = tmp_path / "error.txt"
    error.write_text("ray.exceptions.NodeDiedError: The node with node id: 1a2b3c4d5e6f "
                     "has died. Node Id: 1a2b3c4d5e6f\n")
    trial = SimpleNamespace(config={"member": name}, last_result={"epoch": 4, "epochs": 400, "val_acc": 0.5},
                            error_file=str(error), get_error=lambda: None, num_failures=1)
    seen = []
    progress = ray_tune._callback(tune, folder, [seen.append], None)
    driver = folder.lock()
    try:
        progress.on_trial_recover(0, [], trial)
        assert seen[-1].state == "retrying"
        note = "its node 1a2b3c4d was lost; retrying from epoch 4"
        state = folder.state(name)
        assert (state.state, state.note) == ("retrying", note)
        assert {r.name: (r.state, r.message) for r in results.collect(folder)}[name] == ("retrying", note)
        assert all(folder.state(m.name).state == "waiting" for m in folder.members if m.name != name)

        async def scenario():
            app = make_app("runs", deterministic=True, watch_dir=str(folder.path))
            async with app.run_test(size=(100, 32)) as pilot:
                deadline = time.monotonic() + 30
                while not (isinstance(app.screen, StudyScreen) and name in app.screen.rows):
                    assert time.monotonic() < deadline, "the Study screen never showed the study"
                    await pilot.pause(0.1)
                table = app.screen.query_one("#study-table")
                assert "retrying" in str(table.get_row(name)[2])
                assert f"{name}: {note}" in str(app.screen.query_one("#study-diff").render())
        asyncio.run(scenario())

        member_log = folder.member_dir(name) / "events.jsonl"  # the retried member starts and writes an event
        member_log.parent.mkdir()
        member_log.write_text("")
        later = os.stat(folder.log_path(name)).st_mtime_ns + 1_000_000
        os.utime(member_log, ns=(later, later))
        assert folder.state(name).state != "retrying"
        os.utime(member_log, ns=(later - 2_000_000, later - 2_000_000))
        assert folder.state(name).state == "retrying"
    finally:
        driver.release()
    assert folder.state(name).state != "retrying"  # no driver: nobody retries it


def test_a_damaged_pbt_record_is_one_line_on_the_study_screen(tmp_path):
    """The rows of a PBT study read its record (pbt/state.json): a hand-edited one that is valid JSON but
    not a record is the title's one line, not a worker dying silently over stale rows."""
    from neuraterm.core.study import spec
    from neuraterm.core.study.folder import StudyFolder
    (tmp_path / "pop.toml").write_text('name = "pop"\npreset = "quick"\nscheduler = "pbt"\n[grid]\n'
                                       '"optimizer.lr" = [0.1, 0.01]\n[pbt.mutations]\n'
                                       '"optimizer.lr" = {loguniform = [0.0001, 1.0]}\n')
    folder = StudyFolder.create(spec.load(str(tmp_path / "pop.toml")), tmp_path / "studies" / "pop")
    (folder.path / "pbt").mkdir()
    (folder.path / "pbt" / "state.json").write_text('{"rounds": [1]}')

    async def scenario():
        app = make_app("runs", deterministic=True, watch_dir=str(folder.path))
        async with app.run_test(size=(100, 32)) as pilot:
            deadline = time.monotonic() + 30
            while not (isinstance(app.screen, StudyScreen)
                       and "not a PBT record" in str(app.screen.query_one("#study-title").render())):
                assert time.monotonic() < deadline, "the Study screen never said the record is damaged"
                await pilot.pause(0.1)
            title = str(app.screen.query_one("#study-title").render())
            assert "pbt/state.json: not a PBT record (round 1 is not a table)" in title and "\n" not in title
    asyncio.run(scenario())
