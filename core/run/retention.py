"""Which epochs' checkpoints a model folder keeps (`train.keep`), so a run can be forked later.

Every epoch ends in a checkpoint; the save that makes a new one current removes the older ones the
policy does not keep. The default, `"auto"`, keeps every epoch up to 10, then the epochs of a fixed
log-spaced series (12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, ...: ten a decade), plus the last
epoch and the best one. The series does not depend on how long the run is, so an epoch kept once is
kept for good: a resume that asks for more epochs never deletes what a fork could already start from.
A 3,000-epoch run keeps 35 epochs (and the best). `"all"` keeps every epoch; an integer N adds every N-th epoch to
the default set.
"""
from __future__ import annotations

DENSE = 10  # every epoch up to this one
MANTISSAS = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80)  # one decade of the series, times 10**k


def on_series(epoch: int) -> bool:
    """Whether `epoch` is one of the default set's epochs (1..10, then 12, 15, 20, 25, 30, 40, 50...)."""
    if epoch <= DENSE:
        return epoch >= 1
    scale = 1
    while epoch >= 100 * scale:
        scale *= 10
    return epoch % scale == 0 and epoch // scale in MANTISSAS


def keeps(policy, epoch: int, last: int) -> bool:
    """Whether the checkpoint that ended `epoch` stays, when `last` is the latest epoch saved."""
    if epoch == last or policy == "all":
        return True
    if isinstance(policy, int) and not isinstance(policy, bool) and policy >= 1 and epoch % policy == 0:
        return True
    return on_series(epoch)


def describe(epochs: list[int]) -> str:
    """'1-10, 12, 15, 20, 21': sorted epochs, three or more consecutive ones as a range."""
    parts, start = [], None
    epochs = sorted(set(epochs))
    for i, e in enumerate(epochs):
        if start is None:
            start = e
        if i + 1 == len(epochs) or epochs[i + 1] != e + 1:
            parts += [f"{start}-{e}"] if e - start >= 2 else [str(n) for n in range(start, e + 1)]
            start = None
    return ", ".join(parts)
