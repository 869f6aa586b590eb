"""Engine behaviour beyond gradients: stability, dtypes, state, initializers, backend choice."""
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neuraterm.core.nn import initializers
from neuraterm.core import metrics
from neuraterm.core.backend import select
from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.losses import cross_entropy, naive_cross_entropy
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim.optimizers import build
from neuraterm.core.nn.tensor import Tensor, no_grad


def test_naive_ce_overflows_where_stable_does_not():
    logits = np.array([[710.0, 0.0, -5.0], [800.0, 790.0, 0.0]])
    labels = np.array([0, 1])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = float(naive_cross_entropy(Tensor(logits), labels).data)
    stable = float(cross_entropy(Tensor(logits), labels).data)
    assert not np.isfinite(naive)
    # Exact values: row 0 -> log(1 + e^-710 + e^-715) ~ 0; row 1 -> 10 + log(1 + e^-10 + ...).
    expected = (0.0 + (10.0 + np.log1p(np.exp(-10.0)))) / 2
    assert stable == pytest.approx(expected, rel=1e-12)


def test_naive_and_stable_agree_on_ordinary_logits():
    logits = np.random.default_rng(0).standard_normal((8, 5))
    labels = np.arange(8) % 5
    assert float(naive_cross_entropy(Tensor(logits), labels).data) == pytest.approx(
        float(cross_entropy(Tensor(logits), labels).data), rel=1e-12)


def test_training_step_stays_float32():
    net = MLP([12, 8, 3], activation="gelu", batchnorm=True, dropout=0.2)
    opt = build("adamw", net.parameters(), lr=1e-3, clip_norm=1.0, l2=1e-4)
    x = Tensor(np.random.default_rng(0).random((16, 12), dtype=np.float32))
    loss = cross_entropy(net(x), np.arange(16) % 3)
    loss.backward()
    opt.step()
    assert loss.data.dtype == np.float32
    for name, array in net.state_dict().items():
        assert array.dtype == np.float32, name
    assert opt.m.dtype == opt.v.dtype == np.float32


def test_no_grad_records_no_graph():
    net = MLP([4, 3, 2])
    with no_grad():
        out = net(Tensor(np.ones((2, 4), np.float32)))
    assert not out.requires_grad and out._backward is None


def test_state_dict_round_trip_restores_outputs():
    a = MLP([6, 5, 3], batchnorm=True, seed=1)
    b = MLP([6, 5, 3], batchnorm=True, seed=2)
    x = Tensor(np.random.default_rng(0).random((4, 6), dtype=np.float32))
    a(x)  # moves running statistics away from their initial values
    a.eval(), b.eval()
    assert not np.allclose(a(x).data, b(x).data)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert set(a.state_dict()) == {"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                   "3.weight", "3.bias"}


def test_load_state_dict_refuses_wrong_shapes_and_names():
    net = MLP([6, 5, 3])
    state = net.state_dict()
    with pytest.raises(NeuratermError, match="0.weight"):
        net.load_state_dict({**state, "0.weight": np.zeros((5, 7), np.float32)})
    with pytest.raises(NeuratermError, match="missing"):
        net.load_state_dict({k: v for k, v in state.items() if k != "1.bias"})


def test_load_state_dict_writes_through_the_optimizer_buffer():
    """After an optimizer has flattened the parameters, loading must still reach what it updates."""
    net = MLP([6, 5, 3])
    opt = build("sgd", net.parameters(), lr=0.1)
    zeros = {k: np.zeros_like(v) for k, v in net.state_dict().items()}
    net.load_state_dict(zeros)
    assert not opt.flat.data.any()


def test_optimizer_state_round_trip():
    x = Tensor(np.random.default_rng(0).random((8, 6), dtype=np.float32))
    y = np.arange(8) % 3

    def run(steps, net, opt):
        for _ in range(steps):
            opt.zero_grad()
            cross_entropy(net(x), y).backward()
            opt.step()

    net_a = MLP([6, 5, 3]); opt_a = build("adam", net_a.parameters(), lr=1e-2)
    run(6, net_a, opt_a)
    net_b = MLP([6, 5, 3]); opt_b = build("adam", net_b.parameters(), lr=1e-2)
    run(3, net_b, opt_b)
    net_c = MLP([6, 5, 3], seed=9); opt_c = build("adam", net_c.parameters(), lr=1e-2)
    net_c.load_state_dict(net_b.state_dict())
    opt_c.load_state_dict(opt_b.state_dict())
    run(3, net_c, opt_c)
    for k, v in net_a.state_dict().items():
        np.testing.assert_array_equal(v, net_c.state_dict()[k])


def test_unknown_names_are_clear_errors():
    with pytest.raises(NeuratermError, match="unknown optimizer"):
        build("adagrad", MLP([2, 2]).parameters())
    with pytest.raises(NeuratermError, match="unknown activation"):
        MLP([2, 3, 2], activation="swish2")
    with pytest.raises(NeuratermError, match="unknown initializer"):
        MLP([2, 3, 2], init="orthogonal")
    with pytest.raises(NeuratermError, match="unknown device"):
        select("tpu")


@pytest.mark.parametrize("name,expected_std", [
    ("he_normal", np.sqrt(2 / 400)), ("glorot_normal", np.sqrt(2 / 600)), ("lecun_normal", np.sqrt(1 / 400)),
    ("he_uniform", np.sqrt(6 / 400) / np.sqrt(3)), ("glorot_uniform", np.sqrt(6 / 600) / np.sqrt(3)),
    ("lecun_uniform", np.sqrt(3 / 400) / np.sqrt(3)), ("torch_default", 1 / np.sqrt(400) / np.sqrt(3)),
])
def test_initializer_scales(name, expected_std):
    w = initializers.initialize(name, np.random.default_rng(0), (200, 400), 400, 200)
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(w.mean()) < 0.01 * expected_std * 10


def test_initializers_are_seeded():
    a = MLP([10, 8, 2], seed=5).state_dict()
    b = MLP([10, 8, 2], seed=5).state_dict()
    c = MLP([10, 8, 2], seed=6).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_metrics_from_a_known_confusion_matrix():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    stats = metrics.per_class(cm)
    np.testing.assert_allclose(stats["precision"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(stats["recall"], [2 / 3, 0.5, 1.0])
    f1 = [0.8, 0.5, 2 / 3]
    np.testing.assert_allclose(stats["f1"], f1)
    assert metrics.macro_f1(cm) == pytest.approx(np.mean(f1))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert metrics.most_confused(cm, 1) == [(0, 1, 1)] or metrics.most_confused(cm, 1) == [(1, 2, 1)]
    assert metrics.mean_cross_entropy(np.array([[1000.0, 0.0]]), [0]) == pytest.approx(0.0)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.tuples(st.integers(0, k - 1),
                                                                                     st.integers(0, k - 1)),
                                                                           min_size=1, max_size=40))))
