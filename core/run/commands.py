"""Viewers steer a run through its folder: each command is a small JSON file dropped into
`<run>/commands/`, which the training process polls a few times a second, applies to its `Control`
(pause, resume, stop, save now), deletes, and answers in the event log.

Files rather than a socket: they work from any process, any terminal and, on a shared filesystem,
any machine that can see the folder, and they need no path-length tricks. A file is written under a
temporary name and renamed (`checkpoint.write_atomic`), so the run never reads half a command.
`commands/` is the one place in a model folder where anyone but its writer may write.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

from neuraterm.core.run import checkpoint, events, lock
from neuraterm.core.errors import NeuratermError

COMMANDS_DIR = "commands"
ACTIONS = ("pause", "resume", "stop", "save")
POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 5.0


def send(run_dir: Path, action: str) -> str:
    """Ask the process training `run_dir` to `action`; returns the command's id (its answer in the log
    carries it). Refused when no process trains the folder: nobody would read it."""
    if action not in ACTIONS:
        raise NeuratermError(f"unknown command {action!r}; expected one of {', '.join(ACTIONS)}")
    folder = Path(run_dir) / COMMANDS_DIR
    if lock.holder(run_dir) is None or not folder.is_dir():
        raise NeuratermError(f"{run_dir} is not training now; nothing to {action}")
    command_id = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    command = json.dumps({"id": command_id, "action": action, "sent": time.time()}).encode("utf-8")
    try:  # the run reads only `*.json`, so never the temporary file of a command being written
        checkpoint.write_atomic(folder / f"{command_id}.json", command)
    except OSError as exc:
        raise NeuratermError(f"cannot send {action!r} to {run_dir} ({exc.strerror or exc})") from None
    return command_id


class CommandWatcher(threading.Thread):
    """In the training process: reads commands, applies them to `control`, answers through `answer`
    (the event log's `write`), and writes a heartbeat while the run is paused and otherwise silent."""

    def __init__(self, run_dir: Path, control, answer, quiet_since=lambda: time.monotonic()):
        super().__init__(name="neuraterm-commands", daemon=True)
        self.folder = Path(run_dir) / COMMANDS_DIR
        self.folder.mkdir(exist_ok=True)
        for stale in self.folder.glob("*.json"):  # sent to an earlier process of this folder
            stale.unlink(missing_ok=True)
        self.control, self.answer, self.quiet_since = control, answer, quiet_since
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(POLL_SECONDS):
            self.poll()
            if self.control.paused and time.monotonic() - self.quiet_since() >= HEARTBEAT_SECONDS:
                self.answer(events.Heartbeat(paused=True))

    def poll(self) -> None:
        try:
            names = sorted(p.name for p in os.scandir(self.folder) if p.name.endswith(".json"))
        except OSError:
            return
        for name in names:
            path = self.folder / name
            try:
                command = json.loads(path.read_text(encoding="utf-8"))
                action, command_id = command["action"], str(command["id"])
            except (OSError, ValueError, KeyError, TypeError):
                command, action, command_id = None, "?", name[:-5]
            path.unlink(missing_ok=True)
            self.answer(events.CommandAnswered(command_id, action, self.apply(action)))

    def apply(self, action: str) -> str:
        control = self.control
        if action == "pause":
            control.pause()
            return "pausing at the next step"
        if action == "resume":
            control.resume()
            return "resuming"
        if action == "stop":
            control.stop()
            return "stopping: a checkpoint is saved at the next step"
        if action == "save":
            control.request_save()
            return "saving a checkpoint at the next step"
        return f"unknown command {action!r} ignored"

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)
