"""The key bindings, gathered from the app and every screen so the list cannot go stale."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]):
        super().__init__()
        self.sections = sections  # (screen, [(keys as shown, what they do)])

    def compose(self) -> ComposeResult:
        lines = ["[b]neuraterm keys[/]  (ctrl+p: command palette with every action; escape: close)", ""]
        for title, entries in self.sections:
            lines.append(f"[b]{title}[/]")
            for keys, what in entries:
                lines.append(f"  [cyan]{escape(keys):<13}[/] {escape(what)}")
        with VerticalScroll(id="help"):
            yield Static("\n".join(lines))
