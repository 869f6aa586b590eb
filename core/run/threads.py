"""How many BLAS threads a CPU run uses (`--threads`, `train.threads`), switched by threadpoolctl.

More threads help only when each GEMM is big enough to split and the cores are free: on a 2-core
machine (`bench/threads.py`, docs/benchmarks.md "BLAS threads"), fashion-mlp's epoch took 0.91 s with
two threads and 1.43 s with one while idle, but 3.43 s with two and 1.59 s with one beside a process
that kept one core busy (OpenBLAS's threads wait for each other, and one of them waits for the busy
core); `quick`'s small GEMMs gain nothing from a second thread and lose under load. So `0`
(automatic) gives small models one thread, and larger ones the cores nobody else is using when the
run starts (at least one).
"""
from __future__ import annotations

import contextlib
import os
import time

# Multiply-adds of the widest layer's GEMM in one step (batch x fan-in x fan-out) from which a second
# thread pays even on a busy machine.
MIN_WORK_PER_THREAD = 20_000_000


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def busy_cores(seconds: float = 0.2) -> float:
    """How many cores other processes keep busy now: /proc/stat sampled over `seconds` (Linux), else
    the 1-minute load average. This process is idle meanwhile, so it does not count itself."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
        return max(0.0, (1 - (idle1 - idle0) / max(total1 - total0, 1)) * (os.cpu_count() or 1))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:  # pragma: no cover
            return 0.0


def choose(requested: int, sizes: list[int], batch_size: int) -> tuple[int, str]:
    """(threads, why): `requested` when set; else one for small models, and for big ones the cores
    other processes leave free."""
    if requested > 0:
        return requested, "as asked"
    work = max(batch_size * a * b for a, b in zip(sizes, sizes[1:]))
    if work < MIN_WORK_PER_THREAD:
        return 1, "automatic: a small model"
    cores = available_cores()
    busy = busy_cores()
    free = max(1, min(cores, int(cores - busy + 0.5)))
    return free, f"automatic: {free} of {cores} cores free"


def limited(threads: int):
    """A context in which BLAS uses `threads` threads (a no-op where threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")
