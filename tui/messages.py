"""Messages from the thread that follows a run's event log to the UI.

Every message carries the id of the attachment it belongs to, so the app ignores stragglers from a
run it has stopped watching. Events travel in batches (whatever one read of the log returned): a
late viewer replays thousands of step lines in a few messages, never flooding the queue.
"""
from __future__ import annotations

from textual.message import Message

from neuraterm.core.run import events


class RunEvents(Message):
    def __init__(self, run_id: int, batch: list[events.Event], skipped: int = 0):
        super().__init__()
        self.run_id = run_id
        self.batch = batch
        self.skipped = skipped  # lines of the log so far that were not valid events


class RunError(Message):
    """The run could not start or failed; `message` is the one-line reason."""

    def __init__(self, run_id: int, message: str):
        super().__init__()
        self.run_id = run_id
        self.message = message


class RunDetached(Message):
    """Nothing trains the followed folder any more and its log is read to the end."""

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
