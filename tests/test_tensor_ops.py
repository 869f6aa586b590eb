"""The autodiff core and the activations against independent oracles: NumPy formulas, values computed by
hand and float64 finite differences. `test_gradcheck.py` checks each backward rule against its own
forward; these check the forward values themselves, the graph's bookkeeping (no_grad, the gradient
buffers, what `backward` releases) and the corners a random input never hits (ties, zeros, overflow)."""
import math
import threading

import numpy as np
import pytest

from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn import activations as act
from neuraterm.core.nn.tensor import Tensor, _unbroadcast, grad_enabled, no_grad
from gradcheck import relative_error

rng = np.random.default_rng(7)
A = rng.standard_normal((3, 4))
POS = rng.uniform(0.5, 2.0, (3, 4))


def leaf(array, dtype=np.float64):
    return Tensor(np.array(array, dtype=dtype), requires_grad=True)


def grad_of(build, *arrays):
    """Gradients of sum(build(...)) with respect to each input."""
    tensors = [leaf(a) for a in arrays]
    build(*tensors).sum().backward()
    return [t.grad for t in tensors]


# -- recording the graph -------------------------------------------------------------------
def test_no_grad_restores_the_previous_state_even_nested_and_after_an_error():
    assert grad_enabled()
    with no_grad():
        assert not grad_enabled()
        with no_grad():
            assert not grad_enabled()
        assert not grad_enabled()  # the inner block restores "off", not "on"
    assert grad_enabled()
    with pytest.raises(RuntimeError):
        with no_grad():
            raise RuntimeError("boom")
    assert grad_enabled()


def test_no_grad_is_per_thread():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen["enabled"] = grad_enabled()
        seen["records"] = (leaf(A) * 2.0).requires_grad
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with no_grad():
        inside.set()
        done.wait(5)
        assert not (leaf(A) * 2.0).requires_grad
    thread.join(5)
    assert seen == {"enabled": True, "records": True}


def test_an_op_records_parents_only_when_an_input_needs_a_gradient():
    plain = Tensor(A) + Tensor(A)
    assert not plain.requires_grad and plain._parents == () and plain._backward is None
    x = leaf(A)
    out = Tensor(A) * x
    assert out.requires_grad and out._parents[1] is x and out._backward is not None
    with no_grad():
        off = x * 2.0
    assert not off.requires_grad and off._parents == () and off._backward is None


def test_repr_names_shape_dtype_and_gradient():
    assert repr(Tensor(np.zeros((2, 3), np.float32))) == "Tensor(shape=(2, 3), dtype=float32, requires_grad=False)"
    assert repr(leaf(np.zeros(4))) == "Tensor(shape=(4,), dtype=float64, requires_grad=True)"


def test_python_numbers_keep_the_tensors_dtype():
    x = Tensor(np.ones(3, np.float32))
    for out in (x + 1.5, 1.5 + x, x - 0.25, 2.0 - x, x * 3.0, 3.0 * x, x / 4.0, 4.0 / x):
        assert out.dtype == np.float32
    same = leaf(A)
    assert same._const(same) is same  # a tensor is used as it is, so its gradient reaches it


# -- gradient accumulation -----------------------------------------------------------------
def test_accumulate_never_writes_into_an_array_it_was_handed():
    x = leaf(np.zeros(3))
    first, second, third = np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]), np.array([100.0, 0, 0])
    x.accumulate(first)
    assert x.grad is first  # taken as it is: no copy
    x.accumulate(second)
    assert x.grad is not first and x.grad is not second
    np.testing.assert_array_equal(first, [1, 2, 3])
    np.testing.assert_array_equal(second, [10, 20, 30])
    owned = x.grad
    x.accumulate(third)
    assert x.grad is owned  # its own array from now on: added in place
    np.testing.assert_array_equal(x.grad, [111, 22, 33])
    np.testing.assert_array_equal(third, [100, 0, 0])


