"""CuPy against NumPy: the same engine code on both backends gives the same numbers (float32 tolerance).

Runs only where CuPy finds a CUDA device (the lent GPU machines); skipped elsewhere.
"""
import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def _train(xp, sizes, optimizer, options, activation="relu", batchnorm=False, steps=20):
    from neuraterm.core.nn.losses import cross_entropy
    from neuraterm.core.nn.mlp import MLP
    from neuraterm.core.optim.optimizers import build
    from neuraterm.core.nn.tensor import Tensor
    rng = np.random.default_rng(0)
    net = MLP(sizes, activation=activation, batchnorm=batchnorm, seed=1, xp=xp)
    opt = build(optimizer, net.parameters(), **options)
    losses = []
    for _ in range(steps):
        x = xp.asarray(rng.random((64, sizes[0]), dtype=np.float32))
        y = xp.asarray(rng.integers(0, sizes[-1], 64))
        opt.zero_grad()
        loss = cross_entropy(net(Tensor(x)), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    return np.array(losses), net.state_dict()


@pytest.mark.parametrize("optimizer,options", [
    ("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"lr": 1e-3}), ("adamw", {"lr": 1e-3, "weight_decay": 0.01, "clip_norm": 1.0}),
    ("rmsprop", {"lr": 1e-3, "momentum": 0.5}), ("sgd", {"lr": 0.1, "l2": 1e-3}),
])
def test_optimizers_match_numpy(optimizer, options):
    import cupy
    cpu_loss, cpu_state = _train(np, [50, 32, 10], optimizer, options)
    gpu_loss, gpu_state = _train(cupy, [50, 32, 10], optimizer, options)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    for name in cpu_state:
        np.testing.assert_allclose(gpu_state[name], cpu_state[name], atol=1e-4, err_msg=name)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_layers_and_activations_match_numpy(activation, batchnorm):
    import cupy
    cpu_loss, cpu_state = _train(np, [40, 24, 16, 7], "adam", {"lr": 1e-3}, activation, batchnorm)
    gpu_loss, gpu_state = _train(cupy, [40, 24, 16, 7], "adam", {"lr": 1e-3}, activation, batchnorm)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    for name in cpu_state:
        np.testing.assert_allclose(gpu_state[name], cpu_state[name], atol=1e-4, err_msg=name)


def test_tensor_ops_match_numpy():
    import cupy
    from neuraterm.core.nn import activations as act
    from neuraterm.core.nn.losses import naive_cross_entropy, mse
    from neuraterm.core.nn.tensor import Tensor
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 5)).astype(np.float32), rng.uniform(0.5, 2, (6, 5)).astype(np.float32)
    labels = np.arange(6) % 5

    def run(xp):
        ta, tb = Tensor(xp.asarray(a), requires_grad=True), Tensor(xp.asarray(b), requires_grad=True)
        out = ((ta * tb + ta / tb - tb.log() + ta.exp()).sum(axis=0).max() + act.softmax(ta).mean()
               + act.log_softmax(ta)[xp.arange(6), xp.asarray(labels)].mean() + (ta @ tb.T).reshape(36).mean()
               + naive_cross_entropy(ta, xp.asarray(labels)) + mse(ta, xp.asarray(b)))
        out.backward()
        return [float(out.data), *(np.asarray(t.grad.get() if hasattr(t.grad, "get") else t.grad) for t in (ta, tb))]

    cpu, gpu = run(np), run(cupy)
    for c, g in zip(cpu, gpu):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_trainer_runs_on_gpu(tmp_path):
    from neuraterm.core.config import Config
    from neuraterm.core.run.trainer import Trainer
    config = Config()
    config.train.device = "gpu"
    config.train.epochs = 3
    config.optimizer.name, config.optimizer.lr = "adam", 1e-3
    report = Trainer(config, tmp_path / "run").run()
    assert report["test_accuracy"] > 0.85 and report["device"] == "gpu"


