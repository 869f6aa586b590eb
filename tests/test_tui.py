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
from textual.binding import Binding
from textual.command import CommandList

from neuraterm.core.run import checkpoint, events
from neuraterm.core.config import Config
from neuraterm.core.run.evaluate import evaluate_folder
from neuraterm.core.run.trainer import Trainer
from neuraterm.tui.app import NeuratermApp, make_app
from neuraterm.tui.run_state import RunState
from neuraterm.tui.smoothing import smooth
from neuraterm.tui.screens.dashboard import DashboardScreen
from neuraterm.tui.screens.dialogs import ConfirmDialog, DatasetPathDialog
from neuraterm.tui.screens.evaluate import EvaluateScreen
from neuraterm.tui.screens.runs import RunsScreen
from neuraterm.tui.screens.setup import SetupScreen

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
    """Wait until the followed run is over (its process ended, its log read), then for a redraw."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause(0.7)  # the dashboard redraws on a 0.5 s timer


async def until(pilot, condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def stop_launched(app) -> None:
    """Runs started by the app are processes of their own: a test never leaves one behind."""
    if app.launched is not None and app.launched.process.poll() is None:
        app.launched.process.terminate()
        app.launched.process.wait(timeout=60)


def app_for_snapshot(**kwargs):
    return make_app("runs", deterministic=True, **kwargs)


def drive(steps, size=(100, 32)) -> None:
    """Run `await steps(app, pilot)` against a fresh app, after its first screen is up."""
    async def scenario():
        app = app_for_snapshot()
        try:
            async with app.run_test(size=size) as pilot:
                await pilot.pause()
                await steps(app, pilot)
        finally:
            stop_launched(app)
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
def test_snapshot_dashboard_after_a_short_run(snap_compare, size, workdir):
    """The events of a real tiny run, replayed into the dashboard: live, step updates coalesce in the
    message queue, so how many reach the step-loss chart depends on the machine's speed."""
    recorded = []
    Trainer(tiny_config(), Path("runs/tiny"), [recorded.append], step_events_per_s=1e9).run()

    async def replay(pilot):
        pilot.app.run_state = RunState(name="tiny", epochs=3)
        for event in recorded:
            pilot.app.run_state.apply(event)
        await pilot.press("d")
        await settle(pilot)
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=replay)


def test_c_shows_the_prediction_dynamics_on_the_dashboard_in_place_of_the_lr(runs):
    """The watched run's per-class confidence on the probe batch, from its health, a line per class that
    fits; c again brings the LR chart back."""
    async def steps(app, pilot):
        app.watch_run(str(runs / "beta"))
        await settle(pilot)
        screen = app.screen
        assert len(app.run_state.health) == 4
        await pilot.press("c")
        await settle(pilot)
        await pilot.pause(0.3)
        panel = screen.query_one("#confidence-panel")
        assert panel.display and not screen.query_one("#lr-chart").display
        text = str(panel.render())
        last = app.run_state.health[-1].class_confidence
        worst = min(range(10), key=lambda i: (last[i], i))
        lines = text.splitlines()
        assert lines[0] in ("lowest 6 of 10", "the 6 lowest of 10 classes") and len(lines) == 7, text  # 7 rows inside
        assert f"{100 * last[worst]:3.0f}%" in text  # the class it gets least right is always shown
        await pilot.press("c")
        await pilot.pause(0.2)
        assert screen.query_one("#lr-chart").display and not panel.display
    drive(steps, size=(80, 24))


def test_confidence_lines_show_the_lowest_classes_that_fit_in_class_order():
    from types import SimpleNamespace

    from neuraterm.tui.widgets.health_views import confidence_lines
    confidence = [0.9 - 0.01 * i for i in range(47)]
    confidence[5], confidence[40] = 0.05, None  # the worst class, and one not on the probe batch
    health = [SimpleNamespace(epoch=e, class_confidence=confidence) for e in (1, 2)]
    text = confidence_lines(health, None, width=21, rows=5).plain.splitlines()
    assert text[0] == "lowest 4 of 47"  # the longest title that fits its width, never wrapped
    assert [line.split()[0] for line in text[1:]] == ["5", "44", "45", "46"]  # lowest first chosen, shown in order
    assert "  5%" in text[1]
    everything = confidence_lines(health, None, width=200).plain
    assert "epochs 1..2" in everything and " 40 " in everything


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_runs_overlay(snap_compare, size, runs):
    async def overlay_both(pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("space", "down", "space")
        await pilot.pause()
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=overlay_both)


@pytest.fixture
def family(tmp_path, monkeypatch):
    """alpha (6 epochs) with three forks: lr at 3 (and a fork of that fork at 4), l2 at 2; beta alone."""
    from neuraterm import cli as cli_mod
    monkeypatch.chdir(tmp_path)
    Trainer(tiny_config("alpha", epochs=6), Path("runs/alpha")).run()
    for args in (["runs/alpha", "--epoch", "3", "--set", "optimizer.lr=0.01", "--out", "runs/alpha-lr"],
                 ["runs/alpha-lr", "--epoch", "4", "--set", "optimizer.lr=0.001", "--epochs", "8",
                  "--out", "runs/alpha-lr-cool"],
                 ["runs/alpha", "--epoch", "2", "--set", "optimizer.l2=0.01", "--out", "runs/alpha-l2"]):
        assert cli_mod.main(["fork", *args]) == 0
    Trainer(tiny_config("beta", epochs=4, hidden=(32,)), Path("runs/beta")).run()
    return Path("runs")


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_runs_tree_and_branch_overlay(snap_compare, size, family):
    """Forks under their parents with their fork epoch; the family's overlay draws alpha's epochs once
    and each fork from its fork epoch, its change in the legend; the epoch cursor on alpha's epoch 5."""
    async def cursor_on_alpha(pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        screen = pilot.app.screen
        assert "epoch 5 of alpha: val acc" in str(screen.query_one("#runs-hint").render())
        legend = screen.query_one("#overlay-chart").border_title + screen.query_one("#overlay-chart").border_subtitle
        for change in ("lr 0.003 -> 0.01 @ 3", "lr 0.01 -> 0.001 @ 4", "l2 0 -> 0.01 @ 2"):
            assert change in legend, legend
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=cursor_on_alpha)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_setup_opens_a_fork_with_the_frozen_settings_locked(snap_compare, size, family):
    async def fork_alpha_lr_at_5(pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("down", "down", "left_square_bracket", "left_square_bracket", "f")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, SetupScreen) and screen.fork[1] == 5
        assert screen.query_one("#hidden").disabled and screen.query_one("#dataset").disabled
        assert not screen.query_one("#lr").disabled and screen.query_one("#lr").value == "0.01"
        assert screen.focused is screen.query_one("#lr")  # the field a fork changes most
        screen.set_focus(None)  # a blinking text cursor is not a picture
        await pilot.pause()
    assert snap_compare(app_for_snapshot(), terminal_size=SIZES[size], run_before=fork_alpha_lr_at_5)


