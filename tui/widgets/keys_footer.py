"""The footer: every screen's keys on one line at 80 columns.

Compact (one space between a key and its description, one between keys); the command palette's
`^p` (Help names it) only shows where there is room for it.
"""
from __future__ import annotations

from textual import events
from textual.widgets import Footer

PALETTE_FROM_WIDTH = 100


class KeysFooter(Footer):
    def __init__(self, **kwargs):
        super().__init__(compact=True, show_command_palette=False, **kwargs)

    def on_resize(self, event: events.Resize) -> None:
        self.show_command_palette = event.size.width >= PALETTE_FROM_WIDTH
