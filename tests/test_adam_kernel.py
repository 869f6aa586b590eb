"""The compiled Adam update (Numba, the `fast` extra) against the NumPy passes: the same bits."""
import numpy as np
import pytest

from neuraterm.core.optim import adam_kernel
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build

pytest.importorskip("numba", reason="the `fast` extra (Numba) is not installed; .ci/run installs it")


def _run(compiled: bool, name: str, options: dict, steps: int = 6):
    net = MLP([300, 200, 120, 10], seed=2)  # 85,450 parameters: under COMPILED_FROM, so it is forced below
    opt = build(name, net.parameters(), **options)
    opt.compiled = compiled
    rng = np.random.default_rng(0)
    for step in range(steps):
        opt.lr = options["lr"] * (1 - step / 10)  # a schedule: the step's scalars change
        grad = rng.standard_normal(opt.flat.grad.size, dtype=np.float32)
        opt.flat.grad[...] = grad
        opt.step(grad=opt.flat.grad)
    return opt.flat.data.copy(), opt.state_dict()


@pytest.mark.parametrize("name,options", [
    ("adam", {"lr": 1e-3}),
    ("adamw", {"lr": 2e-3, "weight_decay": 0.05, "clip_norm": 5.0}),
    ("adam", {"lr": 1e-2, "l2": 1e-3, "betas": (0.8, 0.99), "eps": 1e-6}),
])
def test_compiled_adam_equals_the_numpy_update_bit_for_bit(name, options):
    (p1, s1), (p2, s2) = _run(True, name, options), _run(False, name, options)
    assert np.array_equal(p1, p2)
    for key in ("m", "v", "steps"):
        assert np.array_equal(s1[key], s2[key]), key
    assert not np.array_equal(p1, MLP([300, 200, 120, 10], seed=2).state_dict()["0.weight"].ravel()[:p1.size])


def test_large_models_get_the_compiled_update_and_small_ones_numpy():
    large = MLP([784, 256, 128, 10])  # 235,146 parameters
    small = MLP([784, 128, 10])  # 101,770 parameters
    assert build("adam", large.parameters()).compiled
    assert not build("adam", small.parameters()).compiled
    assert adam_kernel.COMPILED_FROM > 101_770