def test_f_on_runs_forks_at_the_cursor_epoch_as_a_process_of_its_own(family):
    async def steps(app, pilot):
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("f")  # no epoch picked yet: nothing happens but a hint
        assert not isinstance(app.screen, SetupScreen)
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket", "f")  # alpha, epoch 4
        await pilot.pause()
        app.screen.query_one("#lr").value = "0.0005"
        await pilot.pause()
        assert "lr 0.003 -> 0.0005" in str(app.screen.query_one("#errors").render())
        await pilot.press("t")
        await settle(pilot)
        assert app.run_state.status == "finished", app.run_state.status
        fork = Path(app.run_state.run_dir)
        assert fork.parent.resolve() == Path("runs").resolve() and fork.name.startswith("alpha-e4-")
        snap, parent = checkpoint.load(fork), checkpoint.load(Path("runs/alpha"))
        (entry,) = snap.meta["lineage"]
        assert entry["epoch"] == 4 and Path(entry["parent"]) == Path("runs/alpha").resolve()
        assert entry["changes"] == {"optimizer.lr": [0.003, 0.0005]}
        assert snap.history[:4] == parent.history[:4] and [r["lr"] for r in snap.history[4:]] == [0.0005, 0.0005]
        assert len(app.run_state.history) == 6  # the dashboard drew the parent's four epochs, then the fork's
    drive(steps)


def test_the_dashboard_suggests_a_fork_when_the_run_overfits_and_F_starts_it(workdir):
    """A small net on 300 digits with a high LR overfits within 12 epochs: the dashboard of that run
    says from which epoch and with what change, and F starts the fork as a process of its own."""
    from neuraterm import cli as cli_mod
    overfit = ["--set", "data.limit=300", "--set", "model.hidden=[128]", "--set", "optimizer.lr=0.01",
               "--set", "train.batch_size=16", "--set", 'train.keep="all"']
    assert cli_mod.main(["train", "--out", "runs/over", "--epochs", "12", *overfit]) == 0
    parent = checkpoint.load(Path("runs/over"))
    best = min(parent.history, key=lambda r: r["val_loss"])["epoch"]
    assert best <= 12 - 3, "the run did not overfit: the test has nothing to show"

    async def steps(app, pilot):
        assert "F Fork" not in screen_text(app)[-1]
        app.watch_run("runs/over")
        await settle(pilot)
        screen = app.screen
        shown = " ".join(line.text for line in screen.query_one("#log").lines)
        assert f"F forks at epoch {best} with lr 0.01 -> 0.00333" in " ".join(shown.split()), shown
        assert "F Fork" in await footer_shows(app, pilot, ["F Fork"])
        await pilot.press("F")
        await settle(pilot)
        fork = Path(app.run_state.run_dir)
        assert app.run_state.status == "finished" and fork != Path("runs/over").resolve()
        (entry,) = checkpoint.load(fork).meta["lineage"]
        assert entry["epoch"] == best and entry["changes"] == {"optimizer.lr": [0.01, 0.00333]}
    drive(steps)


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
        assert "r Runs" in await footer_shows(app, pilot, ["r Runs"])
        await pilot.press("r")  # back to the Runs screen under it
        assert isinstance(app.screen, RunsScreen)
    drive(steps)


def test_pause_stop_and_save_are_offered_while_a_run_trains_only(workdir):
    async def steps(app, pilot):
        footer = await footer_shows(app, pilot, ["t Train"])
        await pilot.press("d")
        footer = await footer_shows(app, pilot, ["e Evaluate"])
        assert "Pause" not in footer and any("no run yet: pick a preset in Setup (n), then t" in row for row in screen_text(app))
        config = tiny_config(epochs=500)
        config.train.batch_size = 8
        app.start_run(config)
        while len(app.run_state.history) < 1:
            await pilot.pause(0.05)
        footer = await footer_shows(app, pilot, ["p Pause", "x Stop", "s Save"])
        assert all(k in footer for k in ("p Pause", "x Stop", "s Save")), footer
        await pilot.press("x")
        await settle(pilot)
        footer = await footer_shows(app, pilot, ["e Evaluate"])
        assert app.run_state.status in ("stopped", "interrupted") and "Pause" not in footer, (app.run_state.status, footer)
    drive(steps, size=(80, 24))


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


