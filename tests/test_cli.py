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

from neuraterm.core.run import checkpoint

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
@pytest.mark.may_skip_in_ci("on a machine with CuPy, --device gpu is valid input")
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
    state = {k: torch.from_numpy(v) for k, v in np.load(out).items() if k[0].isdigit()}
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


# -- the command line a new user meets (issue 10) ------------------------------------------------
def test_top_level_options_are_the_train_command(tmp_path):
    run = tmp_path / "top"
    result = cli("--preset", "quick", "--epochs", 1, "--seed", 3, "--set", "data.limit=600", "--threads", 1, "--out", run)
    assert result.returncode == 0, result.stderr
    snap = checkpoint.load(run)
    assert snap.epoch == 1 and snap.config.train.seed == 3 and snap.config.train.threads == 1
    assert snap.config.data.limit == 600
    assert cli("--epochs", 1, "train").returncode == 2  # options before a command are refused, not ignored


def test_a_closed_stdout_never_stops_or_loses_the_run(tmp_path):
    run = tmp_path / "piped"
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "train", "--out", str(run), "--epochs", "4", *SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert first.startswith(b"quick: training") and "Broken pipe" not in err and "Traceback" not in err
    report = json.loads((run / "report.json").read_text())
    assert report["epochs_trained"] == 4


def test_resume_refuses_keys_that_define_the_split_model_or_init(tmp_path):
    run = _good_run(tmp_path)
    before = weights(run)
    for args, key in ((["--seed", 5], "train.seed"), (["--set", "data.limit=900"], "data.limit"),
                      (["--set", "model.hidden=[64]"], "model.hidden"), (["--set", "data.normalize=standardize"],
                                                                         "data.normalize")):
        result = cli("resume", run, "--epochs", 2, *args)
        assert result.returncode == 2 and key in result.stderr, (args, result.stderr)
    assert all(np.array_equal(before[k], v) for k, v in weights(run).items())
    result = cli("resume", run, "--epochs", 2, "--set", "optimizer.lr=0.05", "--set", "schedule.name=cosine")
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(run).config.optimizer.lr == 0.05


def test_export_names_the_file_it_wrote_and_never_overwrites_silently(tmp_path):
    run = _good_run(tmp_path)
    result = cli("export", run, tmp_path / "w")
    assert result.returncode == 0 and f"wrote {tmp_path / 'w.npz'}" in result.stdout
    assert sorted(np.load(tmp_path / "w.npz").files) == ["0.bias", "0.weight", "2.bias", "2.weight", "class_names",
                                                         "input_mean", "input_scale", "input_shape", "input_std"]
    (tmp_path / "w.npz").write_bytes(b"mine")
    result = cli("export", run, tmp_path / "w.npz")
    assert result.returncode == 2 and "--force" in result.stderr
    assert (tmp_path / "w.npz").read_bytes() == b"mine"
    assert cli("export", run, tmp_path / "w.npz", "--force").returncode == 0
    assert np.load(tmp_path / "w.npz")["0.weight"].shape == (32, 784)


def test_the_readme_loads_an_export_into_pytorch_and_reaches_evals_accuracy(tmp_path, monkeypatch, capsys):
    """The README's lines, run as they are, on a standardized model: the export carries the mean, the
    deviation and the pixel scale, and torch's accuracy is neuraterm eval's to the last digit shown."""
    import re
    pytest.importorskip("torch")
    from neuraterm.core.data import registry
    digits = registry.load("mnist-5k")
    x, y = digits.x_train.reshape(-1, 28, 28), digits.y_train
    test = np.arange(len(y)) % 5 == 0
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[~test], y=y[~test], x_test=x[test], y_test=y[test])
    run = tmp_path / "run"
    trained = cli("train", "--preset", "quick", "--set", f"data.dataset={data}", "--set",
                  'data.normalize="standardize"', "--epochs", 2, "--out", run)
    assert trained.returncode == 0, trained.stderr
    evaluated = cli("eval", run)
    assert evaluated.returncode == 0, evaluated.stderr
    eval_accuracy = re.search(r"test accuracy\s+([\d.]+%)", evaluated.stdout)[1]
    assert cli("export", run, tmp_path / "model.npz").returncode == 0
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"### In PyTorch.*?```python\n(.*?)```", readme, re.S)[1]
    monkeypatch.chdir(tmp_path)
    exec(code, {"images": x[test], "labels": y[test]})
    printed = capsys.readouterr().out
    assert printed.startswith(f"test accuracy {eval_accuracy} ['"), (printed, eval_accuracy)
    f = np.load(tmp_path / "model.npz")
    assert f["input_shape"].tolist() == [28, 28] and f["class_names"].tolist() == [str(i) for i in range(10)]
    assert float(f["input_std"][0]) != 1.0  # standardized: weights alone would be fed the wrong inputs


def test_an_empty_validation_split_is_refused_and_validation_off_is_said(tmp_path):
    """data.limit=30 leaves 3 digits per class: 2 train, 0 validation, 1 test. NaN in every epoch line
    told nobody why; with data.val_fraction = 0 validation is off by choice, and the run says so."""
    empty = cli("train", "--set", "data.limit=30", "--epochs", 1, "--out", tmp_path / "empty")
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1, empty.stderr
    assert "mnist-5k: the validation split is empty (20 train / 10 test samples); raise data.val_fraction" \
           in empty.stderr and not (tmp_path / "empty").exists()
    off = cli("train", *SMALL, "--set", "data.val_fraction=0", "--epochs", 1, "--out", tmp_path / "off")
    assert off.returncode == 0, off.stderr
    assert "note: validation is off (data.val_fraction = 0)" in off.stdout
    assert "val off" in off.stdout and "nan" not in off.stdout
    assert cli("eval", tmp_path / "off").returncode == 0  # evaluating needs no validation split
    # Monitoring val_acc without validation follows the training accuracy (it maximized the training loss,
    # and restore_best kept the first epoch's weights).
    acc = cli("train", *SMALL, "--set", "data.val_fraction=0", "--set", 'train.monitor="val_acc"', "--epochs", 4,
              "--out", tmp_path / "acc")
    assert acc.returncode == 0, acc.stderr
    report = json.loads((tmp_path / "acc" / "report.json").read_text())
    assert report["best_epoch"] == 4 and report["test_accuracy"] > 0.6


