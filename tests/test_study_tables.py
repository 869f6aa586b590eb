"""A study's results tables (core/study/results.py) from rows made by hand: every cell checked against
numbers worked out here (means, sample deviations, roundings), not against the module's own helpers.
Fast (no member is trained): the trained-study test of the same tables is in test_studies.py."""

import numpy as np
import pytest

from neuraterm import presets
from neuraterm.core.study import results, spec as study_mod
from neuraterm.core.study.folder import StudyFolder

STUDY = """name = "tables"
description = "Two learning rates over three seeds."
preset = "quick"
seeds = [0, 1, 2]
[set]
"train.epochs" = 3
[grid]
"optimizer.lr" = [0.1, 0.01]
[results]
metrics = ["train_acc", "test_loss", "val_loss", "macro_f1", "balanced_acc", "best_epoch", "s_per_epoch",
           "parameters", "epochs"]
noise = true
"""
NONE = dict.fromkeys(study_mod.METRICS)


def folder_of(text, tmp_path):
    study = study_mod.parse(text.encode(), "t.toml")
    return StudyFolder(tmp_path, study, study_mod.members(study))


@pytest.fixture
def tables(tmp_path):
    """Six members: lr-0.1 over seeds 0-2 (one of them failed), lr-0.01 with few finite numbers."""
    folder = folder_of(STUDY, tmp_path)
    by_name = {m.name: m for m in folder.members}
    numbers = {
        "lr-0.1_seed-0": dict(train_acc=0.90, test_loss=1.0, val_loss=1.0, macro_f1=0.5, best_epoch=1,
                              s_per_epoch=0.5, parameters=1234567, epochs=3),
        "lr-0.1_seed-1": dict(train_acc=0.92, test_loss=2.0, val_loss=float("nan"), best_epoch=2,
                              s_per_epoch=0.25, parameters=1234567, epochs=3),
        "lr-0.1_seed-2": dict(train_acc=0.97, test_loss=4.0, val_loss=3.0, best_epoch=3, parameters=1234567,
                              epochs=2),
        "lr-0.01_seed-0": dict(train_acc=0.5, test_loss=float("inf")),
        "lr-0.01_seed-1": dict(train_acc=float("nan")),
        "lr-0.01_seed-2": dict(),
    }
    states = {"lr-0.1_seed-2": "failed", "lr-0.01_seed-2": "running"}
    messages = {"lr-0.1_seed-2": "diverged at epoch 2", "lr-0.01_seed-2": "waiting for its data"}
    noise = {"lr-0.1_seed-0": {0.1: 0.875, 0.3: 0.5}, "lr-0.1_seed-1": {0.1: 0.8}}
    rows = [results.Row(by_name[n], states.get(n, "finished"), {**NONE, **numbers[n]}, noise.get(n, {}),
                        message=messages.get(n, ""))
            for n in numbers]
    return folder, rows


def test_each_mean_and_sample_deviation_over_seeds_by_hand(tables):
    folder, rows = tables
    header, cells = results.spread(folder, rows)
    assert header == ["group", "seeds", "done", "train acc", "test loss", "val loss", "macro-F1", "balanced acc",
                      "best epoch", "s/epoch", "epochs"]  # no spread of a parameter count
    lr1, lr01 = cells
    # train acc 0.90, 0.92, 0.97: mean 0.93, deviations -0.03 -0.01 0.04, sd = sqrt(0.0026 / 2) = 0.036056
    # test loss 1, 2, 4: mean 7/3, sd = sqrt((16 + 1 + 25) / 9 / 2) = 1.527525
    # val loss 1, NaN, 3: the NaN is left out: mean 2, sd sqrt(2) = 1.414214
    # macro-F1 one value: sd 0; balanced acc none: "-"
    # best epoch 1, 2, 3: "2 ± 1" (3 and 2 significant digits); s/epoch 0.5, 0.25: 0.375 ± 0.1767767
    # epochs 3, 3, 2: mean 2.6667, sd 0.57735
    assert lr1 == ["lr-0.1", "3", "2", "93.00% ± 3.61", "2.3333 ± 1.5275", "2.0000 ± 1.4142", "0.5000 ± 0.0000",
                   "-", "2 ± 1", "0.375 ± 0.18", "2.67 ± 0.58"]
    # lr-0.01: train acc 0.5 alone (NaN left out); test loss inf left out; nothing else
    assert lr01 == ["lr-0.01", "3", "2", "50.00% ± 0.00", "-", "-", "-", "-", "-", "-", "-"]


