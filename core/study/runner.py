"""Running a study on one machine: its members as `neuraterm train`/`resume` processes, N at a time.

The driver is one loop in the main thread: it starts members while a slot is free, follows each one
through its event log (the same stream any viewer reads), and publishes `MemberProgress` to its
listeners (the CLI's live table). Members that are done (finished, diverged, pruned) are skipped, an
interrupted one resumes, one that another process is training is waited for. With `jobs` > 1 each
member gets `cores // jobs` BLAS threads, and on a machine with several GPUs one GPU per slot.

A divergence is a result (exit 1 of the member, "diverged" in the table), not the study's failure. A
member that reports bad input (exit 2: a missing dataset, say) stops the study with its one line,
since every later member would fail the same way. SIGINT/SIGTERM/SIGHUP are passed to every member
once (each saves a checkpoint), no new member starts, and the study exits 130/143/129.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from neuraterm.core.run import events, threads as threads_mod
from neuraterm.core.errors import EXIT_BAD_INPUT, EXIT_FAILED, STOP_SIGNALS, NeuratermError
from neuraterm.core.run.event_log import LogReader
from neuraterm.core.run.lock import holder
from neuraterm.core.study.folder import DONE, MemberState, StudyFolder



@dataclass
class MemberProgress:
    """One member's row in a live view: published whenever it changes."""
    name: str
    state: str  # a `study_folder.STATES` value, or "starting"
    epoch: int = 0
    epochs: int = 0
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None  # of the last epoch
    message: str = ""

    @classmethod
    def of(cls, state: MemberState) -> "MemberProgress":
        info = state.info
        report_acc = info.test_acc
        return cls(state.name, state.state, info.epoch, info.epochs or state.member.config.train.epochs,
                   info.val_acc, report_acc, info.history[-1]["seconds"] if info.history else None,
                   info.failure or info.problem)


def threads_per_member(jobs: int, requested: int = 0, configured: int = 0) -> int:
    """BLAS threads for each of `jobs` members (0: the member's own setting). One member at a time
    keeps `requested` (--threads) or its config's; several get at most `cores // jobs` each, fewer
    where the config asks for fewer (a study that times members on one thread keeps one)."""
    if jobs <= 1:
        return requested
    share = max(1, threads_mod.available_cores() // jobs)
    share = min(requested, share) if requested else share
    return min(configured, share) if configured else share


def gpu_ids() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES, else what nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listed.splitlines() if l.startswith("GPU "))]


def default_jobs(folder: StudyFolder) -> int:
    """One member at a time, or one per GPU when the members use the GPU and there are several."""
    if any(m.config.train.device in ("gpu", "auto") for m in folder.members):
        return max(1, len(gpu_ids()))
    return 1


@dataclass
class _Active:
    process: subprocess.Popen | None  # None: someone else trains it and we wait for the end
    reader: LogReader
    slot: int
    progress: MemberProgress


