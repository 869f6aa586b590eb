"""TOML in and out, for presets, model-folder configs and study files: reading with one-line errors,
and writing every value so that it reads back identically (quotes, backslashes and every control
character escaped: a multi-line description must not make a model folder unreadable)."""
from __future__ import annotations

import re
import sys

from neuraterm.core.errors import NeuratermError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def loads(data: bytes, source: str) -> dict:
    """The table a TOML file's bytes hold; every problem is one line naming `source`."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NeuratermError(f"{source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise NeuratermError(f"{source}: not valid TOML (nested too deeply)") from None


def assigned(raw: str):
    """The value of a `--set key=VALUE`: parsed as TOML, so types are checked as in a file; a bare word
    is a string."""
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw.strip()


def string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
                         for ch in text) + '"'


def key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else string(name)


def value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
    return string(str(v))
