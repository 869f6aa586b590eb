"""A checkbox whose state reads in text (`x on` / `  off`), not only in colour."""
from __future__ import annotations

from textual.widgets import Checkbox


class OnOffBox(Checkbox):
    def __init__(self, value: bool = False, **kwargs):
        super().__init__("on" if value else "off", value, **kwargs)
        self.BUTTON_INNER = "x" if value else " "

    def watch_value(self) -> None:
        super().watch_value()
        self.BUTTON_INNER = "x" if self.value else " "
        self.label = "on" if self.value else "off"
