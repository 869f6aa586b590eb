"""A run speaks through its folder: `events.jsonl`, one JSON event a line, appended by the process
that trains it (Jupyter's message stream, as a file). A viewer that arrives late reads the whole
history from the top; one that is attached keeps reading new lines as they are flushed.

Every line is flushed as it is written and the file is fsynced at each epoch, checkpoint and end, so
a viewer sees an epoch within its polling interval and a crash loses at most step progress. Step
progress is thinned to `step_interval` (a few lines a second) whatever rate the trainer reports at.
Records of types a viewer does not know, and a torn last line, are skipped, never fatal.

The log stays bounded however long a run lasts: once step-level lines (progress, heartbeats) take
more than STEP_BUDGET bytes, the file is compacted (written anew, fsynced, renamed over the old one)
keeping every other line (epochs, checkpoints, commands, the end) and the latest STEP_BUDGET / 2 bytes
of step lines. A reader sees a new file and reads it again from the top (replaying from the top gives
the same state as following live).
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import events, folder_files

LOG_FILE = "events.jsonl"
STEP_BUDGET = 8 << 20  # bytes of step-level lines a log keeps (the latest ones)
FREQUENT_EVENTS = (events.StepEnded, events.Heartbeat)
LINE_LIMIT = 1 << 20  # no event is near this; a longer line is skipped (counted), never parsed
CHUNK = 8 << 20  # what one read takes at most, so a viewer's memory does not grow with the log
SKIM_TAIL = 256 << 10  # a first read parses step-level lines only in the log's last 256 KiB
FREQUENT = (b'{"type": "StepEnded"', b'{"type": "Heartbeat"')  # how the writer starts those lines
DURABLE = (events.RunStarted, events.EpochEnded, events.CheckpointSaved, events.EarlyStopped, events.RunFinished,
           events.RunFailed)


def _plain(value):
    """JSON has no NaN or infinity: they travel as strings ('nan', 'inf') and come back as floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class EventLog:
    """The writing side: a listener the trainer publishes to, plus `write` for other threads."""

    def __init__(self, run_dir: Path, step_interval: float = 0.25):
        self.path = Path(run_dir) / LOG_FILE
        self.step_interval = step_interval
        try:  # never appended through a planted link, never to a FIFO
            fd = folder_files.open_file(self.path.parent, LOG_FILE, os.O_APPEND | os.O_WRONLY | os.O_CREAT)
        except folder_files.Refused as exc:
            raise NeuratermError(f"{exc}; move it away to train this folder") from None
        self._file = os.fdopen(fd, "ab", buffering=0)  # one write per line: nothing is held back to fail later
        self._lock = threading.Lock()
        self._size = os.fstat(fd).st_size
        self._frequent = self._size  # not known for an existing log: counted as step lines (compacted sooner)
        self._last_step = 0.0
        self.last_write = time.monotonic()

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.StepEnded):
            now = time.monotonic()
            if now - self._last_step < self.step_interval and event.step != event.steps:
                return
            self._last_step = now
        self.write(event)

    def write(self, event: events.Event) -> None:
        record = events.to_record(event)
        try:  # most events hold no NaN or infinity: encoded as they are, without a copy through _plain
            text = json.dumps(record, allow_nan=False)
        except ValueError:
            text = json.dumps(_plain(record), allow_nan=False)
        line = (text + "\n").encode("utf-8")
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(line)
                self._size += len(line)
                if isinstance(event, FREQUENT_EVENTS):
                    self._frequent += len(line)
                if isinstance(event, DURABLE):
                    os.fsync(self._file.fileno())
                if self._frequent > STEP_BUDGET:
                    self._compact()
            except OSError:
                pass  # a full disk must not stop training; the checkpoint path reports it
            self.last_write = time.monotonic()

    def _compact(self) -> None:
        """Rewrite the log with every line but the step-level ones older than the last STEP_BUDGET / 2
        bytes of them; atomic (a new file renamed over the old), so a crash leaves one or the other."""
        run_dir = self.path.parent
        data = folder_files.read_bytes(run_dir, LOG_FILE)
        lines = data.split(b"\n")
        kept, frequent = [], 0
        for line in reversed(lines):
            if not line:
                continue
            if line.startswith(FREQUENT):
                if frequent + len(line) + 1 > STEP_BUDGET // 2:
                    continue
                frequent += len(line) + 1
            kept.append(line)
        text = b"".join(line + b"\n" for line in reversed(kept))
        fd, tmp = folder_files.temporary(run_dir, f"{LOG_FILE}.tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~folder_files.UMASK)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._file.close()
        fd = folder_files.open_file(run_dir, LOG_FILE, os.O_WRONLY | os.O_APPEND)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size, self._frequent = len(text), frequent

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LogReader:
    """The reading side: `read_new()` returns the events appended since the last call (all of them the
    first time); only whole lines are taken, so a line still being written is read next time.

    The first read of a long log skims: step progress and heartbeats before its last 256 KiB are passed
    over without parsing (the epochs, checkpoints and the end are all read), so a viewer opens a
    month-long log as fast as a short one. A line that is not a valid event of its type (`events.Invalid`,
    not JSON, longer than LINE_LIMIT) is skipped and counted in `skipped`."""

    def __init__(self, run_dir: Path, skim: bool = True):
        self.path = Path(run_dir) / LOG_FILE
        self.offset = 0
        self.skipped = 0
        self.skim = skim
        self._identity = None
        self._in_long_line = False

    def read_new(self) -> list[events.Event]:
        try:
            f = os.fdopen(folder_files.open_file(self.path.parent, LOG_FILE), "rb")
        except OSError:  # absent, or not a regular file (a link, a FIFO): nothing to show
            return []
        found: list[events.Event] = []
        with f:
            stat = os.fstat(f.fileno())
            if stat.st_ino != self._identity:  # a new file (a run claimed this folder again): start over
                self._identity, self.offset, self._in_long_line = stat.st_ino, 0, False
            skim_before = stat.st_size - SKIM_TAIL if self.skim and self.offset == 0 else 0
            while True:
                f.seek(self.offset)
                data = f.read(CHUNK)
                end = data.rfind(b"\n")
                if end < 0:
                    if len(data) >= min(CHUNK, LINE_LIMIT):  # one line longer than any event: passed over
                        self.offset += len(data)
                        self.skipped += 0 if self._in_long_line else 1
                        self._in_long_line = True
                        continue
                    return found
                cut = min(max(skim_before - self.offset, 0), end + 1)  # lines before its line are skimmed
                cut = data.rfind(b"\n", 0, cut) + 1 if cut <= end else end + 1
                skimmed, lines = data[:cut].split(b"\n")[:-1], data[cut:end].split(b"\n") if cut <= end else []
                if self._in_long_line:  # the rest of a line already counted
                    (skimmed if skimmed else lines).pop(0)
                    self._in_long_line = False
                self.offset += end + 1
                found.extend(self._parse(skimmed, True))
                found.extend(self._parse(lines, False))
                if len(data) < CHUNK:
                    return found

    def _parse(self, lines: list[bytes], skim: bool) -> list[events.Event]:
        if skim:
            lines = [line for line in lines if not line.startswith(FREQUENT)]
        found, skipped = _parse(lines)
        self.skipped += skipped
        return found


def last_events(run_dir: Path, nbytes: int = 65536) -> list[events.Event]:
    """The events in the log's last `nbytes` (enough for the latest state of a run), oldest first."""
    try:
        with os.fdopen(folder_files.open_file(Path(run_dir), LOG_FILE), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - nbytes))
            data = f.read()
    except OSError:
        return []
    return _parse(data.split(b"\n")[1:] if size > nbytes else data.split(b"\n"))[0]  # a cut first line is skipped


def _parse(lines: list[bytes]) -> tuple[list[events.Event], int]:
    """The events of whole log lines and how many lines were not valid events; a torn, malformed or
    unknown line is skipped, never fatal (unknown types are not counted: a newer writer may add some)."""
    found, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            if len(line) > LINE_LIMIT:
                raise ValueError("too long")
            event = events.from_record(json.loads(line))
        except (ValueError, RecursionError):  # events.Invalid, JSON and UTF-8 errors are ValueErrors
            skipped += 1
            continue
        if event is not None:
            found.append(event)
    return found, skipped
