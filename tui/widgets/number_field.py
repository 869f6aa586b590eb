"""A text field for numbers that types only what a number can hold.

Any other key is not typed but left to the screen's bindings, so a single-letter action (`t` to
train, `r` for Runs) does what the footer says even while a field has focus, and can never end up
in the field as text.
"""
from __future__ import annotations

from textual import events
from textual.widgets import Input

CHARACTERS = {
    "int": "0123456789",
    "float": "0123456789.-+eE",
    "ints": "0123456789, []",  # 64,32 or the TOML list [64, 32]
}


class NumberField(Input):
    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.characters = set(CHARACTERS[kind])

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character is not None and character in self.characters

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character not in self.characters:
            event.prevent_default()  # not typed; the key bubbles on to the bindings
