"""Model folders that never lose data, proven by breaking them: kill -9 at any moment (in a save, in a
resume), a crash or a full disk at every filesystem operation of a save, signals, two writers, readers
beside a writer, a full tmpfs, and the paths users type. Bad input is in `test_bad_input.py`."""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from model_folders import (STEPPY, TINY, assert_same_run, cli, current_number, leftovers, main, one_line, spawn,
                           top_level_weights, tree, wait_for)
from neuraterm import cli as cli_mod
from neuraterm.core import toml_text
from neuraterm.core.run import checkpoint, event_log, events, lock, status as runs
from neuraterm.core.run.checkpoint import RunWriter
from neuraterm.core.errors import NeuratermError, RunFailed

DELAY = checkpoint.SAVE_DELAY_ENV
KILL_EPOCHS = 12


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Uninterrupted runs, trained once per set of arguments (in this process): the reference a broken
    and resumed run must equal bit for bit."""
    made: dict[tuple, Path] = {}

    def make(*args) -> Path:
        key = tuple(map(str, args))
        if key not in made:
            out = tmp_path_factory.mktemp("straight") / "run"
            assert cli_mod.main(["train", "--out", str(out), *key]) == 0
            made[key] = out
        return made[key]
    return make


@pytest.fixture(scope="module")
def base_run(straight) -> Path:
    """A finished two-epoch run (current = the report's checkpoint, best = an epoch's); copy it before changing it."""
    return straight("--epochs", 2, *TINY)


@pytest.fixture
def scratch(tmp_path):
    """A folder on a tmpfs where there is one (/dev/shm), else tmp_path: the tests that save hundreds of
    checkpoints in this process measure logic, not the disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="neuraterm-faults-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_run(source: Path, to: Path) -> Path:
    shutil.copytree(source, to, symlinks=True)
    return to


def checkpoint_numbers(run: Path) -> set[int]:
    return {int(p.name) for p in (run / checkpoint.CHECKPOINTS).iterdir() if checkpoint.NUMBERED.match(p.name)}


def tmp_checkpoints(run: Path, number: int | None = None) -> list[Path]:
    folder = run / checkpoint.CHECKPOINTS
    pattern = f".tmp-{number:06d}-*" if number is not None else ".tmp-*"
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# -- a crash or a full disk at every filesystem operation of a save ----------------------------------
class Crash(BaseException):
    """The process died here: nothing after this point runs, no handler cleans up (kill -9, power loss)."""


