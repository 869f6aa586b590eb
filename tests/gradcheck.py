"""Central finite differences in float64: the reference every backward rule is checked against."""
from __future__ import annotations

import numpy as np

from neuraterm.core.nn.tensor import Tensor


def relative_error(build, inputs: list[np.ndarray], eps: float = 1e-6, seed: int = 0) -> float:
    """Largest relative error, over `inputs`, between backprop and finite differences.

    `build(*tensors)` returns a Tensor; it is reduced to a scalar with fixed random weights, so
    every output element contributes a different amount and a transposed gradient cannot pass.
    """
    rng = np.random.default_rng(seed)
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    probe = build(*tensors)
    weights = rng.standard_normal(probe.shape) if probe.shape else np.float64(1.0)

    def scalar(arrays) -> float:
        out = build(*[Tensor(a) for a in arrays])
        return float((out.data * weights).sum())

    (build(*tensors) * Tensor(np.asarray(weights))).sum().backward()
    worst = 0.0
    for k, t in enumerate(tensors):
        numeric = np.zeros_like(t.data)
        arrays = [x.data.copy() for x in tensors]
        for i in np.ndindex(t.data.shape):
            original = arrays[k][i]
            arrays[k][i] = original + eps
            plus = scalar(arrays)
            arrays[k][i] = original - eps
            minus = scalar(arrays)
            arrays[k][i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
        if not (np.isfinite(analytic).all() and np.isfinite(numeric).all()):
            return float("inf")  # a NaN error would be dropped by max() below: fail it here
        diff = np.linalg.norm(analytic - numeric)
        # A gradient that is truly zero (a bias before batch norm) leaves only rounding noise.
        err = 0.0 if diff < 1e-8 else diff / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
        worst = max(worst, float(err))
    return worst
