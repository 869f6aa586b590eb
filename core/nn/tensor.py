"""Reverse-mode automatic differentiation over `xp` arrays.

Each op computes its value and defines its gradient rule right beside it as a closure, so the rule
can be read next to the formula (the micrograd way). `Tensor.backward()` sorts the graph
topologically and runs the closures in reverse. Layers that matter for speed (the fused linear
layer, softmax cross-entropy) are ops of their own built with the same `Tensor.from_op`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterable

import numpy as np

from neuraterm.core.backend import array_module

_state = threading.local()


def grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


@contextmanager
def no_grad():
    """Evaluate without recording the graph (inference, metrics); per thread, so a UI thread is unaffected."""
    previous = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


def _unbroadcast(xp, grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (e.g. a bias added to every row)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


class Tensor:
    """An array with an optional gradient and the closure that propagates it to its inputs."""

    __slots__ = ("data", "grad", "requires_grad", "decay", "_parents", "_backward",
                 "_grad_buffer", "_grad_owned")

    def __init__(self, data, requires_grad: bool = False):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.decay = False
        self._parents: tuple = ()
        self._backward: Callable | None = None
        self._grad_buffer = None
        self._grad_owned = False

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_op(cls, data, parents: Iterable["Tensor"], backward: Callable) -> "Tensor":
        """The result of an op: it records `backward(grad)` only when some input needs a gradient."""
        parents = tuple(parents)
        out = cls(data)
        if grad_enabled() and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            out._backward = backward
        return out

    @property
    def xp(self):
        return array_module(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self) -> str:
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"

    def _const(self, value):
        """A Python number or array as an array of this tensor's dtype (no silent float64 upcast)."""
        if isinstance(value, Tensor):
            return value
        return Tensor(self.xp.asarray(value, dtype=self.data.dtype))

    # -- gradients ----------------------------------------------------------------------------
    def fresh_grad_buffer(self):
        """The preallocated gradient array when nothing was written to it yet in this pass.

        Ops that can compute a gradient straight into it (`matmul(..., out=)`) skip a copy.
        """
        if self.grad is None and self._grad_buffer is not None:
            self.grad = self._grad_buffer
            return self._grad_buffer
        return None

    def accumulate(self, grad) -> None:
        """Add `grad` into this tensor's gradient without ever writing into an array it does not own."""
        if self.grad is None:
            if self._grad_buffer is not None:
                self._grad_buffer[...] = grad
                self.grad = self._grad_buffer
            else:
                self.grad = grad
                self._grad_owned = False
        elif self._grad_owned or self.grad is self._grad_buffer:
            self.grad += grad
        else:
            self.grad = self.grad + grad
            self._grad_owned = True

    def backward(self, grad=None) -> None:
        """Propagate d(self)/d(leaf) to every leaf that requires a gradient.

        Intermediate results drop their closures afterwards, so the graph's memory is released.
        """
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))
        if grad is None:
            grad = self.xp.ones_like(self.data)
        self.accumulate(grad)
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)
                node._backward = None
                node._parents = ()
                node.grad = None

    # -- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other) -> "Tensor":
        other = self._const(other)
        xp = self.xp

        def backward(g):
            if self.requires_grad:
                self.accumulate(_unbroadcast(xp, g, self.shape))
            if other.requires_grad:
                other.accumulate(_unbroadcast(xp, g, other.shape))
        return Tensor.from_op(self.data + other.data, (self, other), backward)

    __radd__ = __add__

    def __neg__(self) -> "Tensor":
        return Tensor.from_op(-self.data, (self,), lambda g: self.accumulate(-g))

    def __sub__(self, other) -> "Tensor":
        return self + (-self._const(other))

    def __rsub__(self, other) -> "Tensor":
        return self._const(other) + (-self)

    def __mul__(self, other) -> "Tensor":
        other = self._const(other)
        xp = self.xp

        def backward(g):
            if self.requires_grad:
                self.accumulate(_unbroadcast(xp, g * other.data, self.shape))
            if other.requires_grad:
                other.accumulate(_unbroadcast(xp, g * self.data, other.shape))
        return Tensor.from_op(self.data * other.data, (self, other), backward)

    __rmul__ = __mul__

    def __truediv__(self, other) -> "Tensor":
        other = self._const(other)
        xp = self.xp

        def backward(g):
            if self.requires_grad:
                self.accumulate(_unbroadcast(xp, g / other.data, self.shape))
            if other.requires_grad:
                other.accumulate(_unbroadcast(xp, -g * self.data / (other.data * other.data), other.shape))
        return Tensor.from_op(self.data / other.data, (self, other), backward)

    def __rtruediv__(self, other) -> "Tensor":
        return self._const(other) / self

    def __matmul__(self, other) -> "Tensor":
        def backward(g):  # a batch of matrices times one matrix: that one's gradient sums over the batch
            if self.requires_grad:
                self.accumulate(_unbroadcast(self.xp, g @ other.data.swapaxes(-1, -2), self.shape))
            if other.requires_grad:
                other.accumulate(_unbroadcast(self.xp, self.data.swapaxes(-1, -2) @ g, other.shape))
        return Tensor.from_op(self.data @ other.data, (self, other), backward)

    # -- reductions ---------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        xp = self.xp
        shape = self.shape

        def backward(g):
            if axis is not None and not keepdims:
                g = xp.expand_dims(g, axis)
            self.accumulate(xp.broadcast_to(g, shape))
        return Tensor.from_op(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        count = self.data.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Maximum; ties share the gradient equally (as `amax` does in PyTorch)."""
        xp = self.xp
        value = self.data.max(axis=axis, keepdims=True)

        def backward(g):
            if axis is not None and not keepdims:
                g = xp.expand_dims(g, axis)
            mask = (self.data == value).astype(self.data.dtype)
            mask /= mask.sum(axis=axis, keepdims=True)
            self.accumulate(mask * g)
        out = value if keepdims else (value.reshape(()) if axis is None else value.squeeze(axis))
        return Tensor.from_op(out, (self,), backward)

    # -- elementwise --------------------------------------------------------------------------
    def exp(self) -> "Tensor":
        out = self.xp.exp(self.data)
        return Tensor.from_op(out, (self,), lambda g: self.accumulate(g * out))

    def log(self) -> "Tensor":
        return Tensor.from_op(self.xp.log(self.data), (self,), lambda g: self.accumulate(g / self.data))

    # -- shape --------------------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        old = self.shape
        return Tensor.from_op(self.data.reshape(*shape), (self,), lambda g: self.accumulate(g.reshape(old)))

    @property
    def T(self) -> "Tensor":
        return Tensor.from_op(self.data.T, (self,), lambda g: self.accumulate(g.T))

    def __getitem__(self, index) -> "Tensor":
        xp = self.xp
        if isinstance(index, Tensor):
            index = index.data

        def backward(g):
            full = xp.zeros_like(self.data)
            xp.add.at(full, index, g)
            self.accumulate(full)
        return Tensor.from_op(self.data[index], (self,), backward)