def test_metrics_agree_with_counting_by_hand(case):
    """Every test-report number, counted pair by pair in plain Python (0 where a class has no
    predictions or no samples, scikit-learn's zero_division=0)."""
    k, pairs = case
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    cm = metrics.confusion_matrix(y_true, y_pred, k)
    assert cm.shape == (k, k) and all(cm[i, j] == sum(1 for t, p in pairs if (t, p) == (i, j))
                                      for i in range(k) for j in range(k))
    stats = metrics.per_class(cm)
    f1s, recalls = [], []
    for c in range(k):
        tp = sum(1 for t, p in pairs if t == p == c)
        predicted, support = sum(1 for p in y_pred if p == c), sum(1 for t in y_true if t == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert stats["precision"][c] == pytest.approx(precision) and stats["recall"][c] == pytest.approx(recall)
        assert stats["f1"][c] == pytest.approx(f1) and stats["support"][c] == support
        if support or predicted:  # a class neither in the split nor predicted has no F1 (scikit-learn)
            f1s.append(f1)
        if support:
            recalls.append(recall)
    assert stats["support"].dtype == np.int64
    assert metrics.macro_f1(cm) == pytest.approx(sum(f1s) / len(f1s))
    assert metrics.balanced_accuracy(cm) == pytest.approx(sum(recalls) / len(recalls))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sum(t == p for t, p in pairs) / len(pairs))
    off = sorted(((cm[i, j], i, j) for i in range(k) for j in range(k) if i != j and cm[i, j]), reverse=True)
    confused = metrics.most_confused(cm, 3)
    assert [n for *_, n in confused] == [n for n, *_ in off[:3]]
    assert all(cm[i, j] == n and i != j for i, j, n in confused)


def test_metrics_edge_cases_by_hand():
    assert metrics.accuracy([], []) == 0.0
    empty = np.zeros((3, 3), np.int64)
    assert metrics.balanced_accuracy(empty) == 0.0 and metrics.macro_f1(empty) == 0.0
    assert metrics.most_confused(np.diag([5, 6]), 5) == []
    many = np.arange(1, 50).reshape(7, 7)  # 42 off-diagonal cells, all different
    assert [n for *_, n in metrics.most_confused(many)] == [48, 47, 46, 45, 44]  # the report's five pairs
    logits = np.array([[2.0, 0.5, -1.0], [1000.0, 1001.0, 999.0]])
    by_hand = [math.log(sum(math.exp(v - 2.0) for v in logits[0])) - 0.0,
               math.log(sum(math.exp(v - 1001.0) for v in logits[1])) - (999.0 - 1001.0)]
    assert metrics.mean_cross_entropy(logits, [0, 2]) == pytest.approx(sum(by_hand) / 2, rel=1e-12)


