"""The two ways a run ends badly, as users see them, and the "did you mean" that softens a typo."""
from __future__ import annotations

import difflib
from typing import Iterable


class NeuratermError(Exception):
    """Bad input from the user (preset, model folder, dataset, device); the message is one line (exit 2)."""


class RunFailed(Exception):
    """The run itself went wrong (it diverged, the disk filled up); exit 1, the last checkpoint stays."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