class Injector:
    """Counts the filesystem operations made inside it and fails the `fail_at`-th: a `Crash`, or an
    `OSError(ENOSPC)` on an operation that allocates space (creating, writing, linking, renaming, fsync)."""

    OPS = ("mkdir", "rename", "replace", "symlink", "unlink", "rmdir", "fsync")
    ALLOCATING = {"open", "write", "mkdir", "rename", "replace", "symlink", "fsync"}

    def __init__(self, fail_at: int, failure: str):
        self.fail_at, self.failure, self.count, self.fired = fail_at, failure, 0, None

    def tick(self, op: str, partial=None) -> None:
        self.count += 1
        if self.count != self.fail_at or (self.failure == "enospc" and op not in self.ALLOCATING):
            return
        self.fired = op
        if partial is not None:
            partial()
        if self.failure == "crash":
            raise Crash(op)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    @contextlib.contextmanager
    def active(self):
        saved = {name: getattr(os, name) for name in self.OPS}
        injector = self

        def wrap(name, real):
            def op(*args, **kwargs):
                injector.tick(name)
                # fsync is counted but skipped: what it guarantees is not observable here, and it is slow
                return None if name == "fsync" else real(*args, **kwargs)
            return op

        class File:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                injector.tick("write", partial=lambda: self.f.write(data[:len(data) // 2]))
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        def opener(*args, **kwargs):
            injector.tick("open")
            return File(builtins.open(*args, **kwargs))

        for name in self.OPS:
            setattr(os, name, wrap(name, saved[name]))
        checkpoint.open = opener
        try:
            yield self
        finally:
            for name, real in saved.items():
                setattr(os, name, real)
            del checkpoint.open


def _shifted(snap: checkpoint.Snapshot, delta: float) -> checkpoint.Snapshot:
    return dataclasses.replace(snap, weights={k: v + np.float32(delta) for k, v in snap.weights.items()},
                               best_weights={})


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("failure", ["crash", "enospc"])
def test_a_save_broken_at_every_filesystem_operation_keeps_a_complete_checkpoint_current(scratch, base_run, failure):
    """LevelDB's rule, checked at every instant: before the switch the previous checkpoint is current and
    complete, after it the new one; a full disk leaves no temporary file; the next writer sweeps what a
    crash left, keeps the user's files and saves again."""
    old = checkpoint.load(base_run)
    new, later = _shifted(old, 1.0), _shifted(old, 2.0)
    fired = []
    for k in range(1, 400):
        run = copy_run(base_run, scratch / f"run{k}")
        (run / "NOTES.md").write_text("my notes")
        (run / "checkpoints" / "README").write_text("mine too")
        writer = RunWriter(run, new=False)
        outcome = None
        with Injector(k, failure).active() as injector:
            try:
                writer.save(new, best=True)
            except Crash:
                outcome = "crash"
            except RunFailed as exc:
                outcome = str(exc)
        writer.close()  # the kernel drops a dead process's lock
        if injector.fired is None:
            assert outcome is None
            shutil.rmtree(run)
            continue
        fired.append(injector.fired)
        got = checkpoint.load(run)
        assert _same_weights(got.weights, old.weights) or _same_weights(got.weights, new.weights), (k, injector.fired)
        if outcome is None:  # a failure the save may ignore (a top-level link it could not make)
            assert _same_weights(got.weights, new.weights), (k, injector.fired)
        elif failure == "enospc":
            assert outcome.startswith(f"no space left on device while saving {run}"), outcome
            assert outcome.endswith("the previous checkpoint is intact"), outcome
            assert leftovers(run) == [], (k, injector.fired)
        writer = RunWriter(run, new=False)
        try:
            assert leftovers(run) == [], (k, injector.fired)
            # what the sweep leaves: current, best and the kept epochs (train.keep) the folder already had
            assert checkpoint_numbers(run) <= {current_number(run), checkpoint._checkpoint_number(run, "best"),
                                               *checkpoint_numbers(base_run)}
            writer.save(later)
        finally:
            writer.close()
        assert _same_weights(checkpoint.load(run).weights, later.weights)
        assert (run / "NOTES.md").read_text() == "my notes" and (run / "checkpoints" / "README").read_text() == "mine too"
        shutil.rmtree(run)
        if k > 20 and injector.count < k:  # past the last operation of a whole save
            break
    assert {"write", "fsync", "rename", "replace", "symlink"} <= set(fired), fired


@pytest.mark.parametrize("failure", ["crash", "enospc"])
def test_claiming_a_new_folder_broken_at_every_filesystem_operation_can_be_claimed_again(scratch, base_run, failure):
    """`train --out X` killed (or out of space) anywhere between creating X and its first checkpoint:
    the same `train --out X` works afterwards, and a full disk leaves no temporary file."""
    snap = dataclasses.replace(checkpoint.load(base_run), report=None)
    fired = []
    for k in range(1, 400):
        run = scratch / f"new{k}"
        writer, outcome = None, None
        with Injector(k, failure).active() as injector:
            try:
                writer = RunWriter(run, new=True)
                writer.save(snap)
            except Crash:
                outcome = "crash"
            except (RunFailed, NeuratermError) as exc:
                outcome = str(exc)
        if writer is not None:
            writer.close()
        if injector.fired is None:
            assert outcome is None
            continue
        fired.append(injector.fired)
        if outcome is None:  # a failure the save may ignore (a top-level link it could not make)
            assert current_number(run) is not None, (k, injector.fired)
        elif failure == "enospc":
            assert outcome.startswith(f"no space left on device while saving {run}; "), (k, injector.fired, outcome)
            assert current_number(run) is not None or outcome.endswith("no checkpoint was saved yet"), outcome
            if run.exists():
                assert leftovers(run) == [], (k, injector.fired)
        if current_number(run) is not None:
            assert _same_weights(checkpoint.load(run).weights, snap.weights)
            RunWriter(run, new=False).close()
        else:
            RunWriter.check_new(run)  # raises if the folder can no longer be used for a new run
            writer = RunWriter(run, new=True)
            try:
                writer.save(snap)
            finally:
                writer.close()
            assert _same_weights(checkpoint.load(run).weights, snap.weights)
        assert leftovers(run) == [], (k, injector.fired)
        if k > 20 and injector.count < k:
            break
    assert {"mkdir", "write", "replace", "rename", "symlink"} <= set(fired), fired


# -- kill -9 -----------------------------------------------------------------------------------------
def _check_after_kill(run: Path, capsys) -> None:
    """What must hold after any kill: the current checkpoint (if any) loads and evaluates."""
    if current_number(run) is None:
        return
    snap = checkpoint.load(run)
    assert snap.weights and len(snap.history) == snap.epoch
    code, out, err = main(capsys, "eval", run, "--noise", "0")
    assert code == 0, err


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, straight, capsys):
    """Killed again and again (in start-up, in the claim, in an epoch, in a save, in a resume), then resumed
    to the end: the same weights, optimizer state, history and report as a run never killed."""
    reference = straight("--epochs", KILL_EPOCHS, *STEPPY)
    rng = random.Random(2024)
    run = tmp_path / "run"
    kills = resumes_killed = 0
    for attempt in range(30):  # until enough kills have landed (a fast machine finishes a run sooner)
        resuming = current_number(run) is not None
        if resuming and checkpoint.load(run).report is not None or (kills >= 4 and resumes_killed >= 2):
            break
        args = ["resume", run] if resuming else ["train", "--out", run, "--epochs", KILL_EPOCHS, *STEPPY]
        # Saves last 20 ms longer (50 ms every other attempt), so the run outlasts several kills and more of
        # them land inside a save.
        proc = spawn(*args, env={DELAY: "0.05" if attempt % 2 else "0.02"})
        if attempt % 2 == 0:  # anywhere from start-up on
            time.sleep(rng.uniform(0.05, 0.8))
        else:  # once this process has saved: in an epoch or a save
            start = current_number(run) or 0
            with contextlib.suppress(AssertionError):
                wait_for(lambda: (current_number(run) or 0) > start, 120, "a save", proc)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.kill()
            kills += 1
            resumes_killed += resuming
        proc.communicate(timeout=60)
        _check_after_kill(run, capsys)
    assert kills >= 3 and resumes_killed >= 1, (kills, resumes_killed)
    if current_number(run) is None or checkpoint.load(run).report is None:
        command = ["resume", run] if current_number(run) is not None else \
            ["train", "--out", run, "--epochs", KILL_EPOCHS, *STEPPY]
        result = cli(*command)
        assert result.returncode == 0, result.stderr
    assert leftovers(run) == []
    assert_same_run(run, reference)


EARLY = ["--set", "train.early_stopping=1", "--set", "train.min_delta=100"]  # stops after epoch 2, best is epoch 1


@pytest.mark.parametrize("save", ["first", "third", "report", "early-stopped-report"])
def test_kill_9_inside_a_save_keeps_the_previous_checkpoint(tmp_path, straight, capsys, save):
    """Killed while a checkpoint sits written but not yet switched to (the test-only delay holds it there):
    the previous one stays current, the leftovers go at the next start, and the run ends as if never killed.
    Killed in the report's save (after the last epoch's, or after an early stop), `resume` finishes the report."""
    epochs, args = (3, STEPPY) if save != "early-stopped-report" else (5, STEPPY + EARLY)
    reference = straight("--epochs", epochs, *args)
    number = {"first": 1, "third": 3, "report": epochs + 1, "early-stopped-report": 3}[save]
    run = tmp_path / "run"
    proc = spawn("train", "--out", run, "--epochs", epochs, *args, env={DELAY: "0.5"})
    wait_for(lambda: tmp_checkpoints(run, number), 120, f"the save of checkpoint {number}", proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert tmp_checkpoints(run, number), "the kill came after the switch; the test did not test anything"
    if save == "first":
        assert current_number(run) is None
        code, _, err = main(capsys, "eval", run)
        assert code == 2 and "no checkpoint saved yet" in one_line(err)
        code, _, err = main(capsys, "resume", run)
        assert code == 2 and one_line(err)
        result = cli("train", "--out", run, "--epochs", epochs, *args)
    else:
        assert current_number(run) == number - 1
        snap = checkpoint.load(run)
        assert snap.epoch == number - 1 and snap.report is None
        _check_after_kill(run, capsys)
        result = cli("resume", run)
    assert result.returncode == 0, result.stderr
    assert leftovers(run) == []
    assert_same_run(run, reference)
    if save == "early-stopped-report":
        assert checkpoint.load(run).report["early_stopped"] is True


# -- the divergence guard ----------------------------------------------------------------------------
SGD = ["--set", 'optimizer.name="sgd"']


@pytest.mark.parametrize("optimizer,lr,loss", [("adam", "1e6", "exploding"), ("sgd", "1e6", "exploding"),
                                               ("sgd", "1e30", "non-finite")])
def test_a_diverging_resume_stops_with_exit_1_and_the_last_good_checkpoint_stays_current(
        tmp_path, straight, capsys, optimizer, lr, loss):
    source = straight("--epochs", 2, *TINY, *(SGD if optimizer == "sgd" else []))
    run = copy_run(source, tmp_path / "run")
    voice = (checkpoint.LOCK_FILE, event_log.LOG_FILE)  # what a run may always write: its lock and its log
    before = tree(run, skip=voice)
    code, _, err = main(capsys, "resume", run, "--epochs", 4, "--set", f"optimizer.lr={lr}")
    assert code == 1
    line = one_line(err)
    assert "diverged" in line and "the last checkpoint is kept" in line
    if loss == "non-finite":
        assert "loss became nan" in line or "loss became inf" in line
    assert tree(run, skip=voice) == before
    assert isinstance(event_log.last_events(run)[-1], events.RunFailed)  # the log says why the run ended
    code, _, err = main(capsys, "resume", run, "--epochs", 3)
    assert code == 0, err


def test_a_run_diverging_from_its_first_steps_saves_nothing_and_the_folder_can_be_trained_again(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--out", run, "--epochs", 3, *TINY, "--set", "optimizer.lr=1e6")
    assert code == 1 and "diverged" in one_line(err)
    assert current_number(run) is None and leftovers(run) == []
    code, _, err = main(capsys, "train", "--out", run, "--epochs", 1, *TINY)
    assert code == 0, err


# -- signals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_stop_signals_save_and_resume_continues_exactly(tmp_path, straight, sig, code):
    epochs = 6
    reference = straight("--epochs", epochs, *STEPPY)
    run = tmp_path / "run"
    proc = spawn("train", "--out", run, "--epochs", epochs, *STEPPY)
    wait_for(lambda: current_number(run), 120, "the first checkpoint", proc)
    time.sleep(0.03)  # inside epoch 2 on most machines; anywhere is fine
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    assert rc == code, err
    assert "Traceback" not in err and "resume with" in out
    snap = checkpoint.load(run)
    assert snap.epoch < epochs or snap.train_state["partial"] is not None
    result = cli("resume", run)
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


def _second_ctrl_c(run: Path, epochs: int, args: list, first_in_a_save: bool) -> subprocess.Popen | None:
    """Start a run whose saves each take a second, Ctrl-C it once (during an epoch's save, or inside an
    epoch so that the stop itself saves) and again three times while that save is under way. None when the
    first Ctrl-C came between epochs, where a stop has nothing new to save."""
    proc = spawn("train", "--out", run, "--epochs", epochs, *args, env={DELAY: "1.0"})
    wait_for(lambda: current_number(run), 120, "the first checkpoint", proc)
    if first_in_a_save:
        wait_for(lambda: tmp_checkpoints(run, 2), 60, "the second epoch's save", proc)
    else:
        time.sleep(0.1)  # an epoch is several times longer than this
    proc.send_signal(signal.SIGINT)
    number = current_number(run) + 1
    try:
        wait_for(lambda: tmp_checkpoints(run, number), 30, "the stop's save", proc)
    except AssertionError:
        if first_in_a_save or proc.poll() is None:
            raise
        return None
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    rc, out, err = finish(proc)
    assert rc == 130, err
    assert "Traceback" not in err
    assert current_number(run) == number, "the save under way was abandoned"
    assert leftovers(run) == []
    checkpoint.load(run)
    return proc


@pytest.mark.parametrize("first", ["in-an-epoch-save", "inside-an-epoch"])
def test_a_second_ctrl_c_during_a_save_waits_for_it(tmp_path, straight, first):
    """Ctrl-C, then Ctrl-C again while the checkpoint is being written: the save completes, the run stops
    with exit 130, and resuming from that checkpoint ends exactly like an uninterrupted run."""
    # Inside an epoch: 2,100 steps of one sample make an epoch last far longer than the 0.1 s waited.
    epochs, args = (4, STEPPY) if first == "in-an-epoch-save" else \
        (3, ["--set", "data.limit=3000", "--set", "model.hidden=[16]", "--set", "train.batch_size=1"])
    reference = straight("--epochs", epochs, *args)
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        if _second_ctrl_c(run, epochs, args, first == "in-an-epoch-save") and \
                (first == "in-an-epoch-save" or checkpoint.load(run).train_state["partial"] is not None):
            break
    else:
        pytest.fail("the first Ctrl-C never landed inside an epoch")
    result = cli("resume", run)
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


STARTER = ("import sys, neuraterm.entry; sys.argv = ['neuraterm'] + sys.argv[1:]; "
           "print('started', flush=True); neuraterm.entry.main()")


def test_ctrl_c_at_any_instant_of_start_up_is_exit_130_without_a_traceback(tmp_path, capsys):
    """From the moment neuraterm's entry point runs (imports, data, model, the folder's claim, the first
    steps), Ctrl-C is exit 130 and at most one line; the folder it left can be trained or resumed."""
    rng = random.Random(5)
    for attempt in range(8):
        run = tmp_path / f"run{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", STARTER, "train", "--out", str(run), "--epochs", "3", *TINY],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "NO_COLOR": "1"})
        assert proc.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGINT)
        rc, out, err = finish(proc)
        assert rc in (130, 0), (attempt, rc, err)  # 0: the run was done before the signal came
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        if current_number(run) is not None:
            code, _, err = main(capsys, "resume", run, "--epochs", 4)
        else:
            code, _, err = main(capsys, "train", "--out", run, "--epochs", 3, *TINY)
        assert code == 0, (attempt, err)
        assert leftovers(run) == []


