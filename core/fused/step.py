"""A whole training step of a plain MLP in preallocated buffers, replayed as one CUDA graph.

The autograd engine builds a graph of closures every step and allocates every intermediate; that
costs nothing next to a CPU's GEMMs but dominates on a GPU, where each eager op is ~10 us of host
time. Here the step is a fixed sequence of ops over buffers made once (batch gather and
normalization, Linear+bias+activation, dropout, softmax cross-entropy, the three GEMMs per layer
backward, one optimizer kernel over the flat parameter buffer), so it can be captured once and
replayed: Python then runs one launch per step. Everything that changes between steps (the
batch's position, the step count, the learning rate) lives in device arrays, and the loss and
the number of correct predictions accumulate on the device until someone asks for them.

On a GPU a step is the gather, per layer one GEMM forward (then bias + activation for hidden layers)
and two GEMMs backward (dW, db), the gradient into each lower layer (one fused kernel below a narrow
layer such as the output, else a GEMM and a kernel), the loss and the optimizer update: 11 graph
nodes for 784-128-10, 23 for 784-400-240-120-47.

The first full batch runs eagerly (it compiles and warms every kernel), the second is captured
and every full batch after it is a replay; a last partial batch runs eagerly. On the CPU the same
sequence runs with `NumpyOps`, in the autograd layers' op order, so it equals them bit for bit.
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.backend import to_host
from neuraterm.core.nn.dropout import Dropout
from neuraterm.core.nn.linear import Linear


def unsupported(model, optimizer) -> str | None:
    """Why `FusedStep` cannot run this model (None when it can): it covers Linear(+activation)
    layers with biases, each optionally followed by dropout, in float32 (batch norm is not fused)."""
    layers = model.layers() if hasattr(model, "layers") else [model]
    for layer in layers:
        if not isinstance(layer, (Linear, Dropout)):
            return f"a {type(layer).__name__} layer"
    previous = None
    for layer in layers:
        if isinstance(layer, Linear):
            if layer.bias is None:
                return "a layer without bias"
        elif isinstance(layer, Dropout):
            if not isinstance(previous, Linear):
                return "dropout that does not follow a linear layer"
        previous = layer
    if not isinstance(layers[-1], Linear) or layers[-1].activation.name != "identity":
        return "an output layer other than linear logits"
    if optimizer.flat.data.dtype != np.float32:
        return "parameters that are not float32"
    return None


class _Block:
    """One Linear (+activation, +dropout) with its forward and gradient buffers."""

    def __init__(self, xp, linear: Linear, dropout: Dropout | None, batch: int):
        self.linear, self.dropout, self.activation = linear, dropout, linear.activation
        shape = (batch, linear.out_features)
        self.z = xp.empty(shape, xp.float32)
        self.a = xp.empty(shape, xp.float32) if self.activation.needs_input else self.z
        self.out = xp.empty(shape, xp.float32) if dropout else None
        self.mask = xp.empty(shape, xp.float32) if dropout else None
        self.grad = xp.empty(shape, xp.float32)  # dL/d(block output), then dL/dz in place


class FusedStep:
    def __init__(self, ops, model, optimizer, feeder, batch_size: int, graphs: bool = True):
        xp = self.xp = ops.xp
        self.ops, self.optimizer, self.feeder = ops, optimizer, feeder
        self.batch = batch_size
        pairs: list[list] = []  # [linear, dropout or None]
        for layer in model.layers():
            if isinstance(layer, Linear):
                pairs.append([layer, None])
            else:
                pairs[-1][1] = layer
        self.blocks = [_Block(xp, linear, dropout, batch_size) for linear, dropout in pairs]
        self.weight_grads = [b.linear.weight._grad_buffer for b in self.blocks]
        self.bias_grads = [b.linear.bias._grad_buffer for b in self.blocks]
        self.ones = xp.ones(batch_size, xp.float32)
        # The batch lives in the feeder's buffers, which stay put (a graph input must): the step gathers
        # into them itself, or, when batches are streamed, the feeder normalizes into `x` already.
        self.x, self.staged = feeder.out, feeder.staged[0]
        self.y = xp.empty(batch_size, xp.int32)
        self.resident = feeder.resident
        if self.resident:
            self.images = feeder.x
            self.labels = feeder.y.astype(xp.int32)
            self.order = xp.zeros(len(feeder.y), xp.int32)
        self.counters = xp.zeros(2, xp.int64)  # [position in the order, optimizer steps done]
        self.hyper = xp.zeros(1, xp.float64)  # [learning rate]
        self.scratch = xp.zeros(1, xp.float32)  # squared gradient norm, for clipping
        self.totals = xp.zeros(2, xp.float64)  # [summed loss, correct predictions] of the epoch so far
        self.graphs = graphs
        self.replay = None
        self.warm = False
        self.graph_error: str | None = None
        self.steps = optimizer.steps

    def describe(self) -> str:
        if self.graph_error:
            return f"{self.ops.name}, eager (graph capture failed: {self.graph_error})"
        if not self.ops.replays_graphs:
            return self.ops.name
        return self.ops.name + (", one CUDA graph per step" if self.graphs else ", eager")

    # -- the epoch ---------------------------------------------------------------------------
    def begin_epoch(self, batches: list, loss_sum: float = 0.0, correct: int = 0) -> None:
        """Set the order of this epoch's (remaining) batches, the LR, the step count and the totals."""
        with self.ops.scope():
            self._begin_epoch(batches, loss_sum, correct)

    def _begin_epoch(self, batches, loss_sum, correct) -> None:
        xp, opt = self.xp, self.optimizer
        if self.resident:
            order = np.concatenate(batches).astype(np.int32) if batches else np.zeros(0, np.int32)
            self.order[:len(order)] = xp.asarray(order)
        else:
            self.stream = self.feeder.stream(batches)
        self.steps = opt.steps
        self.counters[...] = xp.asarray(np.array([0, opt.steps], np.int64))
        self.hyper[...] = opt.lr
        self.totals[...] = xp.asarray(np.array([loss_sum, correct], np.float64))

    def run(self, rows: int) -> None:
        """Train on the next batch of `rows` rows."""
        with self.ops.scope():
            self._run(rows)

    def _run(self, rows: int) -> None:
        if not self.resident:
            _, _, yb = next(self.stream)  # the images are in `self.x` (the feeder's buffer) already
            self.y[:rows] = yb
        if rows == self.batch and self.graphs and self.graph_error is None:
            if self.replay is None and self.warm:
                try:
                    self.replay = self.ops.capture(lambda: self._step(self.batch))
                except Exception as exc:  # the step still runs eagerly; the reason is reported
                    self.graph_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if self.replay is not None:
                self.replay()
                self._counted()
                return
            self.warm = True
        self._step(rows)
        self._counted()

    def _counted(self) -> None:
        """Assigned, not incremented: NumPy's optimizer counts its own steps, a replayed graph does not."""
        self.steps += 1
        self.optimizer.steps = self.steps

    def totals_on_host(self) -> tuple[float, int]:
        """(summed loss, correct predictions) so far this epoch; the one read that waits for the device."""
        with self.ops.scope():
            loss_sum, correct = to_host(self.totals)
        return float(loss_sum), int(correct)

    # -- one step ----------------------------------------------------------------------------
    def _step(self, n: int) -> None:
        ops = self.ops
        if self.resident:
            h, y = ops.gather(self.images, self.labels, self.order, self.counters, n, self.feeder.normalizer,
                              self.staged, self.x, self.y)
        else:
            h, y = self.x[:n], self.y[:n]
        inputs, outputs = [], []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            inputs.append(h)
            lin = block.linear
            z = ops.gemm(h, lin.weight.data, block.z[:n], trans_b=True)
            if i == last:  # the loss op adds the output bias itself
                h = z
                break
            a = ops.bias_activation(z, block.a[:n], lin.bias.data, block.activation)
            mask = None
            if block.dropout is not None:
                h, mask = ops.dropout(a, block.out[:n], block.mask[:n], block.dropout, self.counters)
            else:
                h = a
            outputs.append((z, a, mask))
        grad = ops.softmax_cross_entropy(h, self.blocks[last].linear.bias.data, y, self.blocks[last].grad[:n],
                                         self.totals, self.counters, self.scratch)
        for i in range(last, -1, -1):
            ops.gemm(grad, inputs[i], self.weight_grads[i], trans_a=True)
            ops.gemm(self.ones[:n], grad, self.bias_grads[i])
            if i > 0:
                below, (z, a, mask) = self.blocks[i - 1], outputs[i - 1]
                grad = ops.backprop_activation(grad, self.blocks[i].linear.weight.data, below.grad[:n],
                                               z if below.activation.needs_input else None, a, mask, below.activation)
        ops.optimizer_step(self.optimizer, self.hyper, self.counters, self.scratch)
