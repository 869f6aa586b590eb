"""A folder, log or file from someone else can never hurt the user: built by hand as an attacker
would, each one is given to the real program (processes, files, a headless browser). Nothing outside
the folder is written, truncated or deleted; nothing raw reaches the terminal; no viewer crashes;
pause/stop/save keep working; every refusal is one line and exit 2."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_folders import TINY, cli, command, env_with, one_line, spawn, wait_for
from neuraterm.core.run import checkpoint, commands, event_log, events, status
from neuraterm.core.screen_text import markup, visible
from neuraterm.printer import HeadlessPrinter, runs_table
from neuraterm.tui.run_state import RunState

CLEAR, CLIPBOARD = "\x1b[2J", "\x1b]52;c;aGFja2Vk\x07"  # clear the screen; write 'hacked' to the clipboard


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-epoch run: checkpoints, links, log, report."""
    run = tmp_path_factory.mktemp("hostile") / "run"
    result = cli("train", "--out", run, "--epochs", "2", *TINY)
    assert result.returncode == 0, result.stderr
    return run


def copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


def victim(tmp_path: Path, name: str = "secret.txt") -> Path:
    """A user's file outside every model folder."""
    folder = tmp_path / "victim"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("the user's own words")
    return path


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    return one_line(result.stderr)


def logged(run: Path) -> list:
    return event_log.LogReader(run).read_new()


