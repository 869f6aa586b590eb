"""Each optimizer's update rule step by step against the textbook formula written out in NumPy.

`test_torch_parity.py` checks the same rules against PyTorch, but it needs torch; these need nothing but
NumPy, so a CI without torch still catches a wrong sign, a missing bias correction or decay on a bias.
The parameters are float64 so the comparison can be tight (1e-12): a constant off by a little shows.
The oracle is written from the papers' and PyTorch's documentation, not from `optimizers.py`.
"""
import numpy as np
import pytest

from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.tensor import Tensor
from neuraterm.core.optim import adam_kernel
from neuraterm.core.optim.optimizers import build

STEPS = 6


def params():
    """A decayed weight (3x4) and an undecayed bias (4,), float64, seeded."""
    rng = np.random.default_rng(1)
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w.decay = True
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    return w, b


def gradients(scale=1.0):
    """A fixed gradient sequence, one (weight, bias) pair per step."""
    rng = np.random.default_rng(2)
    return [(scale * rng.standard_normal((3, 4)), scale * rng.standard_normal(4)) for _ in range(STEPS)]


def run(name, grads, **options):
    """Our optimizer over the gradient sequence; the (weight, bias) after each step."""
    w, b = params()
    opt = build(name, [w, b], **options)
    seen = []
    for gw, gb in grads:
        opt.zero_grad()
        w.grad, b.grad = gw.copy(), gb.copy()
        opt.step()
        seen.append((w.data.copy(), b.data.copy()))
    return seen, opt


def reference(rule, grads, l2=0.0, clip_norm=None, **hyper):
    """The textbook rule over the same gradients: clip by global norm, then L2 on weights, then the rule."""
    w, b = (p.data.copy() for p in params())
    state = {}
    seen = []
    for t, (gw, gb) in enumerate(grads, start=1):
        gw, gb = gw.copy(), gb.copy()
        if clip_norm is not None:
            norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
            coef = clip_norm / (norm + 1e-6)
            if coef < 1:
                gw, gb = gw * coef, gb * coef
        gw = gw + l2 * w
        w = rule(state, "w", w, gw, t, decayed=True, **hyper)
        b = rule(state, "b", b, gb, t, decayed=False, **hyper)
        seen.append((w.copy(), b.copy()))
    return seen


