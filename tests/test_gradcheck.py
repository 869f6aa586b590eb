"""Every op and layer with a backward rule agrees with finite differences (float64, < 1e-6)."""
import numpy as np
import pytest

from neuraterm.core.nn import activations as act
from neuraterm.core.nn.batchnorm import BatchNorm1d, batch_norm
from neuraterm.core.nn.dropout import dropout
from neuraterm.core.nn.linear import Linear, linear
from neuraterm.core.nn.losses import cross_entropy, mse, naive_cross_entropy
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.nn.tensor import Tensor
from gradcheck import relative_error

rng = np.random.default_rng(42)
A = rng.standard_normal((4, 5))
B = rng.standard_normal((4, 5))
ROW = rng.standard_normal((1, 5))
COL = rng.standard_normal(5)
POS = rng.uniform(0.5, 2.0, (4, 5))
M = rng.standard_normal((5, 3))
LABELS = np.array([0, 2, 1, 2])
TOL = 1e-6

OPS = {
    "add": (lambda a, b: a + b, [A, B]),
    "add_broadcast_row": (lambda a, b: a + b, [A, ROW]),
    "add_broadcast_vector": (lambda a, b: a + b, [A, COL]),
    "sub": (lambda a, b: a - b, [A, B]),
    "neg": (lambda a: -a, [A]),
    "mul": (lambda a, b: a * b, [A, B]),
    "mul_broadcast": (lambda a, b: a * b, [A, COL]),
    "mul_scalar": (lambda a: a * 3.0, [A]),
    "div": (lambda a, b: a / b, [A, POS]),
    "rdiv": (lambda b: 2.0 / b, [POS]),
    "matmul": (lambda a, m: a @ m, [A, M]),
    "sum_all": (lambda a: a.sum(), [A]),
    "sum_axis0": (lambda a: a.sum(axis=0), [A]),
    "sum_axis1_keepdims": (lambda a: a.sum(axis=1, keepdims=True), [A]),
    "mean": (lambda a: a.mean(), [A]),
    "mean_axis1": (lambda a: a.mean(axis=1), [A]),
    "exp": (lambda a: a.exp(), [A]),
    "log": (lambda b: b.log(), [POS]),
    "max_all": (lambda a: a.max(), [A]),
    "max_axis1": (lambda a: a.max(axis=1), [A]),
    "max_axis0_keepdims": (lambda a: a.max(axis=0, keepdims=True), [A]),
    "reshape": (lambda a: a.reshape(2, 10), [A]),
    "transpose": (lambda a: a.T, [A]),
    "getitem_slice": (lambda a: a[1:3, ::2], [A]),
    "getitem_fancy_repeated": (lambda a: a[np.array([0, 0, 3]), np.array([1, 1, 4])], [A]),
    "relu": (act.relu, [A]),
    "leaky_relu": (act.leaky_relu, [A]),
    "tanh": (act.tanh, [A]),
    "sigmoid": (act.sigmoid, [A]),
    "gelu": (act.gelu, [A]),
    "silu": (act.silu, [A]),
    "softmax": (act.softmax, [A]),
    "log_softmax": (act.log_softmax, [A]),
    "cross_entropy": (lambda a: cross_entropy(a, LABELS), [A[:, :3]]),
    "naive_cross_entropy": (lambda a: naive_cross_entropy(a, LABELS), [A[:, :3]]),
    "mse": (lambda a: mse(a, B), [A]),
    "dropout_fixed_mask": (lambda a: dropout(a, (rng.random(A.shape) > 0.3) / 0.7), [A]),
    "batch_norm_train": (lambda x, g, b: batch_norm(x, g, b, x.data.mean(0), x.data.var(0), 1e-5, True), [A, COL, ROW[0]]),
    "batch_norm_eval": (lambda x, g, b: batch_norm(x, g, b, COL * 0.1, POS[0], 1e-5, False), [A, COL, ROW[0]]),
}
for name in act.ACTIVATIONS:
    OPS[f"linear_{name}"] = (lambda x, w, b, f=act.ACTIVATIONS[name]: linear(x, w, b, f),
                              [A, rng.standard_normal((3, 5)), rng.standard_normal(3)])


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradient_matches_finite_differences(name):
    fn, inputs = OPS[name]
    if name == "dropout_fixed_mask":
        mask = (np.random.default_rng(1).random(A.shape) > 0.3) / 0.7
        fn = lambda a: dropout(a, mask)  # noqa: E731 - the same mask for every evaluation
    assert relative_error(fn, inputs) < TOL


def _forward_with(module, params: dict, x, tensors):
    """Run `module` with the parameters named in `params` replaced by `tensors` (so backward reaches them)."""
    for name, new in zip(params, tensors):
        owner = module
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, attr, new)
    return module(x)


def _check_module(module, x, loss=lambda out: out):
    params = {name: p.data.copy() for name, p in module.named_parameters()}
    return relative_error(lambda xt, *ps: loss(_forward_with(module, params, xt, ps)), [x] + list(params.values()))


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "silu", None])
def test_linear_layer_gradients(activation):
    assert _check_module(Linear(5, 3, activation=activation, dtype=np.float64), A) < TOL


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_layer_gradients(training):
    layer = BatchNorm1d(5, dtype=np.float64)
    layer.running_mean[:] = COL
    layer.running_var[:] = POS[0]
    layer.train(training)
    layer.weight.data = COL + 1
    layer.bias.data = ROW[0].copy()
    assert _check_module(layer, A) < TOL


def test_whole_mlp_with_batchnorm_gradients():
    net = MLP([5, 4, 3], activation="silu", batchnorm=True, dtype=np.float64)
    assert _check_module(net, A, lambda out: cross_entropy(out, LABELS)) < TOL


def test_a_wrong_gradient_is_caught():
    """The checker itself can fail: a deliberately wrong rule is reported."""
    def wrong(a):
        return Tensor.from_op(a.data ** 2, (a,), lambda g: a.accumulate(g * a.data))  # should be 2 * a
    assert relative_error(wrong, [A]) > 0.1


def test_a_nan_gradient_is_caught():
    """`max(0.0, nan)` is 0.0: a rule that gives NaN (`g ** x` for `g * x`, negative `g`) must still fail."""
    def nan_rule(a):
        return Tensor.from_op(a.data * 2, (a,), lambda g: a.accumulate(g ** a.data))
    with np.errstate(invalid="ignore"):
        assert relative_error(nan_rule, [A]) == float("inf")
