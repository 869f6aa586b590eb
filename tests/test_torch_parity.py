"""The engine against PyTorch: same initial weights, same batches, same hyper-parameters, 50 steps.

Loss curves must agree within 1e-4 relative and final weights within 1e-4.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neuraterm.core.optim import schedules# noqa: E402
from neuraterm.core.nn.batchnorm import BatchNorm1d  # noqa: E402
from neuraterm.core.nn.linear import Linear  # noqa: E402
from neuraterm.core.nn.losses import cross_entropy  # noqa: E402
from neuraterm.core.nn.mlp import MLP, ActivationLayer  # noqa: E402
from neuraterm.core.optim.optimizers import build  # noqa: E402
from neuraterm.core.nn.tensor import Tensor  # noqa: E402

torch.set_num_threads(1)
STEPS, BATCH, STEPS_PER_EPOCH = 50, 32, 5
TORCH_ACT = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
             "gelu": lambda: torch.nn.GELU(approximate="tanh"), "silu": torch.nn.SiLU,
             "leaky_relu": torch.nn.LeakyReLU}


def torch_twin(net):
    """A torch.nn.Sequential with the same layers and a copy of the same weights."""
    layers = []
    for layer in net.layers():
        if isinstance(layer, Linear):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
                if layer.bias is not None:
                    lin.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
            layers.append(lin)
            if layer.activation.name != "identity":
                layers.append(TORCH_ACT[layer.activation.name]())
        elif isinstance(layer, BatchNorm1d):
            layers.append(torch.nn.BatchNorm1d(layer.features))
        elif isinstance(layer, ActivationLayer):
            layers.append(TORCH_ACT[layer.fn.name]())
    return torch.nn.Sequential(*layers)


def batches(seed=0, features=20, classes=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((STEPS, BATCH, features), dtype=np.float32)
    y = rng.integers(0, classes, (STEPS, BATCH))
    return x, y


def run_pair(sizes, optimizer, options, torch_options, activation="relu", batchnorm=False,
             schedule=None, plateau=None, clip_norm=None, l2=0.0):
    net = MLP(sizes, activation=activation, batchnorm=batchnorm, seed=3)
    twin = torch_twin(net)
    extra = {"clip_norm": clip_norm} if clip_norm else {}
    if l2:
        extra["l2"] = l2
    opt = build(optimizer, net.parameters(), **options, **extra)
    weights = [p for n, p in twin.named_parameters() if n.endswith("weight") and p.dim() == 2]
    others = [p for n, p in twin.named_parameters() if not (n.endswith("weight") and p.dim() == 2)]
    decay = torch_options.pop("weight_decay", 0.0) or l2
    groups = [{"params": weights, "weight_decay": decay}, {"params": others, "weight_decay": 0.0}]
    topt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
            "rmsprop": torch.optim.RMSprop}[optimizer](groups, **torch_options)
    tsched = schedule[1](topt) if schedule else None
    ours_plateau = schedules.ReduceLROnPlateau(options["lr"], **plateau) if plateau else None
    tplateau = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **plateau) if plateau else None
    x, y = batches(features=sizes[0], classes=sizes[-1])
    ours, theirs, lrs = [], [], []
    epoch_loss = 0.0
    for step in range(STEPS):
        epoch = step // STEPS_PER_EPOCH
        if schedule and step % STEPS_PER_EPOCH == 0:
            opt.lr = schedule[0](epoch)
            lrs.append((opt.lr, topt.param_groups[0]["lr"]))
        opt.zero_grad()
        loss = cross_entropy(net(Tensor(x[step])), y[step])
        loss.backward()
        opt.step()
        ours.append(float(loss.data))

        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x[step])), torch.from_numpy(y[step]))
        tloss.backward()
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(twin.parameters(), clip_norm)
        topt.step()
        theirs.append(float(tloss.detach()))
        epoch_loss += float(loss.data)
        if (step + 1) % STEPS_PER_EPOCH == 0:
            if tsched:
                tsched.step()
            if plateau:
                # A slowly falling, then flat metric, so the plateau rule is exercised.
                metric = max(1.0, 3.0 - epoch)
                opt.lr = ours_plateau.step(metric)
                tplateau.step(metric)
                lrs.append((opt.lr, topt.param_groups[0]["lr"]))
    final_ours = np.concatenate([p.data.ravel() for p in _ordered(net)])
    final_theirs = np.concatenate([p.detach().numpy().ravel() for p in twin.parameters()])
    return np.array(ours), np.array(theirs), final_ours, final_theirs, lrs


def _ordered(net):
    """Our parameters in torch's order (per layer: weight, bias)."""
    return [p for _, p in net.named_parameters()]


