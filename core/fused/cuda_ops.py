"""The fused step's operations on a CUDA device: our kernels (kernels.cu) and cuBLAS called directly.

Every op launches on one stream of our own, made current for the training thread, so the whole
step can be captured into a CUDA graph and replayed: the kernels read their varying scalars from
device memory and no op allocates. CuPy is reached only through the `xp` handle.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from neuraterm.core.fused.codes import ACT_CODES
from neuraterm.core.fused.cublas import Cublas

KERNELS = ("gather_normalize", "bias_activation", "activation_backward", "backprop_activation", "dropout_forward",
           "softmax_cross_entropy", "sum_squares", "sgd_update", "adam_update", "rmsprop_update")
NARROW = 64  # up to this many outputs, the gradient into the layer below is one fused kernel, not GEMM + kernel
THREADS = 256
i32, i64, f32, f64 = np.int32, np.int64, np.float32, np.float64


class CudaOps:
    name = "fused CUDA kernels + cuBLAS"
    replays_graphs = True

    def __init__(self, xp, tf32: bool = False):
        self.xp = xp
        self.stream = xp.cuda.Stream(non_blocking=True)
        self.stream.use()  # this thread's current stream: eager ops, captures and evaluation share it
        module = xp.RawModule(code=(Path(__file__).with_name("kernels.cu")).read_text())
        self.kernels = {name: module.get_function(name) for name in KERNELS}
        self.blas = Cublas(xp, self.stream, tf32)
        self.max_blocks = 8 * xp.cuda.Device().attributes["MultiProcessorCount"]
        self.name = CudaOps.name + (", TF32" if tf32 else "")
        self._stats: dict = {}

    def _launch(self, name: str, n: int, *args, max_blocks: int | None = None) -> None:
        blocks = max(1, min(-(-int(n) // THREADS), max_blocks or self.max_blocks))
        self.kernels[name]((blocks,), (THREADS,), args)

    def gemm(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        return self.blas.gemm(a, b, out, trans_a, trans_b)

    def gather(self, images, labels, order, counters, rows, normalizer, staged, x, y):
        features = images.shape[1]
        standardize = normalizer.mode == "standardize"
        if id(normalizer) not in self._stats:  # uploaded once, before any capture
            mean = normalizer.mean if standardize else np.zeros(features, np.float32)
            std = normalizer.std if standardize else np.ones(features, np.float32)
            self._stats[id(normalizer)] = (self.xp.asarray(mean, dtype=f32), self.xp.asarray(std, dtype=f32))
        mean, std = self._stats[id(normalizer)]
        self._launch("gather_normalize", rows * features, images, labels, order, counters, i32(rows), i32(features),
                     f32(1 / 255), i32(standardize), mean, std, x, y)
        return x[:rows], y[:rows]

    def bias_activation(self, z, a, bias, activation):
        rows, cols = z.shape
        self._launch("bias_activation", z.size, z, a, bias, i64(rows), i32(cols), i32(ACT_CODES[activation.name]))
        return a

    def activation_backward(self, g, z, a, mask, activation):
        # Absent inputs get `a` as a placeholder the kernel never reads (never a written buffer:
        # the kernels' pointers are __restrict__).
        self._launch("activation_backward", g.size, g, z if z is not None else a, a,
                     mask if mask is not None else a, i32(mask is not None), i64(g.size),
                     i32(ACT_CODES[activation.name]))
        return g

    def backprop_activation(self, grad_out, weight, out, z, a, mask, activation):
        rows, outputs = grad_out.shape
        if outputs > NARROW:
            return self.activation_backward(self.gemm(grad_out, weight, out), z, a, mask, activation)
        width = weight.shape[1]
        self._launch("backprop_activation", rows * width, grad_out, weight, z if z is not None else a, a,
                     mask if mask is not None else a, i32(mask is not None), i64(rows), i32(width), i32(outputs),
                     i32(ACT_CODES[activation.name]), out)
        return out

    def dropout(self, a, out, mask, layer, counters):
        self._launch("dropout_forward", a.size, a, out, mask, i64(a.size), f32(layer.p), f32(1.0 / (1.0 - layer.p)),
                     np.uint64(layer.seed), counters)
        return out, mask

    def softmax_cross_entropy(self, logits, bias, labels, grad, totals, counters, scratch):
        rows, classes = logits.shape
        self._launch("softmax_cross_entropy", rows, logits, bias, labels, grad, i32(rows), i32(classes),
                     f32(1.0 / rows), totals, counters, scratch)
        return grad

    def optimizer_step(self, opt, hyper, counters, scratch):
        p, g, n = opt.flat.data, opt.flat.grad, opt.flat.data.size
        clip = f32(opt.clip_norm or 0.0)
        if opt.clip_norm:
            self._launch("sum_squares", n, g, i64(n), scratch, max_blocks=self.max_blocks // 8)
        common = (i64(n), i64(opt.flat.n_decay), hyper)
        if opt.name == "sgd":
            velocity = opt.velocity if opt.momentum else opt.tmp  # a placeholder without momentum
            self._launch("sgd_update", n, p, g, velocity, *common, f32(opt.momentum), i32(opt.nesterov),
                         f32(opt.l2), clip, scratch)
        elif opt.name in ("adam", "adamw"):
            self._launch("adam_update", n, p, g, opt.m, opt.v, *common, counters, f64(opt.beta1), f64(opt.beta2),
                         f64(opt.eps), f64(opt.weight_decay), f32(opt.l2), clip, scratch)
        elif opt.name == "rmsprop":
            velocity = opt.velocity if opt.momentum else opt.tmp
            self._launch("rmsprop_update", n, p, g, opt.square_avg, velocity, *common, f64(opt.alpha), f32(opt.eps),
                         f32(opt.momentum), f32(opt.l2), clip, scratch)
        else:  # guarded by fused.unsupported()
            raise ValueError(f"no fused kernel for optimizer {opt.name!r}")

    def capture(self, step):
        """Record `step` on our stream into a CUDA graph (nothing runs); returns its replay."""
        stream = self.stream
        stream.begin_capture()
        try:
            step()
        except BaseException:
            try:
                stream.end_capture()
            finally:
                raise
        graph = stream.end_capture()
        if hasattr(graph, "upload"):
            graph.upload(stream)
        return partial(graph.launch, stream)

    def scope(self):
        """Our stream as the current one: RawKernel launches go to the current stream."""
        return self.stream

    def synchronize(self):
        self.stream.synchronize()

