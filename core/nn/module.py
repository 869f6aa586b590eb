"""`Module` and `Sequential`: parameters found by reflection, state as a flat `{name: array}` dict.

Names are dotted attribute paths (`0.weight`, `2.running_mean`), the same scheme PyTorch uses,
and they become the file names of a model folder's `.npy` files.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from neuraterm.core.backend import array_module, to_host
from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.tensor import Tensor


class Module:
    """Base class: subclasses set Tensor parameters and child Modules as attributes."""

    training: bool = True
    buffer_names: tuple[str, ...] = ()

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
        for name, child in self.children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, object]]:
        for name in self.buffer_names:
            yield prefix + name, getattr(self, name)
        for name, child in self.children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(int(p.data.size) for p in self.parameters())

    def train(self, mode: bool = True) -> "Module":
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies of every parameter and buffer, by dotted name."""
        state = {name: to_host(p.data).copy() for name, p in self.named_parameters()}
        state.update({name: to_host(b).copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays in place (parameters may be views of an optimizer's flat buffer).

        Every name must be present with the right shape; extra names are refused too.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise NeuratermError(f"state does not fit the model: missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        for name, target in targets.items():
            value = state[name]
            if tuple(value.shape) != tuple(target.shape):
                raise NeuratermError(f"{name}: shape {tuple(value.shape)} does not match the model's {tuple(target.shape)}")
            target[...] = array_module(target).asarray(value, dtype=target.dtype)


class Sequential(Module):
    """Modules applied in order; children are named by position ('0', '1', ...)."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self.size = len(layers)

    def layers(self) -> list[Module]:
        return [getattr(self, str(i)) for i in range(self.size)]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers():
            x = layer(x)
        return x
