"""The array module (`xp`): NumPy on the CPU, CuPy on a GPU, chosen once.

Layers and optimizers never ask which one they run on; they receive `xp` and call it. This is the
only module that imports CuPy, and only when a GPU is asked for, so the CPU path never needs it.
NumPy too is imported when first asked for, so that the command line's help and usage errors, which
need only `DEVICES`, start without it.
"""
from __future__ import annotations

import contextlib
import types
import typing

from neuraterm.core.errors import NeuratermError

if typing.TYPE_CHECKING:
    import numpy as np

DEVICES = ("cpu", "gpu", "auto")


def _load_cupy() -> types.ModuleType:
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        cupy.zeros(1, dtype=cupy.float32).sum().item()
    except ImportError as exc:
        raise NeuratermError(
            "--device gpu needs CuPy: pip install 'neuraterm[gpu]' (CUDA 12) or 'neuraterm[gpu-cuda13]'"
        ) from exc
    except Exception as exc:  # CUDA driver missing, no device, broken install
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NeuratermError(f"--device gpu: CuPy cannot use a CUDA device ({first})") from exc
    return cupy


def select(device: str = "cpu") -> types.ModuleType:
    """Return the array module for `device` ('cpu', 'gpu' or 'auto')."""
    if device not in DEVICES:
        raise NeuratermError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    import numpy as np
    if device == "cpu":
        return np
    if device == "gpu":
        return _load_cupy()
    try:
        return _load_cupy()
    except NeuratermError:
        return np


def name_of(xp: types.ModuleType) -> str:
    """'cpu' or 'gpu', for reports and model metadata."""
    import numpy as np
    return "cpu" if xp is np else "gpu"


def array_module(array) -> types.ModuleType:
    """The module an existing array belongs to (NumPy unless it is a CuPy array)."""
    import numpy as np
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return np
    return __import__(type(array).__module__.split(".")[0])


def to_host(array) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array; the one way data leaves the device."""
    import numpy as np
    if isinstance(array, np.ndarray):
        return array
    return array.get()


def this_stream(xp: types.ModuleType):
    """The calling thread's current CUDA stream, as a context manager another thread enters to queue its
    work behind this one's (CuPy's current stream is per thread: a new thread would use the null stream,
    which does not wait for the training's non-blocking one); a no-op on the CPU."""
    cuda = getattr(xp, "cuda", None)
    return cuda.get_current_stream() if cuda is not None else contextlib.nullcontext()
