"""A model folder is claimed only when it is new, empty or a model this program may resume, and its
checkpoints are never reached through a link: each refusal is one line, exit 2, and the folder is left
exactly as it was (tests for core/run/checkpoint.py's claims, beside the damage cases of test_bad_input)."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from model_folders import TINY, edit, main, one_line, read, tree
from neuraterm import cli as cli_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "run"
    assert cli_mod.main(["train", "--out", str(out), "--epochs", "1", *TINY]) == 0
    return out


def test_training_into_a_folder_that_holds_a_model_is_refused(trained, capsys):
    before = tree(trained)
    code, _, err = main(capsys, "train", "--out", trained, "--epochs", "1", *TINY)
    assert code == 2
    assert "already holds a model" in one_line(err) and f"neuraterm resume {trained}" in err
    assert tree(trained) == before


def test_training_into_a_folder_of_other_files_is_refused(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("x")
    code, _, err = main(capsys, "train", "--out", folder, "--epochs", "1", *TINY)
    assert code == 2 and "is not empty and is not a neuraterm model folder" in one_line(err)
    assert [p.name for p in folder.iterdir()] == ["todo.txt"]


def test_training_into_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    code, _, err = main(capsys, "train", "--out", path, "--epochs", "1", *TINY)
    assert code == 2 and "exists and is not a folder" in one_line(err)
    assert path.read_text() == "x"


def test_checkpoints_behind_a_link_are_not_resumed(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    (run / "checkpoints").rename(elsewhere)
    (run / "checkpoints").symlink_to(elsewhere)
    before, inside = tree(run), tree(elsewhere)
    code, _, err = main(capsys, "resume", run, "--epochs", "2")
    assert code == 2
    assert "is a symbolic link" in one_line(err) and "links are not followed" in err
    assert tree(run) == before and tree(elsewhere) == inside


def test_a_partial_epoch_state_in_range_is_resumed(trained, tmp_path, capsys):
    """The bounds of a saved partial epoch are inclusive: step 0, nothing correct yet, is a state a stop
    can save, and resumes (the damage cases in test_bad_input.py check the values outside them)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    state = json.loads(read(run, "state/train.json"))
    state["partial"] = {"step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "order_rng": state["order_rng"]}
    edit(run, "state/train.json", json.dumps(state).encode())
    code, _, err = main(capsys, "resume", run, "--epochs", "2")
    assert code == 0, err


def _health_changed(change):
    def damage(run):
        with np.load(io.BytesIO(read(run, "health.npz")), allow_pickle=False) as z:
            arrays = dict(z)
        change(arrays)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        edit(run, "health.npz", buffer.getvalue())  # re-listed in the manifest, as if saved so
    return damage


# One array of health.npz at a time: a dtype or a shape that does not fit the model or the other arrays.
HEALTH_DAMAGE = {
    "values_integers": lambda a: a.update(values=np.nan_to_num(a["values"]).astype(np.int64)),
    "values_booleans": lambda a: a.update(values=a["values"] > 0),
    "values_a_dimension_more": lambda a: a.update(values=a["values"][..., None]),
    "values_a_field_less": lambda a: a.update(values=a["values"][:, :, :-1]),
    "epochs_floats": lambda a: a.update(epochs=a["epochs"].astype(np.float64)),
    "epochs_one_less": lambda a: a.update(epochs=a["epochs"][:-1]),
    "epochs_one_more": lambda a: a.update(epochs=np.append(a["epochs"], a["epochs"][-1:] + 1)),
    "confidence_booleans": lambda a: a.update(confidence=a["confidence"] > 0.5),
    "fields_as_raw_bytes": lambda a: a.update(fields=np.array([f.encode().ljust(24) for f in a["fields"]], dtype="V24")),
    "probe_two_dimensional": lambda a: a.update(probe=a["probe"][:, None]),
    "probe_a_single_row": lambda a: a.update(probe=a["probe"][0]),
    "confidence_integers": lambda a: a.update(confidence=a["confidence"].astype(np.int64)),
    "confidence_a_class_less": lambda a: a.update(confidence=a["confidence"][:, :-1]),
    "confidence_a_class_more": lambda a: a.update(confidence=np.concatenate([a["confidence"], a["confidence"][:, :1]], 1)),
    "layers_one_less": lambda a: a.update(layers=a["layers"][:-1]),
    "kinds_one_less": lambda a: a.update(kinds=a["kinds"][:-1]),
    "layers_one_more": lambda a: a.update(layers=np.append(a["layers"], "extra")),
    "kinds_one_more": lambda a: a.update(kinds=np.append(a["kinds"], "extra")),
    "fields_as_bytes": lambda a: a.update(fields=a["fields"].astype(np.bytes_)),
    "fields_two_dimensional": lambda a: a.update(fields=a["fields"][:, None]),
    "fields_a_single_name": lambda a: a.update(fields=np.array("dead_fraction")),
    "values_a_field_more": lambda a: a.update(values=np.concatenate([a["values"], a["values"][:, :, :1]], axis=2)),
    "probe_floats": lambda a: a.update(probe=a["probe"].astype(np.float64)),
    "every_a_float": lambda a: a.update(every=np.float64(a["every"])),
}


def test_a_health_file_with_python_objects_is_refused_unread(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    _health_changed(lambda a: a.update(layers=np.array(list(a["layers"]), dtype=object)))(run)
    with pytest.raises(NeuratermError, match=r"health.npz: not a layer-health file \(ValueError: Object arrays"):
        checkpoint.load(run)


def test_a_health_file_without_one_of_its_arrays_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    _health_changed(lambda a: a.pop("probe"))(run)
    with pytest.raises(NeuratermError, match=r"health.npz: not a layer-health file \(KeyError: "):
        checkpoint.load(run)


@pytest.mark.parametrize("case", sorted(HEALTH_DAMAGE))
def test_a_health_file_that_does_not_fit_the_model_is_refused(trained, tmp_path, case):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    _health_changed(HEALTH_DAMAGE[case])(run)
    with pytest.raises(NeuratermError, match="health.npz: its arrays do not describe 2 layers and 10 classes"):
        checkpoint.load(run)


def test_the_health_file_as_saved_is_accepted(trained, tmp_path):
    """The same rewrite with nothing changed loads: the cases above fail for their change alone."""
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    _health_changed(lambda a: None)(run)
    assert checkpoint.load(run).health["values"].shape[1] == 2


def test_a_folder_name_keeps_80_safe_characters():
    assert checkpoint.sanitize_name("a" * 80) == "a" * 80
    assert checkpoint.sanitize_name("b" * 81) == "b" * 80
    assert checkpoint.sanitize_name("x y/z") == "x-y-z" and checkpoint.sanitize_name("../") == "run"
    assert checkpoint.sanitize_name("a/../b") == "a-..-b" and checkpoint.sanitize_name("..") == "run"


def test_a_plateau_run_resumes(tmp_path, capsys):
    """Its saved schedule state holds every field of the plateau schedule: all of them are accepted."""
    run = tmp_path / "run"
    assert main(capsys, "train", "--out", run, "--epochs", "1", *TINY, "--set", 'schedule.name="plateau"')[0] == 0
    code, _, err = main(capsys, "resume", run, "--epochs", "2")
    assert code == 0, err


def test_a_hidden_layer_of_one_unit_is_a_model_like_any_other(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(capsys, "train", "--out", run, "--epochs", "1", "--set", "data.limit=600",
                "--set", "model.hidden=[1]")[0] == 0
    code, _, err = main(capsys, "eval", run, "--noise", "0")
    assert code == 0, err