def test_options_are_named_as_typed_in_errors(tmp_path):
    for args, message in ((["train", "--epochs", 0], "--epochs 0: train.epochs must be between 1 and 1,000,000"),
                          (["train", "--seed", -1], "--seed -1: train.seed must be between 0"),
                          (["study", "study-lr", "--epochs", 0], "Invalid value for '--epochs': 0 is not in the range")):
        result = cli(*args, *(["--out", tmp_path / "o"]))
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "--set" not in result.stderr


def test_the_terminal_that_trains_says_when_a_viewer_pauses_and_resumes(tmp_path):
    import queue
    import threading
    from neuraterm.core.run import commands
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "train", *SMALL, "--epochs", "500", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def wait_for(text):
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}")
    try:
        wait_for("epoch   1/500")
        commands.send(run, "pause")
        paused = wait_for("paused by a viewer")
        assert paused.startswith("paused by a viewer at epoch ") and "step " in paused
        commands.send(run, "resume")
        assert wait_for("resumed at epoch ").startswith("resumed at epoch ")
        commands.send(run, "stop")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args,hint", [
    (["train", "--preset", "quik"], "did you mean 'quick'"),
    (["train", "--set", "optimizer.lrr=0.1"], "did you mean 'lr'"),
    (["train", "--set", "optimiser.lr=0.1"], "did you mean 'optimizer'"),
    (["train", "--set", "data.dataset=mnist-6k"], "did you mean 'mnist-5k'"),
    (["train", "--set", "model.activation=rellu"], "did you mean 'relu'"),
    (["trian"], "Did you mean 'train'"),
    (["train", "--epoch", "3"], "Did you mean '--epochs'"),
])
def test_typos_get_one_line_and_a_suggestion(tmp_path, args, hint):
    result = cli(*args, *(["--out", tmp_path / "o"] if args[0] == "train" else []))
    assert result.returncode == 2 and hint in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_runs_lists_model_folders_with_status_and_sorts_them(tmp_path):
    root = tmp_path / "runs"
    assert cli("train", "--out", root / "small", "--epochs", 1, *SMALL).returncode == 0
    assert cli("train", "--out", root / "wide", "--epochs", 2, "--set", "data.limit=1500").returncode == 0
    stopped = root / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "train", "--out", str(stopped), "--epochs", "500",
                             *SMALL, "--set", "train.batch_size=8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (stopped / "current").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    (root / "notes.txt").write_text("not a run")
    result = cli("runs", root, "--sort", "test_acc")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "status", "dataset"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows == [["wide", "finished"], ["small", "finished"], ["stopped", "interrupted"]]
    assert "notes" not in result.stdout
    assert cli("runs", root, "--sort", "nope").returncode == 2


def test_threads_limit_the_blas_pool_during_training(tmp_path):
    from threadpoolctl import threadpool_info
    from neuraterm.core.run import events
    from neuraterm.core.config import Config
    from neuraterm.core.run.trainer import Trainer
    seen = []
    config = Config()
    config.data.limit, config.model.hidden, config.train.epochs, config.train.threads = 600, [16], 1, 1
    def numpy_blas_threads():  # NumPy's OpenBLAS by name: torch, if a test imported it, brings its own BLAS
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]}
    Trainer(config, tmp_path / "t1", [lambda e: seen.append(numpy_blas_threads())
                                      if isinstance(e, events.StepEnded) else None]).run()
    assert seen and all(threads == {1} for threads in seen)
    assert cli("train", "--out", tmp_path / "bad", "--threads", -1).returncode == 2


def test_resume_finds_moved_data_by_its_content_and_refuses_other_data(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (300, 64), dtype=np.uint8), np.arange(300) % 3
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--epochs", 1, "--set", f'data.dataset="{tmp_path / "mine.npz"}"',
               "--set", "model.hidden=[8]").returncode == 0
    (tmp_path / "mine.npz").rename(tmp_path / "moved.npz")
    np.savez(tmp_path / "other.npz", x=x[::-1].copy(), y=y)
    other = cli("resume", run, "--epochs", 2, "--set", f'data.dataset="{tmp_path / "other.npz"}"')
    assert other.returncode == 2 and "changed since this model was trained" in other.stderr, other.stderr
    moved = cli("resume", run, "--epochs", 2, "--set", f'data.dataset="{tmp_path / "moved.npz"}"')
    assert moved.returncode == 0, moved.stderr
    assert checkpoint.load(run).epoch == 2
    assert cli("resume", run, "--epochs", 3, "--set", 'data.dataset="mnist-5k"').returncode == 2


def test_automatic_threads_give_small_models_one_and_big_ones_only_the_free_cores():
    from neuraterm.core.run import threads
    assert threads.choose(0, [784, 128, 10], 64) == (1, "automatic: a small model")
    assert threads.choose(3, [784, 512, 256, 10], 128)[0] == 3
    cores = threads.available_cores()
    spin = "import time\nwhile True: pass\n"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        time.sleep(0.3)
        chosen, why = threads.choose(0, [784, 512, 256, 10], 128)  # fashion-mlp's widest GEMM
        assert chosen == 1 and f"of {cores} cores free" in why
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
