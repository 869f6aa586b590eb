"""Alerts that explain: a layer's health figures turned into a reason and something to try.

Each rule reads one epoch's `HealthMeasured` (see `health.py`); its threshold comes from where the
practice is written down:

- `dead_units`: more than 40% of a ReLU-family layer's units never positive on the probe batch. cs231n,
  "Neural Networks Part 1" (Karpathy): "as much as 40% of your network can be dead" with a learning rate
  set too high; a dead unit gets no gradient and never comes back. All units dead (zeros init) means the
  network cannot leave chance.
- `identical_units`: the units of a hidden layer differ by less than 0.1% of the layer's norm
  (||W - mean row|| / ||W|| < 1e-3). cs231n "Neural Networks Part 2", "Pitfall: all zero initialization";
  Goodfellow, Bengio and Courville, "Deep Learning" 8.4: units with the same weights get the same
  gradient, so a constant initialization never breaks the symmetry and the layer acts as one unit.
- `updates_too_small` / `updates_too_large`: the median update/weight ratio of the epoch's sampled steps
  below 1e-5 or above 1e-1. cs231n "Neural Networks Part 3" ("the ratio of the updates to the values:
  ... somewhere around 1e-3; if it is lower than this then the learning rate might be too low, if it is
  higher then the learning rate is likely too high") and Deeplearning4j's "Visualizing network
  training" (log10 of the ratio around -3, healthy between about -2 and -4). We alert two decades outside
  the healthy 1e-3 (Adam's first epochs sit near 1e-2 in healthy runs, so 1e-2 itself would cry wolf).
  Small updates are not flagged once the network fits its training data (mean confidence in the true
  class on the probe batch >= 0.98): its gradients, and so its steps, are small because it has converged.
- `vanishing_gradients` / `exploding_gradients`: a hidden layer's gradient norm below 1e-3 or above 1e3
  times the output layer's. Glorot and Bengio 2010, "Understanding the difficulty of
  training deep feedforward neural networks" (gradients shrinking toward the input); Pascanu, Mikolov
  and Bengio 2013, "On the difficulty of training recurrent neural networks" (norms growing by orders
  of magnitude).
- `saturated_units`: more than 30% of a tanh/sigmoid layer's activations saturated (|a| > 0.99 for tanh,
  a < 0.01 or a > 0.99 for sigmoid), where the derivative is below 0.02. Glorot and Bengio 2010 (sigmoid
  top layers saturating for many epochs); Deeplearning4j's guide (activations near +-1 for tanh).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DEAD = 0.4
IDENTICAL = 1e-3
RATIO_LOW, RATIO_HIGH = 1e-5, 1e-1
VANISHING, EXPLODING = 1e-3, 1e3
FITTED = 0.98  # mean confidence in the true class on the probe batch above which small updates are expected
SATURATED = 0.3
KINDS = ("identical_units", "dead_units", "saturated_units", "vanishing_gradients", "exploding_gradients",
         "updates_too_small", "updates_too_large")


@dataclass
class Alert:
    epoch: int
    layer: str
    kind: str
    figure: str
    message: str
    advice: str
    last_epoch: int = 0  # in a summary: the last epoch it still held

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "last_epoch": self.last_epoch or self.epoch, "layer": self.layer,
                "kind": self.kind, "figure": self.figure, "message": self.message, "advice": self.advice}


def _ok(v) -> bool:
    return v is not None and math.isfinite(v)


def check(h) -> list[Alert]:
    """The alerts of one epoch's health (a `HealthMeasured`), most fundamental first."""
    found: list[Alert] = []
    last = len(h.layers) - 1
    out_grad = h.grad_norm[last] if last >= 0 else None

    def add(i, kind, figure, message, advice):
        found.append(Alert(h.epoch, h.layers[i], kind, figure, message, advice))

    # A network that already fits its training data takes tiny steps because its gradients are tiny: that
    # is convergence, not a learning rate too small (the probe batch's mean confidence in the true class).
    confidence = [c for c in (getattr(h, "class_confidence", None) or []) if _ok(c)]
    fitted = bool(confidence) and sum(confidence) / len(confidence) >= FITTED

    for i, name in enumerate(h.layers):
        hidden = i < last
        spread, dead, sat = h.unit_spread[i], h.dead_fraction[i], h.saturated_fraction[i]
        if hidden and _ok(spread) and spread < IDENTICAL:
            add(i, "identical_units", f"unit spread {spread:.2g}",
                f"every unit of {name} has the same weights, so all get the same gradient and the layer acts as "
                f"one unit (a constant initialization never breaks this symmetry).",
                "use a random initialization (model.init = \"auto\", he_uniform or glorot_uniform).")
        if hidden and _ok(dead) and dead > DEAD:
            add(i, "dead_units", f"{dead:.0%} of units dead",
                f"{dead:.0%} of {name}'s units are never positive on the probe batch, so they pass no gradient "
                f"and stop learning" + ("; with every unit dead the network cannot leave chance." if dead >= 1 else "."),
                "lower the learning rate, use a random initialization, or try leaky_relu, batch norm.")
        if hidden and _ok(sat) and sat > SATURATED:
            add(i, "saturated_units", f"{sat:.0%} saturated",
                f"{sat:.0%} of {name}'s activations sit where {h.kinds[i]} is flat, so almost no gradient flows "
                f"through them.",
                "use glorot_uniform initialization, standardize the inputs (data.normalize = \"standardize\"), "
                "add batch norm or use relu.")
        grad = h.grad_norm[i]
        if hidden and _ok(out_grad) and out_grad > 0 and _ok(grad):
            ratio = grad / out_grad
            if ratio < VANISHING:
                add(i, "vanishing_gradients", f"gradient {ratio:.1e} x the output's",
                    f"{name}'s gradient is {ratio:.1e} times the output layer's, so it barely learns while the "
                    f"layers above it do.",
                    "use relu with He initialization, batch norm, or fewer layers.")
            elif ratio > EXPLODING:
                add(i, "exploding_gradients", f"gradient {ratio:.1e} x the output's",
                    f"{name}'s gradient is {ratio:.1e} times the output layer's, so its updates are far larger "
                    f"than the rest of the network's.",
                    "lower the learning rate, clip gradients (optimizer.clip_norm = 1) or add batch norm.")
        ratio = h.update_ratio_median[i]
        if _ok(ratio) and ratio < RATIO_LOW and not fitted:
            shown = f"log10 update/weight {math.log10(ratio):.1f}" if ratio > 0 else "update/weight 0"
            add(i, "updates_too_small", shown,
                (f"each step changes {name}'s weights by {ratio:.1e} of their size, far below the healthy 1e-3, "
                 f"so it learns too slowly to matter.") if ratio > 0 else
                f"no step changes {name}'s weights at all, so it does not learn.",
                "raise the learning rate (by 10x or more), or check that gradients reach this layer.")
        elif _ok(ratio) and ratio > RATIO_HIGH:
            add(i, "updates_too_large", f"log10 update/weight {math.log10(ratio):.1f}",
                f"each step changes {name}'s weights by {ratio:.1e} of their size, far above the healthy 1e-3, "
                f"so training is unstable.",
                "lower the learning rate (by 10x), or add a warmup or gradient clipping.")
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(found, key=lambda a: (order[a.kind], h.layers.index(a.layer)))


def summary(history: list) -> list[Alert]:
    """Each (kind, layer) alert once per stretch of consecutive epochs it held: first and last epoch,
    with the figure of its last epoch."""
    open_: dict[tuple[str, str], Alert] = {}
    done: list[Alert] = []
    for h in history:
        now = {(a.kind, a.layer): a for a in check(h)}
        for key in list(open_):
            if key not in now:
                done.append(open_.pop(key))
        for key, a in now.items():
            if key in open_:
                kept = open_[key]
                kept.last_epoch, kept.figure, kept.message = h.epoch, a.figure, a.message
            else:
                a.last_epoch = h.epoch
                open_[key] = a
    done.extend(open_.values())
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(done, key=lambda a: (a.epoch, order[a.kind], a.layer))
