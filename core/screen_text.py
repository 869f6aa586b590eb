"""Strings from files made safe to show: the one place outside text becomes screen text.

A folder name, a class name from a CSV, a run's failure message or a config value is data, never
terminal control: a raw ESC could clear the screen or write the clipboard (OSC 52), a bidi override
could reorder what a line seems to say. `visible` shows every such character as an escape (`\\x1b`,
`\\u202e`); `markup` also escapes Rich/Textual markup (`[bold]`, `[/]`), for the places where a string
is parsed as markup (Rich tables, Textual's DataTable, Static and notify).

It lives in core because it is pure string work that both UI edges use (the app and the headless
printer are independent layers); core imports no rich, so `markup` follows `rich.markup.escape`'s rule
(a test checks that they agree).
"""
from __future__ import annotations

import re
import unicodedata

HIDDEN = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}  # controls, format (bidi, zero-width), surrogates, private, separators
MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # rich.markup.escape's pattern


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text, limit: int | None = None) -> str:
    """`text` (any value, shown as str) with every control, format or separator character escaped,
    cut to `limit` characters (with '...') when given."""
    text = text if isinstance(text, str) else str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in HIDDEN else ch for ch in text)


def markup(text, limit: int | None = None) -> str:
    """`visible(text)` with markup escaped: shows as itself wherever Rich or Textual parse markup."""
    escaped = MARKUP_TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", visible(text, limit))
    return escaped + "\\" if escaped.endswith("\\") and not escaped.endswith("\\\\") else escaped
