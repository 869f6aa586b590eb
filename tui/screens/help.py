"""The key bindings, gathered from the app and every screen so the list cannot go stale."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        lines = ["[b]neuraterm keys[/]  (ctrl+p: command palette, escape: close)", ""]
        for title, bindings in self.sections:
            lines.append(f"[b]{title}[/]")
            for b in bindings:
                if b.description:
                    lines.append(f"  [cyan]{b.key:<10}[/] {b.description}")
        with VerticalScroll(id="help"):
            yield Static("\n".join(lines))
