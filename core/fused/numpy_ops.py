"""The fused step's operations on NumPy: the same op order as the autograd layers, bit for bit.

They are the CPU backend of `FusedStep` and the reference the CUDA kernels are checked against.
Ops return their result; where NumPy has no in-place form the result is a new array, and the
step always uses what an op returns (the CUDA ops return the buffer they were given).
"""
from __future__ import annotations

import contextlib

import numpy as np


class NumpyOps:
    xp = np
    name = "fused step (NumPy)"
    replays_graphs = False  # `capture` returns the step itself

    def gemm(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        """`out = op(a) @ op(b)`; a 1-D `a` is a row vector (the bias gradient `ones @ dz`)."""
        return np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)

    def gather(self, images, labels, order, counters, rows, normalizer, staged, x, y):
        idx = order[counters[0]:counters[0] + rows]
        np.take(images, idx, axis=0, out=staged[:rows], mode="clip")
        np.take(labels, idx, out=y[:rows], mode="clip")
        return normalizer(staged[:rows], np, out=x[:rows]), y[:rows]

    def bias_activation(self, z, a, bias, activation):
        z += bias
        return activation.forward(np, z, a is z)

    def activation_backward(self, g, z, a, mask, activation):
        if mask is not None:
            g = g * mask
        return activation.backward(np, z, a, g)

    def dropout(self, a, out, mask, layer, counters):
        t = a.dtype.type
        keep = layer.rng.random(a.shape, dtype=a.dtype) >= t(layer.p)
        mask = keep.astype(a.dtype) * t(1.0 / (1.0 - layer.p))
        return a * mask, mask

    def backprop_activation(self, grad_out, weight, out, z, a, mask, activation):
        """The lower layer's dL/dz from the upper layer's: `act'(grad_out @ weight * mask)`."""
        return self.activation_backward(self.gemm(grad_out, weight, out), z, a, mask, activation)

    def softmax_cross_entropy(self, logits, bias, labels, grad, totals, counters, scratch):
        """The output bias, then the loss's gradient; also moves the batch cursor and counts the step."""
        logits += bias
        n = logits.shape[0]
        rows = np.arange(n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        totals[0] += (np.log(total)[:, 0] - shifted[rows, labels]).sum(dtype=np.float64)
        totals[1] += np.count_nonzero(logits.argmax(axis=1) == labels)
        grad = exp / total
        grad[rows, labels] -= logits.dtype.type(1)
        grad *= logits.dtype.type(1.0 / n)
        counters[0] += n
        counters[1] += 1
        return grad

    def optimizer_step(self, optimizer, hyper, counters, scratch):
        optimizer.step(grad=optimizer.flat.grad)

    def capture(self, step):
        """Nothing to capture on the CPU: 'replaying' is calling the step."""
        return step

    def scope(self):
        return contextlib.nullcontext()

    def synchronize(self):
        pass
