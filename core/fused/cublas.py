"""cuBLAS called directly (ctypes), so that the step's GEMMs can sit inside a captured CUDA graph.

CuPy refuses its own cuBLAS calls while a stream is capturing (cupy issue 6290). This handle is our
own: bound once to the step's stream, with a workspace set before any capture (cuBLAS 12.2+ would
otherwise allocate one during capture), and the TF32 math mode only when asked for.
"""
from __future__ import annotations

import ctypes
import ctypes.util

OP_N, OP_T = 0, 1
CUDA_R_32F = 0
COMPUTE_32F, COMPUTE_32F_FAST_TF32 = 68, 77
DEFAULT_MATH, TF32_TENSOR_OP_MATH = 0, 3
GEMM_DEFAULT = -1


def column_major_arguments(out, a, b, trans_a: bool = False, trans_b: bool = False):
    """The column-major GEMM that computes the row-major `out = op(a) @ op(b)`.

    A row-major matrix is its transpose in column-major order, so cuBLAS computes
    `out^T = op(b)^T @ op(a)^T`: b comes first, the transposition flags carry over unchanged and
    each leading dimension is the stored row length. 1-D arrays are single rows. Returns
    `(op_first, op_second, m, n, k, first, ld_first, second, ld_second, ldc)`.
    """
    a2, b2, c2 = (x.reshape(1, -1) if x.ndim == 1 else x for x in (a, b, out))
    for name, x in (("a", a2), ("b", b2), ("out", c2)):
        if not x.flags.c_contiguous:
            raise ValueError(f"gemm: {name} must be C-contiguous")
    m, n = c2.shape
    k = a2.shape[0] if trans_a else a2.shape[1]
    op_a = (a2.shape[1], a2.shape[0]) if trans_a else a2.shape
    op_b = (b2.shape[1], b2.shape[0]) if trans_b else b2.shape
    if op_a != (m, k) or op_b != (k, n):
        raise ValueError(f"gemm: shapes {op_a} @ {op_b} do not give {c2.shape}")
    return (OP_T if trans_b else OP_N, OP_T if trans_a else OP_N, n, m, k,
            b2, b2.shape[1], a2, a2.shape[1], c2, n)


def _library() -> ctypes.CDLL:
    """The libcublas CuPy already loaded (same build), else the one the loader finds."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcublas.so" in path:
                    return ctypes.CDLL(path)
    except OSError:
        pass
    for name in ("libcublas.so.13", "libcublas.so.12", ctypes.util.find_library("cublas")):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    raise OSError("libcublas not found")


class Cublas:
    def __init__(self, xp, stream, tf32: bool = False, workspace_bytes: int = 32 << 20):
        xp.cuda.device.get_cublas_handle()  # makes CuPy load its libcublas first
        self.lib = lib = _library()
        lib.cublasGemmEx.argtypes = [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.handle = ctypes.c_void_p()
        self._check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self._check(lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream.ptr)), "cublasSetStream")
        self.workspace = xp.empty(workspace_bytes, dtype=xp.uint8)
        self._check(lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                              ctypes.c_size_t(workspace_bytes)), "cublasSetWorkspace")
        self._check(lib.cublasSetMathMode(self.handle, TF32_TENSOR_OP_MATH if tf32 else DEFAULT_MATH),
                    "cublasSetMathMode")
        self.compute = COMPUTE_32F_FAST_TF32 if tf32 else COMPUTE_32F
        self.one, self.zero = ctypes.c_float(1.0), ctypes.c_float(0.0)

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with cuBLAS status {status}")

    def gemm(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        op1, op2, m, n, k, first, ld1, second, ld2, c, ldc = column_major_arguments(out, a, b, trans_a, trans_b)
        status = self.lib.cublasGemmEx(
            self.handle, op1, op2, m, n, k, ctypes.byref(self.one),
            first.data.ptr, CUDA_R_32F, ld1, second.data.ptr, CUDA_R_32F, ld2,
            ctypes.byref(self.zero), c.data.ptr, CUDA_R_32F, ldc, self.compute, GEMM_DEFAULT)
        self._check(status, "cublasGemmEx")
        return out

    def close(self) -> None:
        if self.handle:
            self.lib.cublasDestroy_v2(self.handle)
            self.handle = ctypes.c_void_p()
