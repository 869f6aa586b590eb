"""Text shortened to a width in the middle: run names start with their preset and end with their
start time, and both ends are what tells two of them apart."""
from __future__ import annotations


def middle(text: str, width: int) -> str:
    """`text` in at most `width` characters, an ellipsis in place of its middle."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
