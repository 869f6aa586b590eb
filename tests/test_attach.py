"""Runs that outlive their viewer: a run is a process that owns its folder, and every screen (the app,
`neuraterm watch`, a browser tab) attaches to it, sees its history, and steers it. Real processes,
real tmux sessions, a real browser."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuraterm.core.run import checkpoint, event_log, events, lock
from terminal import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
NEURATERM = [sys.executable, "-m", "neuraterm"]
# About 0.1-0.3 s an epoch on a 2-core machine: slow enough to act on, small enough for CI.
SLOW = """name = "slow"
description = "a small run that takes its time"
[data]
limit = 2000
[model]
hidden = [256, 256]
[train]
batch_size = 4
threads = 1
epochs = {epochs}
"""


def preset(folder: Path, epochs: int) -> Path:
    path = folder / f"slow-{epochs}.toml"
    path.write_text(SLOW.format(epochs=epochs))
    return path


def logged(run: Path) -> list:
    reader = event_log.LogReader(run)
    return reader.read_new()


def wait_until(condition, seconds: float = 90, what: str = "condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def the_run(root: Path) -> Path:
    return wait_until(lambda: next(iter((root / "runs").glob("slow-*")), None) if (root / "runs").is_dir() else None,
                      what="the run folder")


def shown_epoch(screen: str) -> int | None:
    match = re.search(r"(?:running|paused)  epoch (\d+)/", screen)
    return int(match.group(1)) if match else None


def weights(folder: Path) -> dict:
    return {p.name: np.load(p, allow_pickle=False) for p in sorted((folder / "weights").glob("*.npy"))}


def test_watch_a_headless_run_from_two_terminals_and_pause_it(tmp_path):
    run = tmp_path / "headless"
    trainer = Tmux([*NEURATERM, "train", "--preset", preset(tmp_path, 400), "--out", run], tmp_path)
    first = second = None
    try:
        wait_until(lambda: any(isinstance(e, events.EpochEnded) for e in logged(run)), what="a first epoch")
        first = Tmux([*NEURATERM, "watch", run], tmp_path)
        shown = first.wait_for("running  epoch")
        assert "loss" in shown and "accuracy %" in shown
        # The curves grow: later epochs reach the watcher's status line.
        start = shown_epoch(shown)
        wait_until(lambda: (shown_epoch(first.screen()) or 0) >= start + 2, what="two more epochs on the watcher")
        second = Tmux([*NEURATERM, "watch", run], tmp_path)
        second.wait_for("running  epoch")
        first.send("p")
        wait_until(lambda: any(isinstance(e, events.Paused) for e in logged(run)), what="the run to pause")
        first.wait_for("paused  epoch")
        second.wait_for("paused  epoch")  # a second viewer sees the same
        steps = sum(isinstance(e, events.StepEnded) for e in logged(run))
        time.sleep(1.5)
        assert sum(isinstance(e, events.StepEnded) for e in logged(run)) == steps  # no step while paused
        assert lock.holder(run) is not None  # paused, not gone
        second.send("p")  # any viewer steers
        second.wait_for("running  epoch")
        first.wait_for("running  epoch")
        first.send("x")
        wait_until(lambda: lock.holder(run) is None, what="the run to stop")
        assert isinstance(logged(run)[-1], events.RunFinished) and logged(run)[-1].stopped
        first.wait_for("stopped")
        second.wait_for("stopped")
    finally:
        for session in (trainer, first, second):
            if session is not None:
                session.kill()


def test_a_run_started_in_the_app_survives_the_app_and_equals_an_uninterrupted_run(tmp_path):
    config = preset(tmp_path, 30)
    straight = subprocess.run([*NEURATERM, "train", "--preset", config, "--out", tmp_path / "straight"],
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    app = Tmux([*NEURATERM, "tui", "--preset", config, "--start"], tmp_path)
    try:
        run = the_run(tmp_path)
        wait_until(lambda: any(isinstance(e, events.RunStarted) for e in logged(run)), what="the run to start")
        pane = int(subprocess.run(["tmux", "display", "-p", "-t", app.name, "#{pane_pid}"], capture_output=True,
                                  text=True).stdout)
        assert os.getsid(lock.holder(run)["pid"]) != os.getsid(pane)  # a session of its own, not the terminal's
    finally:
        app.kill()  # the terminal goes away: SIGHUP for the app and everything in its session
    assert not app.alive()
    wait_until(lambda: (run / "report.json").exists() and lock.holder(run) is None, seconds=300,
               what="the run to finish without its app")
    assert isinstance(logged(run)[-1], events.RunFinished) and not logged(run)[-1].stopped
    a, b = weights(tmp_path / "straight"), weights(run)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert json.loads((run / "report.json").read_text())["test_accuracy"] == \
        json.loads((tmp_path / "straight" / "report.json").read_text())["test_accuracy"]


def test_a_fresh_app_reattaches_draws_the_history_and_steers_the_run(tmp_path):
    app = Tmux([*NEURATERM, "tui", "--preset", preset(tmp_path, 500), "--start"], tmp_path)
    fresh = None
    try:
        run = the_run(tmp_path)
        wait_until(lambda: sum(isinstance(e, events.EpochEnded) for e in logged(run)) >= 3, what="three epochs")
        app.send("q")
        app.wait_for("is still training")  # quitting asks; l leaves it running
        app.send("l")
        wait_until(lambda: not app.alive(), seconds=20, what="the app to quit")
        assert lock.holder(run) is not None
        fresh = Tmux(NEURATERM, tmp_path)
        fresh.wait_for("ready: press")
        fresh.send("r")
        fresh.wait_for("running")
        done = sum(isinstance(e, events.EpochEnded) for e in logged(run))
        fresh.send("w")
        shown = fresh.wait_for("running  epoch")
        assert shown_epoch(shown) >= max(done, 3)  # the history so far is drawn at once
        assert "loss" in shown and "│" in shown
        fresh.send("p")
        fresh.wait_for("paused  epoch")
        assert isinstance([e for e in logged(run) if isinstance(e, (events.Paused, events.Resumed))][-1], events.Paused)
        fresh.send("x")
        wait_until(lambda: lock.holder(run) is None, what="the run to stop")
        fresh.wait_for("stopped")
        assert checkpoint.load(run).epoch >= 3
    finally:
        app.kill()
        if fresh is not None:
            fresh.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_serve_shows_a_running_run_in_a_real_browser_that_can_pause_it(tmp_path):
    pytest.importorskip("textual_serve")
    from browser import Browser, changed_fraction, distinct_colors
    run = tmp_path / "served"
    trainer = subprocess.Popen([*NEURATERM, "train", "--preset", preset(tmp_path, 600), "--out", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # serve refuses a folder that is not a run yet, and it starts faster than train makes one
    wait_until(lambda: checkpoint.is_run_folder(run), what="the run's folder")
    port = free_port()
    server = subprocess.Popen([*NEURATERM, "serve", str(run), "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        url = server.stdout.readline().split(" on ", 1)[1].strip()  # the URL line, with the server's token
        wait_until(lambda: any(isinstance(e, events.EpochEnded) for e in logged(run)), what="a first epoch")
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, what="the server")

        async def look() -> tuple[bytes, bytes, bytes]:
            async with Browser(1000, 640) as page:
                await page.goto("about:blank")
                blank = await page.screenshot()
                await page.goto(url)
                shot = await page.screenshot()
                for _ in range(150):  # until the app has drawn its charts
                    if distinct_colors(shot) > 40:
                        break
                    await asyncio.sleep(0.2)
                    shot = await page.screenshot()
                await asyncio.sleep(3)
                later = await page.screenshot()
                await page.click(500, 440)  # focus the terminal (the status line: clicks there do nothing)
                await page.press("p")  # the tab is a viewer with the controls
                for _ in range(100):
                    if any(isinstance(e, events.Paused) for e in logged(run)):
                        break
                    await asyncio.sleep(0.1)
                return blank, shot, later

        blank, shot, later = asyncio.run(look())
        Path("/tmp/neuraterm-serve.png").write_bytes(later)  # for a person to look at after the test
        assert distinct_colors(blank) < 5 and distinct_colors(shot) > 40  # the app drew, with its colors
        assert changed_fraction(blank, shot) > 0.5
        assert changed_fraction(shot, later) > 0.001  # the dashboard is live: the curves moved
        assert any(isinstance(e, events.Paused) for e in logged(run))
        assert any(isinstance(e, events.CommandAnswered) and e.action == "pause" for e in logged(run))
    finally:
        server.send_signal(signal.SIGINT)
        trainer.send_signal(signal.SIGTERM)
        for proc in (server, trainer):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