@dataclass
class LocalRunner:
    folder: StudyFolder
    jobs: int = 1
    listeners: list = field(default_factory=list)
    threads: int = 0  # BLAS threads per member (0: from `jobs`)
    poll_seconds: float = 0.25

    def emit(self, progress: MemberProgress) -> None:
        for listener in self.listeners:
            listener(progress)

    def run(self) -> int:
        """Run every member that is not done; returns the exit code (0, or 130/143/129 when stopped by
        a signal). Raises NeuratermError when a member reports bad input."""
        self.signals: list[int] = []
        self.active: dict[str, _Active] = {}
        lock = self.folder.lock()
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS} if in_main else {}
        try:
            return self._drive()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            lock.release()

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)
        for active in self.active.values():
            if active.process is not None and active.process.poll() is None:
                try:
                    active.process.send_signal(signum)
                except OSError:
                    pass

    def _drive(self) -> int:
        """What `run` does under the study's lock and the signal handlers (a PBT runner: generations)."""
        return self._run()

    def _pending(self, state: MemberState, until: int | None) -> bool:
        """Whether a member still trains: not done, or (a PBT generation) finished short of `until`."""
        return state.state not in DONE or (until is not None and state.state == "finished"
                                           and state.info.epoch < until)

    def _run(self, until: int | None = None) -> int:
        """Train every member that is not done (to epoch `until` only, when given) and wait for them."""
        gpus = gpu_ids() if any(m.config.train.device in ("gpu", "auto") for m in self.folder.members) else []
        queue = []
        for state in self.folder.states():
            self.emit(MemberProgress.of(state))
            if self._pending(state, until):
                queue.append(state.name)
        free = list(range(max(1, self.jobs)))
        bad_input: tuple[str, str] | None = None
        while (queue and not self.signals and bad_input is None) or self.active:
            while queue and free and not self.signals and bad_input is None:
                name = next((n for n in queue if self.folder.blocked(n) is None), None)
                if name is None:  # only [[fork]] members whose parents have not got there yet
                    if not self.active:  # and no parent trains: they never will
                        for name in queue:
                            progress = MemberProgress.of(self.folder.state(name))
                            progress.state, progress.message = "failed", self.folder.blocked(name) + \
                                ", which it did not (see its status)"
                            self.emit(progress)
                        queue.clear()
                    break
                queue.remove(name)
                state = self.folder.state(name)
                if not self._pending(state, until):
                    self.emit(MemberProgress.of(state))
                    continue
                slot = free.pop(0)
                progress = MemberProgress.of(state)
                if state.state in ("running", "paused"):  # another process trains it: wait for it
                    progress.message = "trained by another process; waiting for it"
                    self.active[name] = _Active(None, _reader_at_end(state.path), slot, progress)
                else:
                    threads = threads_per_member(self.jobs, self.threads, state.member.config.train.threads)
                    env = _thread_env(threads)
                    if gpus:
                        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
                    process = self.folder.start(name, threads, env, die_with_parent=True, epochs=until)
                    progress.state, progress.message = "starting", ""
                    self.active[name] = _Active(process, _reader_at_end(state.path), slot, progress)
                self.emit(progress)
            for name, active in list(self.active.items()):
                self._follow(active)
                if active.process is not None:
                    code = active.process.poll()
                    if code is None:
                        continue
                elif holder(self.folder.member_dir(name)) is not None:
                    continue
                else:
                    code = 0
                self._follow(active)
                del self.active[name]
                free.append(active.slot)
                free.sort()
                final = MemberProgress.of(self.folder.state(name))
                if code == EXIT_BAD_INPUT and final.state not in DONE:
                    bad_input = (name, self.folder.last_error(name))
                    final.state, final.message = "failed", bad_input[1]
                    self._stop_all()
                elif code not in (0, EXIT_FAILED, *STOP_SIGNALS.values()) and not final.message:
                    final.message = f"exited with code {code}: {self.folder.last_error(name)}"
                self.emit(final)
            if self.active:
                time.sleep(self.poll_seconds)
        if bad_input is not None:
            raise NeuratermError(f"member {bad_input[0]}: {bad_input[1]} (see {self.folder.log_path(bad_input[0])})")
        if self.signals:
            return STOP_SIGNALS[self.signals[0]]
        return 0

    def _follow(self, active: _Active) -> None:
        """Read a member's new events into its progress row and publish it when it changed."""
        p = active.progress
        before = (p.state, p.epoch, p.val_acc, p.test_acc, p.message)
        for event in active.reader.read_new():
            if isinstance(event, events.RunStarted):
                p.state, p.epoch, p.epochs = "running", event.start_epoch, event.epochs
            elif isinstance(event, events.EpochEnded):
                p.epoch, p.epochs, p.val_acc, p.seconds = event.epoch, event.epochs, event.val_acc, event.seconds
            elif isinstance(event, events.Paused):
                p.state = "paused"
            elif isinstance(event, events.Resumed):
                p.state = "running"
            elif isinstance(event, events.RunFailed):
                p.state = "diverged" if "diverged" in event.message else "failed"
                p.message = event.message
            elif isinstance(event, events.RunFinished):
                p.state = "interrupted" if event.stopped else "finished"
                p.test_acc = event.report.get("test_accuracy") if event.report else p.test_acc
        if (p.state, p.epoch, p.val_acc, p.test_acc, p.message) != before:
            self.emit(p)

    def _stop_all(self) -> None:
        for active in self.active.values():
            if active.process is not None and active.process.poll() is None:
                try:
                    active.process.send_signal(signal.SIGTERM)
                except OSError:
                    pass


UNFINISHED = ("waiting", "interrupted", "running", "paused", "retrying")
FAILED = ("failed", "damaged")  # a diverged member is a result, not a failure


def shortfall(folder: StudyFolder) -> str:
    """The one line a driver ends with when members failed or did not finish ('' when none did): the
    members and their log files, so a study that exits non-zero says where to look."""
    states = folder.states()

    def listed(group: list[MemberState]) -> str:
        shown = ", ".join(f"{s.name} ({folder.log_path(s.name)})" for s in group[:3])
        return shown + (f" and {len(group) - 3} more (logs in {folder.path / 'logs'})" if len(group) > 3 else "")
    failed = [s for s in states if s.state in FAILED]
    unfinished = [s for s in states if s.state in UNFINISHED]
    parts = []
    if failed:
        parts.append(f"{len(failed)} of {len(states)} members failed: {listed(failed)}")
    if unfinished:
        parts.append(f"{len(unfinished)} of {len(states)} members did not finish: {listed(unfinished)}; "
                     f"run 'neuraterm study {folder.path}' to continue")
    return "; ".join(parts)


def _reader_at_end(path) -> LogReader:
    """A reader of the member's log that skips what earlier sessions wrote."""
    reader = LogReader(path)
    reader.read_new()
    return reader


def _thread_env(threads: int) -> dict:
    """Thread pools of a member process capped at its share (OpenBLAS/MKL start one thread per core)."""
    if not threads:
        return {}
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


Listener = Callable[[MemberProgress], None]