def test_the_spread_is_the_sample_deviation_not_the_population_one(tables):
    folder, rows = tables
    values = [0.90, 0.92, 0.97]
    cell = results.spread(folder, rows)[1][0][3]
    assert cell == f"93.00% ± {100 * np.std(values, ddof=1):.2f}" != f"93.00% ± {100 * np.std(values):.2f}"


def test_the_table_shows_each_metric_its_own_way(tables):
    folder, rows = tables
    header, cells = results.table(folder, rows)
    assert header == ["member", "lr", "seed", "state", "train acc", "test loss", "val loss", "macro-F1",
                      "balanced acc", "best epoch", "s/epoch", "parameters", "epochs", "s=0.1", "s=0.3"]
    assert cells[0] == ["lr-0.1_seed-0", "0.1", "0", "finished", "90.00%", "1.0000", "1.0000", "0.5000", "-", "1",
                        "0.5", "1,234,567", "3", "87.50%", "50.00%"]
    assert cells[1][4:] == ["92.00%", "2.0000", "-", "-", "-", "2", "0.25", "1,234,567", "3", "80.00%", "-"]
    assert cells[3][1:6] == ["0.01", "0", "finished", "50.00%", "inf"]
    assert cells[4][4] == "-"  # a NaN accuracy
    assert [c[3] for c in cells] == ["finished", "finished", "failed", "finished", "finished", "running"]


@pytest.mark.parametrize("metric, value, text", [
    ("train_acc", 0.98765, "98.77%"), ("val_acc", 0.5, "50.00%"), ("test_acc", 1.0, "100.00%"),
    ("balanced_acc", 0.123456, "12.35%"), ("noise_0.3", 0.25, "25.00%"),
    ("train_loss", 0.123456, "0.1235"), ("val_loss", 2.0, "2.0000"), ("test_loss", 10.0, "10.0000"),
    ("macro_f1", 0.87654, "0.8765"), ("test_loss", float("inf"), "inf"), ("val_loss", float("-inf"), "-inf"),
    ("s_per_epoch", 1.23456, "1.23"), ("s_per_epoch", 123.456, "123"), ("parameters", 1234567, "1,234,567"),
    ("epochs", 12, "12"), ("best_epoch", 7, "7"), ("epochs", 1200, "1200"), ("best_epoch", 1500, "1500"), ("test_acc", None, "-"), ("test_loss", float("nan"), "-"),
])
def test_a_cell_by_hand(metric, value, text):
    metric = "".join(list(metric))  # as a study file's parser hands it over: equal, not the same object
    assert results.shown(metric, value) == text


def test_the_csv_keeps_full_precision_and_leaves_blanks(tables):
    folder, rows = tables
    lines = results.to_csv(folder, rows).splitlines()
    assert lines[0] == ("member,optimizer.lr,train.seed,state," + ",".join(study_mod.METRICS)
                        + ",noise_0.1,noise_0.3,alerts,message")
    # epochs, best_epoch, train_loss, train_acc, val_loss, val_acc, test_loss, test_acc, macro_f1,
    # balanced_acc, parameters, s_per_epoch
    assert lines[1] == "lr-0.1_seed-0,0.1,0,finished,3,1,,0.9,1.0,,1.0,,0.5,,1234567,0.5,0.875,0.5,,"
    assert lines[2] == "lr-0.1_seed-1,0.1,1,finished,3,2,,0.92,nan,,2.0,,,,1234567,0.25,0.8,,,"
    assert lines[3] == "lr-0.1_seed-2,0.1,2,failed,2,3,,0.97,3.0,,4.0,,,,1234567,,,,,diverged at epoch 2"
    assert lines[4] == "lr-0.01_seed-0,0.01,0,finished,,,,0.5,,,inf,,,,,,,,,"
    assert len(lines) == 7


def test_the_markdown_lists_states_spread_failures_and_figures(tables, tmp_path):
    folder, rows = tables
    figure = tmp_path / "figures" / "curves.png"
    text = results.to_markdown(folder, rows, [figure, tmp_path / "figures" / "curves.svg",
                                              tmp_path / "figures" / "curves.pdf"])
    assert text.startswith("# tables\n\nTwo learning rates over three seeds.\n\n"
                           "Base preset: quick; for every member: train.epochs = 3.\n\n"
                           "6 members: 4 finished, 1 failed, 1 running.\n\n| member | lr | seed | state |")
    assert "\n\n## Mean ± standard deviation over seeds 0, 1, 2\n\n| group | seeds | done | train acc |" in text
    assert "| lr-0.1 | 3 | 2 | 93.00% ± 3.61 | 2.3333 ± 1.5275 |" in text
    assert "\n\n## Members that did not finish\n\n- lr-0.1_seed-2: diverged at epoch 2\n\n" in text
    assert "waiting for its data" not in text  # a running member is not one that did not finish
    assert text.endswith("\n\n## Figures\n\n![curves](figures/curves.png)\n")  # the PNG only
    assert "Layer health" not in text  # no member measured it


