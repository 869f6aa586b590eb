"""Messages from the training thread to the UI.

Every message carries the id of the run it belongs to, so the app can ignore stragglers from a run
that was stopped and replaced. Step progress coalesces: a newer step message replaces an older one
still waiting in the queue, so a fast run never floods the UI.
"""
from __future__ import annotations

from textual.message import Message

from neuraterm.core import events


class TrainerEvent(Message):
    def __init__(self, run_id: int, event: events.Event):
        super().__init__()
        self.run_id = run_id
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (isinstance(message, TrainerEvent) and message.run_id == self.run_id
                and isinstance(self.event, events.StepEnded) and isinstance(message.event, events.StepEnded))


class TrainerError(Message):
    """The run could not start or failed; `message` is the one-line reason."""

    def __init__(self, run_id: int, message: str):
        super().__init__()
        self.run_id = run_id
        self.message = message