def test_training_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR-like quadrants: needs the hidden layer
    net = MLP([2, 32, 2], activation="tanh")
    opt = build("adam", net.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        cross_entropy(net(Tensor(x)), y).backward()
        opt.step()
    with no_grad():
        acc = (net(Tensor(x)).data.argmax(1) == y).mean()
    assert acc > 0.95


def test_cpu_path_never_imports_cupy_or_ui_packages():
    code = ("import sys, numpy as np\n"
            "from neuraterm.core.nn import mlp, losses, tensor\nfrom neuraterm.core.optim import optimizers\nfrom neuraterm.core import backend\n"
            "backend.select('cpu')\n"
            "net = mlp.MLP([4, 3, 2]); optimizers.build('adam', net.parameters())\n"
            "bad = [m for m in ('cupy', 'textual', 'click', 'rich', 'plotext') if m in sys.modules]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_the_backend_module_mentions_cupy():
    from pathlib import Path
    import neuraterm.core as core
    root = Path(core.__file__).parent
    offenders = [p.name for p in root.rglob("*.py") if "import cupy" in p.read_text() and p.name != "backend.py"]
    assert offenders == []


def test_batchnorm_running_statistics_by_hand_also_for_a_batch_of_one():
    """PyTorch refuses a training batch of one row; ours must keep finite running statistics (the
    unbiased variance's n - 1 is 0 there, and the batch's variance is 0 too)."""
    from neuraterm.core.nn.batchnorm import BatchNorm1d
    layer = BatchNorm1d(2, dtype=np.float64)
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])  # mean (3, 6), variance 8/3 and 32/3 (biased), 4 and 16
    out = layer(Tensor(x)).data
    np.testing.assert_allclose(out[:, 0], np.array([-2.0, 0.0, 2.0]) / math.sqrt(8 / 3 + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], np.array([-4.0, 0.0, 4.0]) / math.sqrt(32 / 3 + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, [0.3, 0.6], rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, [0.9 + 0.4, 0.9 + 1.6], rtol=1e-12)
    layer.eval()
    seen = layer(Tensor(np.array([[0.3 + math.sqrt(1.3 + 1e-5), 0.6 - 2 * math.sqrt(2.5 + 1e-5)]]))).data
    np.testing.assert_allclose(seen, [[1.0, -2.0]], rtol=1e-12)
    two = BatchNorm1d(1, dtype=np.float64)
    two(Tensor(np.array([[0.0], [2.0]])))  # variance 1 biased, 2 unbiased (n - 1 = 1)
    np.testing.assert_allclose(two.running_var, [0.9 + 0.2], rtol=1e-12)
    one = BatchNorm1d(2, dtype=np.float64, momentum=0.5)
    out = one(Tensor(np.array([[7.0, -1.0]]))).data
    np.testing.assert_array_equal(out, [[0.0, 0.0]])
    np.testing.assert_allclose(one.running_mean, [3.5, -0.5], rtol=1e-12)
    np.testing.assert_allclose(one.running_var, [0.5, 0.5], rtol=1e-12)


def test_mse_value_and_gradient_by_hand():
    from neuraterm.core.nn.losses import mse
    prediction = Tensor(np.array([[1.0, 2.0], [3.0, 5.0]]), requires_grad=True)
    loss = mse(prediction, np.array([[0.0, 2.0], [1.0, 1.0]]))
    assert float(loss.data) == pytest.approx((1 + 0 + 4 + 16) / 4, rel=1e-12)
    again = mse(Tensor(prediction.data.copy()), Tensor(np.array([[0.0, 2.0], [1.0, 1.0]])))  # a Tensor target
    assert not isinstance(again.data, Tensor) and float(again.data) == pytest.approx(21 / 4, rel=1e-12)
    (loss * 3.0).backward()  # an upstream gradient other than 1 (a weighted loss)
    np.testing.assert_allclose(prediction.grad, 3.0 * np.array([[1.0, 0.0], [2.0, 4.0]]) * 2 / 4, rtol=1e-12)


def test_linear_layer_by_default_has_a_zero_bias_and_decays_only_its_weight():
    from neuraterm.core.nn.linear import Linear
    layer = Linear(4, 3)
    assert layer.weight.shape == (3, 4) and layer.weight.decay
    assert layer.bias is not None and layer.bias.shape == (3,) and not layer.bias.decay and not layer.bias.data.any()
    layer.bias.data[...] = [1.0, -2.0, 0.5]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T + [1.0, -2.0, 0.5], rtol=1e-6)
    assert Linear(4, 3, bias=False).bias is None
