"""Forks the curves suggest: when a run starts to overfit, a fork from its last good epoch with a
concrete change, which the dashboard offers behind one key.

The rule reads only the per-epoch losses, so it works the same live and on a finished run: the
validation loss has stayed above its minimum for `patience` epochs while the training loss kept
falling. The last good epoch is the minimum's (the latest kept epoch at or before it, since only kept
epochs can be forked); the change is the learning rate divided by 3. Alerts from the layers' health
(updates too large, dead units) will add their own rules here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PATIENCE = 3  # epochs of rising validation loss before a fork is suggested
LR_FACTOR = 3.0


@dataclass
class Suggestion:
    epoch: int  # the kept epoch to fork from
    changes: dict  # {"optimizer.lr": [old, new]}, as a fork's lineage records them
    reason: str  # one line: what the curves did


def overfitting(train_loss: list[float], val_loss: list[float], patience: int = PATIENCE) -> int | None:
    """The last good epoch (1-based) when validation loss has been above its minimum for `patience`
    epochs while training loss fell below its value there; None otherwise (or without validation)."""
    finite = [(i, v) for i, v in enumerate(val_loss) if isinstance(v, float) and math.isfinite(v)]
    if len(finite) != len(val_loss) or len(val_loss) < patience + 1:
        return None
    best = min(range(len(val_loss)), key=lambda i: val_loss[i])
    last = len(val_loss) - 1
    if last - best < patience or not train_loss[last] < train_loss[best]:
        return None
    return best + 1


def suggest(train_loss: list[float], val_loss: list[float], lr: float, kept: list[int],
            patience: int = PATIENCE) -> Suggestion | None:
    """A fork from the last good kept epoch with the learning rate / 3, or None."""
    good = overfitting(train_loss, val_loss, patience)
    if good is None:
        return None
    epoch = max((e for e in kept if e <= good), default=None)
    if epoch is None:
        return None
    new_lr = float(f"{lr / LR_FACTOR:.3g}")
    last = len(val_loss)
    reason = (f"val loss rose above its epoch-{good} minimum for {last - good} epochs while train loss fell "
              f"({val_loss[good - 1]:.4f} -> {val_loss[-1]:.4f} val, {train_loss[good - 1]:.4f} -> "
              f"{train_loss[-1]:.4f} train)")
    return Suggestion(epoch, {"optimizer.lr": [lr, new_lr]}, reason)
