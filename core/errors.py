"""How a run ends badly, as users see it (the two errors and the exit codes), and the "did you mean"
that softens a typo."""
from __future__ import annotations

import difflib
import signal
from typing import Iterable

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
# A dropped SSH session (SIGHUP) and `kill` (SIGTERM) save and stop like Ctrl-C; the exit code says which.
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class NeuratermError(Exception):
    """Bad input from the user (preset, model folder, dataset, device); the message is one line (exit 2)."""


class RunFailed(Exception):
    """The run itself went wrong (it diverged, the disk filled up); exit 1, the last checkpoint stays."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