def test_too_small_terminal_says_so_on_every_screen(runs):
    async def says_so(app, pilot, where):
        await pilot.pause(0.1)
        text = "\n".join(screen_text(app))
        assert "terminal too small: 60x20" in text and "at least 80x24" in text, where
        assert "20 more columns and 4 more rows" in text, where

    async def steps(app, pilot):
        assert app.has_class("-too-small")
        await says_so(app, pilot, "setup")
        setup = app.screen
        await pilot.press("enter", "d", "x", "question_mark")  # keys wait: nothing acts on what nobody sees
        await settle(pilot)
        assert app.screen is setup and app.launched is None and app.attached is None
        for where in ("dashboard", "runs", "study", "inside"):  # every screen has the notice
            app.switch_mode(where)
            await settle(pilot)
            await says_so(app, pilot, where)
        app.open_evaluation(str(runs / "alpha"))
        await settle(pilot)
        await says_so(app, pilot, "evaluate")
        app.action_help()
        await settle(pilot)
        await says_so(app, pilot, "help")
    drive(steps, size=(60, 20))

    async def quits(app, pilot):
        await pilot.press("q")  # the one key that acts: quit
        await pilot.pause(0.2)
        assert app.return_code is not None or not app.is_running
    drive(quits, size=(60, 20))

    async def quits_leaving_a_live_run_training(app, pilot):  # its question would sit under the notice
        app.attached, app.run_state.status = runs / "alpha", "running"
        app.attached_is_live = lambda: True
        await pilot.press("q")
        await pilot.pause(0.2)
        assert not any(type(s).__name__ == "QuitDialog" for s in app.screen_stack)
        assert app._exit_renderables and "alpha keeps training" in str(app._exit_renderables[-1])
    drive(quits_leaving_a_live_run_training, size=(60, 20))

    async def shrink_and_grow(app, pilot):  # a terminal made smaller while the app runs, then larger again
        await pilot.press("r")
        await pilot.resize_terminal(60, 20)
        await says_so(app, pilot, "runs, resized")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        assert not any("terminal too small" in row for row in screen_text(app))
    drive(shrink_and_grow, size=(100, 32))


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
        await pilot.press("R")  # resume the highlighted (only) run: finished, so it asks first
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        assert app.run_state.status == "finished"
        snap = checkpoint.load(run_dir)
        assert snap.train_state["epoch"] == 7 and len(snap.history) == 7  # 2 + max(5, 2 // 2)
    drive(steps)


def test_pause_stop_and_late_messages_of_a_stopped_run(workdir):
    """The dashboard steers a run that is its own process, and shows what the run's log confirms."""
    async def steps(app, pilot):
        config = tiny_config(epochs=500)
        config.train.batch_size = 8
        app.start_run(config)
        await until(pilot, lambda: app.run_state.history)
        run_dir = Path(app.run_state.run_dir)
        assert app.launched.process.pid != os.getpid() and app.service.is_live(run_dir)
        await pilot.press("p")
        await until(pilot, lambda: app.run_state.status == "paused")
        steps_logged = (run_dir / "events.jsonl").read_text().count('"StepEnded"')
        await pilot.pause(1.0)
        assert (run_dir / "events.jsonl").read_text().count('"StepEnded"') == steps_logged  # paused for real
        await pilot.press("p")
        await until(pilot, lambda: app.run_state.status == "running")
        await pilot.press("x")
        await settle(pilot)
        assert app.run_state.status == "stopped" and app.launched.process.wait(timeout=30) == 0
        assert checkpoint.load(run_dir).train_state["epoch"] < 500
        old_id = app.run_id
        app.run_id += 1  # a newer attachment: messages of the old one must be ignored
        from neuraterm.tui.messages import RunEvents
        version = app.run_state.version
        app.post_message(RunEvents(old_id, [events.RunFailed("x", "late")]))
        await pilot.pause()
        assert app.run_state.version == version
    drive(steps)


def test_command_palette_has_every_action_and_runs_it_on_its_screen(runs):
    async def steps(app, pilot):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for owner in (NeuratermApp, SetupScreen, DashboardScreen, RunsScreen):
            for binding in Binding.make_bindings(owner.BINDINGS):
                if binding.description and binding.key != "escape":
                    assert (binding.tooltip or binding.description) in titles, binding
        for expected in ("Overlay the highlighted run's curves, or take them off", "Resume training the highlighted run",
                         "Refresh the list of runs", "Reset the form to the preset", "Pause or resume training",
                         "Change the step-loss smoothing", "Show every key", "Go to the Runs screen"):
            assert expected in titles
        assert app.current_mode == "setup"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"overlay")
        for _ in range(40):  # the palette searches in a worker
            if app.screen.query_one(CommandList).option_count:
                break
            await pilot.pause(0.05)
        await pilot.press("enter")
        for _ in range(40):
            if app.current_mode == "runs" and getattr(app.screen, "selected", None):
                break
            await pilot.pause(0.05)
        assert app.current_mode == "runs" and app.screen.selected == {"runs/alpha"}
    drive(steps)


def test_resume_draws_the_epochs_already_trained_before_new_ones(runs):
    before = checkpoint.load(Path("runs/alpha")).history

    async def scenario():
        app = make_app("runs", deterministic=True, resume_dir="runs/alpha")
        async with app.run_test(size=(100, 32)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))  # alpha is finished: it asks
            await pilot.press("y")
            await until(pilot, lambda: len(app.run_state.history) >= 3)
            first = app.run_state.history[:3]
            assert [e.epoch for e in first] == [1, 2, 3]
            assert [(e.train_loss, e.val_acc, e.lr) for e in first] == [(r["train_loss"], r["val_acc"], r["lr"])
                                                                       for r in before]
            await pilot.pause(0.7)
            loss = app.screen.query_one("#loss-chart")
            assert list(loss.series[0].xs[:3]) == [1, 2, 3]
            await settle(pilot)
            assert [e.epoch for e in app.run_state.history] == list(range(1, 9))  # 3 + max(5, 3 // 2)
    asyncio.run(scenario())