def test_a_gradient_assigned_from_outside_is_not_written_into():
    x = leaf(np.zeros(2))
    given = np.array([1.0, 1.0])
    x.grad = given
    x.accumulate(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(given, [1, 1])
    np.testing.assert_array_equal(x.grad, [3, 4])


def test_the_gradient_buffer_is_filled_in_place_and_handed_out_once_per_pass():
    x = leaf(np.zeros(3))
    buffer = np.full(3, 99.0)
    x._grad_buffer = buffer
    assert x.fresh_grad_buffer() is buffer and x.grad is buffer
    assert x.fresh_grad_buffer() is None  # already written to in this pass
    y = leaf(np.zeros(3))
    y._grad_buffer = np.full(3, 99.0)
    y.accumulate(np.array([1.0, 2.0, 3.0]))
    assert y.grad is y._grad_buffer
    np.testing.assert_array_equal(y.grad, [1, 2, 3])  # overwritten, not added to the stale 99s
    given = np.array([1.0, 1.0, 1.0])
    y.accumulate(given)
    assert y.grad is y._grad_buffer
    np.testing.assert_array_equal(y.grad, [2, 3, 4])
    np.testing.assert_array_equal(given, [1, 1, 1])
    z = leaf(np.zeros(3))
    assert z.fresh_grad_buffer() is None and z.grad is None  # no buffer: nothing to hand out


def test_backward_sums_every_path_in_order_and_releases_the_graph():
    """y = 3x feeds z = y*y + y twice: dz/dx = (2y + 1) * 3 needs both paths into y before y's rule runs."""
    x = leaf([1.0, -2.0])
    y = x * 3.0
    z = y * y + y
    w = z.sum()
    w.backward()
    np.testing.assert_allclose(x.grad, (2 * 3 * np.array([1.0, -2.0]) + 1) * 3)
    for node in (y, z, w):
        assert node.grad is None and node._backward is None and node._parents == ()
    x2 = leaf([1.0, -2.0])
    (x2 * 3.0 * (x2 * 3.0) + x2 * 3.0).sum().backward()  # the same function built without sharing y
    np.testing.assert_allclose(x2.grad, x.grad)


def test_an_intermediate_that_is_both_inputs_of_an_op():
    """y * y with y = 3x: y is reached twice before it is expanded; d(sum 9x^2)/dx = 18x."""
    x = leaf([1.0, -2.0])
    y = x * 3.0
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad, [18.0, -36.0])


def test_backward_takes_a_seed_gradient_and_defaults_to_ones():
    x = leaf([1.0, 2.0, 3.0])
    (x * 2.0).backward(np.array([1.0, 10.0, 100.0]))
    np.testing.assert_array_equal(x.grad, [2, 20, 200])
    x = leaf([1.0, 2.0, 3.0])
    (x * 2.0).backward()
    np.testing.assert_array_equal(x.grad, [2, 2, 2])
    x = leaf([5.0])
    x.backward()  # a leaf's own gradient is the seed
    np.testing.assert_array_equal(x.grad, [1])


def test_a_deep_chain_and_a_branch_without_gradients():
    x = leaf([0.5])
    const = Tensor(np.array([2.0]))
    out = x
    for _ in range(30):
        out = out * const + const
    out.backward()
    assert x.grad.tolist() == [2.0 ** 30] and const.grad is None


# -- forward values against NumPy ----------------------------------------------------------
B = rng.standard_normal((3, 4))
COL = rng.standard_normal(4)
M = rng.standard_normal((4, 2))
FORWARD = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [A, B]),
    "radd": (lambda a: 2.5 + a, lambda a: 2.5 + a, [A]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [A, B]),
    "rsub": (lambda a: 2.5 - a, lambda a: 2.5 - a, [A]),
    "neg": (lambda a: -a, lambda a: -a, [A]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [A, COL]),
    "rmul": (lambda a: 3.0 * a, lambda a: 3.0 * a, [A]),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [A, POS]),
    "rdiv": (lambda b: 2.0 / b, lambda b: 2.0 / b, [POS]),
    "matmul": (lambda a, m: a @ m, lambda a, m: a @ m, [A, M]),
    "sum_axis1": (lambda a: a.sum(axis=1), lambda a: a.sum(axis=1), [A]),
    "mean_all": (lambda a: a.mean(), lambda a: a.mean(), [A]),
    "mean_axis0_keepdims": (lambda a: a.mean(axis=0, keepdims=True), lambda a: a.mean(axis=0, keepdims=True), [A]),
    "max_all": (lambda a: a.max(), lambda a: a.max(), [A]),
    "max_axis0": (lambda a: a.max(axis=0), lambda a: a.max(axis=0), [A]),
    "max_axis1_keepdims": (lambda a: a.max(axis=1, keepdims=True), lambda a: a.max(axis=1, keepdims=True), [A]),
    "exp": (lambda a: a.exp(), np.exp, [A]),
    "log": (lambda b: b.log(), np.log, [POS]),
    "reshape": (lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), [A]),
    "transpose": (lambda a: a.T, lambda a: a.T, [A]),
    "getitem": (lambda a: a[np.array([2, 0, 2])], lambda a: a[np.array([2, 0, 2])], [A]),
}


