"""The row-major -> column-major translation of our cuBLAS calls, checked by a column-major GEMM
written in NumPy (fake_cupy.column_major_gemm) that reads the buffers only through flat arrays and
leading dimensions, as cuBLAS does. The real cuBLAS runs in test_gpu.py."""
import numpy as np
import pytest

from neuraterm.core.fused.cublas import column_major_arguments
from fake_cupy import column_major_gemm


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_every_transpose_case_computes_the_row_major_product(trans_a, trans_b):
    rng = np.random.default_rng(0)
    m, k, n = 5, 7, 3
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    out = np.full((m, n), np.nan)
    column_major_gemm(*column_major_arguments(out, a, b, trans_a, trans_b))
    np.testing.assert_allclose(out, (a.T if trans_a else a) @ (b.T if trans_b else b), rtol=1e-12)


def test_the_steps_three_products_and_the_bias_gradient():
    rng = np.random.default_rng(1)
    x, w, dz = rng.standard_normal((6, 4)), rng.standard_normal((3, 4)), rng.standard_normal((6, 3))
    cases = [((6, 3), x, w, False, True, x @ w.T),        # forward: z = x W^T
             ((3, 4), dz, x, True, False, dz.T @ x),      # weight gradient: dz^T x
             ((6, 4), dz, w, False, False, dz @ w),       # input gradient: dz W
             ((3,), np.ones(6), dz, False, False, np.ones(6) @ dz)]  # bias gradient: ones dz
    for shape, a, b, ta, tb, want in cases:
        out = np.full(shape, np.nan)
        column_major_gemm(*column_major_arguments(out, a, b, ta, tb))
        np.testing.assert_allclose(out, want, rtol=1e-12)


def test_views_of_the_first_rows_are_accepted_and_mismatches_refused():
    buf, w = np.zeros((8, 4)), np.zeros((3, 4))
    column_major_arguments(np.zeros((5, 3)), buf[:5], w, False, True)  # a partial batch
    with pytest.raises(ValueError, match="C-contiguous"):
        column_major_arguments(np.zeros((4, 3)), buf[:, :3].T, w[:, :3], False, True)
    with pytest.raises(ValueError, match="shapes"):
        column_major_arguments(np.zeros((5, 3)), buf[:5], w, False, False)