def test_eta_comes_from_the_measured_pace_not_zero_before_an_epoch_ends():
    state = RunState(epochs=10)
    state.apply(events.RunStarted("r", "tiny", "cpu", 10, 900, 100, 200, 100, 0, 10), now=0.0)
    state.apply(events.StepEnded(1, 1, 100, 2.3, 1000.0), now=1.0)
    assert state.eta() is None  # no pace yet: the dashboard says "ETA …"
    state.apply(events.StepEnded(1, 41, 100, 1.9, 1000.0), now=5.0)  # 40 steps in 4 s; 4% done
    assert state.progress() == (41, 1000) and state.eta() == pytest.approx((1000 - 41) * 0.1)

    resumed = RunState(epochs=10)
    for e in (1, 2, 3, 4):  # the epochs of an earlier session, as the log replays them
        resumed.apply(events.EpochEnded(e, 10, 1.0, 0.5, 1.0, 0.5, 0.1, 1000.0, 0.5, e * 0.5), now=-1.0)
    resumed.apply(events.RunStarted("r", "tiny", "cpu", 10, 900, 100, 200, 100, 4, 10), now=0.0)
    resumed.apply(events.StepEnded(5, 10, 100, 1.0, 1000.0), now=1.0)
    resumed.apply(events.StepEnded(5, 30, 100, 1.0, 1000.0), now=3.0)
    assert resumed.progress() == (430, 1000) and resumed.eta() == pytest.approx(570 * 0.1)


def test_step_loss_smoothing_and_log_scale_keys(workdir, monkeypatch):
    from neuraterm.tui.service import TrainingService
    monkeypatch.setattr(TrainingService, "load_preset", lambda self, name: tiny_config())

    async def scenario():
        app = app_for_snapshot(preset="tiny", start=True)
        async with app.run_test(size=(100, 32)) as pilot:
            await settle(pilot)
            chart = app.screen.query_one("#step-chart")
            raw, ema = chart.series
            assert raw.faint and raw.ys == app.run_state.step_loss and ema.ys == smooth(raw.ys, 0.9)
            await pilot.press("m")
            raw, ema = chart.series
            assert ema.ys == smooth(raw.ys, 0.95) and "0.95" in str(chart.border_subtitle)
            await pilot.press("l")
            for name in ("#loss-chart", "#lr-chart", "#step-chart"):
                assert app.screen.query_one(name).log_scale and "(log)" in str(app.screen.query_one(name).border_title)
    asyncio.run(scenario())


def test_overlay_legend_tells_apart_runs_whose_names_differ_only_at_the_end(workdir):
    for stamp in ("233511", "233622"):
        Trainer(tiny_config(f"fashion-mlp-20261122-{stamp}", epochs=2), Path(f"runs/fashion-mlp-20261122-{stamp}")).run()

    async def scenario():
        app = app_for_snapshot()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("r")
            await pilot.pause()
            await pilot.press("space", "down", "space")
            await pilot.pause()
            title_row = next(row for row in screen_text(app) if "validation accuracy" in row)
            assert "233511" in title_row and "233622" in title_row, title_row
    asyncio.run(scenario())