@pytest.mark.parametrize("name", sorted(FORWARD))
def test_op_values_equal_numpy(name):
    ours, numpy_form, inputs = FORWARD[name]
    out = ours(*[Tensor(a) for a in inputs])
    expected = numpy_form(*inputs)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=0)


THREE_D = rng.standard_normal((2, 3, 4))
MORE_GRADIENTS = {
    "rsub": (lambda a: 2.5 - a, [A]),
    "radd": (lambda a: 2.5 + a, [A]),
    "rmul": (lambda a: 3.0 * a, [A]),
    "div_by_broadcast_row": (lambda a, b: a / b, [A, POS[:1]]),
    "div_by_broadcast_vector": (lambda a, b: a / b, [A, POS[0]]),
    "sub_broadcast": (lambda a, b: a - b, [A, COL]),
    "batched_matmul": (lambda a, m: a @ m, [THREE_D, rng.standard_normal((2, 4, 5))]),
    "batch_times_one_matrix": (lambda a, m: a @ m, [THREE_D, rng.standard_normal((4, 5))]),
    "one_matrix_times_a_batch": (lambda m, a: m @ a, [rng.standard_normal((5, 3)), THREE_D]),
    "sum_axis_tuple": (lambda a: a.sum(axis=(0, 2)), [THREE_D]),
    "sum_axis_last": (lambda a: a.sum(axis=-1), [THREE_D]),
    "mean_axis_tuple": (lambda a: a.mean(axis=(0, 2)), [THREE_D]),
    "mean_axis2_keepdims": (lambda a: a.mean(axis=2, keepdims=True), [THREE_D]),
    "max_axis2": (lambda a: a.max(axis=2), [THREE_D]),
    "getitem_tensor_index": (lambda a: a[Tensor(np.array([1, 1, 0]))], [A]),
    "reshape_3d": (lambda a: a.reshape(6, 4), [THREE_D]),
    "softmax_axis0": (lambda a: act.softmax(a, axis=0), [A]),
    "log_softmax_axis0": (lambda a: act.log_softmax(a, axis=0), [A]),
}


@pytest.mark.parametrize("name", sorted(MORE_GRADIENTS))
def test_more_gradients_match_finite_differences(name):
    fn, inputs = MORE_GRADIENTS[name]
    assert relative_error(fn, inputs) < 1e-6


def test_unbroadcast_sums_over_the_broadcast_axes_only():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(_unbroadcast(np, g, (4,)), g.sum(axis=(0, 1)))
    np.testing.assert_array_equal(_unbroadcast(np, g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(_unbroadcast(np, g, (1, 3, 4)), g.sum(axis=0, keepdims=True))
    np.testing.assert_array_equal(_unbroadcast(np, g, (2, 1, 1)), g.sum(axis=(1, 2), keepdims=True))
    np.testing.assert_array_equal(_unbroadcast(np, g, (1, 1, 4)), g.sum(axis=(0, 1), keepdims=True))
    assert _unbroadcast(np, g, (2, 3, 4)) is g
    ones = np.ones((2, 1, 4))  # an axis of 1 in both: nothing to sum there
    np.testing.assert_array_equal(_unbroadcast(np, ones, (2, 1, 4)), ones)
    np.testing.assert_array_equal(_unbroadcast(np, ones, (1, 1, 4)), np.full((1, 1, 4), 2.0))
    # an empty batch: a (1, 4) bias broadcast over 0 rows gets a zero gradient of its own shape
    np.testing.assert_array_equal(_unbroadcast(np, np.ones((0, 4)), (1, 4)), np.zeros((1, 4)))
    assert _unbroadcast(np, np.ones((0, 4)), (0, 1)).shape == (0, 1)  # a per-row column of an empty batch


def test_max_shares_the_gradient_of_a_tie_equally():
    """PyTorch's amax convention: two equal maxima get half the gradient each."""
    x = leaf([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0]])
    x.max(axis=1).backward(np.array([1.0, 6.0]))
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5, 0], [2, 2, 2, 0]])
    x = leaf([[1.0, 4.0], [4.0, 0.0]])
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5], [0.5, 0]])
    x = leaf([[1.0, 4.0], [4.0, 0.0]])
    x.max(axis=0, keepdims=True).backward(np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(x.grad, [[0, 1], [1, 0]])


def test_log_and_division_gradients_by_hand():
    (gx,) = grad_of(lambda x: x.log(), [2.0, 0.5])
    np.testing.assert_allclose(gx, [0.5, 2.0])
    ga, gb = grad_of(lambda a, b: a / b, [3.0], [2.0])
    np.testing.assert_allclose(ga, [0.5])
    np.testing.assert_allclose(gb, [-3.0 / 4.0])  # d(a/b)/db = -a/b^2
    ga, gb = grad_of(lambda a, b: a - b, [3.0], [2.0])
    assert ga.tolist() == [1.0] and gb.tolist() == [-1.0]
    (gx,) = grad_of(lambda x: 2.0 - x, [3.0])
    assert gx.tolist() == [-1.0]


def test_getitem_adds_the_gradient_of_repeated_indices():
    x = leaf([10.0, 20.0, 30.0])
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [8, 0, 2])


