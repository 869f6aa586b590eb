"""The key bindings, gathered from the app and every screen so the list cannot go stale."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
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
        parts = [Text.from_markup("[b]neuraterm keys[/]  (ctrl+p: command palette with every action; escape: close)\n")]
        for title, entries in self.sections:
            parts.append(Text(title, style="bold"))
            grid = Table.grid(padding=(0, 1))  # a description that wraps goes on under itself, not under the keys
            grid.add_column(width=15, no_wrap=True)
            grid.add_column(ratio=1)
            for keys, what in entries:
                grid.add_row(Text("  " + keys, style="cyan"), Text(what))
            parts.append(grid)
        with VerticalScroll(id="help"):
            yield Static(Group(*parts))