def screen_text(app) -> list[str]:
    """What the terminal shows, one string per row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def footer_shows(app, pilot, keys) -> str:
    """The footer, once it shows `keys` or after two seconds: it is recomposed after a refresh,
    which a loaded machine takes a while to get to."""
    for _ in range(40):
        footer = screen_text(app)[-1]
        if all(key in footer for key in keys):
            break
        await pilot.pause(0.05)
    return footer


def small_form(screen) -> None:
    screen.query_one("#limit").value = "500"
    screen.query_one("#epochs").value = "1"


def test_letters_in_a_number_field_are_keys_never_text_and_escape_leaves_it(workdir):
    async def steps(app, pilot):
        small_form(app.screen)
        hidden = app.screen.query_one("#hidden")
        hidden.focus()
        footer = await footer_shows(app, pilot, ["t Train", "esc Leave field"])
        assert "t Train" in footer and "esc Leave field" in footer  # the footer offers t in the field...
        await pilot.press("r")
        assert app.current_mode == "runs" and hidden.value == "128"
        await pilot.press("n")
        hidden.focus()
        await pilot.pause()
        await pilot.press("escape")
        assert app.focused is None
        hidden.focus()
        await pilot.pause()
        await pilot.press("t")  # ...and t trains
        assert hidden.value == "128" and app.current_mode == "dashboard"
        await settle(pilot)
        assert app.run_state.status == "finished"
        assert checkpoint.load(Path(app.run_state.run_dir)).config.model.hidden == [128]
    drive(steps)


def test_hidden_layers_take_the_toml_list_or_commas(workdir):
    async def steps(app, pilot):
        hidden = app.screen.query_one("#hidden")
        hidden.focus()
        await pilot.pause()
        await pilot.press(*"[64, 32]")
        assert hidden.value == "[64, 32]" and app.screen.build_config().model.hidden == [64, 32]
        hidden.value = "64,32"
        assert app.screen.build_config().model.hidden == [64, 32]
        hidden.value = "[64, 32"
        await pilot.pause()
        assert "hidden" in str(app.screen.query_one("#errors").render()) and hidden.has_class("-invalid")
    drive(steps)


def test_moving_through_presets_keeps_edits_until_you_say_so(workdir):
    async def steps(app, pilot):
        screen = app.screen
        presets = screen.query_one("#presets")
        presets.focus()
        await pilot.press("up")  # untouched form: the highlighted preset loads at once
        assert screen.base.name == "mnist-sgd" and screen.query_one("#optimizer").value == "sgd"
        await pilot.press("down")
        assert screen.base.name == "quick"
        screen.query_one("#lr").value = "0.05"
        await pilot.press("up")  # edited: only a preview
        assert screen.base.name == "quick" and screen.query_one("#lr").value == "0.05"
        assert "enter" in str(screen.query_one("#preset-description").render())
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert app.screen is screen and screen.query_one("#lr").value == "0.05" and screen.base.name == "quick"
        assert str(presets.get_option_at_index(presets.highlighted).prompt) == "quick"
        await pilot.press("up", "enter", "y")
        assert screen.base.name == "mnist-sgd" and screen.query_one("#lr").value == "0.1"
    drive(steps)


def test_a_run_from_an_edited_form_is_named_and_described_as_an_edit(workdir):
    async def steps(app, pilot):
        screen = app.screen
        small_form(screen)
        screen.query_one("#optimizer").value = "sgd"
        screen.query_one("#lr").value = "0.05"
        await pilot.pause()
        assert "quick-edited" in str(screen.query_one("#errors").render())
        await pilot.press("t")
        await settle(pilot)
        run_dir = Path(app.run_state.run_dir)
        config = checkpoint.load(run_dir).config
        assert run_dir.name.startswith("quick-edited-") and config.name == "quick-edited"
        assert config.description == ("quick, edited: data.limit = 500, optimizer.name = sgd, optimizer.lr = 0.05, "
                                      "train.epochs = 1")
    drive(steps)


def test_the_dataset_field_takes_a_path_typed_in_a_dialog(workdir):
    async def steps(app, pilot):
        screen = app.screen
        screen.query_one("#dataset").focus()
        await pilot.press("enter")  # open the list
        await pilot.press("a", "enter")  # type to search: "a file or folder of your own…"
        await pilot.pause()
        assert isinstance(app.screen, DatasetPathDialog)
        await pilot.press(*"data/mnist-train.npz", "enter")  # letters that are keys elsewhere are text here
        await pilot.pause()
        assert app.screen is screen and app.current_mode == "setup"
        assert screen.query_one("#dataset").value == "data/mnist-train.npz"
        assert screen.build_config().data.dataset == "data/mnist-train.npz"
        screen.query_one("#dataset").value = "fashion-mnist"
        await pilot.pause()
        assert screen.build_config().data.dataset == "fashion-mnist"
    drive(steps)


def test_checkboxes_say_on_or_off_in_text(workdir):
    async def steps(app, pilot):
        box = app.screen.query_one("#batchnorm")
        assert "off" in str(box.render()) and "on" not in str(box.render()).replace("off", "")
        box.focus()
        await pilot.press("space")
        assert box.value and "on" in str(box.render()) and "x" in str(box.render())
    drive(steps)


def test_at_80x24_every_screen_keeps_its_keys_and_the_log_keeps_whole_lines(workdir, monkeypatch):
    from neuraterm.tui.service import TrainingService
    monkeypatch.setattr(TrainingService, "load_preset", lambda self, name: tiny_config())

    async def scenario():
        app = app_for_snapshot(preset="tiny", start=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            keys = ("e Evaluate", "n Setup", "r Runs", "? Help", "q Quit")  # the run is over: no pause, stop or save
            footer = await footer_shows(app, pilot, keys)
            assert all(key in footer for key in keys) and "Pause" not in footer and "Stop" not in footer, footer
            log = app.screen.query_one("#log")
            for _ in range(40):  # the log is written on the dashboard's redraw timer
                if len(log.lines) >= len(app.run_state.log):
                    break
                await pilot.pause(0.05)
            assert log.virtual_size.width <= log.scrollable_content_region.width  # wrapped, not cut
            shown = " ".join(" ".join(line.text.split()) for line in log.lines)
            for line in app.run_state.log:
                assert " ".join(line.split()) in shown
            await pilot.press("r")
            keys = ("space Overlay", "enter Evaluate", "R Resume", "n Setup", "d Dashboard", "? Help", "q Quit")
            footer = await footer_shows(app, pilot, keys)
            assert all(key in footer for key in keys), footer
            await pilot.press("n")
            keys = ("t Train", "d Dashboard", "r Runs", "? Help", "q Quit")
            footer = await footer_shows(app, pilot, keys)
            assert all(key in footer for key in keys), footer
            await pilot.press("question_mark")
            await pilot.pause(0.2)
            text = "\n".join(screen_text(app))
            assert "question_mark" not in text and "? / " not in text and " ?  " in text
    asyncio.run(scenario())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_real_terminal_trains_quick_and_shows_charts(tmp_path):
    """At 80x24 in tmux: t trains even from inside a number field, the charts are braille lines, the
    footer keeps Runs and Help, the log keeps whole lines, and enter on Runs evaluates."""
    session = f"nt{os.getpid()}"
    env = f"cd {tmp_path} && PYTHONUNBUFFERED=1 {sys.executable} -m neuraterm"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", env], check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        def keys(*names: str) -> None:
            subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)

        def wait_for(text: str, seconds: float) -> str:
            deadline = time.time() + seconds
            while text not in screen() and time.time() < deadline:
                time.sleep(0.3)
            return screen()

        assert "presets" in wait_for("ready: press", 30)
        keys("Tab", "Tab")  # from the presets: dataset, then the limit field
        time.sleep(0.5)
        keys("t")
        text = wait_for("test acc", 120)
        assert "test acc 9" in text and "(e: details)" in text  # quick reaches over 90%; the line is whole
        assert "loss" in text and "accuracy %" in text and "epoch 10/10" in text
        assert any("\u2800" <= c <= "\u28ff" for c in text)  # lines in braille
        footer = text.rstrip("\n").splitlines()[-1]
        assert "r Runs" in footer and "? Help" in footer, footer
        keys("r")
        assert "enter Evaluate" in wait_for("enter Evaluate", 10)
        keys("Enter")
        text = wait_for("finished after 10 epochs", 30)
        assert "finished after 10 epochs" in text and "test accuracy 9" in text
        keys("Escape", "q")
        deadline = time.time() + 10
        while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0 \
                and time.time() < deadline:
            time.sleep(0.2)
        assert list((tmp_path / "runs").iterdir())
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# -- Evaluate at real sizes: Fashion-MNIST's full test set and EMNIST ByMerge's 47 classes --------------
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_CM = [  # a fashion-mlp run's shape: 1,000 test images per class, shirts taken for T-shirts and coats
    [850, 2, 15, 30, 5, 1, 90, 0, 7, 0], [3, 970, 2, 18, 4, 0, 2, 0, 1, 0], [15, 1, 800, 12, 100, 0, 68, 0, 4, 0],
    [25, 8, 12, 890, 35, 0, 25, 0, 5, 0], [1, 1, 90, 30, 820, 0, 55, 0, 3, 0], [0, 0, 0, 1, 0, 960, 0, 25, 2, 12],
    [140, 1, 85, 30, 70, 0, 660, 0, 14, 0], [0, 0, 0, 0, 0, 20, 0, 955, 0, 25], [4, 1, 4, 5, 3, 3, 6, 4, 968, 2],
    [0, 0, 0, 0, 0, 8, 1, 35, 1, 955]]
DEFAULT_RUN = "runs/fashion-mlp-20261202-164653"  # a default run name: the preset and the start time


def report_of(cm, names, epoch: int = 10) -> dict:
    """A finished run's evaluation as the service returns it, computed from a confusion matrix."""
    import numpy as np
    from neuraterm.core import metrics
    cm = np.asarray(cm, dtype=np.int64)
    stats = metrics.per_class(cm)
    return {"test_accuracy": float(np.trace(cm) / cm.sum()), "test_loss": 0.3412, "macro_f1": metrics.macro_f1(cm),
            "test_size": int(cm.sum()), "class_names": list(names),
            "per_class": {k: [float(v) for v in stats[k]] for k in ("precision", "recall", "f1")},
            "support": [int(v) for v in stats["support"]], "confusion_matrix": cm.tolist(),
            "most_confused": [{"true": names[i], "predicted": names[j], "count": c}
                              for i, j, c in metrics.most_confused(cm)],
            "noise": [{"sigma": s, "accuracy": float(np.trace(cm) / cm.sum()) - s / 2} for s in (0.0, 0.1, 0.2, 0.3)],
            "epoch": epoch, "epochs": epoch, "mid_epoch": False, "finished": True}