def test_one_seed_has_no_seed_column_and_no_spread(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_bytes(presets.path_of("quick").read_bytes())
    folder = folder_of(STUDY.replace("seeds = [0, 1, 2]", "seeds = [4]").replace('preset = "quick"',
                                                                                 f'preset = "{preset}"'),
                       tmp_path)
    rows = [results.Row(m, "finished", dict(NONE)) for m in folder.members]
    header, _ = results.table(folder, rows)
    assert header[:3] == ["member", "lr", "state"]
    text = results.to_markdown(folder, rows)
    assert "Mean ±" not in text and "did not finish" not in text and "## Figures" not in text
    assert "Base preset: mine; for every member" in text  # a preset file is named by its stem
    assert "2 members: 2 finished." in text


@pytest.mark.parametrize("seeds, seed_column", [("", False), ("seeds = [4]", False), ("seeds = [4, 5]", True)])
def test_the_seed_column_and_the_spread_need_two_seeds(tmp_path, seeds, seed_column):
    """Every other axis stays, whatever its name sorts after ("train.threads" > "train.seed")."""
    text = STUDY.replace("seeds = [0, 1, 2]", seeds).replace('"optimizer.lr" = [0.1, 0.01]', '"train.threads" = [1, 2]')
    folder = folder_of(text, tmp_path)
    rows = [results.Row(m, "finished", dict(NONE)) for m in folder.members]
    header, cells = results.table(folder, rows)
    assert header[:4] == ["member", "threads", "seed", "state"] if seed_column else ["member", "threads", "state", "train acc"]
    assert [c[1] for c in cells] == (["1", "1", "2", "2"] if seed_column else ["1", "2"])
    assert ("## Mean ± standard deviation over seeds" in results.to_markdown(folder, rows)) == seed_column


def test_a_markdown_table_right_aligns_numeric_columns_and_escapes_bars():
    header = ["member", "name", "acc", "loss", "note"]
    cells = [["a", "x|y", "90.00%", "-", "--flag"], ["b", "z", "", "-0.5", "3 runs"], ["c", "w", "-", ".25", "x"]]
    assert results.markdown_table(header, cells).splitlines() == [
        "| member | name | acc | loss | note |",
        "|---|---|---:|---:|---|",
        "| a | x\\|y | 90.00% | - | --flag |",
        "| b | z |  | -0.5 | 3 runs |",
        "| c | w | - | .25 | x |",
    ]
    # the first column is never numeric, even when every name is a number
    assert results.markdown_table(["n", "v"], [["1", "2"]]).splitlines()[1] == "|---|---:|"


def test_best_epoch_from_the_history_when_the_report_has_none():
    nan = float("nan")
    history = [{"epoch": 1, "val_acc": 0.5, "val_loss": 0.9}, {"epoch": 2, "val_acc": nan, "val_loss": 0.4},
               {"epoch": 3, "val_acc": 0.7, "val_loss": 0.6}, {"epoch": 4, "val_acc": 0.6, "val_loss": nan}]
    assert results._best_epoch(history, "val_acc") == 3  # the highest accuracy, NaN left out
    assert results._best_epoch(history, "val_loss") == 2  # the lowest loss
    assert results._best_epoch([{"epoch": 1, "val_loss": nan}], "val_loss") is None
    assert results._best_epoch([], "val_acc") is None


def test_groups_keep_the_members_order(tables):
    _, rows = tables
    found = results.groups(rows)
    assert list(found) == ["lr-0.1", "lr-0.01"]
    assert [r.name for r in found["lr-0.01"]] == ["lr-0.01_seed-0", "lr-0.01_seed-1", "lr-0.01_seed-2"]


def test_rows_without_health_have_no_alerts():
    row = results.Row(None, "finished", dict(NONE))
    assert row.alerts == [] and row.alert_kinds == ""


# -- alerts of the last epoch, and a PBT study's columns --------------------------------------------
def _health(epoch: int, dead: float):
    """One epoch's health as alerts.check reads it: a hidden layer with `dead` of its units dead."""
    from types import SimpleNamespace
    return SimpleNamespace(epoch=epoch, layers=["hidden1", "output"], kinds=["relu", "identity"],
                           unit_spread=[0.5, 0.5], dead_fraction=[dead, float("nan")],
                           saturated_fraction=[float("nan"), float("nan")], grad_norm=[0.01, 0.01],
                           update_ratio_median=[1e-3, 1e-3], class_confidence=[0.6] * 10)


def test_a_rows_alerts_are_its_last_epochs_not_an_earlier_ones(tables):
    folder, rows = tables
    late = results.Row(rows[0].member, "finished", rows[0].metrics, health=[_health(1, 0.0), _health(2, 0.0),
                                                                             _health(3, 1.0)])
    healed = results.Row(rows[1].member, "finished", rows[1].metrics, health=[_health(1, 1.0), _health(2, 1.0),
                                                                               _health(3, 0.0)])
    assert [(a.epoch, a.layer, a.kind) for a in late.alerts] == [(3, "hidden1", "dead_units")]
    assert late.alert_kinds == "dead_units" and healed.alerts == [] and healed.alert_kinds == "healthy"
    text = results.to_markdown(folder, [late, healed])
    assert "- lr-0.1_seed-0, epoch 3, hidden1: dead_units (100% of units dead)" in text
    assert "lr-0.1_seed-1, epoch" not in text


PBT_STUDY = """name = "pop"
description = "Three members, lr and momentum explored."
preset = "quick"
scheduler = "pbt"
[set]
"train.epochs" = 6
[paired]
names = ["a", "b", "c"]
"optimizer.lr" = [0.001, 0.01, 0.1]
[pbt]
interval = 2
[pbt.mutations]
"optimizer.lr" = {loguniform = [0.0001, 1.0]}
"optimizer.momentum" = {choice = [0.0, 0.5, 0.9]}
"""
# b copied c at epoch 2 (lr 0.1 -> 0.125); a copied b at epoch 4 (lr and momentum); a round not applied.
PBT_RECORD = {"format": 1, "rounds": [
    {"generation": 1, "epoch": 2, "metric": "val_acc", "exploits": [
        {"member": "b", "donor": "c", "score": 0.5, "donor_score": 0.875, "applied": True,
         "changes": {"optimizer.lr": [0.1, 0.125]}},
        {"member": "a", "donor": "c", "score": 0.25, "donor_score": 0.875, "applied": False, "changes": {}}]},
    {"generation": 2, "epoch": 4, "metric": "val_acc", "exploits": [
        {"member": "a", "donor": "b", "score": 0.5, "donor_score": 0.9, "applied": True,
         "changes": {"optimizer.lr": [0.125, 0.1], "optimizer.momentum": [0.9, 0.5]}}]}]}


@pytest.fixture
def population(tmp_path):
    import json
    from neuraterm.core import config as config_mod
    (tmp_path / "pop.toml").write_text(PBT_STUDY)
    folder = StudyFolder.create(study_mod.load(str(tmp_path / "pop.toml")), tmp_path / "studies" / "pop")
    (folder.path / "pbt").mkdir()
    (folder.path / "pbt" / "state.json").write_text(json.dumps(PBT_RECORD))
    # a's folder holds its config as explored at epoch 4; b has none yet (its study config counts)
    folder.member_dir("a").mkdir(parents=True)
    explored = config_mod.apply_override(config_mod.apply_override(folder.member("a").config, "optimizer.lr=0.1"),
                                         "optimizer.momentum=0.5")
    (folder.member_dir("a") / "config.toml").write_text(config_mod.to_toml(explored))
    return folder


def test_a_pbt_members_row_holds_whom_it_copied_and_its_final_values(population):
    rows = {r.name: r for r in results.collect(population)}
    assert [(e["donor"], e["epoch"]) for e in rows["a"].exploits] == [("b", 4)]
    assert [(e["donor"], e["epoch"]) for e in rows["b"].exploits] == [("c", 2)] and rows["c"].exploits == []
    assert rows["a"].final == {"optimizer.lr": 0.1, "optimizer.momentum": 0.5}
    assert rows["b"].final == {"optimizer.lr": 0.01, "optimizer.momentum": population.member("b").config.optimizer.momentum}
    assert results.lineage(rows["a"]) == "b @ epoch 4, lr 0.1, momentum 0.5"
    assert results.lineage(rows["b"]) == "c @ epoch 2, lr 0.125" and results.lineage(rows["c"]) == ""


def test_a_pbt_studys_csv_table_and_markdown_show_the_lineage(population):
    rows = results.collect(population)
    lines = results.to_csv(population, rows).splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["member", "optimizer.lr", "state", "lineage", "final_optimizer.lr",
                          "final_optimizer.momentum"]
    assert lines[1].startswith('a,0.001,waiting,"b @ epoch 4, lr 0.1, momentum 0.5",0.1,0.5,')
    assert lines[3].startswith("c,0.1,waiting,,0.1,")
    head, table_cells = results.table(population, rows)
    assert head[2:6] == ["state", "copied", "final lr", "final momentum"]
    assert [c[3] for c in table_cells] == ["b @ 4", "c @ 2", "-"] and table_cells[0][4:6] == ["0.1", "0.5"]
    text = results.to_markdown(population, rows)
    assert ("## Population Based Training: every 2 epochs the bottom 0.25 by val acc copies a member of the top "
            "0.25 and perturbs lr, momentum") in text
    # oldest exploit first, whatever the rows' order
    assert ("- b <- c @ epoch 2, lr 0.125 (val acc 50.00% -> 87.50%)\n"
            "- a <- b @ epoch 4, lr 0.1, momentum 0.5 (val acc 50.00% -> 90.00%)") in text


def test_a_pbt_study_before_its_first_round_says_so(population):
    (population.path / "pbt" / "state.json").write_text('{"format": 1, "rounds": []}')
    text = results.to_markdown(population, results.collect(population))
    assert "No member copied another (no round was reached)." in text


def test_a_pbt_members_unreadable_config_leaves_its_final_values_blank(population):
    (population.member_dir("a") / "config.toml").write_text("[optimizer\nlr = ")
    rows = {r.name: r for r in results.collect(population)}
    assert rows["a"].final == {}
    assert results.to_csv(population, list(rows.values())).splitlines()[1].startswith(
        'a,0.001,waiting,"b @ epoch 4, lr 0.1, momentum 0.5",,,')


@pytest.mark.parametrize("scheduler", ["fifo", "asha"])
def test_a_study_of_another_scheduler_has_no_pbt_columns_or_section(tmp_path, scheduler):
    text = STUDY.replace('preset = "quick"', f'preset = "quick"\nscheduler = "{scheduler}"')
    if scheduler == "asha":
        text = text.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2]\n[asha]\nmetric = \"val_acc\"")
    folder = folder_of(text, tmp_path)
    rows = [results.Row(m, "waiting", dict(NONE)) for m in folder.members]
    assert "lineage" not in results.to_csv(folder, rows).splitlines()[0]
    assert "copied" not in results.table(folder, rows)[0]
    assert "Population Based Training" not in results.to_markdown(folder, rows)


