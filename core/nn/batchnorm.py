"""Batch normalization over the batch axis, with running statistics for evaluation.

Follows PyTorch's conventions so results compare: biased variance to normalize, unbiased variance
in the running estimate, `momentum` weighting the new batch (0.1).
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.nn.module import Module
from neuraterm.core.nn.tensor import Tensor


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, mean, var, eps: float, batch_stats: bool) -> Tensor:
    """`gamma * (x - mean) / sqrt(var + eps) + beta`.

    With `batch_stats` the mean and variance are the batch's own and the gradient flows through
    them (the three-term formula); with running statistics (evaluation) `x` is only scaled.
    """
    xp = x.xp
    t = x.dtype.type
    inv_std = t(1) / xp.sqrt(var + t(eps))
    xhat = (x.data - mean) * inv_std
    out = xhat * gamma.data + beta.data

    def backward(g):
        if gamma.requires_grad:
            gamma.accumulate((g * xhat).sum(axis=0))
        if beta.requires_grad:
            beta.accumulate(g.sum(axis=0))
        if x.requires_grad:
            dxhat = g * gamma.data
            if batch_stats:
                dxhat = dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)
            x.accumulate(dxhat * inv_std)
    return Tensor.from_op(out, (x, gamma, beta), backward)


class BatchNorm1d(Module):
    """Normalizes features over the batch in training; uses running averages in evaluation."""

    buffer_names = ("running_mean", "running_var")

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1, xp=np, dtype=np.float32):
        self.features, self.eps, self.momentum = features, eps, momentum
        self.weight = Tensor(xp.ones(features, dtype=dtype), requires_grad=True)
        self.bias = Tensor(xp.zeros(features, dtype=dtype), requires_grad=True)
        self.running_mean = xp.zeros(features, dtype=dtype)
        self.running_var = xp.ones(features, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.eps, False)
        mean, var = x.data.mean(axis=0), x.data.var(axis=0)
        out = batch_norm(x, self.weight, self.bias, mean, var, self.eps, True)
        n = x.shape[0]
        t = x.dtype.type
        m = t(self.momentum)
        self.running_mean *= t(1) - m
        self.running_mean += m * mean
        self.running_var *= t(1) - m
        self.running_var += m * var * t(n / max(n - 1, 1))
        return out

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.features})"
