"""core/run/checkpoint.py in this process: the names and numbers a save gives, the links it makes and
reads through, what a failed save leaves, and the checks a hand-edited manifest, model.json or
train.json meets. Each case is written out by hand (folder names, link targets, messages); the damage
cases that go through the command line are in test_bad_input.py and test_checkpoint_integrity.py."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_folders import TINY, edit, read
from neuraterm import cli as cli_mod
from neuraterm.core.errors import NeuratermError, RunFailed
from neuraterm.core.run import checkpoint, folder_files
from neuraterm.core.run.checkpoint import RunWriter


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run, and its checkpoint as loaded (it has a report and health.npz)."""
    out = tmp_path_factory.mktemp("writer") / "run"
    assert cli_mod.main(["train", "--out", str(out), "--epochs", "1", *TINY]) == 0
    return out, checkpoint.load(out)


def at_epoch(snap, epoch: int, report: bool = False, scale: float = 1.0):
    """The snapshot as if saved at the end of `epoch` (history cut or repeated to match), without its
    report unless asked, with its weights scaled (to tell checkpoints apart)."""
    history = [dict(snap.history[0], epoch=e) for e in range(1, epoch + 1)]
    return dataclasses.replace(snap, train_state={**snap.train_state, "epoch": epoch}, history=history,
                               weights={k: v * scale for k, v in snap.weights.items()},
                               report=snap.report if report else None)


@contextlib.contextmanager
def writing(run: Path, new: bool = True):
    """The folder's writer, closed (its lock released) however the block ends."""
    writer = RunWriter(run, new=new)
    try:
        yield writer
    finally:
        writer.close()


def forked(snap, run: Path) -> Path:
    """A fork's first save: epoch 2 as `best` (checkpoint 1), epoch 3 with its report and weights x2 as `current`."""
    with writing(run) as writer:
        writer.save(at_epoch(snap, 3, report=True, scale=2.0), best_snap=at_epoch(snap, 2))
    return run


def load_error(path: Path, **options) -> str:
    """The one-line error that loading `path` gives."""
    with pytest.raises(NeuratermError) as caught:
        checkpoint.load(path, **options)
    return str(caught.value)


def link(run: Path, name: str) -> str:
    return os.readlink(run / name)


def manifest(folder: Path) -> dict:
    return json.loads((folder / checkpoint.MANIFEST).read_text())


# -- names and numbers ----------------------------------------------------------------------------
def test_a_new_run_folder_is_named_after_the_preset_and_the_time_then_numbered(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint.time, "strftime", lambda fmt: "20261203-170000")
    first = checkpoint.new_run_dir(tmp_path, "my preset/x")
    assert first == tmp_path / "my-preset-x-20261203-170000"
    first.mkdir()
    second = checkpoint.new_run_dir(tmp_path, "my preset/x")
    assert second == tmp_path / "my-preset-x-20261203-170000-2"
    second.symlink_to(tmp_path / "nowhere")  # a dangling link is a name taken too
    assert checkpoint.new_run_dir(tmp_path, "my preset/x") == tmp_path / "my-preset-x-20261203-170000-3"
    assert not (tmp_path / "my-preset-x-20261203-170000-3").exists()


