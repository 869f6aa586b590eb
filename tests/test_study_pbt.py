"""Population Based Training studies: the [pbt] table, synchronous generations with exploits recorded as
forks, determinism, a resume after a signal, the results' lineage, the figure, and Ray Tune's PBT.

The population is four SGD members on 1,000 embedded digits with a hidden layer of 16, 6 epochs, a
round every 2 epochs: about 10 s a study with --jobs 2."""
import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_cli import cli, results_table

from neuraterm.core.errors import NeuratermError
from neuraterm.core.study import spec as study_mod
from neuraterm.core.study.folder import StudyFolder

POPULATION = """name = "pop"
description = "four SGD members, lr explored"
preset = "quick"
scheduler = "pbt"
[set]
"data.limit" = 1000
"model.hidden" = [16]
"train.epochs" = 6
"optimizer.name" = "sgd"
[paired]
names = ["a", "b", "c", "d"]
"optimizer.lr" = [0.001, 0.01, 0.1, 0.3]
[pbt]
interval = 2
seed = 3
[pbt.mutations]
"optimizer.lr" = {loguniform = [0.0001, 1.0]}
"optimizer.momentum" = {choice = [0.0, 0.5, 0.9]}
[results]
charts = ["pbt"]
"""
# What two runs of one study must agree on (seconds per epoch are measured, so they differ).
SAME = ("member", "state", "lineage", "final_optimizer.lr", "final_optimizer.momentum", "epochs", "best_epoch",
        "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "macro_f1")
HAS_RAY = importlib.util.find_spec("ray") is not None
HAS_PLOT = importlib.util.find_spec("matplotlib") is not None


def table(folder: Path) -> list[dict]:
    return results_table(folder, SAME)


def decisions(folder: Path) -> list:
    """The record's rounds: epochs, metric curves and exploits (all of it deterministic)."""
    return json.loads((folder / "pbt" / "state.json").read_text())["rounds"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The population trained once, uninterrupted: what every other run must equal."""
    cwd = tmp_path_factory.mktemp("pbt")
    (cwd / "pop.toml").write_text(POPULATION)
    started = time.perf_counter()
    result = cli("study", "pop.toml", "--jobs", 2, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"PBT, 4 members x 6 epochs, --jobs 2: {time.perf_counter() - started:.1f} s")
    return cwd, cwd / "studies" / "pop", result


# -- the [pbt] table -------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ("[pbt]\nintervall = 2", "unknown key 'intervall' (did you mean 'interval'?)"),
    ("[pbt]\nquantile = 0.7", "[pbt] quantile must be in (0, 0.5]"),
    ("[pbt]\nquantile = 0.0", "[pbt] quantile must be in (0, 0.5]"),
    ("[pbt]\ninterval = 0", "[pbt] interval must be >= 1 epoch"),
    ("[pbt]\nmetric = \"val_accc\"", "[pbt] metric 'val_accc' is not one of"),
    ("[pbt]\nfactors = [0.8, -1.2]", "[pbt] factors must be a non-empty list of positive numbers"),
    ("[pbt.mutations]\n\"model.hidden\" = {choice = [[8], [16]]}", "[pbt.mutations] model.hidden cannot be perturbed"),
    ("[pbt.mutations]\n\"optimizer.lr\" = {loguniform = [0.1, 0.01]}", "loguniform needs [low, high] with low < high"),
    ("[pbt.mutations]\n\"optimizer.lrr\" = {uniform = [0.1, 0.2]}", "unknown key 'optimizer.lrr' (did you mean 'lr'?)"),
])
def test_pbt_table_mistakes_are_one_line(change, message):
    head = 'name = "s"\nscheduler = "pbt"\n[grid]\n"optimizer.lr" = [0.1, 0.2]\n'
    mutations = '[pbt.mutations]\n"optimizer.lr" = {loguniform = [0.0001, 1.0]}\n'
    text = head + (change + "\n" if change.startswith("[pbt.mutations]") else change + "\n" + mutations)
    with pytest.raises(NeuratermError) as error:
        study_mod.parse(text.encode(), "s.toml")
    assert message in str(error.value) and "\n" not in str(error.value) and str(error.value).startswith("s.toml")


def test_pbt_needs_mutations_a_population_and_a_schedule_that_survives_generations():
    cases = {
        'name = "s"\nscheduler = "pbt"\n[grid]\n"optimizer.lr" = [0.1, 0.2]\n': "needs [pbt.mutations]",
        'name = "s"\nscheduler = "pbt"\n[pbt.mutations]\n"optimizer.lr" = {uniform = [0.1, 0.2]}\n':
            "a PBT population needs at least 2 members, this study has 1",
        'name = "s"\n[grid]\n"optimizer.lr" = [0.1, 0.2]\n[pbt]\ninterval = 3\n': '[pbt] belongs to scheduler = "pbt"',
    }
    for text, message in cases.items():
        with pytest.raises(NeuratermError, match=message.replace("[", "\\[").replace("]", "\\]")):
            study_mod.parse(text.encode(), "s.toml")
    cosine = POPULATION.replace('"optimizer.name" = "sgd"', '"optimizer.name" = "sgd"\n"schedule.name" = "cosine"')
    with pytest.raises(NeuratermError, match="member a: schedule 'cosine' spans the run's epochs"):
        study_mod.members(study_mod.parse(cosine.encode(), "s.toml"))


def test_a_malformed_pbt_table_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text(POPULATION.replace("interval = 2", "interval = 2\nquantile = 0.75"))
    result = cli("study", "bad.toml", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("neuraterm: error: bad.toml: [pbt] quantile must be in (0, 0.5]")
    assert not (tmp_path / "studies").exists()


# -- local generations -----------------------------------------------------------------------------------
def test_local_pbt_exploits_are_recorded_forks_and_explore_changes_the_copy(reference):
    """Each exploit of the record is applied: the member's folder is a fork of its donor at the round's
    epoch (lineage in model.json, the donor's history up to there), trained on with the explored values,
    and the folder it replaced is kept under pbt/replaced/ with the member's own history."""
    from neuraterm.core.run import checkpoint
    _, folder, result = reference
    rounds = decisions(folder)
    assert [r["epoch"] for r in rounds] == [2, 4]  # none after the last generation
    applied = [(r, e) for r in rounds for e in r["exploits"]]
    assert len(applied) == 2 and all(e["applied"] for _, e in applied)  # one of four exploits per round
    for round_, exploit in applied:
        member, donor, at = exploit["member"], exploit["donor"], round_["epoch"]
        assert exploit["score"] is None or exploit["score"] <= exploit["donor_score"]
        replaced = folder / "pbt" / "replaced" / f"{member}-e{at}"
        own = checkpoint.load(replaced)
        assert own.epoch == at and own.history[-1]["val_acc"] == exploit["score"]
    # The last exploit's member: a fork of its donor at that epoch, trained on with what explore drew.
    round_, exploit = applied[-1]
    member, donor, at = exploit["member"], exploit["donor"], round_["epoch"]
    snap, parent = checkpoint.load(folder / member), checkpoint.load(folder / donor)
    last = snap.meta["lineage"][-1]
    assert (Path(last["parent"]).name, last["epoch"]) == (donor, at)
    assert last["changes"]["optimizer.lr"] == exploit["changes"]["optimizer.lr"]
    assert snap.history[:at] == parent.history[:at] and len(snap.history) == 6
    lr, momentum = (exploit["changes"][k][1] for k in ("optimizer.lr", "optimizer.momentum"))
    assert [r["lr"] for r in snap.history[at:]] == [lr] * (6 - at)
    assert (snap.config.optimizer.lr, snap.config.optimizer.momentum) == (lr, momentum)
    assert {s.state for s in StudyFolder.open(folder).states()} == {"finished"}
    assert "exploit: " in result.stdout


def test_two_runs_of_a_pbt_study_are_bit_identical(reference, tmp_path):
    cwd, folder, _ = reference
    again = cli("study", cwd / "pop.toml", "--jobs", 2, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert table(tmp_path / "again") == table(folder)
    assert decisions(tmp_path / "again") == decisions(folder)


def test_the_results_show_lineage_and_final_values_and_the_figure_draws_the_jumps(reference):
    _, folder, _ = reference
    rounds = decisions(folder)
    exploits = [(r["epoch"], e) for r in rounds for e in r["exploits"]]
    rows = {r["member"]: r for r in csv.DictReader(open(folder / "results.csv", newline=""))}
    markdown = (folder / "results.md").read_text()
    for epoch, e in exploits:
        lr = e["changes"]["optimizer.lr"][1]
        assert f"{e['donor']} @ epoch {epoch}, lr {lr:.4g}" in rows[e["member"]]["lineage"]
        assert f"- {e['member']} <- {e['donor']} @ epoch {epoch}, lr {lr:.4g}" in markdown
    copied = {e["member"] for _, e in exploits}
    assert all(rows[m]["lineage"] == "" for m in rows if m not in copied)
    last_epoch, last = exploits[-1]
    assert float(rows[last["member"]]["final_optimizer.lr"]) == last["changes"]["optimizer.lr"][1]
    if not HAS_PLOT:
        pytest.fail("the figure needs matplotlib (pip install 'neuraterm[plot]')")
    for suffix in ("png", "svg"):
        assert (folder / "figures" / f"pbt.{suffix}").stat().st_size > 5000
    from neuraterm.core.study import figures, results
    opened = StudyFolder.open(folder)
    fig = figures._pbt(figures.pyplot(), opened, results.collect(opened))
    lines = fig.axes[0].get_lines()
    jumps = [l for l in lines if l.get_linestyle() == "--"]
    assert len(jumps) == len(exploits)  # one dashed jump per exploit, from the donor's point at its epoch
    for line, (epoch, e) in zip(jumps, exploits):
        assert line.get_xdata()[0] == epoch and line.get_ydata()[0] == pytest.approx(100 * e["donor_score"])
    assert sum(1 for l in lines if l.get_marker() == "x") == len(exploits)  # where each copier's own line ended
    assert "pop: PBT" in fig.axes[0].get_title()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_pbt_study_stopped_by_a_signal_then_rerun_ends_as_the_uninterrupted_one(reference, tmp_path, stop):
    """The driver is stopped in the middle: SIGINT while the second generation trains, SIGTERM right
    as the first round is recorded. It exits 130/143, and a rerun ends with the reference's table and
    decisions."""
    cwd, folder, _ = reference
    out = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "study", str(cwd / "pop.toml"), "--jobs", "2",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1", "NEURATERM_TEST_SAVE_DELAY": "0.2"})
    state = out / "pbt" / "state.json"

    def second_generation_trains() -> bool:
        return any((out / m / "history.csv").is_file() and len((out / m / "history.csv").read_text().splitlines()) > 3
                   for m in "abcd")
    ready = state.is_file if stop == signal.SIGTERM else lambda: state.is_file() and second_generation_trains()
    deadline = time.time() + 120
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the study ended before the signal"
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[stop], err
    states = {s.name: s.state for s in StudyFolder.open(out).states()}
    assert set(states.values()) != {"finished"} or len(decisions(out)) < 2  # it did stop short
    result = cli("study", out, "--jobs", 2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert table(out) == table(folder)
    assert decisions(out) == decisions(folder)


# -- Ray Tune's PopulationBasedTraining ------------------------------------------------------------------
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'neuraterm[ray]')")
def test_ray_pbt_records_its_exploits_as_forks_with_lineage(tmp_path):
    (tmp_path / "pop.toml").write_text(POPULATION)
    result = cli("study", "pop.toml", "--ray", "local", "--jobs", 4, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "studies" / "pop"
    from neuraterm.core.run import checkpoint
    states = StudyFolder.open(folder).states()
    assert {s.state for s in states} == {"finished"} and {s.info.epoch for s in states} == {6}
    exploits = [(r["epoch"], e) for r in decisions(folder) for e in r["exploits"]]
    assert exploits and all(e["applied"] for _, e in exploits)
    rows = {r["member"]: r for r in csv.DictReader(open(folder / "results.csv", newline=""))}
    for epoch, e in exploits:
        assert f"{e['donor']} @ epoch {epoch}" in rows[e["member"]]["lineage"]
    epoch, last = exploits[-1]
    snap = checkpoint.load(folder / last["member"])
    entry = snap.meta["lineage"][-1]
    assert (Path(entry["parent"]).name, entry["epoch"]) == (last["donor"], epoch)
    lr = last["changes"]["optimizer.lr"][1]
    assert snap.config.optimizer.lr == lr and [r["lr"] for r in snap.history[epoch:]] == [lr] * (6 - epoch)
    assert (folder / "pbt" / "replaced" / f"{last['member']}-e{epoch}").is_dir()
    history = [json.loads(line) for line in (folder / last["member"] / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in history if e["type"] == "EpochEnded"][:epoch] == list(range(1, epoch + 1))
    from neuraterm.core.study import ray_tune
    trials = [d for d in (folder / "ray" / "tune").iterdir() if d.is_dir() and d.name.startswith("train_member")]
    kept = {d.name: len(list(d.glob("checkpoint_*"))) for d in trials}
    assert len(trials) == 4 and all(1 <= n <= ray_tune.KEPT + 1 for n in kept.values()), kept


def test_a_pbt_member_is_not_started_alone(tmp_path):
    """The Study screen's start key on a PBT member: one line, since alone it would train past the
    population's next round."""
    (tmp_path / "pop.toml").write_text(POPULATION)
    folder = StudyFolder.create(study_mod.load(str(tmp_path / "pop.toml")), tmp_path / "pop")
    with pytest.raises(NeuratermError, match="a member of a PBT population, which trains in generations: run "
                                             "'neuraterm study .*pop' to continue it"):
        folder.start("a")
    assert folder.state("a").state == "waiting"


def test_an_exploit_cut_short_at_any_step_is_finished_by_the_next_call(tmp_path, monkeypatch):
    """The switch is: the fork written under pbt/incoming/, the member's folder renamed into
    pbt/replaced/, the fork renamed into its place. Cut after each step (a crash, a kill), the same
    call again ends in the one complete state: the fork in place, the old folder kept whole."""
    from neuraterm.core.run import checkpoint, fork as fork_mod
    from neuraterm.core.study import pbt
    study = tmp_path / "s"
    for name, lr in (("donor", "0.1"), ("member", "0.001")):
        trained = cli("train", "--preset", "quick", "--set", "data.limit=500", "--set", "model.hidden=[8]",
                      "--set", f"optimizer.lr={lr}", "--epochs", 2, "--out", study / name)
        assert trained.returncode == 0, trained.stderr
    (study / "member" / "notes.txt").write_text("mine")
    own = checkpoint.load(study / "member").history
    real_rename, calls = os.rename, []

    def switch():
        pbt.switch(study / "member", "s", lambda: fork_mod.read(study / "donor", 2), {"optimizer.lr": 0.05}, 2, 4)

    for cut in (1, 2):  # the first rename, then the second, fail once
        def rename(a, b, cut=cut):
            calls.append(a)
            if len(calls) == cut:
                raise KeyboardInterrupt
            real_rename(a, b)
        monkeypatch.setattr(os, "rename", rename)
        with pytest.raises(KeyboardInterrupt):
            switch()
        calls.clear()
    monkeypatch.setattr(os, "rename", real_rename)
    switch()
    switch()  # once complete, a further call changes nothing
    fork, kept = checkpoint.load(study / "member"), checkpoint.load(study / "pbt" / "replaced" / "member-e2")
    assert kept.history == own and (study / "pbt" / "replaced" / "member-e2" / "notes.txt").read_text() == "mine"
    assert fork.history == checkpoint.load(study / "donor").history and fork.config.optimizer.lr == 0.05
    assert [(Path(e["parent"]).name, e["epoch"]) for e in fork.meta["lineage"]] == [("donor", 2)]
    assert fork.config.train.epochs == 4 and fork.config.name == "s/member"
    assert list((study / "pbt" / "incoming").iterdir()) == []


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A donor and a member, 2 epochs each of small runs: what an exploit switches between."""
    study = tmp_path_factory.mktemp("pair") / "s"
    for name, lr in (("donor", "0.1"), ("member", "0.001")):
        trained = cli("train", "--preset", "quick", "--set", "data.limit=500", "--set", "model.hidden=[8]",
                      "--set", f"optimizer.lr={lr}", "--epochs", 2, "--out", study / name)
        assert trained.returncode == 0, trained.stderr
    return study


def copy_of(pair: Path, tmp_path: Path) -> Path:
    import shutil
    shutil.copytree(pair, tmp_path / "s", symlinks=True)
    return tmp_path / "s"


def test_a_replaced_folder_left_by_an_earlier_schedule_is_one_line_not_an_exploit_recorded_unmade(pair, tmp_path):
    """pbt/replaced/<member>-e<epoch> exists (the record was moved away and the study rerun) but the
    member's folder is not the fork: the switch must refuse rather than skip, or the exploit would be
    marked applied with the member untouched."""
    from neuraterm.core.run import checkpoint, fork as fork_mod
    from neuraterm.core.study import pbt
    study = copy_of(pair, tmp_path)
    (study / "pbt" / "replaced" / "member-e2").mkdir(parents=True)
    before = checkpoint.load(study / "member")
    with pytest.raises(NeuratermError) as error:
        pbt.switch(study / "member", "s", lambda: fork_mod.read(study / "donor", 2), {"optimizer.lr": 0.05}, 2, 4)
    message = str(error.value)
    assert "\n" not in message and str(study / "pbt" / "replaced" / "member-e2") in message
    assert "is not a fork of donor at that epoch; move" in message
    after = checkpoint.load(study / "member")
    assert after.config.optimizer.lr == before.config.optimizer.lr and not after.meta.get("lineage")


@pytest.mark.parametrize("link", ["pbt", "pbt/replaced", "pbt/incoming"])
def test_a_planted_link_among_the_pbt_folders_is_refused(pair, tmp_path, link):
    """A study folder is input: a link at pbt/, pbt/replaced/ or pbt/incoming/ would move the member's
    folder (or write the fork) wherever it points."""
    from neuraterm.core.run import fork as fork_mod
    from neuraterm.core.study import pbt
    study = copy_of(pair, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (study / link).parent.mkdir(parents=True, exist_ok=True)
    (study / link).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(NeuratermError, match="a symbolic link, which a study's PBT folders never are") as error:
        pbt.switch(study / "member", "s", lambda: fork_mod.read(study / "donor", 2), {"optimizer.lr": 0.05}, 2, 4)
    assert str(study / link) in str(error.value)
    assert list(elsewhere.iterdir()) == [] and (study / "member" / "model.json").is_file()


def test_a_ray_exploit_takes_the_donors_history_from_the_packed_copy(pair, tmp_path):
    """With --storage the worker's node may not have the study folder: the fork's event log comes from
    the donor's packed checkpoint, and only the lineage names the donor's folder in the study."""
    from neuraterm.core.run import checkpoint
    from neuraterm.core.study import member_transfer, ray_tune
    study = copy_of(pair, tmp_path)
    packed = tmp_path / "packed"
    packed.mkdir()
    member_transfer.pack(study / "donor", packed)
    from neuraterm.core.run import fork as fork_mod
    donor_log = fork_mod._events_up_to(study / "donor", 2)
    nowhere = tmp_path / "on-another-node"  # the study path as the driver's node names it
    params = {"pbt": {"keys": ["optimizer.lr"], "study": str(nowhere), "name": "s", "epochs": 4, "interval": 2},
              "optimizer.lr": 0.05}
    ray_tune._exploit(packed, {"member": "donor", "epoch": 2}, study / "member", params)
    fork = checkpoint.load(study / "member")
    assert fork.meta["lineage"][-1]["parent"] == str(nowhere / "donor") and fork.config.optimizer.lr == 0.05
    log = (study / "member" / "events.jsonl").read_bytes()
    assert b'"type": "EpochEnded"' in log and log == donor_log


def test_ray_pbt_packs_the_member_only_where_a_round_can_copy_it(pair):
    """Tune keeps a PBT trial's latest checkpoint and the KEPT highest `packed_epoch`s: the member's
    folder is packed at multiples of the interval and at its last epoch, the other epochs only point."""
    from types import SimpleNamespace
    from neuraterm.core.study import ray_tune
    reports = []

    class Checkpoint:
        @staticmethod
        def from_directory(d):
            return sorted(p.name for p in Path(d).iterdir())

    tune = SimpleNamespace(Checkpoint=Checkpoint, report=lambda result, checkpoint: reports.append((result, checkpoint)))
    reporter = ray_tune._Reporter(tune, pair / "donor", "donor", ship=False, interval=2)
    for epoch in range(1, 8):
        reporter.report({"epoch": float(epoch), "epochs": 7.0, "val_acc": 0.5})
    packed = [int(r["epoch"]) for r, files in reports if files != [ray_tune.CHECKPOINT_FILE]]
    assert packed == [2, 4, 6, 7]
    assert [r[ray_tune.PACKED] for r, _ in reports] == [0, 2, 0, 4, 0, 6, 7]
    assert 3 <= ray_tune.KEPT  # Ray warns that 2 or fewer may delete a checkpoint PBT still restores from


@pytest.mark.parametrize("record", [
    {"rounds": [1]},
    {"rounds": [{"generation": 1, "epoch": 2, "metric": "val_acc", "exploits": [{"member": "a"}]}]},
    {"rounds": [{"generation": 1, "epoch": "2", "metric": "val_acc", "exploits": []}]},
    {"rounds": [{"generation": 1, "epoch": 2, "metric": "val_acc", "curves": {"a": [[1]]}, "exploits": []}]},
    {"rounds": [{"generation": 1, "epoch": 2, "metric": "val_acc", "exploits": [
        {"member": ["a"], "donor": "b", "score": 0.1, "donor_score": 0.2, "changes": {}, "applied": True}]}]},
    {"rounds": [{"generation": 1, "epoch": 2, "metric": "val_acc", "exploits": [
        {"member": "zz", "donor": "b", "score": 0.1, "donor_score": 0.2, "changes": {}, "applied": False}]}]},
    {"rounds": [{"generation": 1, "epoch": 2, "metric": "val_acc", "exploits": [
        {"member": "a", "donor": "b", "score": 0.1, "donor_score": 0.2, "changes": {"lr": [0.1, 0.2]},
         "applied": False}]}]},
], ids=["round-not-a-table", "exploit-keys-missing", "epoch-a-string", "curve-point", "member-a-list",
        "member-unknown", "change-not-a-mutation"])
def test_a_hand_edited_pbt_record_is_one_line_in_the_results_and_the_driver(tmp_path, record):
    (tmp_path / "pop.toml").write_text(POPULATION)
    folder = StudyFolder.create(study_mod.load(str(tmp_path / "pop.toml")), tmp_path / "studies" / "pop")
    (folder.path / "pbt").mkdir()
    (folder.path / "pbt" / "state.json").write_text(json.dumps(record))
    for args in (("--results-only",), ()):
        result = cli("study", "pop.toml", *args, cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith("neuraterm: error: studies/pop/pbt/state.json: not a PBT record (")
    assert all(s.state == "waiting" for s in folder.states())