def sgd(state, key, p, g, t, decayed, lr, momentum=0.0, nesterov=False):
    if momentum:
        buf = g if t == 1 else momentum * state[key] + g
        state[key] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def adam(state, key, p, g, t, decayed, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    if decayed:
        p = p * (1 - lr * weight_decay)
    m, v = state.get(key, (0.0, 0.0))
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    state[key] = (m, v)
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def rmsprop(state, key, p, g, t, decayed, lr, alpha=0.99, eps=1e-8, momentum=0.0):
    square, buf = state.get(key, (0.0, 0.0))
    square = alpha * square + (1 - alpha) * g * g
    step = g / (np.sqrt(square) + eps)
    if momentum:
        buf = momentum * buf + step
        step = buf
    state[key] = (square, buf)
    return p - lr * step


# Every default as documented (Adam's and AdamW's are PyTorch's; SGD and RMSprop default to lr 0.01).
DEFAULTS = {"sgd": {"lr": 0.01}, "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
            "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
            "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}}

CASES = {
    "sgd_defaults": ("sgd", sgd, {}),
    "sgd": ("sgd", sgd, {"lr": 0.1}),
    "sgd_momentum": ("sgd", sgd, {"lr": 0.05, "momentum": 0.9}),
    "nesterov": ("sgd", sgd, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adam_defaults": ("adam", adam, {}),
    # eps as large as sqrt(v) and unusual betas: a wrong eps scaling or beta shows at 1e-12; with
    # beta2^t below one half, 1 - beta2^t and 1 % beta2^t differ.
    "adam_large_eps": ("adam", adam, {"lr": 0.01, "betas": (0.8, 0.7), "eps": 0.3}),
    # betas below one half: 1 - b and 1 % b (which agree for b in (0.5, 1)) differ.
    "adam_small_betas": ("adam", adam, {"lr": 0.01, "betas": (0.3, 0.4), "eps": 0.1}),
    "adamw": ("adamw", adam, {"lr": 0.01, "weight_decay": 0.2, "betas": (0.7, 0.95), "eps": 0.05}),
    "adamw_default_decay": ("adamw", adam, {"lr": 0.05}),
    "adamw_defaults": ("adamw", adam, {}),
    "rmsprop": ("rmsprop", rmsprop, {"lr": 0.01, "alpha": 0.9, "eps": 0.2}),
    "rmsprop_defaults": ("rmsprop", rmsprop, {}),
    "rmsprop_small_alpha": ("rmsprop", rmsprop, {"lr": 0.01, "alpha": 0.4, "eps": 0.1}),
    "rmsprop_momentum": ("rmsprop", rmsprop, {"lr": 0.01, "alpha": 0.8, "eps": 0.1, "momentum": 0.5}),
}


def assert_same(ours, theirs):
    for step, ((w, b), (rw, rb)) in enumerate(zip(ours, theirs, strict=True), start=1):
        np.testing.assert_allclose(w, rw, rtol=1e-12, atol=1e-14, err_msg=f"weight after step {step}")
        np.testing.assert_allclose(b, rb, rtol=1e-12, atol=1e-14, err_msg=f"bias after step {step}")


@pytest.mark.parametrize("case", CASES)
def test_optimizer_rule_matches_the_textbook(case):
    name, rule, hyper = CASES[case]
    grads = gradients()
    ours, _ = run(name, grads, **hyper)
    assert_same(ours, reference(rule, grads, **{**DEFAULTS[name], **hyper}))


@pytest.mark.parametrize("name,rule,hyper", [("sgd", sgd, {"lr": 0.1}), ("adam", adam, {"lr": 0.01}),
                                             ("rmsprop", rmsprop, {"lr": 0.01, "momentum": 0.3})])
def test_optimizer_l2_penalty_reaches_weights_only(name, rule, hyper):
    grads = gradients()
    ours, _ = run(name, grads, l2=0.3, **hyper)
    assert_same(ours, reference(rule, grads, l2=0.3, **hyper))


@pytest.mark.parametrize("scale,clip", [(10.0, 1.5), (0.1, 5.0), (1.0, 0.5)])
def test_optimizer_clipping_by_global_norm(scale, clip):
    """Large gradients are scaled to the norm; small ones (norm below the limit) are left as they are."""
    grads = gradients(scale)
    ours, _ = run("sgd", grads, lr=0.1, clip_norm=clip, l2=0.05)
    assert_same(ours, reference(sgd, grads, lr=0.1, clip_norm=clip, l2=0.05))


def test_optimizer_clipping_of_a_norm_just_below_the_limit_is_by_hand():
    """A gradient of norm 5 (3-4-0...) under a limit of 5: scaled by 5 / (5 + 1e-6), as PyTorch does."""
    w, b = params()
    before = w.data.copy(), b.data.copy()
    opt = build("sgd", [w, b], lr=1.0, clip_norm=5.0)
    w.grad = np.zeros((3, 4))
    w.grad[0, 0], w.grad[0, 1] = 3.0, 4.0
    b.grad = np.zeros(4)
    opt.step()
    coef = 5.0 / (5.0 + 1e-6)
    assert w.data[0, 0] == pytest.approx(before[0][0, 0] - 3.0 * coef, rel=0, abs=1e-15)
    assert w.data[0, 1] == pytest.approx(before[0][0, 1] - 4.0 * coef, rel=0, abs=1e-15)
    np.testing.assert_array_equal(b.data, before[1])


def test_optimizer_state_dict_holds_the_rule_state_and_steps():
    grads = gradients()
    _, opt = run("adam", grads, lr=0.01)
    state = opt.state_dict()
    assert sorted(state) == ["m", "steps", "v"]
    assert state["steps"].shape == () and state["steps"].dtype == np.int64 and int(state["steps"]) == STEPS
    # m is the decayed mean of the gradients: sum over k of (1 - b1) b1^(T-k) g_k, by hand.
    flat_g = [np.concatenate([gw.ravel(), gb]) for gw, gb in grads]
    m = sum(0.1 * 0.9 ** (STEPS - k) * g for k, g in enumerate(flat_g, start=1))
    v = sum(0.001 * 0.999 ** (STEPS - k) * g * g for k, g in enumerate(flat_g, start=1))
    # The flat buffer holds decayed parameters first: here the weight, then the bias.
    np.testing.assert_allclose(state["m"], m, rtol=1e-12)
    np.testing.assert_allclose(state["v"], v, rtol=1e-12)
    assert sorted(run("sgd", grads, lr=0.1, momentum=0.5)[1].state_dict()) == ["steps", "velocity"]
    assert sorted(run("sgd", grads, lr=0.1)[1].state_dict()) == ["steps"]
    assert sorted(run("rmsprop", grads, lr=0.1)[1].state_dict()) == ["square_avg", "steps"]
    assert sorted(run("rmsprop", grads, lr=0.1, momentum=0.5)[1].state_dict()) == ["square_avg", "steps", "velocity"]


@pytest.mark.parametrize("name,hyper", [("adam", {"lr": 0.01}), ("sgd", {"lr": 0.1, "momentum": 0.9}),
                                        ("rmsprop", {"lr": 0.01, "momentum": 0.5})])
def test_optimizer_resumed_from_its_state_continues_the_same_steps(name, hyper):
    grads = gradients()
    whole, _ = run(name, grads, **hyper)
    first, opt = run(name, grads[:3], **hyper)
    w, b = params()
    w.data[...], b.data[...] = first[-1]
    resumed = build(name, [w, b], **hyper)
    resumed.load_state_dict(opt.state_dict())
    assert resumed.steps == 3
    for gw, gb in grads[3:]:
        resumed.zero_grad()
        w.grad, b.grad = gw.copy(), gb.copy()
        resumed.step()
    np.testing.assert_array_equal(w.data, whole[-1][0])
    np.testing.assert_array_equal(b.data, whole[-1][1])


def test_optimizer_refuses_a_state_that_does_not_fit():
    w, b = params()
    opt = build("adam", [w, b], lr=0.01)
    good = opt.state_dict()
    for broken, message in [({**good, "m": np.zeros(3)}, "'m' is missing or does not fit"),
                            ({**good, "m": np.zeros(100)}, "'m' is missing or does not fit"),
                            ({**good, "m": np.zeros((16, 1))}, "'m' is missing or does not fit"),
                            ({k: v for k, v in good.items() if k != "v"}, "'v' is missing"),
                            ({k: v for k, v in good.items() if k != "steps"}, "'steps' is missing"),
                            ({**good, "steps": np.array([3])}, "'steps' is missing or is not a single integer"),
                            ({**good, "steps": np.array(3.0)}, "not a single integer")]:
        with pytest.raises(NeuratermError, match=message):
            opt.load_state_dict(broken)
    opt.load_state_dict({**good, "steps": np.array(7, dtype=np.uint32)})
    assert opt.steps == 7


@pytest.mark.parametrize("options,message", [
    ({"lr": -0.1}, "lr and l2 must be >= 0"), ({"lr": 0.1, "l2": -1e-3}, "lr and l2 must be >= 0"),
    ({"lr": 0.1, "clip_norm": 0.0}, "clip_norm > 0"), ({"lr": 0.1, "clip_norm": -1.0}, "clip_norm > 0"),
    ({"lr": 0.1, "nesterov": True}, "nesterov needs momentum"), ({"lr": 0.1, "betas": (0.9, 0.99)}, "sgd:"),
])
def test_optimizer_refuses_bad_options(options, message):
    with pytest.raises(NeuratermError, match=message):
        build("sgd", list(params()), **options)


def test_optimizer_accepts_zero_lr_and_l2():
    w, b = params()
    before = w.data.copy()
    opt = build("sgd", [w, b], lr=0.0, l2=0.0, clip_norm=1e-9)
    w.grad, b.grad = np.ones((3, 4)), np.ones(4)
    opt.step()
    np.testing.assert_array_equal(w.data, before)


def test_optimizer_uses_the_compiled_adam_only_for_large_float32_models():
    small = build("adam", [Tensor(np.zeros(10, dtype=np.float32))], lr=0.01)
    assert not small.compiled
    big64 = build("adam", [Tensor(np.zeros(adam_kernel.COMPILED_FROM))], lr=0.01)
    assert not big64.compiled
    big = build("adam", [Tensor(np.zeros(adam_kernel.COMPILED_FROM, dtype=np.float32))], lr=0.01)
    assert big.compiled == adam_kernel.available()
    edge = build("adam", [Tensor(np.zeros(adam_kernel.COMPILED_FROM - 1, dtype=np.float32))], lr=0.01)
    assert not edge.compiled
    bigger = build("adam", [Tensor(np.zeros(adam_kernel.COMPILED_FROM + 7, dtype=np.float32))], lr=0.01)
    assert bigger.compiled == adam_kernel.available()
    half = build("adam", [Tensor(np.zeros(adam_kernel.COMPILED_FROM, dtype=np.float16))], lr=0.01)
    assert not half.compiled  # the kernel is float32's


def test_optimizer_compiled_adam_follows_the_textbook_in_float32():
    """The one-pass kernel (large float32 models, where Numba is installed) against the float64 rule."""
    rng = np.random.default_rng(5)
    n = adam_kernel.COMPILED_FROM
    w = Tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True)
    w.decay = True
    start = w.data.astype(np.float64)
    hyper = {"lr": 0.01, "betas": (0.3, 0.4), "eps": 0.05, "weight_decay": 0.3}  # 1 - b and 1 % b differ
    opt = build("adamw", [w], **hyper)
    assert opt.compiled == adam_kernel.available()
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    state, p = {}, start
    for t, g in enumerate(grads, start=1):
        opt.zero_grad()
        w.grad = g.copy()
        opt.step()
        p = adam(state, "w", p, g.astype(np.float64), t, decayed=True, **hyper)
        np.testing.assert_allclose(w.data, p, rtol=1e-5, atol=1e-6, err_msg=f"after step {t}")


def test_optimizer_small_models_never_call_the_compiled_adam(monkeypatch):
    """Loading the compiler costs more than a small model's update: the NumPy passes serve it."""
    def compiled(*args):
        raise AssertionError("the compiled Adam was called for a small model")
    monkeypatch.setattr(adam_kernel, "adam_update", compiled)
    grads = gradients()
    ours, _ = run("adam", grads, lr=0.01)
    assert_same(ours, reference(adam, grads, **{**DEFAULTS["adam"], "lr": 0.01}))