def bymerge_cm():
    """47 classes with ByMerge's uneven test sizes (hundreds to thousands per class) and its confusions."""
    import numpy as np
    rng = np.random.default_rng(47)
    n = 47
    cm = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        support = int(rng.integers(300, 6000)) if i >= 10 else int(rng.integers(10000, 12000))
        right = int(support * rng.uniform(0.6, 0.98))
        cm[i, i] = right
        others = rng.choice([j for j in range(n) if j != i], size=3, replace=False)
        split = rng.multinomial(support - right, [0.6, 0.3, 0.1])
        cm[i, others] += split
    return cm.tolist()


def bymerge_names():
    from neuraterm.core.data.registry import BYMERGE
    return list(BYMERGE)


def evaluate_app(report: dict):
    """The app whose service returns `report` for any folder (no dataset needed)."""
    from neuraterm.tui.service import TrainingService

    class Service(TrainingService):
        def evaluation(self, folder):
            return report
    return NeuratermApp(Service(Path("runs")), deterministic=True)


async def open_evaluation(pilot, run_dir: str = DEFAULT_RUN):
    pilot.app.push_screen(EvaluateScreen(run_dir))
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_evaluate_fashion_full_test_set(snap_compare, size, workdir):
    assert snap_compare(evaluate_app(report_of(FASHION_CM, FASHION)), terminal_size=SIZES[size],
                        run_before=open_evaluation)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_evaluate_47_classes(snap_compare, size, workdir):
    assert snap_compare(evaluate_app(report_of(bymerge_cm(), bymerge_names())), terminal_size=SIZES[size],
                        run_before=open_evaluation)


def run_evaluate(report: dict, size, steps) -> None:
    async def scenario():
        app = evaluate_app(report)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await open_evaluation(pilot)
            await steps(app, pilot)
    asyncio.run(scenario())


def test_confusion_counts_of_a_thousand_per_class_stay_apart(workdir):
    """At 120 columns the counts of 10 x 1,000 are columns of numbers that read back as the matrix."""
    async def steps(app, pilot):
        rows = screen_text(app)
        header = next(k for k, row in enumerate(rows) if "t\\p" in row)
        start = header + 1
        column = rows[header].index("t\\p")
        assert rows[header][column:].split()[1:] == ["T-s", "Tro", "Pul", "Dre", "Coa", "San", "Shi", "Sne", "Bag", "Ank"]
        for i, expected in enumerate(FASHION_CM):
            shown = rows[start + i][column:].split()
            assert [int(v) for v in shown[1:]] == expected, rows[start + i]
    run_evaluate(report_of(FASHION_CM, FASHION), (120, 40), steps)


def test_confusion_heatmap_cursor_reads_the_cell(workdir):
    """Where counts do not fit (10 x 1,000 at 80 columns, 47 classes anywhere), a heatmap with a cursor
    that reads its cell: true class, predicted class, count and rate."""
    async def steps(app, pilot):
        text = "\n".join(screen_text(app))
        assert "true Shirt → predicted T-shirt/top" in text and "140 of 1,000 (14.0%), confused" in text
        assert "█" in text and "<20%" in text  # the heatmap, with its legend
        await pilot.press("right", "right")
        text = "\n".join(screen_text(app))
        assert "true Shirt → predicted Pullover" in text and "85 of 1,000 (8.5%), confused" in text
        assert "most confused" in text and "Shirt → T-shirt/top: 140" in text
    run_evaluate(report_of(FASHION_CM, FASHION), (80, 24), steps)

    cm, names = bymerge_cm(), bymerge_names()
    last = len(names) - 1

    async def corner(app, pilot):
        await pilot.press(*["down"] * 50, *["right"] * 50)  # the grid scrolls to keep the cursor in view
        text = "\n".join(screen_text(app))
        total = sum(cm[last])
        assert f"true {names[last]} → predicted {names[last]}" in text
        assert f"{cm[last][last]:,} of {total:,} ({100 * cm[last][last] / total:.1f}%" in text
        assert "correct" in text
    run_evaluate(report_of(cm, names), (80, 24), corner)
    run_evaluate(report_of(cm, names), (120, 40), corner)


def test_confusion_matrix_takes_counts_up_to_a_million():
    from neuraterm.tui.widgets.confusion_matrix import ConfusionMatrix
    matrix = ConfusionMatrix()
    matrix.set_matrix([[1_000_000, 3], [999_999, 1]], ["cat", "dog"])
    assert matrix.drawing(36) == ("numbers", 7)
    matrix.set_matrix([[1_000_000] * 100] * 100, [f"c{k}" for k in range(100)])
    assert matrix.drawing(200)[0] == "heatmap" and matrix.cursor == (0, 1)