# -- nothing outside the folder is written, truncated or deleted ----------------------------------
def test_a_manifest_naming_a_file_outside_the_folder_never_deletes_it(tmp_path, finished):
    run = copy(finished, tmp_path / "run")
    secret = victim(tmp_path)
    stale = run / "checkpoints" / "000050"
    stale.mkdir()
    (stale / "MANIFEST.json").write_text(json.dumps({"format": 2, "files": {
        "../../../victim/secret.txt": {"bytes": 1, "sha256": "0"}}}))
    result = cli("resume", run, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert secret.read_text() == "the user's own words"


def test_a_checkpoint_that_is_a_link_to_another_folder_is_never_swept(tmp_path, finished):
    run = copy(finished, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    (elsewhere / "MANIFEST.json").write_text(json.dumps({"format": 2, "files": {"notes.txt": {"bytes": 4, "sha256": "0"}}}))
    (run / "checkpoints" / "000009").symlink_to(elsewhere)
    result = cli("resume", run, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "notes.txt").read_text() == "mine" and (elsewhere / "MANIFEST.json").exists()


@pytest.mark.parametrize("planted", [".lock", "events.jsonl"])
def test_a_lock_or_log_planted_as_a_link_is_refused_and_the_file_it_points_to_is_untouched(tmp_path, finished, planted):
    run = copy(finished, tmp_path / "run")
    secret = victim(tmp_path)
    (run / planted).unlink(missing_ok=True)
    (run / planted).symlink_to(secret)
    line = refused(cli("resume", run, "--epochs", "3"))
    assert planted in line and "link" in line
    assert secret.read_text() == "the user's own words"


def test_commands_planted_as_a_link_to_a_folder_deletes_nothing_there(tmp_path, finished):
    run = copy(finished, tmp_path / "run")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "settings.json").write_text("{}")
    shutil.rmtree(run / "commands", ignore_errors=True)
    (run / "commands").symlink_to(mine)
    line = refused(cli("resume", run, "--epochs", "3"))
    assert "commands" in line
    assert (mine / "settings.json").read_text() == "{}"


def test_export_never_writes_through_a_link_planted_at_its_temporary_name(tmp_path, finished):
    """The old temporary name was `OUT.tmp-<pid>`: a link planted there took the export's bytes."""
    secret = victim(tmp_path)
    out = tmp_path / "weights.npz"
    plant = ("import os, sys, neuraterm.entry; "
             f"os.symlink({str(secret)!r}, {str(out)!r} + '.tmp-' + str(os.getpid())); "
             "sys.argv = ['neuraterm'] + sys.argv[1:]; sys.exit(neuraterm.entry.main())")
    result = subprocess.run([sys.executable, "-c", plant, "export", str(finished), str(out)], capture_output=True,
                            text=True, env=env_with(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert secret.read_text() == "the user's own words"
    assert set(np.load(out, allow_pickle=False).files) and not out.is_symlink()


def test_a_checkpoint_file_that_is_a_link_is_never_read_through(tmp_path, finished):
    """Even with the bytes the manifest expects, a link out of the folder is not followed."""
    run = copy(finished, tmp_path / "run")
    target = checkpoint.checkpoint_dir(run) / "config.toml"
    outside = tmp_path / "outside.toml"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    line = refused(cli("export", run, tmp_path / "out.npz"))
    assert "config.toml" in line and "link" in line


# -- nothing raw reaches the terminal ------------------------------------------------------------
def test_runs_shows_a_hostile_folder_name_and_failure_message_escaped(tmp_path, finished):
    root = tmp_path / "shared"
    root.mkdir()
    run = copy(finished, root / f"run{CLEAR}{CLIPBOARD}")
    with open(run / "events.jsonl", "a") as f:
        f.write(json.dumps({"type": "RunFailed", "time": 0, "run_dir": "x", "message": f"disk [/] full{CLEAR}"}) + "\n")
    result = cli("runs", root)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b[2J" in result.stdout and "disk [/] full" in result.stdout


def test_class_names_from_a_csv_reach_the_test_report_as_text(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "hostile.csv"
    names = [f"{CLEAR}cat", "[bold]b"]
    path.write_text("".join(f"{names[i % 2]},{','.join(str(v) for v in rng.integers(0, 255, 8))}\n" for i in range(300)))
    result = cli("train", "--out", tmp_path / "run", "--epochs", "1", "--set", f'data.dataset="{path}"',
                 "--set", "model.hidden=[4]")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "[bold]b" in result.stdout and "\\x1b[2Jcat" in result.stdout


# -- viewers never crash on a log line -----------------------------------------------------------
HOSTILE_LINES = [
    '{"type": "EpochEnded", "epoch": 3, "epochs": 9, "train_loss": NaN, "train_acc": Infinity, "val_loss": 1e999, '
    '"val_acc": 0.5, "lr": 0.1, "samples_per_s": 1e999, "seconds": 1, "elapsed": 1}',
    '{"type": "StepEnded", "epoch": 3, "step": 0, "steps": 0, "loss": 1.0, "samples_per_s": 1.0}',
    '{"type": "EpochEnded", "epoch": "three", "epochs": 9, "train_loss": 1, "train_acc": 0.5, "val_loss": 1, '
    '"val_acc": 0.5, "lr": 0.1, "samples_per_s": 1, "seconds": 1, "elapsed": 1}',
    '{"type": "RunFailed", "run_dir": "x", "message": 12345}',
    '{"type": "RunFinished", "run_dir": "x", "report": {}}',
    '{"type": "RunStarted", "run_dir": "x", "config_name": "[/]x' + CLEAR.replace("\x1b", "\\u001b") + '", '
    '"device": "[bold]cpu[/]", "parameters": 1, "train_size": 1, "val_size": 1, "test_size": 1, '
    '"steps_per_epoch": 1, "start_epoch": 2, "epochs": 9}',
    '{"type": "Paused", "epoch": [], "step": {}}',
    '{"type": "CommandAnswered", "id": 1, "action": null, "result": 2}',
    '{"type": "EpochEnded", "epoch": 1',  # torn
    "\xff\xfe not utf-8",
    '{"type": "RunFailed", "run_dir": "x", "message": "' + "x" * (2 << 20) + '"}',  # a 2 MiB line
]


def hostile_log(run: Path) -> None:
    with open(run / "events.jsonl", "ab") as f:
        for line in HOSTILE_LINES:
            f.write(line.encode("utf-8", "surrogateescape") if not line.startswith("\xff") else b"\xff\xfe not utf-8")
            f.write(b"\n")
        f.write((json.dumps({"type": "Heartbeat", "time": 0, "paused": False}) + "\n").encode())


def test_runs_never_crashes_on_a_malformed_log(tmp_path, finished):
    root = tmp_path / "shared"
    root.mkdir()
    for k, line in enumerate(HOSTILE_LINES):
        run = copy(finished, root / f"run{k}")
        with open(run / "events.jsonl", "ab") as f:
            f.write(line.encode("utf-8", "surrogateescape") + b"\n")
    result = cli("runs", root)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.count("finished") == len(HOSTILE_LINES)


def test_the_app_watching_a_malformed_log_keeps_running_and_counts_what_it_skipped(tmp_path, finished):
    from neuraterm.tui.app import make_app
    run = copy(finished, tmp_path / "run")
    hostile_log(run)

    async def watch() -> tuple[list[str], int, str]:
        app = make_app(runs_root=tmp_path, watch_dir=str(run), deterministic=True)
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(200):
                await pilot.pause(0.05)
                if any("malformed" in line for line in app.run_state.log) and app.run_state.status != "starting":
                    break
            await pilot.pause(0.5)
            status_line = str(app.screen.query_one("#status").render())
            return list(app.run_state.log), len(app.run_state.history), status_line

    log, epochs, status_line = asyncio.run(watch())
    assert epochs == 2  # the run's own epochs; none of the hostile ones
    warnings = [line for line in log if "malformed" in line]
    # all but the valid RunStarted, and the step line: step lines before a log's last 256 KiB are skimmed, not parsed
    assert warnings == [f"warning: {len(HOSTILE_LINES) - 2} malformed lines of events.jsonl skipped"]
    assert all(ch.isprintable() for line in log for ch in line), log
    assert "\x1b" not in status_line


def test_a_viewer_opening_a_long_log_skims_step_lines_but_keeps_every_epoch(tmp_path):
    """What lets `watch` open a month-long log in well under a second (bench/watch_open.py measures it)."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from watch_open import write_log
    write_log(tmp_path / "events.jsonl", 100_000, 1000)
    found = event_log.LogReader(tmp_path).read_new()
    assert sum(isinstance(e, events.EpochEnded) for e in found) == 1000
    assert sum(isinstance(e, events.StepEnded) for e in found) < 5000


def test_a_log_stays_bounded_however_many_steps_a_run_writes(tmp_path, monkeypatch):
    """Step lines beyond the budget are compacted away; every epoch stays, and a reader that follows
    the log meanwhile still sees every epoch once the file is replaced."""
    monkeypatch.setattr(event_log, "STEP_BUDGET", 64 << 10, raising=False)
    log = event_log.EventLog(tmp_path, step_interval=0)
    follower = event_log.LogReader(tmp_path)
    log(events.RunStarted(str(tmp_path), "long", "cpu", 10, 10, 1, 1, 500, 0, 60))
    for epoch in range(1, 61):
        for step in range(1, 501):
            log(events.StepEnded(epoch, step, 500, 0.5, 100.0))
        log(events.EpochEnded(epoch, 60, 0.1, 0.9, 0.2, 0.8, 0.01, 100.0, 1.0, float(epoch)))
        if epoch % 10 == 0:
            follower.read_new()
    log.close()
    assert (tmp_path / "events.jsonl").stat().st_size < 200 << 10  # 30,000 step lines would be ~3 MB
    state = RunState()
    for event in event_log.LogReader(tmp_path).read_new():
        state.apply(event)
    assert [e.epoch for e in state.history] == list(range(1, 61))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


# -- pause, stop and save keep working -----------------------------------------------------------
def test_a_folder_and_a_fifo_named_like_commands_never_stop_the_run_from_answering(tmp_path):
    run = tmp_path / "run"
    proc = spawn("train", "--out", run, "--epochs", "200", "--set", "data.limit=1000", "--set", "model.hidden=[16]",
                 "--set", "train.batch_size=8")
    try:
        wait_for(lambda: any(isinstance(e, events.StepEnded) for e in logged(run)), 120, "a first step", proc)
        (run / "commands" / "a.json").mkdir()
        os.mkfifo(run / "commands" / "b.json")
        wait_for(lambda: sum("not a regular file" in getattr(e, "result", "") for e in logged(run)) == 2, 30,
                 "the two oddities reported", proc)
        commands.send(run, "stop")
        proc.wait(timeout=60)
        assert any(isinstance(e, events.CommandAnswered) and e.action == "stop" for e in logged(run))
        assert (run / "commands" / "a.json").is_dir() and (run / "commands" / "b.json").exists()
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- data files that ask for absurd memory ---------------------------------------------------------
def _train_on(tmp_path: Path, dataset: Path) -> str:
    return refused(cli("train", "--out", tmp_path / "run", "--epochs", "1", "--set", f'data.dataset="{dataset}"'))


def test_a_csv_claiming_200000_columns_is_one_line(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("0," + ",".join(["1"] * 200_000) + "\n" + "\n" * 200_000 + "1," + ",".join(["2"] * 200_000) + "\n")
    assert str(path) in _train_on(tmp_path, path)


def test_a_compressed_npz_whose_header_claims_terabytes_is_one_line(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", header.getvalue() + bytes(4096))
        labels = io.BytesIO()
        np.save(labels, np.zeros(10, np.int64))
        zf.writestr("y.npy", labels.getvalue())
    assert "x.npy" in _train_on(tmp_path, path)


def test_a_png_whose_header_says_30000x30000_is_one_line(tmp_path):
    from PIL import Image
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "images" / name / "ok.png")
    bomb = tmp_path / "images" / "a" / "bomb.png"
    data = bytearray((tmp_path / "images" / "a" / "ok.png").read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    bomb.write_bytes(bytes(data))
    assert "bomb.png" in _train_on(tmp_path, tmp_path / "images")


# -- serve asks for its token --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_serve_loads_the_app_only_for_a_browser_that_has_its_token(tmp_path, finished):
    pytest.importorskip("textual_serve")
    from browser import Browser, distinct_colors
    port = _free_port()
    server = subprocess.Popen([*command("serve", finished, "--port", port)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env_with())
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/?token=") and len(url.split("=", 1)[1]) >= 24

        async def look() -> tuple[str, int, int, int]:
            async with Browser(1000, 640) as page:
                await page.goto(f"http://127.0.0.1:{port}/")
                without = await page.evaluate("document.body.innerText")
                bare = await page.evaluate("document.scripts.length")
                await page.goto(url)
                colors = 0
                for _ in range(150):
                    colors = distinct_colors(await page.screenshot())
                    if colors > 40:
                        break
                    await asyncio.sleep(0.2)
                return without, bare, colors, await page.evaluate("document.scripts.length")

        without, bare, colors, scripts = asyncio.run(look())
        assert "needs the server's token" in without and bare == 0  # no app, not even its scripts
        assert colors > 40 and scripts > 0  # with the token, the app drew its dashboard
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.mark.parametrize("args", [["--no-token", "--public", "--host", "0.0.0.0"], ["--no-token", "--host", "::", "--public"]])
def test_serve_without_a_token_is_refused_off_loopback(args):
    line = refused(cli("serve", *args))
    assert "--no-token is allowed on a loopback --host only" in line


# -- fuzzing the parser and its consumers ----------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(
        st.characters(codec="utf-8") | st.sampled_from(["\x1b", "\x07", "[", "]", "/", "\u202e"]))
    | st.sampled_from(["[/]", "[bold]b", f"a{CLEAR}b", CLIPBOARD, "nan", "inf"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FIELDS = {name: [f.name for f in __import__("dataclasses").fields(cls)] for name, cls in events.KINDS.items()}
REPORT_KEYS = ["test_accuracy", "macro_f1", "test_loss", "test_size", "most_confused", "noise", "class_names",
               "per_class", "support", "confusion_matrix"]


@st.composite
def records(draw):
    kind = draw(st.sampled_from(sorted(events.KINDS)))
    names = FIELDS[kind] + ["time", "extra"]
    record = {"type": kind}
    for name in draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)) if draw(st.booleans()) \
            else FIELDS[kind]:
        if name == "report":
            record[name] = draw(st.dictionaries(st.sampled_from(REPORT_KEYS), JSON, max_size=10))
        else:
            record[name] = draw(JSON | st.integers(0, 5) | st.floats(0, 1))
    return record


@st.composite
def log_lines(draw):
    line = json.dumps(draw(records())).encode()
    how = draw(st.sampled_from(["whole", "whole", "torn", "bytes"]))
    if how == "torn":
        line = line[:draw(st.integers(0, len(line)))]
    elif how == "bytes":
        line = draw(st.binary(max_size=200))
    return line.replace(b"\n", b" ")


def consume(found: list) -> str:
    """Every consumer of events: the app's run state, the headless printer, the runs table."""
    state, out = RunState(), io.StringIO()
    printer = HeadlessPrinter(out)
    for event in found:
        state.apply(event, now=1.0)
        state.progress(), state.eta()
        printer(event)
    text = out.getvalue() + "\n".join(state.log)
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(lines=st.lists(log_lines(), max_size=12))
def test_fuzzed_logs_never_crash_a_consumer_nor_reach_the_terminal_raw(tmp_path, lines):
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    found = event_log.LogReader(tmp_path).read_new()
    text = consume(found)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    info = status.RunInfo(tmp_path, visible(f"run{CLEAR}"), "failed", failure=next(
        (e.message for e in found if isinstance(e, events.RunFailed)), ""))
    out = io.StringIO()
    runs_table([info], out)
    assert "\x1b" not in out.getvalue()


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8") | st.sampled_from(["\x1b", "[", "]", "\\", "/"]))
       | st.sampled_from(["[/]", "[b]x", "a\\[b]", CLEAR]))
def test_screen_text_shows_any_string_as_itself_and_never_a_control_character(text):
    from rich.markup import escape, render
    import unicodedata
    from neuraterm.core.screen_text import HIDDEN
    shown = visible(text)
    assert not any(unicodedata.category(ch) in HIDDEN for ch in shown)
    assert markup(text) == escape(shown)
    plain = render(markup(text)).plain  # never a MarkupError; the words stay (Rich's escape keeps a stray '\\')
    assert plain.replace("\\", "") == shown.replace("\\", "")