# -- activations ---------------------------------------------------------------------------
Z = np.array([-30.0, -3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 30.0])
_K, _C = math.sqrt(2 / math.pi), 0.044715
ORACLE = {
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1 + np.tanh(_K * (z + _C * z ** 3))),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "identity": lambda z: z,
}


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_activation_values_equal_their_formula_in_float64_and_stay_float32(name):
    fn = act.ACTIVATIONS[name]
    z = Z.copy()
    np.testing.assert_allclose(fn.forward(np, z, False), ORACLE[name](Z), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(z, Z)  # not in place: the input is left as it was
    z32 = Z.astype(np.float32)
    out = fn.forward(np, z32, False)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ORACLE[name](Z), rtol=1e-5, atol=1e-6)
    a = fn.forward(np, Z.copy(), False)
    assert fn.backward(np, z32, a.astype(np.float32), np.ones_like(z32)).dtype == np.float32


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_activation_derivatives_equal_a_float64_finite_difference(name):
    """Away from relu's kink: central differences with h = 1e-6 over the whole range, 0 and +-30 included."""
    fn, oracle = act.ACTIVATIONS[name], ORACLE[name]
    z = Z[np.abs(Z) > 1e-2] if name in ("relu", "leaky_relu") else Z
    g = np.linspace(0.5, 2.0, len(z))
    numeric = g * (oracle(z + 1e-6) - oracle(z - 1e-6)) / 2e-6
    a = fn.forward(np, z.copy(), False)
    np.testing.assert_allclose(fn.backward(np, z.copy(), a, g), numeric, rtol=1e-6, atol=1e-9)


def test_the_kink_follows_pytorch_relu_zero_leaky_slope():
    """At exactly 0, PyTorch's relu passes no gradient and leaky_relu passes the slope."""
    z = np.array([-1.0, 0.0, 1.0])
    relu, leaky = act.ACTIVATIONS["relu"], act.ACTIVATIONS["leaky_relu"]
    np.testing.assert_array_equal(relu.backward(np, z, relu.forward(np, z.copy(), False), np.ones(3)), [0, 0, 1])
    np.testing.assert_allclose(leaky.backward(np, z, leaky.forward(np, z.copy(), False), np.ones(3)),
                               [0.01, 0.01, 1.0], rtol=1e-15)
    np.testing.assert_array_equal(leaky.forward(np, np.array([-2.0, 0.0, 2.0]), False), [-0.02, 0.0, 2.0])


def test_sigmoid_never_overflows_and_is_exact_at_the_ends():
    with np.errstate(all="raise"):
        out = act.ACTIVATIONS["sigmoid"].forward(np, np.array([-1000.0, 0.0, 1000.0], np.float32), False)
        silu = act.ACTIVATIONS["silu"].forward(np, np.array([-1000.0, 1000.0]), False)
    assert out.tolist() == [0.0, 0.5, 1.0]
    assert silu.tolist() == [0.0, 1000.0]


