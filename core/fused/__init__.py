"""The fused training step: fixed buffers, fused kernels, one CUDA graph per step (see step.py).

`ops_for(xp)` is the one place that picks the backend's implementation of the step's operations:
NumPy ops on the CPU (the autograd layers' arithmetic, bit for bit), our CUDA kernels plus direct
cuBLAS calls on a GPU.
"""
from __future__ import annotations

import numpy as np


def ops_for(xp, tf32: bool = False):
    if xp is np:
        from neuraterm.core.fused.numpy_ops import NumpyOps
        return NumpyOps()
    from neuraterm.core.fused.cuda_ops import CudaOps
    return CudaOps(xp, tf32)
