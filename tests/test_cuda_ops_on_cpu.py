"""`CudaOps` and the CUDA-graph path of `FusedStep`, run on the CPU through tests/fake_cupy.py.

The stand-in checks each launch against the kernel's C signature, runs the g++-compiled kernels,
and replays captured steps with their arguments frozen, as a CUDA graph does. So the GPU step's
glue is checked here: argument order and types, static buffers, device-side counters, no
allocation inside a capture, one graph replayed for every full batch. What remains for a real GPU
is CuPy's and cuBLAS's own behaviour (test_gpu.py).
"""
import shutil

import numpy as np
import pytest

from neuraterm.core.data.feeder import Feeder
from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.fused import cuda_ops
from neuraterm.core.fused.numpy_ops import NumpyOps
from neuraterm.core.fused.step import FusedStep
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build

import fake_cupy

CASES = [
    ("relu", "sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "l2": 1e-3}),
    ("gelu", "adamw", {"lr": 2e-3, "weight_decay": 0.05, "clip_norm": 0.5}),
    ("tanh", "rmsprop", {"lr": 1e-3, "momentum": 0.5, "clip_norm": 1.0}),
    ("silu", "adam", {"lr": 1e-3, "l2": 1e-4}),
    ("leaky_relu", "sgd", {"lr": 0.1}),
    ("sigmoid", "rmsprop", {"lr": 1e-3}),
]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    return fake_cupy.compile_kernels(tmp_path_factory.mktemp("fake_cupy"))


@pytest.fixture
def fake(kernels, monkeypatch):
    monkeypatch.setattr(cuda_ops, "Cublas", fake_cupy.FakeCublas)
    return fake_cupy.make(kernels)


def _epochs(xp, ops, activation, opt_name, options, dropout=0.0, graphs=True, epochs=3, batch=32, n=230,
            normalize="standardize", hidden=(20, 12)):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 18), dtype=np.uint8)
    y = (x[:, :3].sum(axis=1) % 6).astype(np.int64)
    net = MLP([18, *hidden, 6], activation=activation, dropout=dropout, seed=4, xp=xp)
    opt = build(opt_name, net.parameters(), **options)
    feeder = Feeder(xp, x, y, Normalizer.fit(normalize, x), batch, "device")
    step = FusedStep(ops, net, opt, feeder, batch, graphs=graphs)
    totals = []
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(n)
        batches = [order[i:i + batch] for i in range(0, n, batch)]  # 7 full batches and one of 6 rows
        opt.lr = options["lr"] * (0.5 ** epoch)  # a schedule: the LR lives on the device
        step.begin_epoch(batches)
        for idx in batches:
            step.run(len(idx))
        totals.append(step.totals_on_host())
    return net.state_dict(), opt.state_dict(), totals, step


@pytest.mark.parametrize("activation,opt_name,options", CASES, ids=[c[0] + "-" + c[1] for c in CASES])
def test_graph_replayed_cuda_ops_equal_the_numpy_step(fake, activation, opt_name, options):
    got = _epochs(fake, cuda_ops.CudaOps(fake), activation, opt_name, options)
    want = _epochs(np, NumpyOps(), activation, opt_name, options)
    step = got[3]
    assert step.graph_error is None and step.replay is not None
    assert step.replay.func.__self__.launches == 3 * 7 - 1  # every full batch after the first eager one
    for name in want[0]:
        np.testing.assert_allclose(got[0][name], want[0][name], rtol=1e-4, atol=1e-6, err_msg=name)
    for name in want[1]:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert int(got[1]["steps"]) == 3 * 8
    for (loss, correct), (ref_loss, ref_correct) in zip(got[2], want[2]):
        assert loss == pytest.approx(ref_loss, rel=1e-5) and correct == ref_correct


def test_wide_layers_take_the_gemm_path_into_the_layer_below(fake):
    """Above NARROW outputs the gradient into the layer below is a cuBLAS GEMM and a kernel."""
    hidden = (cuda_ops.NARROW + 16, cuda_ops.NARROW + 6)
    got = _epochs(fake, cuda_ops.CudaOps(fake), "gelu", "adam", {"lr": 1e-3}, dropout=0.0, hidden=hidden)
    want = _epochs(np, NumpyOps(), "gelu", "adam", {"lr": 1e-3}, dropout=0.0, hidden=hidden)
    launches = got[3].ops.kernels["activation_backward"].log
    assert launches.count("activation_backward") > 0 and launches.count("backprop_activation") > 0
    for name in want[0]:
        np.testing.assert_allclose(got[0][name], want[0][name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_replay_equals_eager_so_nothing_per_step_is_frozen(fake, dropout):
    """A scalar that changes per step but was passed as an argument would be frozen in the graph."""
    graphed = _epochs(fake, cuda_ops.CudaOps(fake), "gelu", "adam", {"lr": 3e-3}, dropout, graphs=True)
    eager = _epochs(fake, cuda_ops.CudaOps(fake), "gelu", "adam", {"lr": 3e-3}, dropout, graphs=False)
    assert graphed[3].replay is not None and eager[3].replay is None
    for name in eager[0]:
        assert np.array_equal(graphed[0][name], eager[0][name]), name
    assert graphed[2] == eager[2]


def test_dropout_masks_follow_the_step_count_so_a_resume_draws_the_same(fake):
    a = _epochs(fake, cuda_ops.CudaOps(fake), "relu", "sgd", {"lr": 0.1}, dropout=0.3, epochs=2)
    b = _epochs(fake, cuda_ops.CudaOps(fake), "relu", "sgd", {"lr": 0.1}, dropout=0.3, epochs=2)
    plain = _epochs(fake, cuda_ops.CudaOps(fake), "relu", "sgd", {"lr": 0.1}, dropout=0.0, epochs=2)
    assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    assert not np.array_equal(a[0]["0.weight"], plain[0]["0.weight"])


def test_allocating_inside_a_capture_is_caught(fake):
    ops = cuda_ops.CudaOps(fake)
    with ops.scope():
        with pytest.raises(AssertionError, match="current stream"):
            fake_cupy.Stream().begin_capture()
        ops.stream.begin_capture()
        with pytest.raises(RuntimeError, match="captures"):
            fake.zeros(3)
        ops.stream.end_capture()


def test_a_failed_capture_falls_back_to_eager_and_says_why(fake, monkeypatch):
    ops = cuda_ops.CudaOps(fake)

    def refuse(step):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(ops, "capture", refuse)
    got = _epochs(fake, ops, "relu", "adam", {"lr": 1e-3}, epochs=1)
    want = _epochs(np, NumpyOps(), "relu", "adam", {"lr": 1e-3}, epochs=1)
    assert got[3].replay is None and "eager (graph capture failed: operation not permitted" in got[3].describe()
    np.testing.assert_allclose(got[0]["2.weight"], want[0]["2.weight"], rtol=1e-4, atol=1e-6)
