"""The CUDA kernels of the fused step, run on the CPU: kernels.cu compiled by g++ through a small
CUDA shim (one block of one thread) and compared with the NumPy ops they must agree with.

This checks each kernel's arithmetic and indexing without a GPU; test_gpu.py checks the same
kernels on a device, and the nvcc test below checks that they compile for the H100 without spills.
"""
import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest

from neuraterm.core.nn import activations as act
from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.fused.codes import ACT_CODES
from neuraterm.core.fused.cuda_ops import KERNELS
from neuraterm.core.fused.numpy_ops import NumpyOps
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build
from fake_cupy import CTYPES, SOURCE, compile_kernels, kernel_signatures

ops = NumpyOps()
rng = np.random.default_rng(7)


@pytest.fixture(scope="module")
def cuda(tmp_path_factory):
    """Each kernel as a Python function; scalars are converted by ctypes from the parsed C signature."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    lib = compile_kernels(tmp_path_factory.mktemp("kernels"))

    def kernel(name, signature):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p if pointer else CTYPES[dtype] for pointer, dtype in signature]
        fn.restype = None

        def call(*args):
            assert len(args) == len(signature)
            for arg, (pointer, dtype) in zip(args, signature):
                if pointer:
                    assert isinstance(arg, np.ndarray) and arg.dtype == dtype and arg.flags.c_contiguous
            fn(*[a.ctypes.data if isinstance(a, np.ndarray) else a for a in args])
        return call
    return {name: kernel(name, signature) for name, signature in kernel_signatures().items()}


def test_codes_and_kernel_names_agree_with_the_source():
    source = SOURCE.read_text()
    defines = {name: int(v) for name, v in re.findall(r"#define ACT_(\w+) (\d+)", source)}
    assert {"IDENTITY": 0, "RELU": 1, "LEAKY": 2, "TANH": 3, "SIGMOID": 4, "GELU": 5, "SILU": 6} == defines
    assert sorted(ACT_CODES.values()) == sorted(defines.values())
    assert set(ACT_CODES) == set(act.ACTIVATIONS)
    signatures = kernel_signatures(source)
    assert set(KERNELS) == set(signatures) == set(re.findall(r'extern "C" __global__ void (\w+)\(', source))
    assert signatures["sum_squares"] == [(True, np.float32), (False, np.int64), (True, np.float32)]
    assert signatures["gather_normalize"][0] == (True, np.uint8) and len(signatures["adam_update"]) == 15


@pytest.mark.parametrize("mode", ["scale", "standardize"])
def test_gather_normalize_equals_numpy(cuda, mode):
    images = rng.integers(0, 256, (50, 12), dtype=np.uint8)
    labels = rng.integers(0, 7, 50).astype(np.int32)
    order = rng.permutation(50).astype(np.int32)
    counters = np.array([5, 0], np.int64)
    norm = Normalizer.fit(mode, images)
    x, y = np.full((8, 12), np.nan, np.float32), np.full(8, -1, np.int32)
    mean = norm.mean if mode == "standardize" else np.zeros(12, np.float32)
    std = norm.std if mode == "standardize" else np.ones(12, np.float32)
    cuda["gather_normalize"](images, labels, order, counters, 8, 12, np.float32(1 / 255), int(mode == "standardize"),
                             mean, std, x, y)
    want_x, want_y = ops.gather(images, labels, order, counters, 8, norm, np.empty((8, 12), np.uint8),
                                np.empty((8, 12), np.float32), np.empty(8, np.int32))
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert np.array_equal(y, labels[order[5:13]])


EXACT = {"identity", "relu", "leaky_relu"}


def assert_close(got, want):
    """float32 agreement up to the library's tanhf/expf rounding, which cancellation can lift to a few
    ulps of the inputs' scale near a zero crossing (gelu's derivative at z ~ -0.75)."""
    assert np.isfinite(got).all()
    assert np.linalg.norm(got - want) <= 1e-6 * np.linalg.norm(want)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("name", sorted(act.ACTIVATIONS))
def test_bias_activation_equals_numpy(cuda, name):
    activation = act.ACTIVATIONS[name]
    z0 = (rng.standard_normal((9, 13)) * 3).astype(np.float32)
    bias = rng.standard_normal(13).astype(np.float32)
    z, a = z0.copy(), np.full_like(z0, np.nan)
    cuda["bias_activation"](z, a, bias, 9, 13, ACT_CODES[name])
    want_z = z0.copy()
    want_a = ops.bias_activation(want_z, None, bias, activation)
    assert np.array_equal(z, want_z)
    if name in EXACT:
        assert np.array_equal(a, want_a)
    assert_close(a, want_a)


@pytest.mark.parametrize("name", sorted(act.ACTIVATIONS))
@pytest.mark.parametrize("with_mask", [False, True])
def test_activation_backward_equals_numpy(cuda, name, with_mask):
    activation = act.ACTIVATIONS[name]
    z = (rng.standard_normal((7, 11)) * 3).astype(np.float32)
    a = activation.forward(np, z.copy(), False)
    g0 = rng.standard_normal(z.shape).astype(np.float32)
    mask = ((rng.random(z.shape) > 0.3) * 2.0).astype(np.float32) if with_mask else None
    g = g0.copy()
    cuda["activation_backward"](g, z, a, mask if with_mask else g, int(with_mask), g.size, ACT_CODES[name])
    want = ops.activation_backward(g0, z, a, mask, activation)
    if name in EXACT:
        assert np.array_equal(g, want)
    assert_close(g, want)


def _dropout(cuda, a, p, seed, step):
    out, mask = np.full_like(a, np.nan), np.full_like(a, np.nan)
    cuda["dropout_forward"](a, out, mask, a.size, p, np.float32(1 / (1 - p)), seed, np.array([0, step], np.int64))
    return out, mask


def test_dropout_masks_are_fresh_each_step_and_repeatable(cuda):
    a = rng.standard_normal((200, 500)).astype(np.float32)
    out, mask = _dropout(cuda, a, 0.3, 11, 4)
    assert abs((mask == 0).mean() - 0.3) < 0.005  # 100,000 draws
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    assert np.array_equal(out, a * mask)
    assert np.array_equal(_dropout(cuda, a, 0.3, 11, 4)[1], mask)  # a replay or a resume: the same mask
    assert (_dropout(cuda, a, 0.3, 11, 5)[1] != mask).mean() > 0.3  # the next step: a new mask
    assert (_dropout(cuda, a, 0.3, 12, 4)[1] != mask).mean() > 0.3  # another layer: another mask
    rows, cols = (mask == 0).mean(axis=1), (mask == 0).mean(axis=0)
    assert rows.std() < 0.05 and cols.std() < 0.05  # no striping by row or column


def test_softmax_cross_entropy_equals_numpy_and_closes_the_step(cuda):
    logits0 = (rng.standard_normal((33, 47)) * 4).astype(np.float32)
    logits0[0, 3], logits0[1, :] = 500.0, -500.0  # stable for any logit size
    bias = rng.standard_normal(47).astype(np.float32)
    labels = rng.integers(0, 47, 33).astype(np.int32)
    logits, grad, totals = logits0.copy(), np.full_like(logits0, np.nan), np.array([1.5, 2.0])
    counters, scratch = np.array([64, 7], np.int64), np.array([3.0], np.float32)
    cuda["softmax_cross_entropy"](logits, bias, labels, grad, 33, 47, np.float32(1 / 33), totals, counters, scratch)
    want_logits, want_totals, want_counters = logits0.copy(), np.array([1.5, 2.0]), np.array([64, 7], np.int64)
    want = ops.softmax_cross_entropy(want_logits, bias, labels, None, want_totals, want_counters, None)
    assert np.array_equal(logits, want_logits)  # the output bias, added in place
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-8)
    assert totals[0] == pytest.approx(want_totals[0], rel=1e-6) and np.isfinite(totals[0])
    assert totals[1] == want_totals[1]
    assert list(counters) == list(want_counters) == [64 + 33, 8] and scratch[0] == 0.0


@pytest.mark.parametrize("name", ["relu", "gelu", "tanh", "identity"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_fused_backprop_into_the_layer_below_equals_gemm_then_activation(cuda, name, with_mask):
    activation = act.ACTIVATIONS[name]
    rows, width, outputs = 9, 14, 5
    grad_out = rng.standard_normal((rows, outputs)).astype(np.float32)
    weight = rng.standard_normal((outputs, width)).astype(np.float32)
    z = (rng.standard_normal((rows, width)) * 2).astype(np.float32)
    a = activation.forward(np, z.copy(), False)
    mask = ((rng.random(z.shape) > 0.3) * 2.0).astype(np.float32) if with_mask else None
    out = np.full_like(z, np.nan)
    cuda["backprop_activation"](grad_out, weight, z, a, mask if with_mask else out, int(with_mask), rows, width,
                                outputs, ACT_CODES[name], out)
    want = ops.backprop_activation(grad_out, weight, np.empty_like(z), z, a, mask, activation)
    assert_close(out, want)


def _optimizer(name, **options):
    net = MLP([6, 5, 3], seed=1)
    return build(name, net.parameters(), **options)


@pytest.mark.parametrize("name,options", [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "l2": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "clip_norm": 0.5}),
    ("adam", {"lr": 1e-2}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.1, "l2": 1e-3, "clip_norm": 0.3}),
    ("rmsprop", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-2, "momentum": 0.8, "l2": 1e-3, "clip_norm": 1.0}),
])
def test_optimizer_kernels_equal_the_numpy_rules(cuda, name, options):
    reference = _optimizer(name, **options)
    opt = _optimizer(name, **options)
    n, nd = opt.flat.data.size, opt.flat.n_decay
    p = opt.flat.data.copy()
    states = {k: getattr(opt, k).copy() for k in opt.state_names}
    hyper, counters, scratch = np.array([opt.lr]), np.array([0, 0], np.int64), np.zeros(1, np.float32)
    labels, grad_buffer = np.zeros(32, np.int32), np.empty((32, 2), np.float32)
    clip = np.float32(opt.clip_norm or 0.0)
    for _ in range(4):
        g = rng.standard_normal(n).astype(np.float32)
        reference.step(grad=g.copy())
        # The loss kernel counts the step and clears the norm accumulator before the update runs.
        cuda["softmax_cross_entropy"](np.zeros((32, 2), np.float32), np.zeros(2, np.float32), labels, grad_buffer,
                                      32, 2, np.float32(1 / 32), np.zeros(2), counters, scratch)
        assert scratch[0] == 0.0
        if opt.clip_norm:
            cuda["sum_squares"](g, n, scratch)
            assert scratch[0] == pytest.approx(float(g @ g), rel=1e-5)
        if name == "sgd":
            velocity = states.get("velocity", g)
            cuda["sgd_update"](p, g, velocity, n, nd, hyper, np.float32(opt.momentum), int(opt.nesterov),
                               np.float32(opt.l2), clip, scratch)
        elif name in ("adam", "adamw"):
            cuda["adam_update"](p, g, states["m"], states["v"], n, nd, hyper, counters, opt.beta1, opt.beta2,
                                opt.eps, opt.weight_decay, np.float32(opt.l2), clip, scratch)
        else:
            velocity = states.get("velocity", g)
            cuda["rmsprop_update"](p, g, states["square_avg"], velocity, n, nd, hyper, opt.alpha,
                                   np.float32(opt.eps), np.float32(opt.momentum), np.float32(opt.l2), clip, scratch)
    assert list(counters) == [4 * 32, 4] and reference.steps == 4
    np.testing.assert_allclose(p, reference.flat.data, rtol=1e-5, atol=1e-7)
    for k, value in states.items():
        np.testing.assert_allclose(value, getattr(reference, k), rtol=1e-5, atol=1e-9)
    assert not np.allclose(p, _optimizer(name, **options).flat.data)


@pytest.mark.may_skip_in_ci("nvcc comes with a CUDA toolkit, which CI's GPU-less machine lacks")
def test_kernels_compile_for_the_h100_without_spills(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    result = subprocess.run([nvcc, "-arch=sm_90", "-cubin", "--resource-usage", "-o", str(tmp_path / "k.cubin"),
                             str(SOURCE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = result.stdout + result.stderr
    entries = re.findall(r"Compiling entry function '(\w+)'", report)
    assert sorted(entries) == sorted(KERNELS)
    spills = [int(s) for s in re.findall(r"(\d+) bytes spill stores", report)]
    assert spills and max(spills) == 0
    registers = [int(r) for r in re.findall(r"Used (\d+) registers", report)]
    assert max(registers) <= 64  # full occupancy at 256 threads per block needs <= 64
