"""A stand-in for the parts of CuPy that `CudaOps` uses, so its glue runs on the CPU.

- `RawModule` runs kernels.cu compiled by g++ (tests/cuda_on_cpu.h) and checks every launch against
  the kernel's C signature parsed from the source: argument count, pointer or scalar, exact dtype,
  contiguity, and whole warps per block. On a real GPU a wrong type or order is silent garbage.
- Streams capture like CUDA graphs: while the current stream captures, launches and GEMMs are
  recorded with their arguments frozen (the same arrays, the same scalars) and replayed by
  `Graph.launch`; allocating while capturing raises, as it would break a replay.
- `FakeCublas` is the column-major GEMM contract of cuBLAS written in NumPy.
"""
from __future__ import annotations

import ctypes
import re
import subprocess
import types
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).parents[1] / "core" / "fused" / "kernels.cu"
SHIM = Path(__file__).with_name("cuda_on_cpu.h")
C_TYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
           "unsigned long long": np.uint64, "unsigned char": np.uint8}
CTYPES = {np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.int32: ctypes.c_int32,
          np.int64: ctypes.c_int64, np.uint64: ctypes.c_uint64}


def kernel_signatures(source: str | None = None) -> dict[str, list[tuple[bool, type]]]:
    """`{kernel: [(is_pointer, numpy dtype), ...]}` from the `extern "C" __global__` definitions."""
    source = source if source is not None else SOURCE.read_text()
    signatures = {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', source):
        parsed = []
        for param in params.split(","):
            words = param.replace("*", " * ").replace("__restrict__", " ").replace("const", " ").split()
            pointer = "*" in words
            base = " ".join(w for w in words[:-1] if w != "*")
            parsed.append((pointer, C_TYPES[base]))
        signatures[name] = parsed
    return signatures


def compile_kernels(directory: Path) -> ctypes.CDLL:
    library = directory / "kernels.so"
    subprocess.run(["g++", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-x", "c++", "-include", str(SHIM),
                    str(SOURCE), "-o", str(library)], check=True)
    return ctypes.CDLL(str(library))


def column_major_gemm(op1, op2, m, n, k, first, ld1, second, ld2, c, ldc):
    """C (m x n, column-major, leading dimension ldc) = op(A) @ op(B), as cublasSgemm defines it,
    reading the operands only through their flat buffers and leading dimensions."""
    def matrix(flat, rows, cols, ld):
        return np.lib.stride_tricks.as_strided(flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))
    A = matrix(first.reshape(-1), *((k, m) if op1 else (m, k)), ld1)
    B = matrix(second.reshape(-1), *((n, k) if op2 else (k, n)), ld2)
    A, B = (A.T if op1 else A), (B.T if op2 else B)
    matrix(c.reshape(-1), m, n, ldc)[...] = A.astype(np.float64) @ B.astype(np.float64)


class _Device:
    current = None  # the current stream
    capturing = None  # the stream that captures, if any


def _submit(work) -> None:
    """Run now, or record into the graph being captured on the current stream."""
    stream = _Device.current
    if stream is not None and stream.recording is not None:
        stream.recording.append(work)
    else:
        work()


def _no_capture(what: str) -> None:
    if _Device.capturing is not None:
        raise RuntimeError(f"{what} while a stream captures: the graph would replay with freed memory")


class Graph:
    def __init__(self, work):
        self.work = work
        self.launches = 0

    def upload(self, stream=None):
        pass

    def launch(self, stream=None):
        self.launches += 1
        for work in self.work:
            work()


class Stream:
    def __init__(self, non_blocking=False):
        self.recording = None
        self.ptr = id(self)
        self._previous = []

    def use(self):
        _Device.current = self
        return self

    def __enter__(self):
        self._previous.append(_Device.current)
        _Device.current = self
        return self

    def __exit__(self, *exc):
        _Device.current = self._previous.pop()
        return False

    def begin_capture(self, mode=None):
        assert self.recording is None and _Device.current is self, "capture on the current stream only"
        self.recording, _Device.capturing = [], self

    def end_capture(self):
        work, self.recording, _Device.capturing = self.recording, None, None
        return Graph(work)

    def synchronize(self):
        _no_capture("synchronize")


class _Kernel:
    def __init__(self, lib, name, signature, log):
        self.fn = getattr(lib, name)
        self.fn.argtypes = [ctypes.c_void_p if pointer else CTYPES[dtype] for pointer, dtype in signature]
        self.fn.restype = None
        self.name, self.signature, self.log = name, signature, log

    def __call__(self, grid, block, args):
        assert len(args) == len(self.signature), f"{self.name}: {len(args)} arguments for {len(self.signature)}"
        assert grid[0] >= 1 and block[0] % 32 == 0, f"{self.name}: grid {grid}, block {block}"
        for i, (arg, (pointer, dtype)) in enumerate(zip(args, self.signature)):
            where = f"{self.name} argument {i}"
            if pointer:
                assert isinstance(arg, np.ndarray), f"{where}: an array is expected, got {type(arg).__name__}"
                assert arg.dtype == dtype, f"{where}: {arg.dtype} where the kernel reads {np.dtype(dtype)}"
                assert arg.flags.c_contiguous, f"{where}: not contiguous"
            else:
                assert isinstance(arg, np.generic) and arg.dtype == dtype, \
                    f"{where}: {type(arg).__name__} where the kernel takes {np.dtype(dtype)}"
        values = [a.ctypes.data if isinstance(a, np.ndarray) else a for a in args]
        self.log.append(self.name)
        _submit(lambda: self.fn(*values))


class RawModule:
    lib = None  # set by `make`

    def __init__(self, code: str):
        assert code == SOURCE.read_text()
        self.signatures = kernel_signatures(code)
        self.launches: list[str] = []

    def get_function(self, name):
        return _Kernel(self.lib, name, self.signatures[name], self.launches)


class FakeCublas:
    def __init__(self, xp, stream, tf32=False):
        from neuraterm.core.fused.cublas import column_major_arguments
        self.arguments = column_major_arguments
        self.stream, self.tf32 = stream, tf32

    def gemm(self, a, b, out, trans_a=False, trans_b=False):
        args = self.arguments(out, a, b, trans_a, trans_b)
        _submit(lambda: column_major_gemm(*args))
        return out


def make(lib) -> types.SimpleNamespace:
    """An `xp` whose arrays are NumPy arrays and whose `cuda`/`RawModule` are the stand-ins above."""
    RawModule.lib = lib
    _Device.current = _Device.capturing = None

    def allocating(fn):
        def wrapper(*args, **kwargs):
            _no_capture(f"{fn.__name__}()")
            return fn(*args, **kwargs)
        return wrapper
    xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("_")})
    for name in ("empty", "zeros", "ones", "asarray", "array", "full", "empty_like", "zeros_like"):
        setattr(xp, name, allocating(getattr(np, name)))
    xp.RawModule = RawModule
    xp.cuda = types.SimpleNamespace(
        Stream=Stream,
        Device=lambda: types.SimpleNamespace(attributes={"MultiProcessorCount": 4}),
        get_current_stream=lambda: _Device.current)
    return xp