def test_evaluate_header_keeps_its_metrics_at_80x24_and_shortens_the_name_in_the_middle(workdir):
    async def steps(app, pilot):
        rows = screen_text(app)
        assert "test accuracy 88.28%   macro-F1 0.8822   cross-entropy 0.3412" in rows[1], rows[1]
        assert rows[0].strip() == f"{DEFAULT_RUN}  finished after 10 epochs"
        svg = app.export_screenshot()  # a span that starts with spaces loses them when drawn ("76.00%macro-F1")
        assert "macro-F1" in svg and ">&#160;&#160;&#160;macro" not in svg and ">&#160;macro" not in svg
        assert "most confused" in "\n".join(rows)
    run_evaluate(report_of(FASHION_CM, FASHION), (80, 24), steps)

    unfinished = {**report_of(FASHION_CM, FASHION), "finished": False, "epoch": 843, "epochs": 3000, "mid_epoch": True}

    async def long_source(app, pilot):
        rows = screen_text(app)
        assert rows[0].strip().startswith("runs/fashion") and "…" in rows[0] and "164653" in rows[0], rows[0]
        assert "not finished: checkpoint after epoch 843 of 3000" in rows[0], rows[0]
        assert "test accuracy 88.28%" in rows[1] and "cross-entropy 0.3412" in rows[1], rows[1]
    run_evaluate(unfinished, (80, 24), long_source)


def test_evaluate_has_no_blank_band_above_the_noise_chart(workdir):
    async def steps(app, pilot):
        rows = screen_text(app)
        top = next(k for k, row in enumerate(rows) if "accuracy % vs noise sigma" in row)
        assert rows[top - 1].strip() and rows[top - 2].strip(), rows[top - 3: top + 1]
    run_evaluate(report_of(FASHION_CM, FASHION), (120, 40), steps)


# -- long runs: the epoch axis, the status line, the ETA of any viewer -------------------------------------
def long_run_state(seen: int = 30, planned: int = 600, period: float = 3.0, now: float = 0.0) -> RunState:
    """A run's log as a viewer that attaches after `seen` epochs reads it: in one go, a millisecond
    an event, each epoch having taken `period` seconds."""
    state = RunState(name="fashion-mlp", epochs=planned)
    state.apply(events.RunStarted("runs/long", "fashion-mlp", "cpu", 235_146, 54_000, 6_000, 10_000, 422, 0, planned),
                now=now)
    for e in range(1, seen + 1):
        state.apply(events.StepEnded(e, 211, 422, 0.5, 30_000.0), now=now + 0.001 * e)
        state.apply(events.EpochEnded(e, planned, 0.5, 0.8, 0.5, 0.8, 0.001, 30_000.0, period * 0.9, period * e),
                    now=now + 0.001 * e)
    state.apply(events.StepEnded(seen + 1, 211, 422, 0.5, 30_000.0), now=now + 0.001 * (seen + 1))
    return state


def test_eta_of_a_viewer_attaching_mid_run_comes_from_the_epoch_times_in_the_log():
    """`epoch 9/20 ETA 3s` at 3 s an epoch was the pace of the replay itself."""
    state = long_run_state(seen=9, planned=20, period=3.0)
    assert state.eta() == pytest.approx((20 - 9.5) * 3.0)
    late = long_run_state(seen=843, planned=3000, period=0.15)
    assert late.eta() == pytest.approx((3000 - 843.5) * 0.15)  # ~5.4 min, not 5 s
    paused_once = long_run_state(seen=12, planned=20, period=3.0)
    paused_once.history[-1].elapsed += 600  # a ten-minute pause in the last epoch: the median ignores it
    assert paused_once.eta() == pytest.approx((20 - 12.5) * 3.0)


def test_long_run_axis_fits_the_epochs_seen_and_the_bar_shows_the_plan(workdir):
    async def steps(app, pilot):
        app.run_state = long_run_state(seen=30, planned=600)
        await pilot.press("d")
        await pilot.pause(0.7)
        for chart in ("#loss-chart", "#acc-chart", "#lr-chart"):
            lo, hi = app.screen.query_one(chart).x_range()
            assert 30 < hi <= 40, (chart, hi)  # 30 epochs fill most of the axis, not 1/20 of it
        bar = app.screen.query_one("#progress")
        assert bar.total == 600 * 422 and bar.progress == 30 * 422 + 211
        status = next(row for row in screen_text(app) if "epoch 31/600" in row)
        assert "5%" in status
    drive(steps)


@pytest.mark.parametrize("size, wanted", [((100, 30), ("RSS 345 MB", "samples/s", "ETA")),
                                          ((80, 24), ("ETA", "30k samples/s"))])
def test_status_line_keeps_what_matters_whole(workdir, monkeypatch, size, wanted):
    from neuraterm.tui.service import TrainingService
    monkeypatch.setattr(TrainingService, "process_memory", lambda self, who: 345 * 2**20)

    async def scenario():
        app = make_app("runs")  # not deterministic: rates, ETA and memory show
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.run_state = long_run_state(seen=843, planned=3000, period=0.15)
            await pilot.press("d")
            await pilot.pause(0.7)
            status = next(row for row in screen_text(app) if "epoch 844/3000" in row)
            for text in wanted:
                assert text in status, status
            assert status.rstrip().endswith(("MB", "cpu", "samples/s")), status  # nothing cut mid-word
    asyncio.run(scenario())