@pytest.mark.parametrize("placement", ["device", "host"])
def test_feeder_delivers_the_same_batches_resident_or_streamed(placement):
    import cupy
    from neuraterm.core.data.feeder import Feeder
    from neuraterm.core.data.normalize import Normalizer
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1000, 20), dtype=np.uint8)
    y = rng.integers(0, 5, 1000)
    feeder = Feeder(cupy, x, y, Normalizer("scale"), 64, placement)
    assert feeder.placement == placement and placement in ("device", "host")
    batches = [rng.permutation(1000)[:64] for _ in range(10)] + [np.arange(37)]
    seen = 0
    for idx, xb, yb in feeder.stream(batches):
        np.testing.assert_allclose(xb.get(), x[idx] / np.float32(255), rtol=1e-6)
        np.testing.assert_array_equal(yb.get(), y[idx])
        seen += 1
    assert seen == len(batches)


def test_streamed_training_equals_resident_training(tmp_path):
    from neuraterm.core.config import Config
    from neuraterm.core.run.trainer import Trainer
    reports = []
    for placement in ("device", "host"):
        config = Config()
        config.train.device, config.train.epochs, config.data.placement = "gpu", 2, placement
        reports.append(Trainer(config, tmp_path / placement).run())
    assert reports[0]["test_accuracy"] == pytest.approx(reports[1]["test_accuracy"], abs=0.002)


def test_gpu_run_with_dropout_checkpoints_and_resumes(tmp_path):
    from neuraterm.core.run import checkpoint
    from neuraterm.core.config import Config
    from neuraterm.core.run.trainer import Trainer
    config = Config()
    config.train.device, config.train.epochs, config.model.dropout = "gpu", 2, 0.2
    config.data.limit = 1000
    Trainer(config, tmp_path / "run").run()
    config.train.epochs = 3
    report = Trainer(config, tmp_path / "run", resume=True).run()
    assert checkpoint.load(tmp_path / "run").train_state["epoch"] == 3 and report["test_accuracy"] > 0.3


# -- the fused step: kernels, direct cuBLAS, CUDA graphs ------------------------------------------

def _fused_epochs(xp, ops, activation="relu", dropout=0.0, opt_name="adam", options=None, graphs=True,
                  epochs=2, batch=64, n=1000, features=30, classes=7, normalize="standardize"):
    from neuraterm.core.data.feeder import Feeder
    from neuraterm.core.data.normalize import Normalizer
    from neuraterm.core.fused.step import FusedStep
    from neuraterm.core.nn.mlp import MLP
    from neuraterm.core.optim.optimizers import build
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, features), dtype=np.uint8)
    y = (x[:, :4].sum(axis=1) % classes).astype(np.int64)
    net = MLP([features, 48, 24, classes], activation=activation, dropout=dropout, seed=2, xp=xp)
    opt = build(opt_name, net.parameters(), **(options or {"lr": 1e-3}))
    feeder = Feeder(xp, x, y, Normalizer.fit(normalize, x), batch, "device" if xp is not np else "auto")
    step = FusedStep(ops, net, opt, feeder, batch, graphs=graphs)
    totals = []
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(n)
        batches = [order[i:i + batch] for i in range(0, n, batch)]  # the last one partial: eager
        step.begin_epoch(batches)
        for idx in batches:
            step.run(len(idx))
        totals.append(step.totals_on_host())
    return net.state_dict(), opt.state_dict(), totals, step


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu"])
@pytest.mark.parametrize("opt_name,options", [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "l2": 1e-3}),
    ("adamw", {"lr": 2e-3, "weight_decay": 0.05, "clip_norm": 0.5}),
    ("rmsprop", {"lr": 1e-3, "momentum": 0.5}),
])
def test_fused_cuda_step_equals_numpy_step(activation, opt_name, options):
    import cupy
    from neuraterm.core.fused.cuda_ops import CudaOps
    from neuraterm.core.fused.numpy_ops import NumpyOps
    got = _fused_epochs(cupy, CudaOps(cupy), activation, 0.0, opt_name, options)
    want = _fused_epochs(np, NumpyOps(), activation, 0.0, opt_name, options)
    assert "graph" in got[3].describe() and got[3].graph_error is None and got[3].replay is not None
    for name in want[0]:
        np.testing.assert_allclose(got[0][name], want[0][name], rtol=2e-4, atol=2e-5, err_msg=name)
    assert int(got[1]["steps"]) == int(want[1]["steps"]) == 2 * 16
    for (loss, correct), (ref_loss, ref_correct) in zip(got[2], want[2]):
        assert loss == pytest.approx(ref_loss, rel=1e-3) and abs(correct - ref_correct) <= 3


