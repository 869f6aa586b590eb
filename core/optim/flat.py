"""All parameters as views of one contiguous buffer, their gradients likewise.

An optimizer then updates every parameter with a handful of whole-buffer operations instead of a
Python loop over layers (Adam: 110 vs 181 us per step on 784-128-10). Parameters that take weight
decay are placed first, so decay is one slice `[:n_decay]` rather than a mask.
"""
from __future__ import annotations

from neuraterm.core.backend import array_module
from neuraterm.core.nn.tensor import Tensor


class FlatParameters:
    def __init__(self, params: list[Tensor]):
        if not params:
            raise ValueError("no parameters to optimize")
        self.params = sorted(params, key=lambda p: not p.decay)
        xp = self.xp = array_module(params[0].data)
        dtype = params[0].data.dtype
        total = sum(int(p.data.size) for p in self.params)
        self.data = xp.empty(total, dtype=dtype)
        self.grad = xp.zeros(total, dtype=dtype)
        self.n_decay = sum(int(p.data.size) for p in self.params if p.decay)
        offset = 0
        for p in self.params:
            n = int(p.data.size)
            view = self.data[offset:offset + n].reshape(p.data.shape)
            view[...] = p.data
            p.data = view
            p._grad_buffer = self.grad[offset:offset + n].reshape(view.shape)
            p.grad = None
            offset += n

    def gathered_grad(self):
        """The flat gradient, with zeros for parameters that got none in this pass."""
        for p in self.params:
            if p.grad is None:
                p._grad_buffer[...] = 0
            elif p.grad is not p._grad_buffer:
                p._grad_buffer[...] = p.grad
        return self.grad

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