# -- the Runs screen acts on the run the user picked --------------------------------------------------------
def test_runs_cursor_stays_on_the_picked_run_and_extending_a_finished_one_asks(runs):
    alpha_report = Path("runs/alpha/report.json").read_bytes()
    beta_report = Path("runs/beta/report.json").read_bytes()

    async def steps(app, pilot):
        await pilot.press("r")
        await pilot.pause()
        screen = app.screen
        first = screen.current()
        await pilot.press("down")
        picked = screen.current()
        assert picked != first
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EvaluateScreen) and app.screen.run_dir == picked
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.current() == picked  # not back on row 0
        screen.action_refresh_runs()
        screen.refresh_live()
        assert screen.current() == picked
        await pilot.press("R")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        question = dialog.question
        history = len(checkpoint.load(Path(picked)).history)
        assert picked in question and f"finished after {history} epochs" in question
        assert f"to [b]{history + 5}[/] epochs" in question
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and app.launched is None and app.current_mode == "runs"
        assert Path("runs/alpha/report.json").read_bytes() == alpha_report
        assert Path("runs/beta/report.json").read_bytes() == beta_report
        await pilot.press("R", "y")
        await settle(pilot)
        assert app.run_state.run_dir == picked and app.run_state.status == "finished"
        assert len(checkpoint.load(Path(picked)).history) == history + 5
        other = ({"runs/alpha", "runs/beta"} - {picked}).pop()
        assert Path(f"{other}/report.json").read_bytes() == (alpha_report if other == "runs/alpha" else beta_report)
    drive(steps)


def test_runs_at_80_columns_keep_the_metrics_and_shorten_names_in_the_middle(workdir):
    """Default names of runs from an edited form: the last column's header used to read `test ac`."""
    for stamp in ("164653", "171210"):
        Trainer(tiny_config("fashion-mlp-edited", epochs=2), Path(f"runs/fashion-mlp-edited-20261202-{stamp}")).run()

    async def scenario():
        app = app_for_snapshot()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("r")
            await pilot.pause()
            rows = screen_text(app)
            header = next(row for row in rows if " run " in row)
            assert header.rstrip().endswith("val acc  test acc"), header
            names = [row for row in rows if "fashion" in row and "%" in row and "validation" not in row]
            assert len(names) == 2 and all("…" in row and "fashion-mlp" in row for row in names), names
            assert "164653" in names[0] + names[1] and "171210" in names[0] + names[1], names
            assert all(row.rstrip().endswith("%") for row in names), names
            await pilot.press("space", "down", "space")
            await pilot.pause()
            legend = next(row for row in screen_text(app) if "validation accuracy" in row)
            assert legend.count("fashion-mlp") == 2, legend  # the preset stays in both legends
    asyncio.run(scenario())


def test_dashboard_at_80_columns_keeps_chart_titles_and_the_last_epoch_tick(workdir):
    recorded = []
    Trainer(tiny_config(epochs=7), Path("runs/tiny"), [recorded.append], step_events_per_s=1e9).run()

    async def steps(app, pilot):
        app.run_state = RunState(name="tiny", epochs=7)
        for event in recorded:
            app.run_state.apply(event)
        await pilot.press("d", "l")  # log scale: the step-loss title grows by " (log)"
        await pilot.pause(0.8)
        rows = screen_text(app)
        assert any("step loss (log)" in row for row in rows) and any("─ ema" in row for row in rows), rows
        lr = app.screen.query_one("#lr-chart")
        ticks = lr.render().plain.splitlines()[-1].split()
        assert ticks[0] == "1" and ticks[-1] == "7", ticks  # the last epoch is labelled
    drive(steps, size=(80, 24))


# -- small things -------------------------------------------------------------------------------------------
def test_save_while_paused_confirms_once_the_run_saved(workdir):
    async def steps(app, pilot):
        config = tiny_config(epochs=500)
        config.train.batch_size = 8
        app.start_run(config)
        await until(pilot, lambda: app.run_state.history)
        await pilot.press("p")
        await until(pilot, lambda: app.run_state.status == "paused")
        await pilot.press("s")
        await until(pilot, lambda: any(line.startswith("saved: checkpoint after epoch") for line in app.run_state.log))
        line = next(line for line in app.run_state.log if line.startswith("saved:"))
        epoch = checkpoint.load(Path(app.run_state.run_dir)).train_state["epoch"]
        assert line.startswith(f"saved: checkpoint after epoch {epoch}")
        await pilot.pause(0.7)
        assert any("saved: checkpoint" in row for row in screen_text(app))  # in the dashboard's log
        await pilot.press("x")
        await settle(pilot)
    drive(steps)


def test_setup_checks_a_typed_dataset_path_at_once(workdir):
    import numpy as np
    np.savez("mine.npz", x=np.zeros((40, 4), dtype=np.float32), y=np.arange(40) % 2)

    async def type_path(app, pilot, path):
        app.screen.query_one("#dataset").focus()
        await pilot.press("enter", "a", "enter")  # "a file or folder of your own…"
        await pilot.pause()
        assert isinstance(app.screen, DatasetPathDialog)
        await pilot.press(*path, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()

    async def steps(app, pilot):
        screen = app.screen
        await type_path(app, pilot, "data/missing.npz")
        errors = str(screen.query_one("#errors").render())
        assert "data/missing.npz: no such file or folder" in errors and "ready" not in errors
        assert screen.query_one("#dataset").has_class("-invalid") or "✗" in errors
        await pilot.press("t")  # refused: nothing starts
        assert app.current_mode == "setup" and app.launched is None
        await type_path(app, pilot, "mine.npz")
        assert "ready" in str(screen.query_one("#errors").render())
    drive(steps)


def test_first_tab_from_the_presets_lands_on_a_field_and_focus_shows_without_color(workdir):
    async def steps(app, pilot):
        app.screen.query_one("#presets").focus()
        await pilot.press("tab")
        assert app.focused.id == "dataset"
        await pilot.press("tab")
        await pilot.pause()
        label = app.focused.parent.query_one(".field-label")
        assert app.focused.id == "limit" and label.rich_style.reverse  # reverse video: no color needed
        other = app.screen.query_one("#hidden").parent.query_one(".field-label")
        assert not other.rich_style.reverse
    drive(steps)
