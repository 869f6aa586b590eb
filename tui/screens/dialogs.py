"""Small modal questions: confirm a step that loses edits, and type a dataset path.

A modal screen has no single-letter bindings of the app behind it, so what is typed into its field
is only ever text.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from neuraterm.core.screen_text import markup


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str, no: str):
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question)
            yield Static(f"[b]y[/] / [b]enter[/]: {self.yes}    [b]n[/] / [b]escape[/]: {self.no}", classes="dialog-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class DatasetPathDialog(ModalScreen["str | None"]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, path: str = ""):
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("A dataset of your own: a [b].npz[/] or [b].csv[/] file, or a folder")
            yield Input(self.path, placeholder="path/to/data.npz", id="dataset-path")
            yield Static("[b]enter[/]: use it    [b]escape[/]: keep the dataset as it was", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitDialog(ModalScreen["str | None"]):
    """Quitting while a run trains: it is a process of its own, so it can go on without the app."""
    BINDINGS = [
        Binding("l,enter", "answer('leave')", "Leave it running"),
        Binding("x", "answer('stop')", "Stop it"),
        Binding("escape", "answer(None)", "Cancel"),
    ]

    def __init__(self, run_dir: str):
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{markup(self.run_dir)}[/] is still training.")
            yield Static(f"[b]l[/] / [b]enter[/]: leave it running (watch it later: neuraterm watch {markup(self.run_dir)})\n"
                         f"[b]x[/]: stop it (a checkpoint is saved; R on Runs resumes it)\n"
                         f"[b]escape[/]: stay in the app", classes="dialog-keys")

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)