def test_a_member_whose_checkpoint_is_damaged_is_a_row_without_health(population):
    c = population.member_dir("c")
    (c / "checkpoints" / "000001").mkdir(parents=True)
    (c / ".neuraterm").write_text('{"format": 2}')
    (c / "checkpoints" / "000001" / "MANIFEST.json").write_text("{")
    (c / "current").symlink_to("checkpoints/000001")
    rows = {r.name: r for r in results.collect(population)}
    assert rows["c"].health == [] and rows["c"].alert_kinds == ""
    assert rows["c"].state == "damaged" and rows["c"].message.endswith("c/checkpoints/000001/config.toml: missing")


def test_a_member_without_a_report_has_its_best_epoch_from_its_history(tmp_path, tmp_path_factory):
    """A member stopped before its test report (or still running) shows the epoch its monitor liked best."""
    import dataclasses
    from model_folders import TINY
    from neuraterm import cli as cli_mod
    from neuraterm.core.run import checkpoint
    trained = tmp_path_factory.mktemp("member") / "run"
    assert cli_mod.main(["train", "--out", str(trained), "--epochs", "1", *TINY]) == 0
    snap = checkpoint.load(trained)
    folder = folder_of(STUDY, tmp_path)
    member = folder.members[0]
    losses = [0.9, 0.4, 0.6]  # val_loss, the member's monitor: epoch 2 is its best
    history = [dict(snap.history[0], epoch=e, val_loss=v) for e, v in enumerate(losses, 1)]
    stopped = dataclasses.replace(snap, report=None, history=history,
                                  train_state={**snap.train_state, "epoch": 3})
    writer = checkpoint.RunWriter(folder.member_dir(member.name), new=True)
    try:
        writer.save(stopped)
    finally:
        writer.close()
    assert member.config.train.monitor == "val_loss"
    row = results.row_of(folder, member.name)
    assert row.report is None and row.metrics["epochs"] == 3 and row.metrics["best_epoch"] == 2
