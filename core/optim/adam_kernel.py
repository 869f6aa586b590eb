"""Adam's update as one compiled pass over the flat buffers on the CPU (Numba, the `fast` extra).

NumPy spends twelve passes over the parameters on an Adam update (each ufunc reads and writes whole
arrays), which made it a quarter of a batch-128 step and more than half of a batch-16 one. One
vectorized loop reads `p, g, m, v` once and writes them once. It runs on one thread: split over two
cores it was twice as fast alone, but inside a training step it made the epoch twice as slow, its
second thread fighting OpenBLAS's workers, which spin for a while after each GEMM. It performs the
NumPy update's float32 operations in the same order (no fused multiply-add: Numba only contracts
under fastmath), so both give the same bits and a run may switch between them. Compiling costs about a second the first time (then it is cached on disk) and importing
Numba a few tenths, so small models, whose update is cheap anyway, keep the NumPy passes.
"""
from __future__ import annotations

import numpy as np

COMPILED_FROM = 1 << 17  # parameters; below this the NumPy update is cheaper than loading the compiler

_kernel = None


def available() -> bool:
    """Whether Numba can be imported (the `fast` extra); the answer is cached with the kernel."""
    return _load() is not None


def _load():
    global _kernel
    if _kernel is None:
        try:
            import numba
        except ImportError:
            _kernel = False
        else:
            _kernel = _compile(numba)
    return _kernel or None


def _compile(numba):
    # error_model="numpy": no zero-division checks, which kept the loop from being vectorized (3x slower).
    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def adam(p, g, m, v, n_decay, decay, b1, b2, c1, c2, eps_term, step_scale):  # pragma: no cover - compiled
        for i in range(n_decay):
            p[i] = p[i] * decay
        for i in range(p.size):
            gi = g[i]
            mi = m[i] * b1 + gi * c1
            vi = v[i] * b2 + gi * gi * c2
            m[i] = mi
            v[i] = vi
            p[i] = p[i] + mi / (np.sqrt(vi) + eps_term) * step_scale
    return adam


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, n_decay: int, decay: np.float32,
                b1: np.float32, b2: np.float32, c1: np.float32, c2: np.float32, eps_term: np.float32,
                step_scale: np.float32) -> None:
    """In place: decoupled decay on `p[:n_decay]` (skipped when `decay` is 1), moments, then the step."""
    _load()(p, g, m, v, n_decay if decay != 1 else 0, decay, b1, b2, c1, c2, eps_term, step_scale)