def test_graph_replay_equals_the_eager_fused_step():
    import cupy
    from neuraterm.core.fused.cuda_ops import CudaOps
    graphed = _fused_epochs(cupy, CudaOps(cupy), "gelu", 0.3, "adam", graphs=True, epochs=3)
    eager = _fused_epochs(cupy, CudaOps(cupy), "gelu", 0.3, "adam", graphs=False, epochs=3)
    assert graphed[3].replay is not None and eager[3].replay is None
    for name in eager[0]:  # same kernels, same order: equal up to nothing but the atomics of the totals
        np.testing.assert_array_equal(graphed[0][name], eager[0][name], err_msg=name)
    for name in eager[1]:
        np.testing.assert_array_equal(graphed[1][name], eager[1][name], err_msg=name)
    assert graphed[2][-1][1] == eager[2][-1][1]


def test_tf32_steps_train_to_nearly_the_same_weights():
    import cupy
    from neuraterm.core.fused.cuda_ops import CudaOps
    fp32 = _fused_epochs(cupy, CudaOps(cupy), epochs=2)
    tf32 = _fused_epochs(cupy, CudaOps(cupy, tf32=True), epochs=2)
    assert "TF32" in tf32[3].describe()
    w, w_tf32 = fp32[0]["0.weight"], tf32[0]["0.weight"]
    assert 0 < np.linalg.norm(w - w_tf32) / np.linalg.norm(w) < 1e-2


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_direct_cublas_gemm_equals_matmul(trans_a, trans_b):
    import cupy
    from neuraterm.core.fused.cublas import Cublas
    rng = np.random.default_rng(0)
    m, k, n = 65, 33, 17
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    blas = Cublas(cupy, stream)
    out = cupy.full((m, n), np.nan, cupy.float32)
    with stream:
        blas.gemm(cupy.asarray(a), cupy.asarray(b), out, trans_a, trans_b)
        got = out.get()
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6
    blas.close()


def test_fused_trainer_on_gpu_resumes_exactly_with_dropout(tmp_path):
    """Counter-based dropout masks and device-side step counts: a GPU resume continues the same run."""
    from neuraterm.core.config import Config
    from neuraterm.core.run.trainer import Trainer
    config = Config()
    config.train.device, config.train.epochs, config.model.dropout = "gpu", 4, 0.2
    config.data.limit = 2000
    straight = Trainer(config, tmp_path / "straight").run()
    config.train.epochs = 2
    Trainer(config, tmp_path / "split").run()
    config.train.epochs = 4
    resumed = Trainer(config, tmp_path / "split", resume=True).run()
    a = np.load(tmp_path / "straight" / "weights" / "0.weight.npy")
    b = np.load(tmp_path / "split" / "weights" / "0.weight.npy")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert straight["test_accuracy"] == pytest.approx(resumed["test_accuracy"], abs=0.002)


def test_layer_health_on_gpu_matches_the_cpu_and_leaves_the_training_alone(tmp_path):
    """Health measured on its own thread, queued on the training's CUDA stream: every epoch measured, the
    same figures as the same run on the CPU (float32 tolerance), and the same weights as without health."""
    from neuraterm.core.config import Config
    from neuraterm.core.run import checkpoint
    from neuraterm.core.run.trainer import Trainer

    def run(device, every, name):
        config = Config()
        config.train.device, config.train.epochs, config.train.health_every = device, 3, every
        config.data.limit = 2000
        Trainer(config, tmp_path / name).run()
        return checkpoint.load(tmp_path / name)
    gpu, gpu_off, cpu = run("gpu", 1, "gpu"), run("gpu", 0, "gpu-off"), run("cpu", 1, "cpu")
    for name in gpu.weights:
        np.testing.assert_allclose(gpu.weights[name], gpu_off.weights[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert gpu.health["epochs"].tolist() == [1, 2, 3] and np.isfinite(gpu.health["confidence"]).all()
    fields = gpu.health["layout"]["fields"]
    for field in ("weight_norm", "grad_norm", "update_ratio", "act_mean", "act_std", "unit_spread"):
        i = fields.index(field)
        np.testing.assert_allclose(gpu.health["values"][..., i], cpu.health["values"][..., i], rtol=2e-2,
                                   atol=1e-6, err_msg=field)
