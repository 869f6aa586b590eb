"""The MLP builder: the architectures of the studies in one call.

`MLP([784, 128, 10], activation="relu")` gives Linear(+activation) layers with logits at the end.
With batch norm each hidden block is Linear (no bias: the normalization would cancel it) ->
BatchNorm1d -> activation (the activation then cannot be fused into the Linear); dropout follows
the activation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neuraterm.core.nn import activations as act
from neuraterm.core.nn.batchnorm import BatchNorm1d
from neuraterm.core.nn.dropout import Dropout
from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.initializers import resolve
from neuraterm.core.nn.linear import Linear
from neuraterm.core.nn.module import Module, Sequential
from neuraterm.core.nn.tensor import Tensor


class ActivationLayer(Module):
    """A standalone activation, used where it cannot be fused into the preceding Linear."""

    def __init__(self, name: str):
        self.fn = act.get(name)

    def forward(self, x: Tensor) -> Tensor:
        return act.apply(x, self.fn)

    def __repr__(self) -> str:
        return self.fn.name


def MLP(sizes: Sequence[int], activation: str = "relu", batchnorm: bool = False, dropout: float = 0.0,
        init: str = "auto", seed: int = 0, xp=np, dtype=np.float32) -> Sequential:
    """Build `sizes[0] -> ... -> sizes[-1]`; weights drawn from one generator seeded by `seed`."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise NeuratermError(f"an MLP needs at least an input and an output size, all positive; got {sizes}")
    if not 0.0 <= dropout < 1.0:
        raise NeuratermError(f"dropout must be in [0, 1); got {dropout}")
    act.get(activation)
    rng = np.random.default_rng(seed)
    layers: list[Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        fused = None if last or batchnorm else activation
        layer_init = resolve(init, None if last else activation)
        # A bias before batch norm is cancelled by the mean subtraction: leave it out.
        layers.append(Linear(fan_in, fan_out, activation=fused, init=layer_init, bias=last or not batchnorm,
                             rng=rng, xp=xp, dtype=dtype))
        if last:
            break
        if batchnorm:
            layers.append(BatchNorm1d(fan_out, xp=xp, dtype=dtype))
            layers.append(ActivationLayer(activation))
        if dropout > 0:
            layers.append(Dropout(dropout, seed=seed + 1000 + i, xp=xp))
    return Sequential(*layers)

