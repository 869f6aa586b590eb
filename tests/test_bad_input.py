"""Every bad input is one line and exit 2, and leaves every folder as it was: presets and options, model
folders damaged by hand (with and without keeping MANIFEST.json consistent), datasets checked before
training, and configs that must read back exactly as they were written."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from model_folders import TINY, cli, command, edit, env_with, main, npy, one_line, read, tree
from neuraterm import cli as cli_mod
from neuraterm.core import toml_text
from neuraterm.core.run import checkpoint
from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError


class _Runs(dict):
    """Finished tiny runs to copy and damage, each trained when a test first asks for it (a test that
    runs alone, as mutation testing runs them, trains only the one it damages)."""
    KINDS = {"plain": [], "standardize": ["--set", 'data.normalize="standardize"'],
             "plateau": ["--set", 'schedule.name="plateau"'], "dropout": ["--set", "model.dropout=0.2"]}

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.factory = tmp_path_factory

    def __missing__(self, name):
        out = self.factory.mktemp(name) / "run"
        assert cli_mod.main(["train", "--out", str(out), "--epochs", "2", *TINY, *self.KINDS[name]]) == 0
        self[name] = out
        return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished tiny runs: plain, standardized inputs, a plateau schedule, dropout (`runs["plain"]`)."""
    return _Runs(tmp_path_factory)


# -- presets, options and the command line -----------------------------------------------------------
DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"
BAD_PRESETS = {
    "lr_inf": ("[optimizer]\nlr = inf\n", "optimizer.lr must be a finite number"),
    "lr_nan": ("[optimizer]\nlr = nan\n", "optimizer.lr must be a finite number"),
    "rmsprop_alpha_2": ('[optimizer]\nname = "rmsprop"\nalpha = 2\n', "optimizer.alpha must be in [0, 1)"),
    "exponential_gamma_negative": ('[schedule]\nname = "exponential"\ngamma = -1\n', "schedule.gamma"),
    "step_size_0": ('[schedule]\nname = "step"\nstep_size = 0\n', "schedule.step_size must be >= 1"),
    "deeply_nested": (DEEP, "nested too deeply"),
    "deeply_nested_table": ("".join(f"[{'a.' * 400}b]\n"), "unknown key"),
    "hidden_zero": ("[model]\nhidden = [0]\n", "model.hidden"),
    "batch_zero": ("[train]\nbatch_size = 0\n", "train.batch_size"),
    "limit_negative": ("[data]\nlimit = -1\n", "data.limit"),
    "noise_negative": ("[train]\nnoise = [0.1, -0.2]\n", "train.noise"),
    "noise_inf": ("[train]\nnoise = [inf]\n", "finite"),
    "raw_newline_in_string": ('description = "two\nlines"\n', "not valid TOML"),
    "not_utf8": (b"name = \"\xff\"\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_a_bad_preset_is_one_line_and_creates_nothing(tmp_path, capsys, case):
    text, message = BAD_PRESETS[case]
    preset = tmp_path / "preset.toml"
    preset.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, _, err = main(capsys, "train", "--preset", preset, "--out", tmp_path / "run")
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "train.seed must be between 0 and"),
    (["--seed", str(2**32)], "train.seed must be between 0 and"),
    (["--epochs", "0"], "train.epochs"),
    (["--threads", "-1"], "train.threads"),
    (["--set", "optimizer.lr=inf"], "finite"),
    (["--set", "optimizer.lr=1e999"], "finite"),
    (["--set", "optimizer.lr=" + "[" * 3000 + "]" * 3000], "optimizer.lr"),
    (["--set", "model.hidden=[1000000000]"], "GiB"),
    (["--set", "model.hidden=[1000000, 1000000]"], "GiB"),
    (["--set", "description=\udcff"], "description"),  # an argv byte that is not UTF-8 (surrogate-escaped)
    (["--preset", "\x1b[2Jnot-a-preset\n"], "unknown preset"),
], ids=["seed-1", "seed-2**32", "epochs0", "threads-1", "lr-inf", "lr-overflow", "set-nested", "hidden-1e9",
        "hidden-2x1e6", "description-not-utf8", "preset-control-chars"])
