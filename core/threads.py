"""How many BLAS threads a CPU run uses (`--threads`, `train.threads`), switched by threadpoolctl.

More threads help only when each GEMM is big enough to split: on a 2-core machine, 784-128-10 at
batch 64 ran 1.5-18 s with OpenBLAS's default two threads while another process was busy and
0.7-1.3 s with one, and an idle machine gained only 1.2-1.4x from the second thread; larger layers
gain more and lose less. So `0` (automatic) gives small models one thread and larger ones every core
this process may use (figures and the threshold's measurement: docs/benchmarks.md, "BLAS threads").
"""
from __future__ import annotations

import contextlib
import os

# Multiply-adds of the widest layer's GEMM in one step (batch x fan-in x fan-out) from which a second
# thread pays even on a busy machine.
MIN_WORK_PER_THREAD = 20_000_000


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def choose(requested: int, sizes: list[int], batch_size: int) -> int:
    """`requested` when set, else one thread for small models and every available core for big ones."""
    if requested > 0:
        return requested
    work = max(batch_size * a * b for a, b in zip(sizes, sizes[1:]))
    return max(1, min(available_cores(), work // MIN_WORK_PER_THREAD))


def limited(threads: int):
    """A context in which BLAS uses `threads` threads (a no-op where threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")
