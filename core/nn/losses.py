"""Losses over integer class labels (no one-hot matrices) and regression targets.

Two cross-entropies are kept on purpose: the textbook formula `-log(exp(z_y) / sum(exp(z)))`,
which overflows once a logit passes ~88 in float32 (~709 in float64), and the log-sum-exp form
that training uses, fused with softmax so its gradient is the single expression `(p - y) / N`.
"""
from __future__ import annotations

from neuraterm.core.nn.tensor import Tensor


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Mean softmax cross-entropy, stable for any logit size; one fused forward/backward op."""
    xp = logits.xp
    z = logits.data
    n = z.shape[0]
    rows = xp.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_total = xp.log(total)
    loss = (log_total[:, 0] - shifted[rows, labels]).mean()

    def backward(g):
        grad = exp / total
        grad[rows, labels] -= z.dtype.type(1)
        grad *= g * z.dtype.type(1.0 / n)
        logits.accumulate(grad)
    return Tensor.from_op(loss, (logits,), backward)


def naive_cross_entropy(logits: Tensor, labels) -> Tensor:
    """The textbook formula, built from graph ops; kept to show (and test) why it is not used."""
    xp = logits.xp
    n = logits.shape[0]
    probs = logits.exp() / logits.exp().sum(axis=1, keepdims=True)
    return -(probs[xp.arange(n), labels].log().mean())


def mse(prediction: Tensor, target) -> Tensor:
    """Mean squared error over all elements."""
    target = target.data if isinstance(target, Tensor) else target
    diff = prediction.data - target
    scale = prediction.dtype.type(2.0 / diff.size)
    return Tensor.from_op((diff * diff).mean(), (prediction,),
                          lambda g: prediction.accumulate(diff * (scale * g)))
