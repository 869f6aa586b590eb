"""Kept epochs (`train.keep`) and `neuraterm fork`: a new folder from a parent's epoch K that equals
the parent bit for bit when nothing changes, records its lineage, and never writes to the parent."""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from model_folders import (HISTORY_COLUMNS, TINY, STEPPY, assert_same_run, cli, current_number, leftovers, main,
                           one_line, spawn, tree, wait_for)
from neuraterm.core.run import checkpoint, retention, status

EPOCHS = 6


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A finished 6-epoch run (default keep: every epoch of so short a run)."""
    run = tmp_path_factory.mktemp("parent") / "run"
    result = cli("train", "--out", run, "--epochs", EPOCHS, *TINY)
    assert result.returncode == 0, result.stderr
    return run


def kept(run: Path) -> list[int]:
    return sorted(checkpoint.epoch_checkpoints(run))


def rows(history: list[dict], columns=HISTORY_COLUMNS) -> list[list]:
    return [[r[c] for c in columns] for r in history]


# -- kept epochs -------------------------------------------------------------------------------------
def test_the_default_keeps_every_early_epoch_then_a_log_spaced_series_the_last_and_the_best():
    series = [e for e in range(1, 3001) if retention.keeps("auto", e, last=3001)]
    assert series[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15] and series[-3:] == [2000, 2500, 3000]
    assert len(series) == 35
    assert retention.keeps("auto", 2999, last=2999) and not retention.keeps("auto", 2999, last=3000)
    assert [e for e in range(1, 13) if retention.keeps(4, e, last=100)] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert retention.keeps(7, 70, last=100) and retention.keeps(7, 63, last=100) and not retention.keeps("auto", 63, 100)
    assert all(retention.keeps("all", e, last=100) for e in range(1, 101))


def test_a_run_keeps_its_epochs_by_the_policy_and_a_resume_deletes_none_of_them(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--out", run, "--epochs", 13, *TINY)
    assert code == 0, err
    assert kept(run) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    best = checkpoint._checkpoint_number(run, checkpoint.BEST)
    numbers = {int(p.name) for p in (run / "checkpoints").iterdir()}
    assert numbers == {*checkpoint.kept_checkpoints(run).values(), current_number(run), best}
    code, _, err = main(capsys, "resume", run, "--epochs", 16)
    assert code == 0, err
    assert kept(run) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 16]  # 13 was the last; 12 stays for good


@pytest.mark.parametrize("keep, expected", [('"all"', list(range(1, 14))), ("4", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13])])
def test_keep_all_and_every_n_th(tmp_path, capsys, keep, expected):
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--out", run, "--epochs", 13, *TINY, "--set", f"train.keep={keep}")
    assert code == 0, err
    assert kept(run) == expected


def test_a_bad_keep_is_one_line(tmp_path, capsys):
    code, _, err = main(capsys, "train", "--out", tmp_path / "run", *TINY, "--set", "train.keep=0")
    assert code == 2 and 'train.keep must be "auto", "all" or an integer >= 1' in one_line(err)
    assert not (tmp_path / "run").exists()


# -- fork ----------------------------------------------------------------------------------------------
def test_a_fork_with_nothing_changed_equals_the_parent_bit_for_bit(tmp_path, parent):
    result = cli("fork", parent, "--epoch", 3, "--out", tmp_path / "fork")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" in result.stdout
    assert_same_run(tmp_path / "fork", parent)
    assert leftovers(tmp_path / "fork") == []


OVERFIT = ["--set", "data.limit=300", "--set", "model.hidden=[128]", "--set", "optimizer.lr=0.01",
           "--set", "train.batch_size=16", "--set", "train.early_stopping=3"]


def test_a_fork_after_the_best_epoch_carries_the_best_checkpoint_and_still_ends_bit_for_bit(tmp_path, capsys):
    """With early stopping (restore_best), what the parent's best epoch was at K matters: the fork's
    `best` is that epoch's checkpoint, so a fork with nothing changed still ends where the parent did."""
    run = tmp_path / "parent"
    assert main(capsys, "train", "--out", run, "--epochs", 10, *OVERFIT)[0] == 0
    states = {e: checkpoint.load_checkpoint(p).train_state for e, p in checkpoint.epoch_checkpoints(run).items()}
    at = next((e for e, s in sorted(states.items()) if 0 < s["early"]["best_epoch"] < e), None)
    assert at is not None, "no epoch after a better one: the test has nothing to show"
    best = states[at]["early"]["best_epoch"]
    fork = tmp_path / "fork"
    result = cli("fork", run, "--epoch", at, "--out", fork)
    assert result.returncode == 0, result.stderr
    assert_same_run(fork, run)
    carried = checkpoint.load_checkpoint(checkpoint.epoch_checkpoints(fork)[best])
    theirs = checkpoint.load_checkpoint(checkpoint.epoch_checkpoints(run)[best])
    for name in theirs.weights:
        np.testing.assert_array_equal(carried.weights[name], theirs.weights[name])