def test_a_bad_option_is_one_line_and_creates_nothing(tmp_path, capsys, args, message):
    code, _, err = main(capsys, "train", "--out", tmp_path / "run", *TINY, *args)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "run").exists()


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path):
    """With the address space capped at 4 GiB, anything that tried to allocate 18 TiB would die with a
    MemoryError; the refusal comes first and says how much it would take."""
    import resource
    cap = 4 * 2**30
    result = subprocess.run(command("train", "--out", tmp_path / "run", "--set", "model.hidden=[1000000000]"),
                            capture_output=True, text=True, env=env_with({"OPENBLAS_NUM_THREADS": "1"}), timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "GiB" in line and "795,000,000,010 parameters" in line and "model.hidden" in line
    assert not (tmp_path / "run").exists()


def test_an_undecodable_argument_from_a_real_command_line_is_one_line(tmp_path):
    """Bytes that are not UTF-8 in argv (a Latin-1 terminal) reach the config as surrogates, which no
    config.toml can hold: refused up front, not after training an epoch."""
    result = subprocess.run([os.fsencode(a) for a in command("train", "--out", tmp_path / "run", *TINY)]
                            + [b"--set", b"description=caf\xe9"], capture_output=True, env=env_with(), timeout=120)
    assert result.returncode == 2, result.stderr
    assert b"description" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "abc"], ["bogus"], ["eval"], ["train", "--nope"], ["train", "--set"],
    ["eval", "x", "--noise"], ["--epochs", "3", "runs"], ["runs", "a", "b"], ["export", "x"],
], ids=lambda a: " ".join(a))
def test_a_usage_error_is_one_line(capsys, args):
    code, _, err = main(capsys, *args)
    assert code == 2 and one_line(err).startswith("neuraterm: error: ") and "--help" in err


@pytest.mark.parametrize("noise", ["-0.5", "nan", "inf", "-inf", "a,b", "0,,-1", "1e999"])
def test_eval_refuses_bad_noise(runs, capsys, noise):
    code, _, err = main(capsys, "eval", runs["plain"], "--noise", noise)
    assert code == 2 and "--noise" in one_line(err)


@pytest.mark.parametrize("path", ["no\nsuch\nfolder", "\x1b]0;title\x07", "tab\there"])
def test_a_path_with_control_characters_is_still_one_line(tmp_path, capsys, path):
    code, _, err = main(capsys, "eval", tmp_path / path)
    assert code == 2 and "no such model folder" in one_line(err)
    assert "\x1b" not in err and "\x07" not in err


def test_a_path_with_control_characters_in_a_real_process_is_one_line(tmp_path):
    result = cli("resume", tmp_path / "a\nb")
    assert result.returncode == 2 and one_line(result.stderr)


# -- model folders damaged by hand ------------------------------------------------------------------
def _json(run, rel):
    return json.loads(read(run, rel))


def _with(run, rel, change):
    """A JSON file of the checkpoint changed by `change(value)` (which may return a new value)."""
    value = _json(run, rel)
    value = change(value) or value
    edit(run, rel, json.dumps(value).encode())


def _set(key, value):
    def change(d):
        d[key] = value
    return change


def _config(run, old, new):
    text = read(run, "config.toml").decode()
    assert old in text
    edit(run, "config.toml", text.replace(old, new, 1).encode())


def _history(run, change):
    lines = read(run, "history.csv").decode().splitlines()
    edit(run, "history.csv", ("\n".join(change(lines)) + "\n").encode())


def _state(key, value):
    return lambda run: _with(run, "state/train.json", _set(key, value))


def _early(**values):
    return lambda run: _with(run, "state/train.json", lambda s: s["early"].update(values))


def _partial(**values):
    def change(s):
        s["partial"] = {"step": 1, "loss_sum": 0.0, "correct": 0, "seen": 8, "order_rng": s["order_rng"], **values}
    return lambda run: _with(run, "state/train.json", change)