# -- one writer, many readers ------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_first_and_the_first_is_undisturbed(tmp_path, straight):
    epochs = 4
    reference = straight("--epochs", epochs, *STEPPY)
    run = tmp_path / "run"
    # Each save holds for a second: the first writer outlives both refusals (a resume waits 1 s for the lock).
    first = spawn("train", "--out", run, "--epochs", epochs, *STEPPY, env={DELAY: "1.0"})
    wait_for(lambda: current_number(run), 120, "the first checkpoint", first)
    for args in (["resume", run, "--epochs", 9], ["train", "--out", run, *TINY]):
        second = cli(*args)
        assert second.returncode == 2, second.stderr
        assert f"is being trained by pid {first.pid} " in one_line(second.stderr), args
    assert first.poll() is None, "the first writer ended before the second tried: nothing was tested"
    rc, _, err = finish(first)
    assert rc == 0, err
    assert_same_run(run, reference)


@pytest.mark.parametrize("second", ["train", "resume"])
def test_a_second_writer_is_refused_before_the_first_checkpoint_too(tmp_path, capsys, second):
    """The lock is taken before anything is written: a folder claimed by a run still loading its data or
    writing its first checkpoint is refused to a second writer, which names the holder."""
    run = tmp_path / "run"
    holder = RunWriter(run, new=True)
    try:
        args = ["train", "--out", run, *TINY] if second == "train" else ["resume", run]
        code, _, err = main(capsys, *args)
        line = one_line(err)
        assert code == 2
        if second == "train":
            assert f"is being trained by pid {os.getpid()} " in line
        else:
            assert "no checkpoint saved yet" in line
    finally:
        holder.close()
    assert sorted(p.name for p in run.iterdir()) == [checkpoint.LOCK_FILE, checkpoint.MARKER]


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, base_run, capsys):
    run = copy_run(base_run, tmp_path / "run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / checkpoint.LOCK_FILE).write_text(f'{{"pid": {dead.pid}, "host": "here", "started": 0}}')
    assert lock.holder(run) is None
    code, _, err = main(capsys, "resume", run, "--epochs", 3)
    assert code == 0, err
    assert checkpoint.load(run).epoch == 3


def test_readers_beside_a_writer_always_read_a_complete_checkpoint(tmp_path, straight, capsys):
    """`load`, `eval`, `export` and `runs` in a loop while a writer saves dozens of times: every read
    succeeds, sees a consistent checkpoint, and the writer ends exactly as if nobody had looked."""
    epochs = 30
    args = ["--epochs", epochs, "--set", "data.limit=600", "--set", "model.hidden=[16]", "--set", "train.batch_size=32"]
    reference = straight(*args)
    run = tmp_path / "run"
    writer = spawn("train", "--out", run, *args)
    wait_for(lambda: current_number(run), 120, "the first checkpoint", writer)
    epochs_seen, reads, problems = set(), 0, []
    while writer.poll() is None:
        snap = checkpoint.load(run, with_best=True)  # raises on a torn read; the best link is read too
        assert len(snap.history) == snap.epoch and snap.best_weights
        epochs_seen.add(snap.epoch)
        info = runs.describe(run)
        if info.status == "damaged" or not info.epoch >= 1:
            problems.append(info.problem or f"epoch {info.epoch}")
        if reads % 10 == 0:
            code, _, err = main(capsys, "eval", run, "--noise", "0")
            assert code == 0, err
            code, _, err = main(capsys, "export", run, tmp_path / "w.npz", "--force")
            assert code == 0, err
        reads += 1
    rc, _, err = finish(writer)
    assert rc == 0, err
    assert problems == []
    assert len(epochs_seen) >= 3, f"the reads did not overlap the writer's saves ({sorted(epochs_seen)})"
    assert_same_run(run, reference)


def test_readers_write_nothing(tmp_path, base_run, capsys):
    """`eval`, `export`, `runs` and `load` leave a folder byte for byte as they found it, even one holding
    what a killed save left (a temporary checkpoint and a temporary link, swept only by a writer)."""
    run = copy_run(base_run, tmp_path / "run")
    stale = run / checkpoint.CHECKPOINTS / ".tmp-000099-4242"
    shutil.copytree(checkpoint.checkpoint_dir(run), stale)
    os.symlink("checkpoints/000001", run / ".current.tmp-4242")
    before = tree(run, skip=())
    checkpoint.load(run)
    checkpoint.load(run, "best")
    runs.describe(run)
    for args in (["eval", run], ["export", run, tmp_path / "w.npz"], ["runs", run], ["runs", tmp_path]):
        code, _, err = main(capsys, *args)
        assert code == 0, (args, err)
    assert tree(run, skip=()) == before


# -- filesystems: full, read-only --------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs (needs root or CAP_SYS_ADMIN, as in CI); skipped with the reason where it cannot be mounted."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command here, so no small filesystem to fill")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "neuraterm-test", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}), so disk full is untested")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path, leave: int = 0) -> Path:
    """Fill the filesystem up, then give back `leave` bytes."""
    filler = mount / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        size = f.tell()
    os.truncate(filler, max(0, os.path.getsize(filler) - leave))
    return filler


def test_disk_full_is_one_line_keeps_the_checkpoint_and_resume_works_once_space_is_freed(tmpfs, straight):
    reference = straight("--epochs", 4, *TINY)
    run = tmpfs / "run"
    assert cli("train", "--out", run, "--epochs", 2, *TINY).returncode == 0
    before = top_level_weights(run)
    filler = fill(tmpfs)
    result = cli("resume", run, "--epochs", 4)
    assert result.returncode == 1, result.stderr
    assert one_line(result.stderr) == f"neuraterm: error: no space left on device while saving {run}; " \
                                      f"the previous checkpoint is intact"
    assert leftovers(run) == []
    snap = checkpoint.load(run)
    assert snap.epoch == 2 and snap.report is not None
    assert _same_weights(top_level_weights(run), before)
    filler.unlink()
    result = cli("resume", run, "--epochs", 4)
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


@pytest.mark.parametrize("leave", [0, 32 * 1024], ids=["full", "room-for-the-folder-only"])
def test_a_new_run_on_a_full_disk_is_one_line_and_the_folder_can_be_used_once_space_is_freed(tmpfs, straight, leave):
    reference = straight("--epochs", 2, *TINY)
    run = tmpfs / "run"
    filler = fill(tmpfs, leave)
    result = cli("train", "--out", run, "--epochs", 2, *TINY)
    assert result.returncode == 1, result.stderr
    assert "no space left on device" in one_line(result.stderr)
    if run.exists():
        assert leftovers(run) == []
    filler.unlink()
    result = cli("train", "--out", run, "--epochs", 2, *TINY)
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


def test_a_model_on_a_read_only_filesystem_can_be_read(tmpfs, base_run, tmp_path):
    run = copy_run(base_run, tmpfs / "run")
    if subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    for args in (["eval", run], ["export", run, tmp_path / "w.npz"], ["runs", tmpfs]):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    result = cli("resume", run, "--epochs", 3)
    assert result.returncode in (1, 2) and "read-only" in one_line(result.stderr).lower()


# -- the folder belongs to the user ------------------------------------------------------------------
def test_out_naming_a_folder_of_runs_is_refused_and_nothing_in_it_moves(tmp_path, base_run, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    copy_run(base_run, root / "a")
    copy_run(base_run, root / "b")
    (root / "notes.txt").write_text("which run was which")
    before = tree(root, skip=())
    code, _, err = main(capsys, "train", "--out", root, "--epochs", 1, *TINY)
    assert code == 2 and "not empty and is not a neuraterm model folder" in one_line(err)
    assert tree(root, skip=()) == before


@pytest.mark.parametrize("kind", ["file", "foreign-folder", "model-folder", "symlink-to-model-folder"])
def test_out_that_cannot_be_a_new_run_is_exit_2_and_untouched(tmp_path, base_run, capsys, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("not a folder")
    elif kind == "foreign-folder":
        target.mkdir()
        (target / "thesis.tex").write_text("\\chapter{}")
    elif kind == "model-folder":
        copy_run(base_run, target)
    else:
        os.symlink(copy_run(base_run, tmp_path / "real"), target)
    before = tree(tmp_path, skip=())
    code, _, err = main(capsys, "train", "--out", target, "--epochs", 1, *TINY)
    assert code == 2 and one_line(err)
    assert tree(tmp_path, skip=()) == before


def test_a_model_folder_is_never_replaced_and_keeps_the_users_files(tmp_path, capsys):
    """The folder, its `checkpoints/` and files a user put anywhere in it (top level, checkpoints/, a
    checkpoint's own folder) survive training, stopping, resuming and the sweeps that follow."""
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--out", run, "--epochs", 2, *TINY)
    assert code == 0, err
    inode = os.stat(run).st_ino
    mine = {run / "NOTES.md": b"notes", run / "export.npz": b"PK", run / "checkpoints" / "index.txt": b"x",
            checkpoint.checkpoint_dir(run) / "remark.txt": b"about this epoch",
            checkpoint.checkpoint_dir(run, "best") / "weights" / "README": b"best weights"}
    for path, data in mine.items():
        path.write_bytes(data)
    for total in (4, 6):
        code, _, err = main(capsys, "resume", run, "--epochs", total)
        assert code == 0, err
    assert os.stat(run).st_ino == inode
    assert {path: path.read_bytes() for path in mine} == mine
    assert checkpoint.load(run).epoch == 6


def test_out_dot_trains_into_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, "train", "--out", ".", "--epochs", 1, *TINY)
    assert code == 0, err
    assert checkpoint.load(tmp_path).epoch == 1
    code, _, err = main(capsys, "resume", ".", "--epochs", 2)
    assert code == 0, err
    assert checkpoint.load(tmp_path).epoch == 2 and not (tmp_path / "runs").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2")
    monkeypatch.chdir(other)
    code, _, err = main(capsys, "train", "--out", ".", "--epochs", 1, *TINY)
    assert code == 2 and one_line(err)
    assert [p.name for p in other.iterdir()] == ["data.csv"]


def test_a_symlink_to_a_model_folder_is_followed_and_stays_a_link(tmp_path, base_run, capsys):
    real = copy_run(base_run, tmp_path / "real")
    link = tmp_path / "link"
    os.symlink(real, link)
    code, _, err = main(capsys, "resume", link, "--epochs", 3)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert checkpoint.load(real).epoch == 3
    code, _, err = main(capsys, "eval", link)
    assert code == 0, err


@pytest.mark.parametrize("name", ["a/b", "../../escape", "..", ".", "", "-rf", "\x1b[31mred\x1b[0m", "line\nbreak",
                                  "tab\there", "nul\x00", "/etc/passwd", "ü/ñ"])
def test_a_preset_name_becomes_one_safe_folder_name(tmp_path, capsys, monkeypatch, name):
    preset = tmp_path / "preset.toml"
    preset.write_text(f"name = {toml_text.string(name)}\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code, _, err = main(capsys, "train", "--preset", preset, "--epochs", 1, *TINY)
    assert code == 0, err
    made = list((cwd / "runs").iterdir())
    assert sorted(p.name for p in cwd.iterdir()) == ["runs"] and len(made) == 1
    folder = made[0].name
    assert folder.isprintable() and "/" not in folder and not folder.startswith((".", "-"))
    assert checkpoint.load(made[0]).config.name == name
