"""The CLI as a user runs it: real subprocesses, real model folders, real signals."""
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuraterm.core import checkpoint

SMALL = ["--set", "data.limit=1500", "--set", "model.hidden=[32]"]


def cli(*args, cwd=None, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "neuraterm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "NO_COLOR": "1", **(env or {})})


def weights(folder: Path) -> dict:
    return {p.name: np.load(p, allow_pickle=False) for p in sorted((folder / "weights").glob("*.npy"))}


def test_quick_preset_beats_90_percent(tmp_path):
    result = cli("--preset", "quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("quick-")
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["test_accuracy"] > 0.90
    assert 0 < report["macro_f1"] <= 1 and report["test_loss"] > 0
    assert "test accuracy" in result.stdout and f"runs/{runs[0].name}" in result.stdout
    header = (runs[0] / "history.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds")
    assert len((runs[0] / "history.csv").read_text().splitlines()) == 11
    # The folder is plain data: numpy without pickle, JSON and TOML.
    for path in (runs[0] / "weights").glob("*.npy"):
        assert np.load(path, allow_pickle=False).dtype == np.float32


ADAMW_DROPOUT = ["--set", "model.dropout=0.2", "--set", "optimizer.name=\"adamw\"",
                 "--set", "schedule.name=\"exponential\""]


@pytest.mark.parametrize("extra,step", [
    ([], "fused step (NumPy)"),
    (ADAMW_DROPOUT, "fused step (NumPy)"),
    (ADAMW_DROPOUT + ["--set", "model.batchnorm=true"], "autograd (a BatchNorm1d layer)"),
], ids=["plain", "dropout-adamw", "batchnorm"])
def test_resume_is_exact(tmp_path, extra, step):
    straight, split = tmp_path / "straight", tmp_path / "split"
    result = cli("train", "--out", straight, "--epochs", 6, *SMALL, *extra)
    assert result.returncode == 0 and f"training step: {step}" in result.stdout
    assert cli("train", "--out", split, "--epochs", 3, *SMALL, *extra).returncode == 0
    assert cli("resume", split, "--epochs", 6).returncode == 0
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    ha, hb = checkpoint.read_history(straight / "history.csv"), checkpoint.read_history(split / "history.csv")
    assert [[r[c] for c in cols] for r in ha] == [[r[c] for c in cols] for r in hb]
    assert json.loads((straight / "report.json").read_text())["test_accuracy"] == \
        json.loads((split / "report.json").read_text())["test_accuracy"]


def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    args = ["--epochs", 8, "--set", "data.limit=3000", "--set", "model.hidden=[64]", "--set", "train.batch_size=16"]
    assert cli("train", "--out", straight, *args).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "train", "--out", str(stopped), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (stopped / "model.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.15)  # somewhere inside epoch 2
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with" in out
    state = json.loads((stopped / "state" / "train.json").read_text())
    assert state["partial"] is not None or state["epoch"] < 8
    assert cli("resume", stopped).returncode == 0
    a, b = weights(straight), weights(stopped)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_kill_9_at_random_moments_leaves_a_loadable_folder(tmp_path):
    rng = random.Random(7)
    run = tmp_path / "run"
    for attempt in range(20):
        command = ["resume", str(run), "--epochs", "1000"] if (run / "current").exists() else \
            ["train", "--out", str(run), "--epochs", "1000", "--set", "data.limit=600", "--set", "model.hidden=[16]"]
        proc = subprocess.Popen([sys.executable, "-m", "neuraterm", *command],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (run / "current").exists():
            snap = checkpoint.load(run)
            assert snap.weights and snap.epoch >= 0
    assert checkpoint.load(run).epoch > 1


def _good_run(tmp_path) -> Path:
    run = tmp_path / "good"
    assert cli("train", "--out", run, "--epochs", 1, *SMALL).returncode == 0
    return run


def _corrupt(run, fn):
    fn(run)
    return run


BAD_PRESETS = {
    "bad_toml": "name = \n",
    "unknown_key": "[optimizer]\nlearning_rate = 0.1\n",
    "unknown_section": "[optimiser]\nlr = 0.1\n",
    "negative_lr": "[optimizer]\nlr = -0.1\n",
    "zero_epochs": "[train]\nepochs = 0\n",
    "wrong_type": "[train]\nbatch_size = \"big\"\n",
    "bool_as_int": "[model]\nbatchnorm = 1\n",
    "unknown_dataset": "[data]\ndataset = \"mnist-6k\"\n",
    "unknown_optimizer": "[optimizer]\nname = \"adagrad\"\n",
    "unknown_activation": "[model]\nactivation = \"swish9\"\n",
    "bad_dropout": "[model]\ndropout = 1.5\n",
    "bad_monitor": "[train]\nmonitor = \"f1\"\n",
    "unknown_schedule": "[schedule]\nname = \"cyclic\"\n",
    "bad_fractions": "[data]\nval_fraction = 0.6\ntest_fraction = 0.5\n",
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_bad_preset_is_exit_2_and_one_line(tmp_path, case):
    preset = tmp_path / f"{case}.toml"
    preset.write_text(BAD_PRESETS[case])
    result = cli("train", "--preset", preset, "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def _npy_pickle(run):
    np.save(run / "weights" / "0.weight.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


BAD_FOLDERS = {
    "missing_folder": lambda run: shutil.rmtree(run),
    "corrupt_npy": lambda run: (run / "weights" / "0.weight.npy").write_bytes(b"\x93NUMPY garbage"),
    "shape_mismatch": lambda run: np.save(run / "weights" / "0.weight.npy", np.zeros((3, 3), np.float32)),
    "dtype_mismatch": lambda run: np.save(run / "weights" / "0.weight.npy",
                                          np.load(run / "weights" / "0.weight.npy").astype(np.float64)),
    "pickle_in_npy": _npy_pickle,
    "missing_weight": lambda run: (run / "weights" / "1.bias.npy").unlink(),
    "extra_weight": lambda run: np.save(run / "weights" / "9.weight.npy", np.zeros(2, np.float32)),
    "bad_model_json": lambda run: (run / "model.json").write_text("{not json"),
    "missing_config": lambda run: (run / "current" / "config.toml").unlink(),
    "bad_train_state": lambda run: (run / "state" / "train.json").write_text("{}"),
    "optimizer_state_shape": lambda run: np.save(run / "state" / "optimizer" / "steps.npy", np.zeros(3)),
}


STATE_ONLY = {"bad_train_state", "optimizer_state_shape"}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_model_folder_is_exit_2_and_leaves_it_alone(tmp_path, case):
    run = _good_run(tmp_path)
    BAD_FOLDERS[case](run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} if run.exists() else {}
    # Evaluation needs only the weights; resuming needs the training state too.
    commands = [["resume", run, "--epochs", 3]] + ([] if case in STATE_ONLY else [["eval", run]])
    for command in commands:
        result = cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} if run.exists() else {}
    assert before == after


@pytest.mark.parametrize("args,message", [
    (["train", "--preset", "nonexistent"], "unknown preset"),
    (["train", "--set", "optimizer.lr"], "expected section.key=value"),
    (["train", "--set", "nosection.lr=1"], "unknown"),
    (["train", "--device", "gpu"], "gpu"),
    (["eval", "/nonexistent/folder"], "no such model folder"),
    (["eval", "x", "--noise", "a,b"], "--noise"),
])
def test_bad_command_line_is_exit_2(tmp_path, args, message):
    if "--device" in args and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here, so --device gpu may be valid")
    result = cli(*[a for a in args], *(["--out", tmp_path / "o"] if args[0] == "train" else []))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_diverging_run_stops_with_exit_1_and_keeps_the_checkpoint(tmp_path):
    run = _good_run(tmp_path)
    before = weights(run)
    result = cli("resume", run, "--epochs", 3, "--set", "optimizer.lr=1e30")
    assert result.returncode == 1
    assert "diverged" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    after = weights(run)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_eval_and_export(tmp_path):
    torch = pytest.importorskip("torch")
    run = _good_run(tmp_path)
    result = cli("eval", run, "--noise", "0,0.5")
    assert result.returncode == 0 and "s=0.5" in result.stdout
    out = tmp_path / "w.npz"
    assert cli("export", run, out).returncode == 0
    state = {k: torch.from_numpy(v) for k, v in np.load(out).items()}
    twin = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    twin.load_state_dict(state)


def test_listings(tmp_path):
    presets = cli("presets").stdout
    for name in ("quick", "mnist-sgd", "mnist-adam-l2", "emnist-m0", "emnist-m1g", "emnist-m3b", "k49-m1",
                 "cifar10-mlp", "fashion-mlp"):
        assert name in presets
    datasets = cli("datasets").stdout
    assert "mnist-5k" in datasets and "embedded" in datasets and "emnist-bymerge" in datasets


def test_every_shipped_preset_is_valid():
    from neuraterm import presets
    for name in presets.names():
        config = presets.load(name)
        assert config.name == name and config.description