def test_saves_are_numbered_from_one_and_current_follows_the_last(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        assert writer.save(at_epoch(snap, 1)) == run / "checkpoints" / "000001"
        assert link(run, "current") == "checkpoints/000001" and not (run / "best").is_symlink()
        assert writer.save(at_epoch(snap, 2), best=True) == run / "checkpoints" / "000002"
        assert link(run, "current") == link(run, "best") == "checkpoints/000002"
    assert not (run / "report.json").is_symlink()  # a link only for what the checkpoint holds
    assert checkpoint.load(run).epoch == 2
    assert link(run, "weights") == "current/weights" and link(run, "history.csv") == "current/history.csv"


def test_a_checkpoint_past_current_is_swept_at_open_and_its_number_follows_current(finished, tmp_path):
    """A checkpoint folder numbered past `current` is a save killed before its switch: the next writer
    removes it, and numbers its own save after the current one."""
    trained, snap = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    current = int(link(run, "current").rsplit("/", 1)[1])
    shutil.copytree(run / "checkpoints" / f"{current:06d}", run / "checkpoints" / f"{current + 5:06d}")
    with writing(run, new=False) as writer:
        assert not (run / "checkpoints" / f"{current + 5:06d}").exists()
        assert writer.save(at_epoch(snap, 2)) == run / "checkpoints" / f"{current + 1:06d}"


def test_an_epoch_zero_save_does_not_end_an_epoch(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        zero = manifest(writer.save(at_epoch(snap, 0)))
        assert checkpoint.load(run).epoch == 0  # a state at epoch 0 is a state like any other
        one = writer.save(at_epoch(snap, 1))
    assert (zero["epoch"], zero["epoch_end"]) == (0, False)
    assert (manifest(one)["epoch"], manifest(one)["epoch_end"]) == (1, True)
    assert manifest(run / "current")["epoch"] == 1
    assert checkpoint.epoch_checkpoints(run) == {1: one}


def test_the_reports_checkpoint_and_a_partial_one_do_not_end_an_epoch(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    partial = {"step": 3, "loss_sum": 1.5, "correct": 2, "seen": 24, "order_rng": snap.train_state["order_rng"]}
    with_partial = dataclasses.replace(at_epoch(snap, 1), train_state={**at_epoch(snap, 1).train_state,
                                                                       "partial": partial})
    with writing(run, new=True) as writer:
        stopped = manifest(writer.save(with_partial))
        reported = manifest(writer.save(at_epoch(snap, 1, report=True)))
    assert stopped["epoch_end"] is False and reported["epoch_end"] is False
    assert checkpoint.load(run).report is not None


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_of_two_checkpoints_of_one_epoch_the_later_one_counts(finished, tmp_path, monkeypatch, order):
    """A sweep killed before it removed the older one leaves both; whatever order the folder lists
    them in, the epoch's checkpoint is the later save."""
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    source = checkpoint.checkpoint_dir(run)
    assert json.loads((source / "state" / "train.json").read_text())["epoch"] == 1
    for n in (11, 12, 13):  # three saves of epoch 2, each an epoch's end by its manifest
        folder = run / "checkpoints" / f"{n:06d}"
        shutil.copytree(source, folder)
        m = manifest(folder)
        m.update(epoch=2, epoch_end=True)
        (folder / checkpoint.MANIFEST).write_text(json.dumps(m))
    os.unlink(run / "current")
    os.symlink("checkpoints/000013", run / "current")
    listed = folder_files.list_dir

    def in_order(root, rel=""):
        entries = sorted(listed(root, rel))
        return entries[::-1] if order == "reversed" else entries
    monkeypatch.setattr(folder_files, "list_dir", in_order)
    assert checkpoint.epoch_checkpoints(run)[2] == run / "checkpoints" / "000013"


def test_a_forks_first_save_writes_the_best_epoch_then_the_current_one(finished, tmp_path):
    """best -> the first of the two, current -> the second; the top-level links are made for what the
    current checkpoint holds (here its report, which the best one lacks)."""
    _, snap = finished
    run = tmp_path / "fork"
    with writing(run, new=True) as writer:
        folder = writer.save(at_epoch(snap, 3, report=True, scale=2.0), best_snap=at_epoch(snap, 2))
    assert folder == run / "checkpoints" / "000002"
    assert link(run, "best") == "checkpoints/000001" and link(run, "current") == "checkpoints/000002"
    assert sorted(os.listdir(run / "checkpoints")) == ["000001", "000002"]
    assert checkpoint.load(run, checkpoint.BEST).epoch == 2 and checkpoint.load(run).epoch == 3
    assert link(run, "report.json") == "current/report.json"
    assert json.loads((run / "report.json").read_text()) == snap.report
    both = checkpoint.load(run, with_best=True)
    name = next(iter(snap.weights))
    np.testing.assert_array_equal(both.weights[name], snap.weights[name] * 2.0)
    np.testing.assert_array_equal(both.best_weights[name], snap.weights[name])
    assert checkpoint.load(run, checkpoint.BEST, with_best=True).best_weights == {}


def test_a_save_without_a_best_snapshot_writes_one_checkpoint(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        writer.save(at_epoch(snap, 1, report=True))
    assert os.listdir(run / "checkpoints") == ["000001"] and not (run / "best").is_symlink()


# -- claiming a folder ----------------------------------------------------------------------------
def test_only_the_leftovers_of_a_killed_claim_let_a_folder_be_claimed(tmp_path):
    left = tmp_path / "left"
    left.mkdir()
    (left / ".lock").write_text("")
    (left / ".neuraterm.tmp-123").write_text("")
    RunWriter.check_new(left)
    for name in (".cache", "-a", ".neuraterm.tmp", "lock"):  # each sorts or starts near the leftovers' names
        other = tmp_path / f"other{name}"
        other.mkdir()
        (other / name).write_text("")
        with pytest.raises(NeuratermError, match="is not empty and is not a neuraterm model folder"):
            RunWriter.check_new(other)


def test_a_model_folder_that_cannot_be_created_is_one_error(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(Path, "mkdir", no_space)
    with pytest.raises(RunFailed, match=r"^no space left on device while saving .*/a; no checkpoint was saved yet$"):
        RunWriter(tmp_path / "a", new=True)
    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(NeuratermError, match=r"/b: cannot create the model folder \(Permission denied\)$"):
        RunWriter(tmp_path / "b", new=True)


def test_a_lock_or_marker_that_cannot_be_written_is_one_error(tmp_path, monkeypatch):
    from neuraterm.core.run import lock

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(lock.WriterLock, "acquire", no_space)
        with pytest.raises(RunFailed, match="no space left on device while saving .*; no checkpoint was saved yet"):
            RunWriter(tmp_path / "a", new=True)
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "write_atomic", no_space)
        with pytest.raises(RunFailed, match="no space left on device while saving .*; no checkpoint was saved yet"):
            RunWriter(tmp_path / "b", new=True)
    assert checkpoint.holder(tmp_path / "b") is None  # the lock went with the failed claim


# -- a save that fails ----------------------------------------------------------------------------
def test_a_save_that_fails_leaves_the_previous_checkpoint_current_and_nothing_half_written(finished, tmp_path,
                                                                                         monkeypatch):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        writer.save(at_epoch(snap, 1))
        write_tree = checkpoint._write_tree

        def full_disk(root, files, fresh=False):
            write_tree(root, dict(list(files.items())[:2]), fresh)  # some files written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(checkpoint, "_write_tree", full_disk)
        with pytest.raises(RunFailed, match=r"no space left on device while saving .*/run; "
                                            r"the previous checkpoint is intact$"):
            writer.save(at_epoch(snap, 2))
        assert os.listdir(run / "checkpoints") == ["000001"] and link(run, "current") == "checkpoints/000001"
        monkeypatch.setattr(checkpoint, "_write_tree", write_tree)

        def no_switch(run_dir, name, target):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(checkpoint, "_point", no_switch)
        with pytest.raises(RunFailed, match=r"could not save .*/run \(Permission denied\); "
                                            r"the previous checkpoint is intact$"):
            writer.save(at_epoch(snap, 2))
        assert os.listdir(run / "checkpoints") == ["000001"], "the complete but unswitched checkpoint goes"
    assert checkpoint.load(run).epoch == 1


def test_a_checkpoints_folder_that_cannot_be_listed_fails_the_save_in_one_line(finished, tmp_path, monkeypatch):
    _, snap = finished

    def denied(root, rel=""):
        raise PermissionError(errno.EACCES, "Permission denied")
    with writing(tmp_path / "run") as writer:
        monkeypatch.setattr(folder_files, "list_dir", denied)
        with pytest.raises(RunFailed, match=r"could not save .*/run \(Permission denied\); no checkpoint was saved yet$"):
            writer.save(at_epoch(snap, 1))


# -- reading through the program's links, and only those --------------------------------------------
def test_files_are_read_through_current_best_and_the_top_level_links(finished, tmp_path):
    _, snap = finished
    run = forked(snap, tmp_path / "fork")
    name = next(iter(snap.weights))
    np.testing.assert_array_equal(checkpoint.read_array(run / "weights" / f"{name}.npy"), snap.weights[name] * 2)
    np.testing.assert_array_equal(checkpoint.read_array(run / "current" / "weights" / f"{name}.npy"),
                                  snap.weights[name] * 2)
    np.testing.assert_array_equal(checkpoint.read_array(run / "best" / "weights" / f"{name}.npy"), snap.weights[name])
    assert checkpoint.read_json(run / "best" / "state" / "train.json")["epoch"] == 2
    assert checkpoint.read_json(run / "state" / "train.json")["epoch"] == 3
    assert len(checkpoint.read_history(run / "history.csv")) == 3
    assert checkpoint.in_model_folder(run / "weights" / "x.npy") == (run, "checkpoints/000002/weights/x.npy")
    assert checkpoint.in_model_folder(run / "best" / "model.json") == (run, "checkpoints/000001/model.json")
    assert checkpoint.in_model_folder(run / "checkpoints" / "000001" / "state" / "train.json") == \
        (run, "checkpoints/000001/state/train.json")
    assert checkpoint.in_model_folder(run / "checkpoints" / "000002" / "state" / "optimizer" / "m.npy") == \
        (run, "checkpoints/000002/state/optimizer/m.npy")  # four levels below the model folder


def test_a_top_level_link_the_program_did_not_make_is_not_followed(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        writer.save(at_epoch(snap, 1))
    os.unlink(run / "weights")
    os.symlink("checkpoints/000001/weights", run / "weights")  # the same files, but not `current/weights`
    assert checkpoint.in_model_folder(run / "weights" / "a.npy") == (run, "weights/a.npy")
    os.unlink(run / "weights")
    os.symlink("current/weights2", run / "weights")  # a name that sorts after the program's
    assert checkpoint.in_model_folder(run / "weights" / "a.npy") == (run, "weights/a.npy")
    os.unlink(run / "weights")
    os.symlink("checkpoints/000001/weights", run / "weights")
    name = next(iter(snap.weights))
    with pytest.raises(NeuratermError, match="link"):
        checkpoint.read_array(run / "weights" / f"{name}.npy")
    os.unlink(run / "current")  # no current checkpoint: nothing to read through
    assert checkpoint.in_model_folder(run / "current" / "model.json") == (run, "current/model.json")


def test_a_folder_named_like_an_array_in_weights_is_not_an_array(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (checkpoint.checkpoint_dir(run) / "weights" / "junk.npy").mkdir()
    assert checkpoint.load(run).weights.keys() == checkpoint.load(trained).weights.keys()


def test_a_checkpoint_file_replaced_by_a_link_or_grown_is_refused(finished, tmp_path):
    trained, snap = finished
    name = next(iter(snap.weights))
    run = tmp_path / "linked"
    shutil.copytree(trained, run, symlinks=True)
    weight = checkpoint.checkpoint_dir(run) / "weights" / f"{name}.npy"
    shutil.copy(weight, tmp_path / "copy.npy")
    weight.unlink()
    weight.symlink_to(tmp_path / "copy.npy")  # the same bytes, through a link
    assert load_error(run) == f"{run}/current/weights/{name}.npy: is a symbolic link or not a folder; " \
                                "links are not followed"
    grown = tmp_path / "grown"
    shutil.copytree(trained, grown, symlinks=True)
    with open(checkpoint.checkpoint_dir(grown) / "weights" / f"{name}.npy", "ab") as f:
        f.write(b"\0")
    with pytest.raises(NeuratermError, match=rf"{re.escape(name)}\.npy: changed since it was saved \(size differs"):
        checkpoint.load(grown)


# -- hand-edited manifests and descriptions -------------------------------------------------------
@pytest.mark.parametrize("entry", [{"bytes": -1, "sha256": "0" * 64}, {"bytes": 10, "sha256": 5},
                                   {"bytes": True, "sha256": "0" * 64}, {"bytes": 1.0, "sha256": "0" * 64},
                                   {"sha256": "0" * 64}, {"bytes": 10}, "10"])
def test_a_manifest_entry_without_a_size_and_a_hash_is_refused(finished, tmp_path, entry):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    folder = checkpoint.checkpoint_dir(run)
    m = manifest(folder)
    m["files"]["history.csv"] = entry
    (folder / checkpoint.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(NeuratermError, match=r"current/MANIFEST.json: not a checkpoint manifest$"):
        checkpoint.load(run)


def test_a_manifest_that_lists_a_name_outside_the_checkpoint_is_refused_by_name(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    folder = checkpoint.checkpoint_dir(run)
    m = manifest(folder)
    m["files"]["weights/../../x"] = m["files"]["../y"] = {"bytes": 1, "sha256": "0" * 64}
    (folder / checkpoint.MANIFEST).write_text(json.dumps(m))
    assert load_error(run) == f"{run}/current/MANIFEST.json: lists '../y', not a plain name inside the checkpoint"


@pytest.mark.parametrize("spec", [{"shape": [16, 784], "dtype": 5}, {"shape": "16x784", "dtype": "float32"},
                                  {"shape": [16, -1], "dtype": "float32"}, {"shape": [16, True], "dtype": "float32"},
                                  {"dtype": "float32"}, ["float32"]])
def test_an_array_without_a_shape_and_a_dtype_in_model_json_is_named(finished, tmp_path, spec):
    trained, snap = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    name = sorted(meta["arrays"])[0]
    meta["arrays"][name] = spec
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/model.json: arrays.{name} needs a shape (list of sizes) and a dtype"


def test_a_partial_epochs_counts_are_checked_against_each_other(finished):
    _, snap = finished
    state = dict(snap.train_state)
    shown = Path("run/state/train.json")
    for correct, seen, ok in ((3, 5, True), (5, 5, True), (0, 5, True), (6, 5, False), (-1, 5, False)):
        state["partial"] = {"step": 1, "loss_sum": 0.5, "correct": correct, "seen": seen,
                            "order_rng": snap.train_state["order_rng"]}
        if ok:
            checkpoint.check_train_state(state, shown)
        else:
            with pytest.raises(NeuratermError, match="'partial' must be null or hold step"):
                checkpoint.check_train_state(state, shown)


def test_a_new_run_folder_gets_its_missing_parents(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "runs" / "today" / "run"
    with writing(run, new=True) as writer:
        writer.save(at_epoch(snap, 1))
    assert checkpoint.load(run).epoch == 1


def test_a_link_named_current_that_points_elsewhere_is_not_a_checkpoint(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (run / "zzz").mkdir()
    shutil.copytree(checkpoint.checkpoint_dir(run), run / "zzz" / "000001")
    (run / "aaa").mkdir()
    shutil.copytree(checkpoint.checkpoint_dir(run), run / "aaa" / "000001")
    for target in ("zzz/000001", "aaa/000001", "checkpoints/x", "checkpoints/00001"):
        os.unlink(run / "current")
        os.symlink(target, run / "current")
        assert checkpoint.checkpoint_dir(run) is None
        with pytest.raises(NeuratermError, match="no checkpoint saved yet"):
            checkpoint.load(run)


def test_the_leftover_links_of_a_killed_switch_are_swept_and_nothing_else(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    os.symlink("checkpoints/000001", run / ".current.tmp-4242")  # _point killed between link and rename
    os.symlink("checkpoints/000001", run / ".best.tmp-4243")
    os.symlink("elsewhere", run / "notes.tmp-1")  # a user's links, however they are named
    os.symlink("elsewhere", run / ".notes.tmp-3")
    (run / ".mine.tmp-2").write_text("a user's file")
    RunWriter(run, new=False).close()
    names = set(os.listdir(run))
    assert not {".current.tmp-4242", ".best.tmp-4243"} & names
    assert {"notes.tmp-1", ".notes.tmp-3", ".mine.tmp-2"} <= names


def test_epoch_ends_are_found_in_checkpoints_saved_before_manifests_said_so(finished, tmp_path):
    """A manifest without `epoch` and `epoch_end` (neuraterm before kept epochs): state/train.json and
    whether there is a report.json say it; a checkpoint whose manifest cannot be read is passed over."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        ends = [writer.save(at_epoch(snap, e)) for e in (1, 2, 3)]
        writer.save(at_epoch(snap, 3, report=True))
    for folder in (run / "checkpoints").iterdir():
        m = manifest(folder)
        del m["epoch_end"]
        if folder != ends[1]:  # an epoch alone does not say whether it ends one either
            del m["epoch"]
        (folder / checkpoint.MANIFEST).write_text(json.dumps(m))
    found = checkpoint.epoch_checkpoints(run)
    assert found == {1: ends[0], 2: ends[1], 3: ends[2]}
    state = json.loads((ends[0] / "state" / "train.json").read_text())
    (ends[0] / "state" / "train.json").write_text(json.dumps(dict(state, epoch=0)))  # a save before epoch 1 ended
    assert checkpoint.epoch_checkpoints(run) == {2: ends[1], 3: ends[2]}
    (ends[1] / checkpoint.MANIFEST).write_text("{not json")
    (ends[0] / "state" / "train.json").write_text("[1, 2")
    assert checkpoint.epoch_checkpoints(run) == {3: ends[2]}


def test_a_history_is_read_with_whole_epoch_numbers_past_256(finished, tmp_path):
    _, snap = finished
    text = checkpoint.history_csv([dict(snap.history[0], epoch=e) for e in range(1, 301)])
    rows = checkpoint.parse_history(text, Path("h.csv"))
    assert [r["epoch"] for r in rows] == list(range(1, 301)) and all(type(r["epoch"]) is int for r in rows)
    with pytest.raises(NeuratermError, match=r"h.csv: malformed history \(invalid literal for int"):
        checkpoint.parse_history(text.replace("\n1,", "\n1.0,", 1), Path("h.csv"))
    with pytest.raises(NeuratermError, match=r"h.csv: line 3 is epoch 3, expected 2"):
        checkpoint.parse_history(text.replace("\n2,", "\n3,", 1), Path("h.csv"))


@pytest.mark.parametrize("parent", ["backups", "zzz"])  # names sorting before and after "checkpoints"
def test_a_format_1_folder_named_like_a_checkpoint_is_read_as_itself(finished, tmp_path, parent):
    trained, _ = finished
    legacy = tmp_path / parent / "000001"
    shutil.copytree(checkpoint.checkpoint_dir(trained), legacy)
    (legacy / checkpoint.MANIFEST).unlink()
    assert checkpoint.load(legacy).epoch == checkpoint.load(trained).epoch
    assert checkpoint.in_model_folder(legacy / "weights" / "a.npy") == (legacy, "weights/a.npy")


@pytest.mark.parametrize("sizes", [[784], [], [784, 0, 10], [784, 16.0, 10]])
def test_an_architecture_without_two_sizes_of_at_least_one_is_refused(finished, tmp_path, sizes):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["architecture"]["sizes"] = sizes
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/model.json: 'architecture' must hold the layer sizes " \
                                "(integers >= 1) and the layers"


@pytest.mark.parametrize("index", [9, 2])  # layers 0 and 1 only
def test_arrays_of_a_layer_the_model_does_not_have_are_named(finished, tmp_path, index):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["arrays"][f"{index}.weight"] = meta["arrays"].pop("0.weight")
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/model.json: the arrays {sorted(meta['arrays'])} do not fit its 2 layers"


@pytest.fixture(scope="module")
def standardized(tmp_path_factory):
    out = tmp_path_factory.mktemp("standardized") / "run"
    assert cli_mod.main(["train", "--out", str(out), "--epochs", "1", *TINY, "--set", 'data.normalize="standardize"']) == 0
    return out


@pytest.mark.parametrize("key, change", [("mean", lambda a: np.append(a, 0.0)), ("std", lambda a: a[:-1]),
                                         ("std", lambda a: a[None, :]), ("mean", lambda a: np.where(a == a.max(), np.nan, a))])
def test_a_standardization_that_does_not_fit_the_inputs_is_refused(standardized, tmp_path, key, change):
    run = tmp_path / "run"
    shutil.copytree(standardized, run, symlinks=True)
    array = np.load(checkpoint.checkpoint_dir(run) / "normalization" / f"{key}.npy")
    edit(run, f"normalization/{key}.npy", checkpoint._npy_bytes(change(array)))
    assert load_error(run) == f"{run}/current/normalization/{key}.npy: missing, or not 784 finite values"


def test_a_standardized_model_loads_its_mean_and_deviation(standardized):
    snap = checkpoint.load(standardized)
    assert snap.meta["normalization"] == "standardize"
    assert snap.normalization["mean"].shape == snap.normalization["std"].shape == (784,)
    assert (snap.normalization["std"] > 0).all()


def test_a_writer_sweeps_only_regular_leftover_files_of_its_own_names(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (run / ".neuraterm.tmp-77").write_text("half a marker")
    (run / "events.jsonl.tmp-78").write_text("half a compaction")
    os.symlink("elsewhere", run / ".neuraterm.tmp-79")  # same names, but links: not ours to remove
    os.symlink("elsewhere", run / "events.jsonl.tmp-80")
    RunWriter(run, new=False).close()
    names = set(os.listdir(run))
    assert not {".neuraterm.tmp-77", "events.jsonl.tmp-78"} & names
    assert {".neuraterm.tmp-79", "events.jsonl.tmp-80"} <= names


def test_a_checkpoints_folder_that_is_a_link_stops_the_writer(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (run / "checkpoints").rename(tmp_path / "elsewhere")
    (run / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NeuratermError) as caught:
        RunWriter(run, new=False)
    assert str(caught.value).startswith(f"{run}/checkpoints: is a symbolic link; links are not followed")
    assert checkpoint.holder(run) is None


def test_epoch_checkpoints_pass_over_leftovers_and_saves_past_current(finished, tmp_path):
    """A temporary checkpoint folder and one numbered past `current` (a save killed before its switch)
    are not epochs a fork can start from."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        first = writer.save(at_epoch(snap, 1))
    shutil.copytree(first, run / "checkpoints" / "000009")
    m = manifest(first)
    m.update(epoch=5)
    (run / "checkpoints" / "000009" / checkpoint.MANIFEST).write_text(json.dumps(m))
    shutil.copytree(first, run / "checkpoints" / ".tmp-000002-abc")
    assert checkpoint.epoch_checkpoints(run) == {1: first}


def test_a_checkpoint_folder_that_cannot_be_listed_is_left_by_the_sweep(finished, tmp_path, monkeypatch):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run, new=True) as writer:
        writer.save(at_epoch(snap, 0))  # not an epoch's end: swept at the next save
        listed = folder_files.list_dir

        def refusing(root, rel=""):
            if rel == "checkpoints/000001/weights":
                raise PermissionError(errno.EACCES, "Permission denied")
            return listed(root, rel)
        monkeypatch.setattr(folder_files, "list_dir", refusing)
        writer.save(at_epoch(snap, 1))
    assert sorted(os.listdir(run / "checkpoints")) == ["000001", "000002"]
    assert os.listdir(run / "checkpoints" / "000001") == ["weights"]  # its files went, the folder it could not list stays


def test_a_path_through_a_file_cannot_be_read_and_says_so(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NeuratermError) as caught:
        checkpoint.read_file(tmp_path / "afile" / "model.json")
    assert str(caught.value) == f"{tmp_path}/afile/model.json: cannot be read (Not a directory)"


@pytest.mark.parametrize("shape, shown", [([16, 783], "[(16, 783), (10, 16)]"), ([16, 785], "[(16, 785), (10, 16)]"),
                                          ([16, 0], "[(16, 0), (10, 16)]"),
                                          ([16, 784, 1], "[(10, 16)]")])  # a 3-D weight is no linear layer's
def test_weight_shapes_that_do_not_match_the_sizes_are_named(finished, tmp_path, shape, shown):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["arrays"]["0.weight"]["shape"] = shape
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/model.json: the weight shapes {shown} do not match " \
                                "the sizes [784, 16, 10]"


def test_a_plateau_state_with_no_patience_is_a_state(finished):
    _, snap = finished
    plateau = {"lr": 0.1, "factor": 0.5, "min_lr": 0.0, "threshold": 1e-4, "patience": 0, "bad_epochs": 0,
               "mode": "min", "best": None}
    checkpoint.check_train_state(dict(snap.train_state, plateau=plateau), Path("t.json"))
    with pytest.raises(NeuratermError, match="'plateau' must be null"):
        checkpoint.check_train_state(dict(snap.train_state, plateau=dict(plateau, patience=-1)), Path("t.json"))


def test_the_best_checkpoint_read_for_a_resume_is_verified_too(finished, tmp_path):
    _, snap = finished
    run = forked(snap, tmp_path / "fork")
    name = next(iter(snap.weights))
    weight = run / "checkpoints" / "000001" / "weights" / f"{name}.npy"
    data = bytearray(weight.read_bytes())
    data[-1] ^= 0xFF  # the same size, another number
    weight.write_bytes(bytes(data))
    assert checkpoint.load(run).epoch == 3  # a viewer reads the current checkpoint alone
    assert load_error(run, with_best=True) == f"{run}/best/weights/{name}.npy: changed since it was saved (size or SHA-256 " \
                                f"differs from {run}/best/MANIFEST.json)"


def test_the_format_number_written_is_2(finished, tmp_path):
    """Other programs read these files: the number that says how is a contract, not a detail."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        folder = writer.save(at_epoch(snap, 1))
    assert json.loads((run / ".neuraterm").read_text())["format"] == 2
    assert manifest(folder)["format"] == 2 and json.loads((folder / "model.json").read_text())["format"] == 2


def test_a_format_1_folder_says_format_1_and_may_lack_its_training_state(finished, tmp_path):
    trained, _ = finished
    legacy = tmp_path / "legacy"
    shutil.copytree(checkpoint.checkpoint_dir(trained), legacy)
    (legacy / checkpoint.MANIFEST).unlink()
    meta = json.loads((legacy / "model.json").read_text())
    (legacy / "model.json").write_text(json.dumps(dict(meta, format=1)))
    (legacy / "state" / "train.json").unlink()
    (legacy / "history.csv").unlink()
    snap = checkpoint.load(legacy)
    assert snap.train_state == {} and snap.epoch == 0 and snap.history == []
    assert checkpoint.checkpoint_dir(legacy) == legacy and checkpoint.checkpoint_dir(legacy, checkpoint.BEST) is None
    (legacy / "config.toml").unlink()
    assert load_error(legacy) == f"{legacy}/config.toml: missing"


def test_a_file_listed_in_the_manifest_but_gone_is_an_incomplete_checkpoint(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    folder = checkpoint.checkpoint_dir(run)
    (folder / "history.csv").unlink()
    assert load_error(run) == f"{folder}: incomplete checkpoint (a file listed in its manifest is missing)"
    with pytest.raises(FileNotFoundError):  # a kept epoch's checkpoint removed while it was read: the caller moves on
        checkpoint.load_checkpoint(folder)


def test_a_regular_file_in_weights_that_the_manifest_does_not_list_is_refused(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    extra = checkpoint.checkpoint_dir(run) / "weights" / "extra.npy"
    extra.write_bytes(checkpoint._npy_bytes(np.zeros(2, np.float32)))
    assert load_error(run) == f"{run}/current/weights: unexpected files ['extra']"
    extra.unlink()
    extra.symlink_to(tmp_path / "nowhere.npy")  # a link there is not one of its arrays, and is never read
    assert checkpoint.load(run).weights.keys() == checkpoint.load(trained).weights.keys()


def test_a_report_with_a_field_of_the_wrong_type_is_named(finished, tmp_path):
    trained, snap = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    edit(run, "report.json", json.dumps(dict(snap.report, test_accuracy="high")).encode())
    assert load_error(run) == f"{run}/current/report.json: test_accuracy: not a number"


@pytest.mark.parametrize("name", ["0..weight", "0/weight", "../0.weight"])
def test_an_array_name_that_is_not_a_plain_file_name_is_refused(finished, tmp_path, name):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["arrays"][name] = meta["arrays"].pop("0.weight")
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/model.json: array name {name!r} is not a plain file name"


def test_a_history_shorter_or_longer_than_the_epochs_trained_is_refused(finished, tmp_path):
    trained, snap = finished
    for epochs in (2, 0):
        run = tmp_path / f"run{epochs}"
        shutil.copytree(trained, run, symlinks=True)
        edit(run, "state/train.json", json.dumps(dict(snap.train_state, epoch=epochs)).encode())
        assert load_error(run) == f"{run}/current/history.csv: 1 epochs, but state/train.json says {epochs}"


def test_early_stopping_before_its_first_best_epoch_is_a_state(finished):
    _, snap = finished
    state = dict(snap.train_state, early={"best": None, "best_epoch": 0, "wait": 0})
    checkpoint.check_train_state(state, Path("t.json"))
    for early in ({"best": None, "best_epoch": -1, "wait": 0}, {"best": None, "best_epoch": 0, "wait": -1}):
        with pytest.raises(NeuratermError, match="'early' must hold best"):
            checkpoint.check_train_state(dict(state, early=early), Path("t.json"))


@pytest.mark.parametrize("manifest_text", ["{not json", "[1, 2]", "[" * 100000, None])  # None: no manifest
def test_a_checkpoint_whose_manifest_cannot_be_read_keeps_its_files_when_swept(finished, tmp_path, manifest_text):
    """Without its list of files the program cannot tell its own from a user's: it deletes none."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        first = writer.save(at_epoch(snap, 0))  # not an epoch's end: the next save sweeps it
        if manifest_text is None:
            (first / checkpoint.MANIFEST).unlink()
        else:
            (first / checkpoint.MANIFEST).write_text(manifest_text)
        files = sorted(p.relative_to(first) for p in first.rglob("*"))
        writer.save(at_epoch(snap, 1))
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == files


def test_an_empty_folder_made_beforehand_or_left_by_a_killed_claim_is_claimed(finished, tmp_path):
    _, snap = finished
    for name, leftovers in (("empty", ()), ("left", (".lock", ".neuraterm.tmp-5"))):
        run = tmp_path / name
        run.mkdir()
        for leftover in leftovers:
            (run / leftover).write_text("")
        with writing(run) as writer:
            writer.save(at_epoch(snap, 1))
        assert checkpoint.load(run).epoch == 1 and ".neuraterm.tmp-5" not in os.listdir(run)


def test_a_link_switch_that_fails_leaves_no_temporary_link(finished, tmp_path, monkeypatch):
    _, snap = finished
    run = tmp_path / "run"
    replace = os.replace

    def refusing(src, dst, *args, **kwargs):
        if Path(dst).name == "current":
            raise PermissionError(errno.EACCES, "Permission denied")
        return replace(src, dst, *args, **kwargs)
    with writing(run) as writer:
        writer.save(at_epoch(snap, 1))
        monkeypatch.setattr(os, "replace", refusing)
        with pytest.raises(RunFailed, match=r"could not save .*/run \(Permission denied\); the previous"):
            writer.save(at_epoch(snap, 2))
        monkeypatch.setattr(os, "replace", replace)
    assert not [n for n in os.listdir(run) if ".tmp-" in n] and link(run, "current") == "checkpoints/000001"


def test_a_model_folder_whose_first_save_was_killed_may_be_claimed_again(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    RunWriter(run, new=True).close()  # marker and lock written, no checkpoint: a run killed before epoch 1
    RunWriter.check_new(run)
    with writing(run) as writer:
        writer.save(at_epoch(snap, 1))
    with pytest.raises(NeuratermError, match="already holds a model"):
        RunWriter.check_new(run)


def test_a_save_that_is_also_the_best_points_best_at_the_current_checkpoint(finished, tmp_path):
    """A fork's first save whose own epoch is its best so far: both links end on the second checkpoint."""
    _, snap = finished
    run = tmp_path / "fork"
    with writing(run) as writer:
        writer.save(at_epoch(snap, 3), best=True, best_snap=at_epoch(snap, 2))
    assert link(run, "best") == link(run, "current") == "checkpoints/000002"


def test_a_manifest_without_a_file_list_is_no_epochs_checkpoint(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        one, two = writer.save(at_epoch(snap, 1)), writer.save(at_epoch(snap, 2))
    (one / checkpoint.MANIFEST).write_text(json.dumps({"format": 2, "epoch": 1, "epoch_end": True}))
    assert checkpoint.epoch_checkpoints(run) == {2: two}


def test_a_history_file_is_read_where_it_is_and_absent_is_empty(finished, tmp_path):
    trained, _ = finished
    plain = tmp_path / "history.csv"
    plain.write_bytes((checkpoint.checkpoint_dir(trained) / "history.csv").read_bytes())
    assert [r["epoch"] for r in checkpoint.read_history(plain)] == [1]
    assert checkpoint.read_history(tmp_path / "none.csv") == []
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(NeuratermError, match="dangling.csv"):
        checkpoint.read_history(tmp_path / "dangling.csv")


def test_an_epoch_out_of_order_in_a_history_is_refused(finished):
    _, snap = finished
    text = checkpoint.history_csv([dict(snap.history[0], epoch=e) for e in (1, 1, 2)])
    with pytest.raises(NeuratermError, match=r"h.csv: line 3 is epoch 1, expected 2"):
        checkpoint.parse_history(text, Path("h.csv"))


def test_a_model_folders_files_are_looked_for_up_to_four_levels_above(finished, tmp_path):
    trained, _ = finished
    legacy = tmp_path / "legacy"
    shutil.copytree(checkpoint.checkpoint_dir(trained), legacy)
    (legacy / checkpoint.MANIFEST).unlink()
    four = legacy / "a" / "b" / "c" / "d.npy"
    assert checkpoint.in_model_folder(four) == (legacy, "a/b/c/d.npy")
    five = legacy / "a" / "b" / "c" / "d" / "e.npy"
    assert checkpoint.in_model_folder(five) == (five.parent, "e.npy")


def test_a_model_without_hidden_layers_loads(tmp_path, capsys):
    run = tmp_path / "linear"
    assert cli_mod.main(["train", "--out", str(run), "--epochs", "1", "--set", "data.limit=600",
                         "--set", "model.hidden=[]"]) == 0
    snap = checkpoint.load(run)
    assert snap.meta["architecture"]["sizes"] == [784, 10] and snap.weights["0.weight"].shape == (10, 784)


def test_a_checkpoint_folder_that_is_a_link_is_not_read(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    folder = checkpoint.checkpoint_dir(run)
    folder.rename(tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")
    for read_it in (lambda: checkpoint.load(run), lambda: checkpoint.load_checkpoint(folder)):
        with pytest.raises(NeuratermError, match="links are not followed"):
            read_it()


def test_a_kept_checkpoint_is_verified_when_read_alone(finished, tmp_path):
    trained, snap = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    folder = checkpoint.checkpoint_dir(run)
    name = next(iter(snap.weights))
    weight = folder / "weights" / f"{name}.npy"
    data = bytearray(weight.read_bytes())
    data[-1] ^= 0xFF
    weight.write_bytes(bytes(data))
    with pytest.raises(NeuratermError, match=rf"{re.escape(name)}\.npy: changed since it was saved"):
        checkpoint.load_checkpoint(folder)


def test_a_batch_norm_model_loads(tmp_path):
    run = tmp_path / "bn"
    assert cli_mod.main(["train", "--out", str(run), "--epochs", "1", *TINY, "--set", "model.batchnorm=true"]) == 0
    snap = checkpoint.load(run)
    assert any(a.ndim == 1 and n.endswith(".weight") for n, a in snap.weights.items())  # its scales: not linear layers


def test_the_sweep_never_enters_or_removes_what_is_not_a_checkpoint_folder(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    shutil.copytree(checkpoint.checkpoint_dir(run), tmp_path / "elsewhere")
    (run / "checkpoints" / "000099").symlink_to(tmp_path / "elsewhere")  # a link named like a checkpoint
    (run / "checkpoints" / ".tmp-notes").write_text("a user's file named like a leftover")
    before = sorted(p.name for p in (tmp_path / "elsewhere").rglob("*"))
    RunWriter(run, new=False).close()
    assert {"000099", ".tmp-notes"} <= set(os.listdir(run / "checkpoints"))
    assert sorted(p.name for p in (tmp_path / "elsewhere").rglob("*")) == before


def test_a_filesystem_without_links_still_saves(finished, tmp_path, monkeypatch):
    """The top-level links are a convenience: where they cannot be made, readers go through `current/`."""
    _, snap = finished
    symlink = os.symlink

    def no_top_level_links(target, path, *args, **kwargs):
        if str(target).startswith("current/"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return symlink(target, path, *args, **kwargs)
    monkeypatch.setattr(os, "symlink", no_top_level_links)
    run = tmp_path / "run"
    with writing(run) as writer:
        writer.save(at_epoch(snap, 1))
    assert not (run / "weights").exists() and checkpoint.load(run).epoch == 1


def test_a_changed_byte_is_refused_whichever_way_its_hash_sorts(finished, tmp_path):
    import hashlib
    trained, _ = finished
    listed = manifest(checkpoint.checkpoint_dir(trained))["files"]["history.csv"]["sha256"]
    original = (checkpoint.checkpoint_dir(trained) / "history.csv").read_bytes()
    found = {}
    for i in range(len(original)):  # a digit changed for another, until one hash sorts below and one above
        changed = original[:i] + (b"7" if original[i:i + 1] != b"7" else b"8") + original[i + 1:]
        found.setdefault(hashlib.sha256(changed).hexdigest() < listed, changed)
        if len(found) == 2:
            break
    for below, changed in found.items():
        run = tmp_path / f"run-{below}"
        shutil.copytree(trained, run, symlinks=True)
        (checkpoint.checkpoint_dir(run) / "history.csv").write_bytes(changed)
        with pytest.raises(NeuratermError, match="history.csv: changed since it was saved"):
            checkpoint.load(run)


def test_a_history_with_a_column_more_is_named_by_its_columns():
    text = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,samples_per_s,extra\n1,1,1,1,1,1,1,1,1\n"
    with pytest.raises(NeuratermError, match=r"h.csv: unexpected columns \['epoch', .*'extra'\]; expected"):
        checkpoint.parse_history(text, Path("h.csv"))


def test_a_negative_epoch_is_refused(finished):
    _, snap = finished
    with pytest.raises(NeuratermError, match="'epoch' must be an integer >= 0"):
        checkpoint.check_train_state(dict(snap.train_state, epoch=-1), Path("t.json"))


def test_an_array_whose_shape_differs_from_model_json_is_named(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["arrays"]["0.bias"]["shape"] = [15]  # the file holds 16
    edit(run, "model.json", json.dumps(meta).encode())
    assert load_error(run) == f"{run}/current/weights/0.bias.npy: shape [16] float32 does not match model.json " \
                                "([15] float32)"


def test_a_negative_deviation_is_refused(standardized, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(standardized, run, symlinks=True)
    std = np.load(checkpoint.checkpoint_dir(run) / "normalization" / "std.npy")
    std[0] = -abs(std[0])
    edit(run, "normalization/std.npy", checkpoint._npy_bytes(std))
    with pytest.raises(NeuratermError, match=r"normalization/std.npy: deviations must be > 0$"):
        checkpoint.load(run)


@pytest.mark.parametrize("name, says", [("history.csv", "history.csv: cannot be read (Input/output error)"),
                                         (checkpoint.MANIFEST, "MANIFEST.json: Input/output error")])
def test_a_checkpoint_file_the_disk_cannot_read_is_one_line(finished, monkeypatch, name, says):
    trained, _ = finished
    read_bytes = folder_files.read_bytes

    def failing(root, rel, limit=None):
        if rel.endswith(name):
            raise OSError(errno.EIO, "Input/output error")
        return read_bytes(root, rel, limit)
    monkeypatch.setattr(folder_files, "read_bytes", failing)
    assert load_error(trained) == f"{trained}/current/{says}"


def test_a_save_whose_health_measurement_gives_nothing_writes_the_rest(finished, tmp_path):
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        folder = writer.save(dataclasses.replace(at_epoch(snap, 1), health=lambda: None))
    assert "health.npz" not in manifest(folder)["files"] and (folder / checkpoint.MANIFEST).exists()
    assert checkpoint.load(run).health is None


def test_the_sweep_goes_on_past_entries_that_are_not_folders(finished, tmp_path, monkeypatch):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (run / "checkpoints" / "a-file").write_text("x")
    shutil.copytree(checkpoint.checkpoint_dir(run), run / "checkpoints" / ".tmp-000005-abc")  # a killed save's
    listed = folder_files.list_dir

    def files_first(root, rel=""):
        return sorted(listed(root, rel), key=lambda entry: entry[1] == "dir")
    monkeypatch.setattr(folder_files, "list_dir", files_first)
    RunWriter(run, new=False).close()
    assert ".tmp-000005-abc" not in os.listdir(run / "checkpoints") and "a-file" in os.listdir(run / "checkpoints")


def test_a_history_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "history.csv").write_bytes(b"epoch,\xff\xfe\n")
    with pytest.raises(NeuratermError, match=r"history.csv: cannot be read \(UnicodeDecodeError\)"):
        checkpoint.read_history(tmp_path / "history.csv")


def test_class_names_that_are_not_names_are_refused(finished, tmp_path):
    trained, _ = finished
    for names in ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [], "0123456789"):
        run = tmp_path / f"run{len(names)}{type(names).__name__}"
        shutil.copytree(trained, run, symlinks=True)
        meta = json.loads(read(run, "model.json"))
        edit(run, "model.json", json.dumps(dict(meta, class_names=names)).encode())
        with pytest.raises(NeuratermError, match=r"model.json: 'class_names' must be a list of names$"):
            checkpoint.load(run)


@pytest.mark.parametrize("hidden", ["[8]", "[32]"])
def test_a_config_whose_hidden_layers_differ_from_the_saved_model_is_refused(finished, tmp_path, hidden):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    text = read(run, "config.toml").decode().replace("hidden = [16]", f"hidden = {hidden}")
    assert f"hidden = {hidden}" in text
    edit(run, "config.toml", text.encode())
    with pytest.raises(NeuratermError, match=rf"config.toml: model.hidden {re.escape(hidden)} does not match the saved "
                                             r"model's sizes \[784, 16, 10\]"):
        checkpoint.load(run)


def test_plateau_and_early_stopping_states_in_range_are_states(finished):
    _, snap = finished
    plateau = {"lr": 0.1, "factor": 0.5, "min_lr": 0.0, "threshold": 1e-4, "patience": 3, "bad_epochs": 2,
               "mode": "max", "best": 0.5}
    for state in (dict(snap.train_state, plateau=plateau),
                  dict(snap.train_state, plateau={k: v for k, v in plateau.items() if k != "mode"}),  # fewer fields
                  dict(snap.train_state, early={"best": 0.3, "best_epoch": 4, "wait": 2})):
        checkpoint.check_train_state(state, Path("t.json"))


def test_a_dropout_run_keeps_its_mask_generators(tmp_path):
    run = tmp_path / "dropout"
    assert cli_mod.main(["train", "--out", str(run), "--epochs", "1", *TINY, "--set", "model.dropout=0.2"]) == 0
    snap = checkpoint.load(run)
    assert any(s is not None for s in snap.train_state["dropout_rng"])


def test_a_dtype_that_differs_from_model_json_is_named(finished, tmp_path):
    trained, _ = finished
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    meta = json.loads(read(run, "model.json"))
    meta["arrays"]["0.bias"]["dtype"] = "float64"  # the file holds float32
    edit(run, "model.json", json.dumps(meta).encode())
    with pytest.raises(NeuratermError, match=r"0.bias.npy: shape \[16\] float32 does not match model.json "
                                             r"\(\[16\] float64\)"):
        checkpoint.load(run)


# -- a writer switching while a reader reads ------------------------------------------------------
@pytest.fixture
def three_saves(finished, tmp_path):
    """A run with checkpoints 1 (epoch 1, best), 2 (epoch 2) and 3 (epoch 3, current), all kept."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        for epoch in (1, 2, 3):
            writer.save(dataclasses.replace(at_epoch(snap, epoch, scale=float(epoch)),
                                            config=dataclasses.replace(snap.config, train=dataclasses.replace(
                                                snap.config.train, keep="all"))), best=epoch == 1)
    assert sorted(os.listdir(run / "checkpoints")) == ["000001", "000002", "000003"]
    return run


def vanishing_once(monkeypatch, switch):
    """The first checkpoint read finds a file gone, as if a writer had switched (`switch`) and swept."""
    load = checkpoint._load_checkpoint
    calls = []

    def once(folder, shown, legacy):
        calls.append(Path(folder).name)
        if len(calls) == 1:
            switch()
            raise checkpoint._Vanished("weights/0.weight.npy")
        return load(folder, shown, legacy)
    monkeypatch.setattr(checkpoint, "_load_checkpoint", once)
    return calls


def repoint(run, name, number):
    os.unlink(run / name)
    os.symlink(f"checkpoints/{number:06d}", run / name)


@pytest.mark.parametrize("to", [3, 1])  # the link moved to another checkpoint, whichever way
def test_a_reader_follows_current_when_it_moves_while_reading(three_saves, monkeypatch, to):
    run = three_saves
    repoint(run, "current", 2)
    calls = vanishing_once(monkeypatch, lambda: repoint(run, "current", to))
    assert checkpoint.load(run).epoch == to and calls == ["000002", f"{to:06d}"]


@pytest.mark.parametrize("to", [3, 1])
def test_a_resume_follows_best_when_it_moves_while_reading(three_saves, monkeypatch, to):
    run = three_saves
    repoint(run, "best", 2)
    load = checkpoint._load_checkpoint
    calls = []

    def best_vanishes_once(folder, shown, legacy):
        calls.append((Path(shown).name, Path(folder).name))
        if calls.count(("best", "000002")) == 1 and calls[-1] == ("best", "000002"):
            repoint(run, "best", to)
            raise checkpoint._Vanished("weights/0.weight.npy")
        return load(folder, shown, legacy)
    monkeypatch.setattr(checkpoint, "_load_checkpoint", best_vanishes_once)
    snap = checkpoint.load(run, with_best=True)
    expected = checkpoint.load_checkpoint(run / "checkpoints" / f"{to:06d}").weights
    assert snap.epoch == 3 and ("best", "000002") in calls
    assert all(np.array_equal(snap.best_weights[k], expected[k]) for k in expected)


def test_a_file_gone_while_nothing_moved_is_an_incomplete_checkpoint(three_saves, monkeypatch):
    run = three_saves
    vanishing_once(monkeypatch, lambda: None)
    with pytest.raises(NeuratermError, match=r"000003: incomplete checkpoint"):
        checkpoint.load(run, with_best=True)


def test_a_run_of_300_epochs_loads(finished, tmp_path):
    """Past 256 epochs, epoch counts are no longer CPython's shared small ints: compared by value."""
    _, snap = finished
    run = tmp_path / "run"
    with writing(run) as writer:
        writer.save(at_epoch(snap, 300))
    assert checkpoint.load(run).epoch == 300 and len(checkpoint.load(run).history) == 300