def test_gelu_stays_near_the_exact_erf_form():
    exact = np.array([0.5 * z * (1 + math.erf(z / math.sqrt(2))) for z in Z])
    assert np.max(np.abs(act.ACTIVATIONS["gelu"].forward(np, Z.copy(), False) - exact)) < 1e-3
    assert act.ACTIVATIONS["gelu"].forward(np, np.array([1.0]), False)[0] == pytest.approx(0.8411919906, abs=1e-9)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_in_place_forward_writes_into_the_pre_activation(name):
    """The fused layer saves a pass over memory by letting these three overwrite z."""
    fn = act.ACTIVATIONS[name]
    z = Z.copy()
    out = fn.forward(np, z, True)
    assert out is z
    np.testing.assert_allclose(z, ORACLE[name](Z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(act.ACTIVATIONS))
def test_needs_input_says_whether_backward_reads_the_input(name):
    """The fused layer hands `backward` no input when `needs_input` is False, and keeps a copy when True:
    True where False is enough costs a copy of every layer's pre-activation."""
    fn = act.ACTIVATIONS[name]
    a = fn.forward(np, Z.copy(), False)
    try:
        without = fn.backward(np, None, a, np.ones_like(Z))
    except (TypeError, AttributeError):  # it reads z
        assert fn.needs_input
        return
    assert not fn.needs_input
    np.testing.assert_array_equal(without, fn.backward(np, Z.copy(), a, np.ones_like(Z)))


def test_apply_never_changes_its_input():
    for name in act.ACTIVATIONS:
        x = leaf(Z)
        out = act.apply(x, act.ACTIVATIONS[name])
        np.testing.assert_array_equal(x.data, Z, err_msg=name)
        out.backward(np.ones_like(Z))
        np.testing.assert_array_equal(x.data, Z, err_msg=name)


def test_get_reads_no_activation_as_identity_and_names_the_choices():
    for name in (None, "none", "linear", "identity"):
        assert act.get(name) is act.ACTIVATIONS["identity"]
    assert act.get("gelu") is act.ACTIVATIONS["gelu"]
    with pytest.raises(NeuratermError) as err:
        act.get("swish")
    assert str(err.value) == ("unknown activation 'swish'; expected one of gelu, identity, leaky_relu, relu, "
                              "sigmoid, silu, tanh")
    assert {name: f.name for name, f in act.ACTIVATIONS.items()} == {name: name for name in act.ACTIVATIONS}


def test_an_activation_is_shared_so_it_cannot_be_changed():
    """Every layer holds the same `Activation`: changing one layer's would change all of them."""
    with pytest.raises(AttributeError):
        act.ACTIVATIONS["relu"].needs_input = True
    assert not act.ACTIVATIONS["relu"].needs_input


@pytest.mark.parametrize("fn", [act.relu, act.leaky_relu, act.tanh, act.sigmoid, act.gelu, act.silu])
def test_the_named_op_is_its_activation(fn):
    x = leaf(Z)
    out = fn(x)
    np.testing.assert_allclose(out.data, ORACLE[fn.__name__](Z), rtol=1e-12, atol=1e-15)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_equal_the_formula_even_for_huge_logits(axis):
    logits = np.array([[1000.0, 1001.0, 999.0], [-1000.0, 0.0, 2.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        soft = act.softmax(Tensor(logits), axis=axis).data
        log_soft = act.log_softmax(Tensor(logits), axis=axis).data
    expected = _softmax(logits, axis)
    np.testing.assert_allclose(soft, expected, rtol=1e-12, atol=1e-15)
    finite = expected > 1e-300
    np.testing.assert_allclose(log_soft[finite], np.log(expected[finite]), rtol=1e-12)
    np.testing.assert_allclose(act.log_softmax(Tensor(A), axis=axis).data, np.log(_softmax(A, axis)), rtol=1e-12)
    # by hand: softmax of (0, ln 3) is (1/4, 3/4); the default axis is the last (one row per sample)
    third = np.array([[[0.0, math.log(3)]]])
    np.testing.assert_allclose(act.log_softmax(Tensor(third)).data, [[[math.log(0.25), math.log(0.75)]]])
    np.testing.assert_allclose(act.softmax(Tensor(third)).data, [[[0.25, 0.75]]])