def test_a_fork_writes_nothing_inside_its_parent(tmp_path, parent, capsys):
    before = tree(parent)
    code, _, err = main(capsys, "fork", parent, "--epoch", 3, "--out", parent / "inner")
    assert code == 2 and "inside the parent" in one_line(err)
    assert tree(parent) == before


def test_a_fork_with_a_new_lr_starts_from_the_parents_checkpoint_and_records_its_lineage(tmp_path, parent):
    fork = tmp_path / "fork"
    result = cli("fork", parent, "--epoch", 3, "--set", "optimizer.lr=0.01", "--out", fork)
    assert result.returncode == 0, result.stderr
    assert "lr 0.001 -> 0.01" in result.stdout
    mine, theirs = checkpoint.load(fork), checkpoint.load(parent)
    assert rows(mine.history[:3], mine.history[0].keys()) == rows(theirs.history[:3], theirs.history[0].keys())
    assert [r["lr"] for r in mine.history[3:]] == [0.01] * (EPOCHS - 3)
    assert rows(mine.history[3:]) != rows(theirs.history[3:])
    at_3 = checkpoint.load_checkpoint(checkpoint.epoch_checkpoints(fork)[3])
    parents_3 = checkpoint.load_checkpoint(checkpoint.epoch_checkpoints(parent)[3])
    for name in parents_3.weights:
        np.testing.assert_array_equal(at_3.weights[name], parents_3.weights[name])
    for name in parents_3.optimizer:
        np.testing.assert_array_equal(at_3.optimizer[name], parents_3.optimizer[name])
    assert at_3.train_state["order_rng"] == parents_3.train_state["order_rng"]
    (entry,) = mine.meta["lineage"]
    manifest = checkpoint.epoch_checkpoints(parent)[3] / checkpoint.MANIFEST
    assert entry["parent"] == str(parent.resolve()) and entry["epoch"] == 3
    assert entry["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert entry["changes"] == {"optimizer.lr": [0.001, 0.01]} and entry["fresh_optimizer"] is False
    assert mine.config.optimizer.lr == 0.01 and mine.report is not None
    logged = [json.loads(line) for line in (fork / "events.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in logged if r["type"] == "EpochEnded"]
    assert epochs == list(range(1, EPOCHS + 1))  # the parent's 1..3, then the fork's own


def test_a_fork_of_a_fork_has_a_chain_and_runs_shows_it(tmp_path, parent, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli("fork", parent, "--epoch", 2, "--set", "optimizer.lr=0.01", "--out", first).returncode == 0
    result = cli("fork", first, "--epoch", 4, "--set", "optimizer.lr=0.003", "--epochs", 7, "--out", second)
    assert result.returncode == 0, result.stderr
    chain = checkpoint.load(second).meta["lineage"]
    assert [(Path(e["parent"]).name, e["epoch"]) for e in chain] == [(parent.name, 2), ("first", 4)]
    assert chain[1]["changes"] == {"optimizer.lr": [0.01, 0.003], "train.epochs": [EPOCHS, 7]}
    info = status.describe(second)
    assert [(Path(e["parent"]).name, e["epoch"]) for e in info.lineage] == [(parent.name, 2), ("first", 4)]
    code, out, _ = main(capsys, "runs", tmp_path)
    assert code == 0
    line = next(line for line in out.splitlines() if "second" in line)
    assert "first @ 4" in line and "lr 0.01 -> 0.003" in line


def test_an_optimizer_change_starts_fresh_moments_and_says_so(tmp_path, parent):
    fork = tmp_path / "fork"
    result = cli("fork", parent, "--epoch", 3, "--set", 'optimizer.name="sgd"', "--set", "optimizer.momentum=0.9",
                 "--out", fork)
    assert result.returncode == 0, result.stderr
    assert "moments start from zero" in result.stdout
    first = checkpoint.load_checkpoint(checkpoint.epoch_checkpoints(fork)[3])
    assert set(first.optimizer) == {"velocity", "steps"} and not first.optimizer["velocity"].any()
    assert int(first.optimizer["steps"]) == 0 and checkpoint.load(fork).meta["lineage"][0]["fresh_optimizer"]


@pytest.mark.parametrize("change", ["model.hidden=[8]", "train.seed=3", "data.limit=500"])
def test_a_frozen_key_in_a_fork_is_one_line_and_exit_2(tmp_path, parent, capsys, change):
    before = tree(parent)
    code, _, err = main(capsys, "fork", parent, "--epoch", 3, "--set", change, "--out", tmp_path / "fork")
    assert code == 2 and "cannot change in a fork" in one_line(err) and change.split("=")[0] in err
    assert not (tmp_path / "fork").exists() and tree(parent) == before


def test_a_fork_from_an_epoch_that_is_not_kept_names_the_kept_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(capsys, "train", "--out", run, "--epochs", 13, *TINY)[0] == 0
    code, _, err = main(capsys, "fork", run, "--epoch", 11, "--out", tmp_path / "fork")
    assert code == 2
    assert one_line(err).endswith("epoch 11 is not kept; kept epochs: 1-10, 12, 13")
    assert not (tmp_path / "fork").exists()


def test_killing_a_fork_at_any_moment_leaves_the_parent_untouched(tmp_path):
    """kill -9 anywhere in a fork (start-up, the copy, an epoch, a save), again and again: the parent's
    every file, link and folder stays as it was; the fork then resumes (or forks again) to the parent's end."""
    parent = tmp_path / "parent"
    assert cli("train", "--out", parent, "--epochs", 8, *STEPPY).returncode == 0
    before = tree(parent)
    rng = random.Random(21)
    fork, kills = tmp_path / "fork", 0
    for attempt in range(12):
        started = current_number(fork) is not None
        if started and checkpoint.load(fork).report is not None or kills >= 5:
            break
        args = ["resume", fork] if started else ["fork", parent, "--epoch", 3, "--out", fork]
        proc = spawn(*args, env={checkpoint.SAVE_DELAY_ENV: "0.05" if attempt % 2 else "0.02"})
        if attempt % 2 == 0:
            time.sleep(rng.uniform(0.05, 0.8))
        else:
            start = current_number(fork) or 0
            with contextlib.suppress(AssertionError):
                wait_for(lambda: fork.exists() and (current_number(fork) or 0) > start, 120, "a save", proc)
            time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
        assert tree(parent) == before, f"attempt {attempt}"
    assert kills >= 3, kills
    if not (fork.exists() and current_number(fork) is not None and checkpoint.load(fork).report is not None):
        args = ["resume", fork] if fork.exists() and current_number(fork) is not None else \
            ["fork", parent, "--epoch", 3, "--out", fork]
        result = cli(*args)
        assert result.returncode == 0, result.stderr
    assert tree(parent) == before
    assert leftovers(fork) == []
    assert_same_run(fork, parent)


# -- suggested forks -------------------------------------------------------------------------------------
def test_a_fork_is_suggested_from_the_last_good_kept_epoch_once_val_loss_rises_while_train_loss_falls():
    from neuraterm.core.run import suggestions
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1]
    val = [0.9, 0.7, 0.5, 0.45, 0.5, 0.55, 0.6]  # best at epoch 4, above it for 3 epochs
    found = suggestions.suggest(train, val, lr=0.01, kept=[1, 2, 3, 5, 6, 7])
    assert found.epoch == 3 and found.changes == {"optimizer.lr": [0.01, 0.00333]}  # 4 is not kept: 3 is
    assert "epoch-4 minimum for 3 epochs" in found.reason
    assert suggestions.suggest(train[:6], val[:6], 0.01, list(range(1, 8))) is None  # only 2 epochs above
    assert suggestions.suggest([1.0] * 7, val, 0.01, list(range(1, 8))) is None  # train loss did not fall
    assert suggestions.suggest(train, val[:4] + [0.44, 0.43, 0.42], 0.01, list(range(1, 8))) is None  # still improving
    assert suggestions.suggest(train, [float("nan")] * 7, 0.01, list(range(1, 8))) is None  # no validation split
