"""The terminal app: snapshots of every screen, pilot-driven runs, and a real terminal through tmux."""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuraterm.core import checkpoint, events
from neuraterm.core.config import Config
from neuraterm.core.evaluate import evaluate_folder
from neuraterm.core.trainer import Trainer
from neuraterm.tui.app import make_app
from neuraterm.tui.screens.evaluate import EvaluateScreen

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


def tiny_config(name="tiny", epochs=3, hidden=(16,)) -> Config:
    config = Config(name=name, description="a tiny deterministic run")
    config.data.limit = 1000
    config.model.hidden = list(hidden)
    config.optimizer.name, config.optimizer.lr = "adam", 0.003
    config.train.epochs = epochs
    return config


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Two finished runs with fixed names in ./runs, so paths on screen are the same every time."""
    monkeypatch.chdir(tmp_path)
    Trainer(tiny_config("alpha"), Path("runs/alpha")).run()
    Trainer(tiny_config("beta", epochs=4, hidden=(32,)), Path("runs/beta")).run()
    return Path("runs")


async def settle(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause(0.7)  # the dashboard redraws on a 0.5 s timer


def app_for_snapshot(**kwargs):
    return make_app("runs", deterministic=True, **kwargs)


def drive(steps, size=(100, 32)) -> None:
    """Run `await steps(app, pilot)` against a fresh app, after its first screen is up."""
    async def scenario():
        app = app_for_snapshot()
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(app, pilot)
    asyncio.run(scenario())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_setup(snap_compare, size, workdir):
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_setup_flags_invalid_values(snap_compare, size, workdir):

    async def type_bad_lr(pilot):
        await pilot.pause()
        pilot.app.screen.query_one("#lr").value = "-1"
        await pilot.pause()
        assert "optimizer.lr must be > 0" in str(pilot.app.screen.query_one("#errors").render())
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=type_bad_lr)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_dashboard_after_a_short_run(snap_compare, size, workdir, monkeypatch):
    from neuraterm.tui.service import TrainingService
    original = TrainingService.load_preset
    monkeypatch.setattr(TrainingService, "load_preset", lambda self, name: tiny_config() if name == "tiny" else original(self, name))
    assert snap_compare(app_for_snapshot(preset="tiny", start=True), terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_runs_overlay(snap_compare, size, runs):
    async def overlay_both(pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("space", "down", "space")
        await pilot.pause()
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=overlay_both)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_evaluate(snap_compare, size, runs):
    async def open_alpha(pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")  # the highlighted row, alpha
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, EvaluateScreen) and screen.run_dir == "runs/alpha"
        summary = str(screen.query_one("#eval-summary").render())
        report = json.loads(Path("runs/alpha/report.json").read_text())
        assert "finished after 3 epochs" in summary
        assert f"test accuracy {100 * report['test_accuracy']:.2f}%" in summary
        assert screen.query_one("#per-class").row_count == 10
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=open_alpha)


def stopped_run(folder: Path, after: int = 2, epochs: int = 5) -> Path:
    """A run stopped by the user (as Stop or Ctrl-C would) right after epoch `after` of `epochs`."""
    trainer = Trainer(tiny_config("stopped", epochs=epochs), folder)
    trainer.listeners.append(lambda e: trainer.control.stop() if isinstance(e, events.EpochEnded)
                             and e.epoch == after else None)
    trainer.run()
    return folder


def test_evaluate_an_interrupted_run_says_which_epoch(workdir):
    run = stopped_run(Path("runs/stopped"))
    expected = evaluate_folder(run, tiny_config().train.noise)
    assert (expected["epoch"], expected["epochs"], expected["finished"]) == (2, 5, False)

    async def steps(app, pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EvaluateScreen)
        summary = str(app.screen.query_one("#eval-summary").render())
        assert "not finished: checkpoint after epoch 2 of 5" in summary
        assert f"test accuracy {100 * expected['test_accuracy']:.2f}%" in summary
    drive(steps)


def test_evaluate_a_running_run_from_the_dashboard(workdir):
    async def steps(app, pilot):
        config = tiny_config(epochs=500)
        config.train.batch_size = 8
        app.start_run(config)
        while len(app.run_state.history) < 2:
            await pilot.pause(0.05)
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        while screen.result is None:
            await pilot.pause(0.05)
        summary = str(screen.query_one("#eval-summary").render())
        assert app.run_state.status == "running" and "still training: checkpoint after epoch" in summary
        assert screen.result["epoch"] >= 2 and not screen.result["finished"]
        await pilot.press("escape", "x")
        await settle(pilot)
    drive(steps)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_help(snap_compare, size, workdir):
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], press=["question_mark"])


def test_too_small_terminal_says_so(workdir):
    async def steps(app, pilot):
        assert app.has_class("-too-small")
        assert app.query_one("#too-small").display
    drive(steps, size=(60, 20))


def test_pilot_trains_from_setup_then_resumes_from_runs(workdir):
    async def steps(app, pilot):
        screen = app.screen
        screen.query_one("#limit").value = "1000"
        screen.query_one("#hidden").value = "16"
        screen.query_one("#epochs").value = "2"
        await pilot.pause()
        await pilot.press("t")
        await settle(pilot)
        assert app.run_state.status == "finished" and len(app.run_state.history) == 2
        run_dir = Path(app.run_state.run_dir)
        assert json.loads((run_dir / "report.json").read_text())["test_accuracy"] > 0.3  # well above the 10% of chance after 2 tiny epochs
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("R")  # resume the highlighted (only) run
        await settle(pilot)
        assert app.run_state.status == "finished"
        snap = checkpoint.load(run_dir)
        assert snap.train_state["epoch"] == 7 and len(snap.history) == 7  # 2 + max(5, 2 // 2)
    drive(steps)


def test_pause_stop_and_late_messages_of_a_stopped_run(workdir):
    async def steps(app, pilot):
        config = tiny_config(epochs=500)
        config.train.batch_size = 8
        app.start_run(config)
        while not app.run_state.history:
            await pilot.pause(0.05)
        await pilot.press("p")
        assert app.trainer.control.paused and app.run_state.status == "paused"
        await pilot.press("p")
        assert not app.trainer.control.paused
        await pilot.press("x")
        await settle(pilot)
        assert app.run_state.status == "stopped"
        stopped_dir = Path(app.run_state.run_dir)
        assert checkpoint.load(stopped_dir).train_state["epoch"] < 500
        old_id = app.run_id
        app.run_id += 1  # a newer run: messages of the old one must be ignored
        from neuraterm.core import events
        from neuraterm.tui.messages import TrainerEvent
        version = app.run_state.version
        app.post_message(TrainerEvent(old_id, events.RunFailed("x", "late")))
        await pilot.pause()
        assert app.run_state.version == version
    drive(steps)


def test_command_palette_lists_every_action(workdir):
    async def steps(app, pilot):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for expected in ("Pause or resume training", "Stop training (saves a checkpoint)", "Save a checkpoint now",
                         "Evaluate the current run", "Show the key bindings", "Go to runs", "Start training"):
            assert expected in titles
    drive(steps)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_real_terminal_trains_quick_and_shows_charts(tmp_path):
    session = f"nt{os.getpid()}"
    env = f"cd {tmp_path} && PYTHONUNBUFFERED=1 {sys.executable} -m neuraterm"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", env], check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        deadline = time.time() + 30
        while "ready: press" not in screen() and time.time() < deadline:
            time.sleep(0.3)
        assert "presets" in screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "t"], check=True)
        deadline = time.time() + 120
        while "test acc" not in screen() and time.time() < deadline:
            time.sleep(0.5)
        text = screen()
        assert "test acc 9" in text  # quick reaches over 90%
        assert "loss" in text and "accuracy %" in text and "epoch 10/10" in text
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.time() + 10
        while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0 \
                and time.time() < deadline:
            time.sleep(0.2)
        assert list((tmp_path / "runs").iterdir())
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
