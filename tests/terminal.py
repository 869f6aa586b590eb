"""A real terminal for tests: a detached tmux session that a test types into and reads, like a person."""
from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import time

_names = itertools.count(1)


class Tmux:
    def __init__(self, command: list[str] | str, cwd, width: int = 80, height: int = 24, env: dict | None = None):
        self.name = f"nt{os.getpid()}-{next(_names)}"
        line = command if isinstance(command, str) else shlex.join(map(str, command))
        exports = "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in (env or {}).items())
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        f"cd {shlex.quote(str(cwd))} && {exports}PYTHONUNBUFFERED=1 {line}"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, seconds: float = 60) -> str:
        """The screen once it shows `text`; fails with what it showed instead."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        """Close the session as a dropped connection would: its processes get SIGHUP."""
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)