def _plateau(**values):
    return lambda run: _with(run, "state/train.json", lambda s: s["plateau"].update(values))


def _weights(name, fn):
    return lambda run: edit(run, f"weights/{name}.npy", npy(fn(np.load(checkpoint.checkpoint_dir(run) / "weights" /
                                                                         f"{name}.npy"))))


def _nan(a):
    a = a.copy()
    a.flat[3] = np.nan
    return a


def _inf(a):
    a = a.copy()
    a.flat[0] = -np.inf
    return a


def _pickled(run):
    import io
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    edit(run, "weights/0.weight.npy", buffer.getvalue())


def _flip_byte(run, rel):
    """One bit of the last weight's lowest mantissa byte, same size: still a valid finite array, so
    only the SHA-256 can tell (a size-only check would load it)."""
    data = bytearray(read(run, rel))
    data[-4] ^= 1
    (checkpoint.checkpoint_dir(run) / rel).write_bytes(bytes(data))


def _file_only(rel, data):
    """Only the file changes: MANIFEST.json no longer matches it."""
    return lambda run: (checkpoint.checkpoint_dir(run) / rel).write_bytes(data)


def _architecture(change):
    return lambda run: _with(run, "model.json", lambda m: [change(m["architecture"]), None][1])


# case: (run, damage, what the one line must say, which commands fail: "both" or "resume")
DAMAGE = {
    # config.toml
    "config_truncated_at_a_section": ("plain", lambda run: edit(run, "config.toml", read(run, "config.toml").split(
        b"[train]")[0]), "missing", "both"),
    "config_emptied": ("plain", lambda run: edit(run, "config.toml", b""), "missing", "both"),
    "config_one_key_removed": ("plain", lambda run: _config(run, "lr = 0.001\n", ""), "missing lr", "both"),
    "config_unknown_key": ("plain", lambda run: _config(run, "[model]\n", "[model]\nwidth = 3\n"), "unknown key",
                           "both"),
    "config_raw_control_character": ("plain", lambda run: _config(run, 'description = "', 'description = "\x01'),
                                     "not valid TOML", "both"),
    "config_hidden_disagrees_with_weights": ("plain", lambda run: _config(run, "hidden = [16]", "hidden = [17]"),
                                             "hidden", "both"),
    "config_hidden_1e9": ("plain", lambda run: _config(run, "hidden = [16]", "hidden = [1000000000]"), "hidden",
                          "both"),
    "config_changed_without_manifest": ("plain", lambda run: (checkpoint.checkpoint_dir(run) / "config.toml").write_text(
        ""), "changed since it was saved", "both"),
    # model.json
    "arrays_a_list": ("plain", lambda run: _with(run, "model.json", _set("arrays", [])), "'arrays'", "both"),
    "arrays_a_string": ("plain", lambda run: _with(run, "model.json", _set("arrays", "0.weight")), "'arrays'", "both"),
    "arrays_shape_a_string": ("plain", lambda run: _with(run, "model.json", lambda m: m["arrays"]["0.weight"].update(
        shape="16x784")), "shape", "both"),
    "arrays_shape_floats": ("plain", lambda run: _with(run, "model.json", lambda m: m["arrays"]["0.bias"].update(
        shape=[16.0])), "shape", "both"),
    "arrays_name_escapes": ("plain", lambda run: _with(run, "model.json", lambda m: m["arrays"].update(
        {"../../x": {"shape": [1], "dtype": "float32"}})), "not a plain file name", "both"),
    "architecture_a_string": ("plain", lambda run: _with(run, "model.json", _set("architecture", "mlp")),
                              "architecture", "both"),
    "architecture_sizes_huge": ("plain", _architecture(lambda a: a.update(sizes=[784, 10**9, 10])), "sizes", "both"),
    "architecture_layers_missing": ("plain", _architecture(lambda a: a.pop("layers")), "layers", "both"),
    "class_names_a_number": ("plain", lambda run: _with(run, "model.json", _set("class_names", 10)), "class_names",
                             "both"),
    "model_json_deeply_nested": ("plain", lambda run: edit(run, "model.json", b"[" * 100000 + b"]" * 100000),
                                 "not valid JSON", "both"),
    "model_json_format_9": ("plain", lambda run: _with(run, "model.json", _set("format", 9)), "format", "both"),
    # state/train.json
    "epoch_a_string": ("plain", _state("epoch", "2"), "'epoch'", "both"),
    "epoch_negative": ("plain", _state("epoch", -5), "'epoch'", "both"),
    "epoch_a_bool": ("plain", _state("epoch", True), "'epoch'", "both"),
    "epoch_disagrees_with_history": ("plain", _state("epoch", 1), "epochs", "both"),
    "early_a_string": ("plain", _state("early", "x"), "'early'", "both"),
    "early_best_a_string": ("plain", _early(best="0.5"), "'early'", "both"),
    "early_wait_negative": ("plain", _early(wait=-1), "'early'", "both"),
    "order_rng_a_list": ("plain", _state("order_rng", []), "order_rng", "both"),
    "order_rng_garbage": ("plain", _state("order_rng", {"bit_generator": "PCG64", "state": "x"}), "order_rng", "both"),
    "order_rng_another_generator": ("plain", _state("order_rng", {"bit_generator": "MT19937", "state": {}}),
                                    "order_rng", "both"),
    "partial_step_a_string": ("plain", _partial(step="1"), "'partial'", "both"),
    "partial_step_past_the_epoch": ("plain", _partial(step=10**6), "partial", "resume"),
    "partial_order_rng_garbage": ("plain", _partial(order_rng={}), "order_rng", "both"),
    "partial_seen_negative": ("plain", _partial(seen=-8), "'partial'", "both"),
    "partial_step_negative": ("plain", _partial(step=-1), "'partial'", "both"),
    "partial_correct_negative": ("plain", _partial(correct=-1), "'partial'", "both"),
    "partial_correct_past_seen": ("plain", _partial(correct=9), "'partial'", "both"),
    "reference_loss_a_string": ("plain", _state("reference_loss", "2.3"), "reference_loss", "both"),
    "reference_loss_nan": ("plain", lambda run: edit(run, "state/train.json", read(run, "state/train.json").replace(
        b'"reference_loss": ', b'"reference_loss": NaN, "x": ')), "reference_loss", "both"),
    "dropout_rng_a_dict": ("dropout", _state("dropout_rng", {}), "dropout_rng", "both"),
    "dropout_rng_garbage": ("dropout", _state("dropout_rng", [{"x": 1}]), "dropout_rng", "both"),
    "plateau_a_list": ("plateau", _state("plateau", []), "'plateau'", "both"),
    "plateau_lr_a_string": ("plateau", _plateau(lr="0.1"), "'plateau'", "both"),
    "plateau_unknown_field": ("plateau", _plateau(cooldown=3), "'plateau'", "both"),
    # each field's range: an lr of 0, a negative count, a best that is not a number
    "plateau_lr_zero": ("plateau", _plateau(lr=0.0), "'plateau'", "both"),
    "plateau_lr_negative": ("plateau", _plateau(lr=-0.1), "'plateau'", "both"),
    "plateau_bad_epochs_negative": ("plateau", _plateau(bad_epochs=-1), "'plateau'", "both"),
    "plateau_patience_negative": ("plateau", _plateau(patience=-1), "'plateau'", "both"),
    "plateau_best_a_string": ("plateau", _plateau(best="0.5"), "'plateau'", "both"),
    "train_json_not_json": ("plain", lambda run: edit(run, "state/train.json", b"{"), "not valid JSON", "both"),
    # history.csv
    "history_extra_field": ("plain", lambda run: _history(run, lambda ls: ls[:-1] + [ls[-1] + ",7"]), "fields",
                            "both"),
    "history_missing_field": ("plain", lambda run: _history(run, lambda ls: ls[:-1] + [ls[-1].rsplit(",", 1)[0]]),
                              "fields", "both"),
    "history_not_a_number": ("plain", lambda run: _history(run, lambda ls: ls[:-1] + ["2,x" + ls[-1][ls[-1].index(
        ",", 2):]]), "malformed", "both"),
    "history_epoch_skipped": ("plain", lambda run: _history(run, lambda ls: ls[:-1] + ["3" + ls[-1][1:]]),
                              "expected 2", "both"),
    "history_wrong_header": ("plain", lambda run: _history(run, lambda ls: ["epoch,loss"] + ls[1:]), "columns",
                             "both"),
    # normalization
    "mean_missing": ("standardize", lambda run: edit(run, "normalization/mean.npy", None), "mean.npy", "both"),
    "mean_wrong_shape": ("standardize", lambda run: edit(run, "normalization/mean.npy", npy(np.zeros(10, np.float32))),
                         "mean.npy", "both"),
    "mean_nan": ("standardize", lambda run: edit(run, "normalization/mean.npy", npy(np.full(784, np.nan, np.float32))),
                 "mean.npy", "both"),
    "std_zero": ("standardize", lambda run: edit(run, "normalization/std.npy", npy(np.zeros(784, np.float32))),
                 "std.npy", "both"),
    # weights and optimizer state
    "weights_nan": ("plain", _weights("0.weight", _nan), "NaN", "both"),
    "weights_inf": ("plain", _weights("1.bias", _inf), "NaN or infinite", "both"),
    "weights_shape": ("plain", _weights("0.weight", lambda a: a[:3]), "does not match model.json", "both"),
    "weights_dtype": ("plain", _weights("0.weight", lambda a: a.astype(np.float64)), "does not match model.json",
                      "both"),
    "weights_missing": ("plain", lambda run: edit(run, "weights/1.bias.npy", None), "missing", "both"),
    "weights_extra": ("plain", lambda run: edit(run, "weights/9.weight.npy", npy(np.zeros(2, np.float32))),
                      "unexpected", "both"),
    "npy_garbage": ("plain", lambda run: edit(run, "weights/0.weight.npy", os.urandom(3000)), "not a .npy file",
                    "both"),
    "npy_etc_passwd": ("plain", lambda run: edit(run, "weights/0.weight.npy", Path("/etc/passwd").read_bytes()),
                       "not a .npy file", "both"),
    "npy_empty": ("plain", lambda run: edit(run, "weights/0.weight.npy", b""), "it is empty", "both"),
    "npy_truncated": ("plain", lambda run: edit(run, "weights/0.weight.npy", read(run, "weights/0.weight.npy")[:200]),
                      "damaged .npy", "both"),
    "npy_header_only": ("plain", lambda run: edit(run, "weights/0.weight.npy", b"\x93NUMPY\x01\x00"), "damaged .npy",
                        "both"),
    "npy_pickled": ("plain", _pickled, "pickled", "both"),
    "npy_complex": ("plain", _weights("1.bias", lambda a: a.astype(np.complex64)), "not a numeric array", "both"),
    "npy_one_byte_flipped_same_size": ("plain", lambda run: _flip_byte(run, "weights/0.weight.npy"),
                                       "changed since it was saved", "both"),
    "npy_changed_without_manifest": ("plain", _file_only("weights/0.weight.npy", b"\x93NUMPY garbage"),
                                     "changed since it was saved", "both"),
    "optimizer_moment_shape": ("plain", lambda run: edit(run, "state/optimizer/m.npy", npy(np.zeros(3, np.float32))),
                               "optimizer state", "resume"),
    "optimizer_steps_missing": ("plain", lambda run: edit(run, "state/optimizer/steps.npy", None), "steps", "resume"),
    # the checkpoint as a whole
    "manifest_garbage": ("plain", _file_only("MANIFEST.json", b"{]"), "MANIFEST.json", "both"),
    "manifest_files_a_list": ("plain", _file_only("MANIFEST.json", b'{"files": []}'), "manifest", "both"),
    "manifest_missing": ("plain", lambda run: (checkpoint.checkpoint_dir(run) / checkpoint.MANIFEST).unlink(),
                         "incomplete checkpoint", "both"),
    "current_dangling": ("plain", lambda run: checkpoint._point(run, "current", "checkpoints/000099"),
                         "incomplete checkpoint", "both"),
    "current_points_outside": ("plain", lambda run: checkpoint._point(run, "current", "/etc"), "no checkpoint",
                               "both"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_model_folder_is_one_line_and_left_as_it_was(tmp_path, runs, capsys, case):
    which, damage, message, commands = DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(runs[which], run, symlinks=True)
    damage(run)
    before = tree(run)
    tried = [["resume", run, "--epochs", 4]] + ([["eval", run, "--noise", "0"], ["export", run, tmp_path / "w.npz"]]
                                                if commands == "both" else [])
    for args in tried:
        code, _, err = main(capsys, *args)
        assert code == 2, (args, err)
        assert message in one_line(err), (args, err)
    assert tree(run) == before
    assert not (tmp_path / "w.npz").exists()


def test_a_foreign_folder_cannot_be_resumed_or_evaluated(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    for args in (["resume", foreign], ["eval", foreign]):
        code, _, err = main(capsys, *args)
        assert code == 2 and "not a neuraterm model folder" in one_line(err)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_a_format_1_folder_is_evaluated_but_not_resumed(tmp_path, runs, capsys):
    """neuraterm 0.1 wrote plain files at the top level: they are read (checked file by file, no manifest),
    never rewritten."""
    legacy = tmp_path / "legacy"
    shutil.copytree(checkpoint.checkpoint_dir(runs["plain"]), legacy)
    (legacy / checkpoint.MANIFEST).unlink()
    before = tree(legacy)
    code, _, err = main(capsys, "eval", legacy, "--noise", "0")
    assert code == 0, err
    code, _, err = main(capsys, "resume", legacy, "--epochs", 3)
    assert code == 2 and "format 1" in one_line(err)
    assert tree(legacy) == before


def test_read_array_says_what_a_file_really_is(tmp_path):
    cases = {b"": "it is empty", b"root:x:0:0:root:/root:/bin/bash\n": "not a .npy file",
             b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'": "damaged .npy file"}
    for data, message in cases.items():
        (tmp_path / "a.npy").write_bytes(data)
        with pytest.raises(NeuratermError, match=message.replace(".", r"\.")) as info:
            checkpoint.read_array(tmp_path / "a.npy")
        assert "pickled" not in str(info.value)


# -- datasets, checked before anything is created ----------------------------------------------------
def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + \
        array.astype(np.uint8).tobytes()


def _mnist_files(folder: Path, train_labels=None, test_shape=(50, 28, 28), test_labels=None) -> Path:
    """Unpacked MNIST-format files (read without a checksum), 200 train and `test_shape` test images."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    train_y = np.arange(200) % 10 if train_labels is None else train_labels
    test_y = np.arange(test_shape[0]) % 10 if test_labels is None else test_labels
    for name, array in (("train-images-idx3-ubyte", rng.integers(0, 256, (200, 28, 28))),
                        ("train-labels-idx1-ubyte", train_y),
                        ("t10k-images-idx3-ubyte", rng.integers(0, 256, test_shape)),
                        ("t10k-labels-idx1-ubyte", test_y)):
        (folder / name).write_bytes(_idx(np.asarray(array)))
    return folder


@pytest.mark.parametrize("case,message", [
    ("train_label_out_of_range", "labels outside 0..9"),
    ("test_label_out_of_range", "labels outside 0..9"),
    ("test_images_of_another_size", "images of different sizes"),
    ("empty_test_split", "split is empty"),
    ("embedded_without_a_test_split", "split is empty"),
])
def test_data_is_checked_before_training(tmp_path, capsys, monkeypatch, case, message):
    monkeypatch.setenv("NEURATERM_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = tmp_path / "data"
    if case == "train_label_out_of_range":
        _mnist_files(data, train_labels=np.r_[np.arange(199) % 10, 12])
    elif case == "test_label_out_of_range":
        _mnist_files(data, test_labels=np.r_[np.arange(49) % 10, 10])
    elif case == "test_images_of_another_size":
        _mnist_files(data, test_shape=(50, 20, 20))
    elif case == "empty_test_split":
        _mnist_files(data, test_shape=(0, 28, 28))
    args = ["--set", "data.test_fraction=0.0"] if case.startswith("embedded") else \
        ["--set", 'data.dataset="mnist"', "--data-dir", data]
    code, _, err = main(capsys, "train", "--out", tmp_path / "run", "--epochs", 1, *TINY, *args)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "run").exists()


# -- configs read back exactly as written -----------------------------------------------------------
_text = st.text(st.characters(codec="utf-8"), max_size=30)
_FIELDS = {
    str: _text,
    int: st.one_of(st.integers(-5, 2000), st.integers()),
    float: st.one_of(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-12, 1e12)),
    bool: st.booleans(),
}


def _value(kind, choices=()):
    import typing
    if typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        return st.lists(_value(item), max_size=4) if item is not int else st.lists(st.integers(1, 64), max_size=3)
    if typing.get_origin(kind) is typing.Union:  # train.keep: a word or a number
        base = st.one_of(*(_FIELDS[k] for k in typing.get_args(kind)))
        return st.one_of(st.sampled_from(choices), base) if choices else base
    base = _FIELDS[kind]
    return st.one_of(st.sampled_from(choices), base) if choices else base


def _section(cls, choices):
    import dataclasses
    import typing
    hints = typing.get_type_hints(cls)
    return st.fixed_dictionaries({}, optional={f.name: _value(hints[f.name], choices.get(f.name, ()))
                                               for f in dataclasses.fields(cls)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.fixed_dictionaries({}, optional={
    "name": _text, "description": _text,
    "data": _section(config_mod.DataConfig, {"normalize": ("scale", "standardize"), "placement": ("auto", "host")}),
    "model": _section(config_mod.ModelConfig, {"activation": ("relu", "tanh"), "init": ("auto", "he")}),
    "optimizer": _section(config_mod.OptimizerConfig, {"name": ("sgd", "adam", "rmsprop")}),
    "schedule": _section(config_mod.ScheduleConfig, {"name": ("constant", "step", "plateau"),
                                                     "monitor": ("val_loss",)}),
    "train": _section(config_mod.TrainConfig, {"device": ("cpu",), "monitor": ("val_acc",), "keep": ("all", 3)}),
}))
def test_every_config_that_loads_saves_and_loads_back_identically(values):
    try:
        config = config_mod.from_dict(values)
    except NeuratermError as exc:
        assert "\n" not in str(exc)
        event("refused")
        return
    event("loads")
    text = config_mod.to_toml(config)
    data = text.encode("utf-8")  # a config that loads can always be written
    again = config_mod.parse_toml(data, "config.toml", complete=True)
    assert again == config
    assert config_mod.to_toml(again) == text
    assert not any(ord(ch) < 0x20 and ch != "\n" or ord(ch) == 0x7f for ch in text)  # TOML's rule for strings


def test_a_run_with_control_characters_in_its_config_trains_evaluates_and_resumes(tmp_path, capsys):
    name = "two\nlines\x1b[31m\ttab \"quoted\" \\ back\x7f"
    preset = tmp_path / "odd.toml"
    data_dir = str(tmp_path / "dir\nwith newline")
    preset.write_text(f"name = {toml_text.string(name)}\ndescription = {toml_text.string(name * 2)}\n"
                      f"[data]\ndata_dir = {toml_text.string(data_dir)}\n")
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--preset", preset, "--out", run, "--epochs", 1, *TINY)
    assert code == 0, err
    assert checkpoint.load(run).config.name == name
    for args in (["eval", run, "--noise", "0"], ["resume", run, "--epochs", 2]):
        code, _, err = main(capsys, *args)
        assert code == 0, (args, err)
    assert checkpoint.load(run).config.description == name * 2
