"""The fused step on the CPU: bit for bit the autograd step, over whole epochs, for every fused case."""
import numpy as np
import pytest

from neuraterm.core.data.feeder import Feeder
from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.fused.numpy_ops import NumpyOps
from neuraterm.core.fused.step import FusedStep, unsupported
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build
from neuraterm.core.run.steps import AutogradStep, make_step

OPTIMIZERS = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "l2": 1e-3}),
    ("adam", {"lr": 1e-3}),
    ("adamw", {"lr": 2e-3, "weight_decay": 0.05, "clip_norm": 0.5}),
    ("rmsprop", {"lr": 1e-3, "momentum": 0.5, "l2": 1e-4, "clip_norm": 2.0}),
]


def _data(n=203, features=20, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, features), dtype=np.uint8)
    y = (x[:, :3].sum(axis=1) % classes).astype(np.int64)  # learnable, all classes present
    return x, y


def _batches(n, batch, seed):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]


def _train(kind, activation, dropout, opt_name, options, normalize="standardize", epochs=2, batch=32):
    x, y = _data()
    net = MLP([x.shape[1], 16, 12, 5], activation=activation, dropout=dropout, seed=3)
    opt = build(opt_name, net.parameters(), **options)
    feeder = Feeder(np, x, y, Normalizer.fit(normalize, x), batch)
    step = (FusedStep(NumpyOps(), net, opt, feeder, batch) if kind == "fused"
            else AutogradStep(net, opt, feeder, "reference"))
    totals = []
    for epoch in range(epochs):
        batches = _batches(len(y), batch, epoch)
        step.begin_epoch(batches)
        for idx in batches:
            step.run(len(idx))
        totals.append(step.totals_on_host())
    return net.state_dict(), opt.state_dict(), totals


@pytest.mark.parametrize("opt_name,options", OPTIMIZERS, ids=[o[0] + str(i) for i, o in enumerate(OPTIMIZERS)])
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_step_equals_autograd_bit_for_bit(opt_name, options, activation, dropout):
    fused = _train("fused", activation, dropout, opt_name, options)
    reference = _train("autograd", activation, dropout, opt_name, options)
    for got, want in zip(fused[:2], reference[:2]):
        assert got.keys() == want.keys()
        for name in want:
            assert np.array_equal(got[name], want[name]), name
    for (loss, correct), (ref_loss, ref_correct) in zip(fused[2], reference[2]):
        assert correct == ref_correct
        assert loss == pytest.approx(ref_loss, rel=1e-5)  # float64 row sums vs float32 batch means
    first_weight = fused[0]["0.weight"]
    assert not np.array_equal(first_weight, MLP([20, 16, 12, 5], activation=activation, seed=3).state_dict()["0.weight"])


@pytest.mark.parametrize("activation", ["sigmoid", "silu", "leaky_relu"])
def test_other_activations_equal_autograd(activation):
    fused = _train("fused", activation, 0.0, "adam", {"lr": 1e-2}, normalize="scale")
    reference = _train("autograd", activation, 0.0, "adam", {"lr": 1e-2}, normalize="scale")
    assert all(np.array_equal(fused[0][k], reference[0][k]) for k in reference[0])


def test_fused_step_learns_and_counts():
    _, opt_state, totals = _train("fused", "relu", 0.0, "adam", {"lr": 1e-2}, epochs=8)
    (first_loss, first_correct), (last_loss, last_correct) = totals[0], totals[-1]
    assert last_loss < 0.7 * first_loss and last_correct > first_correct
    assert int(opt_state["steps"]) == 8 * 7  # 203 rows in batches of 32: 7 steps an epoch


def test_batch_norm_falls_back_to_autograd_with_a_reason():
    x, y = _data()
    feeder = Feeder(np, x, y, Normalizer("scale"), 32)
    bn = MLP([20, 8, 5], batchnorm=True)
    step = make_step(bn, build("sgd", bn.parameters(), lr=0.1), feeder, 32)
    assert isinstance(step, AutogradStep) and "BatchNorm1d" in step.describe()
    plain = MLP([20, 8, 5], dropout=0.1)
    step = make_step(plain, build("sgd", plain.parameters(), lr=0.1), feeder, 32)
    assert isinstance(step, FusedStep) and "NumPy" in step.describe()


def test_unsupported_names_what_it_cannot_fuse():
    net = MLP([4, 3, 2])
    assert unsupported(net, build("sgd", net.parameters(), lr=0.1)) is None
    from neuraterm.core.nn.linear import Linear
    from neuraterm.core.nn.module import Sequential
    no_bias = Sequential(Linear(4, 3, "relu", bias=False), Linear(3, 2))
    assert "without bias" in unsupported(no_bias, build("sgd", no_bias.parameters(), lr=0.1))
    squashed = Sequential(Linear(4, 3, "relu"), Linear(3, 2, "sigmoid"))
    assert "output layer" in unsupported(squashed, build("sgd", squashed.parameters(), lr=0.1))


def test_a_single_linear_layer_equals_autograd():
    x, y = _data()
    results = []
    for kind in ("fused", "autograd"):
        net = MLP([x.shape[1], 5], seed=1)
        opt = build("sgd", net.parameters(), lr=0.1, momentum=0.9)
        feeder = Feeder(np, x, y, Normalizer("scale"), 50)
        step = FusedStep(NumpyOps(), net, opt, feeder, 50) if kind == "fused" else AutogradStep(net, opt, feeder, "")
        batches = _batches(len(y), 50, 0)
        step.begin_epoch(batches)
        for idx in batches:
            step.run(len(idx))
        results.append(net.state_dict())
    assert all(np.array_equal(results[0][k], results[1][k]) for k in results[1])


def test_kernels_that_fail_to_load_fall_back_to_autograd_and_say_why(monkeypatch):
    from neuraterm.core.run import steps

    def broken(xp, tf32=False):
        raise RuntimeError("NVRTC_ERROR_COMPILATION (6)\nkernels.cu(12): error")
    monkeypatch.setattr(steps, "ops_for", broken)
    x, y = _data()
    net = MLP([20, 8, 5])
    step = make_step(net, build("adam", net.parameters(), lr=1e-2), Feeder(np, x, y, Normalizer("scale"), 32), 32)
    assert isinstance(step, AutogradStep)
    assert step.describe() == "autograd (fused kernels unavailable: NVRTC_ERROR_COMPILATION (6))"
    batches = _batches(len(y), 32, 0)
    step.begin_epoch(batches)
    for idx in batches:
        step.run(len(idx))
    assert step.totals_on_host()[1] > 0
