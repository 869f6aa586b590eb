"""One writer per model folder: an exclusive `flock` on `<run>/.lock`, like git's `index.lock`.

The kernel drops the lock when its process dies, however it dies, so a lock left by a crashed
run is simply taken over. The file also holds who holds it (pid, host, command, start time), so a
second writer is told which process to wait for. Readers never take the lock; `holder` asks whether
someone holds it with a shared, non-blocking probe that a writer retries past.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import folder_files

LOCK_FILE = ".lock"
RETRY_SECONDS = 1.0  # a reader's probe holds a shared lock for microseconds; a writer waits that out


def _describe(info: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {when}"


def busy(run_dir: Path, info: dict) -> NeuratermError:
    """The error for a second writer: who holds the folder."""
    return NeuratermError(f"{run_dir} is being trained by {_describe(info)}; only one process may write a model folder")


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class WriterLock:
    """Held by the one process that trains a folder; released on `release()` or process death."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "WriterLock":
        """Take the lock or say who holds it. A full disk is an `OSError` (the caller says what it was
        saving); any other failure to open the lock file is a `NeuratermError` naming the folder."""
        try:
            fd = folder_files.open_file(self.path.parent, LOCK_FILE, os.O_RDWR | os.O_CREAT)
        except folder_files.Refused as exc:  # a link planted as .lock: never truncated through
            raise NeuratermError(f"{self.path.parent}: cannot take its writer lock ({LOCK_FILE} {exc.why})") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise NeuratermError(f"{self.path.parent}: cannot take its writer lock ({exc.strerror})") from None
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    info = _read_info(fd)
                    os.close(fd)
                    raise busy(self.path.parent, info) from None
                time.sleep(0.02)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(sys.argv)[:500]}
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode("utf-8"))
        except OSError:
            os.close(fd)  # releases the lock
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def holder(run_dir: Path) -> dict | None:
    """Who trains `run_dir` now (pid, host, command, started), or None; writes nothing."""
    try:
        fd = folder_files.open_file(Path(run_dir), LOCK_FILE)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd) or {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