CASES = {
    "sgd": ("sgd", {"lr": 0.1}, {"lr": 0.1}),
    "sgd_momentum": ("sgd", {"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9}),
    "nesterov": ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adam": ("adam", {"lr": 1e-3}, {"lr": 1e-3}),
    "adamw": ("adamw", {"lr": 1e-3, "weight_decay": 0.05}, {"lr": 1e-3, "weight_decay": 0.05}),
    "rmsprop": ("rmsprop", {"lr": 1e-3}, {"lr": 1e-3}),
    "rmsprop_momentum": ("rmsprop", {"lr": 1e-3, "momentum": 0.5}, {"lr": 1e-3, "momentum": 0.5}),
}


def assert_parity(ours, theirs, w_ours, w_theirs, atol=1e-4):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=0)
    np.testing.assert_allclose(w_ours, w_theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_matches_pytorch(case):
    name, ours_opts, torch_opts = CASES[case]
    ours, theirs, w1, w2, _ = run_pair([20, 16, 12, 5], name, dict(ours_opts), dict(torch_opts))
    assert ours[-1] < ours[0]
    assert_parity(ours, theirs, w1, w2)


def test_l2_penalty_on_weights_matches_pytorch_weight_decay():
    ours, theirs, w1, w2, _ = run_pair([20, 16, 5], "sgd", {"lr": 0.1}, {"lr": 0.1}, l2=0.01)
    assert_parity(ours, theirs, w1, w2)


def test_gradient_clipping_matches_pytorch():
    ours, theirs, w1, w2, _ = run_pair([20, 16, 5], "sgd", {"lr": 0.5, "momentum": 0.9},
                                       {"lr": 0.5, "momentum": 0.9}, clip_norm=0.5)
    assert_parity(ours, theirs, w1, w2)


LR_SCHED = torch.optim.lr_scheduler
SCHEDULES = {
    "constant": (schedules.constant(0.1), lambda o: LR_SCHED.LambdaLR(o, lambda e: 1.0)),
    "linear": (schedules.linear(0.1, 6, 0.02), lambda o: LR_SCHED.LambdaLR(o, lambda e: max(0.2, 1 - e / 6))),
    "exponential": (schedules.exponential(0.1, 0.8), lambda o: LR_SCHED.ExponentialLR(o, 0.8)),
    "step": (schedules.step(0.1, 3, 0.5), lambda o: LR_SCHED.StepLR(o, 3, 0.5)),
    "cosine": (schedules.cosine(0.1, 10, 0.01), lambda o: LR_SCHED.CosineAnnealingLR(o, 10, 0.01)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_pytorch(name):
    ours, theirs, w1, w2, lrs = run_pair([20, 16, 5], "sgd", {"lr": 0.1}, {"lr": 0.1}, schedule=SCHEDULES[name])
    for a, b in lrs:
        assert math.isclose(a, b, rel_tol=1e-6)
    assert len({round(a, 8) for a, _ in lrs}) > (1 if name != "constant" else 0)
    assert_parity(ours, theirs, w1, w2)


def test_reduce_lr_on_plateau_matches_pytorch():
    plateau = {"factor": 0.5, "patience": 2, "min_lr": 0.01}
    ours, theirs, w1, w2, lrs = run_pair([20, 16, 5], "sgd", {"lr": 0.1}, {"lr": 0.1}, plateau=plateau)
    for a, b in lrs:
        assert math.isclose(a, b, rel_tol=1e-9)
    assert lrs[-1][0] < 0.1
    assert_parity(ours, theirs, w1, w2)


@pytest.mark.parametrize("activation", ["gelu", "silu", "tanh", "sigmoid", "leaky_relu"])
def test_activation_mlp_matches_pytorch(activation):
    ours, theirs, w1, w2, _ = run_pair([20, 16, 5], "adam", {"lr": 1e-3}, {"lr": 1e-3}, activation=activation)
    assert_parity(ours, theirs, w1, w2)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_batchnorm_mlp_matches_pytorch(activation):
    ours, theirs, w1, w2, _ = run_pair([20, 16, 12, 5], "adam", {"lr": 1e-3}, {"lr": 1e-3},
                                       activation=activation, batchnorm=True)
    assert_parity(ours, theirs, w1, w2)


def test_batchnorm_running_statistics_match_pytorch():
    net = MLP([8, 6, 3], batchnorm=True, seed=1)
    twin = torch_twin(net)
    x = np.random.default_rng(0).standard_normal((10, 16, 8), dtype=np.float32)
    for batch in x:
        net(Tensor(batch))
        twin(torch.from_numpy(batch))
    bn, tbn = net.layers()[1], twin[1]
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), atol=1e-6)
    net.eval()
    twin.eval()
    np.testing.assert_allclose(net(Tensor(x[0])).data, twin(torch.from_numpy(x[0])).detach().numpy(), atol=1e-5)
