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

from neuraterm.core.run import checkpoint, events, folder_files, lock
from neuraterm.core.errors import NeuratermError

COMMANDS_DIR = "commands"
ACTIONS = ("pause", "resume", "stop", "save")
POLL_SECONDS = 0.2
COMMAND_LIMIT = 4096  # a command is ~100 bytes; a bigger file is not one
HEARTBEAT_SECONDS = 5.0


def send(run_dir: Path, action: str) -> str:
    """Ask the process training `run_dir` to `action`; returns the command's id (its answer in the log
    carries it). Refused when no process trains the folder: nobody would read it."""
    if action not in ACTIONS:
        raise NeuratermError(f"unknown command {action!r}; expected one of {', '.join(ACTIONS)}")
    folder = Path(run_dir) / COMMANDS_DIR
    if lock.holder(run_dir) is None or not folder_files.is_dir(Path(run_dir), COMMANDS_DIR):
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
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / COMMANDS_DIR
        try:
            if not self.folder.is_symlink():
                self.folder.mkdir(exist_ok=True)
            entries = folder_files.list_dir(self.run_dir, COMMANDS_DIR)  # a link to elsewhere is refused
        except folder_files.Refused as exc:
            raise NeuratermError(f"{exc}; move it away to train this folder") from None
        for name, kind in entries:  # sent to an earlier process of this folder
            if name.endswith(".json") and kind == "file":
                folder_files.remove_file(self.run_dir, f"{COMMANDS_DIR}/{name}")
        self.control, self.answer, self.quiet_since = control, answer, quiet_since
        self._stop_event = threading.Event()
        self._ignored: set[str] = set()

    def run(self) -> None:
        """Polls until stopped; nothing a file in `commands/` holds can end this loop."""
        while not self._stop_event.wait(POLL_SECONDS):
            try:
                self.poll()
                if self.control.paused and time.monotonic() - self.quiet_since() >= HEARTBEAT_SECONDS:
                    self.answer(events.Heartbeat(paused=True))
            except Exception as exc:  # noqa: BLE001 - a bug here must not leave pause/stop/save unanswered
                self._say(f"commands: {exc.__class__.__name__} while polling; still listening")

    def poll(self) -> None:
        try:
            entries = sorted(folder_files.list_dir(self.run_dir, COMMANDS_DIR))
        except OSError:
            return
        for name, kind in entries:
            if not name.endswith(".json"):
                continue
            if kind != "file":  # a folder, a FIFO, a link: never opened, never deleted, said once
                if name not in self._ignored:
                    self._ignored.add(name)
                    self._say(f"commands/{name} is not a regular file; ignored")
                continue
            rel = f"{COMMANDS_DIR}/{name}"
            try:
                command = json.loads(folder_files.read_bytes(self.run_dir, rel, COMMAND_LIMIT).decode("utf-8"))
                action, command_id = str(command["action"]), str(command["id"])[:100]
            except FileNotFoundError:
                continue  # taken by another poll meanwhile
            except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
                action, command_id = "?", name[:-5][:100]
            folder_files.remove_file(self.run_dir, rel)
            try:
                result = self.apply(action)
            except Exception as exc:  # noqa: BLE001 - answered as an error, the watcher lives on
                result = f"error: {exc.__class__.__name__}"
            self.answer(events.CommandAnswered(command_id, action[:40], result))

    def _say(self, message: str) -> None:
        """A line in the run's log for what was not a command (a RunFailed would end viewers' runs)."""
        self.answer(events.CommandAnswered("-", "?", message))

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
