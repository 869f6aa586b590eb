"""Studies: study files, members as real model folders, parallel and resumed runs, results and figures.

Every training study here runs on the embedded mnist-5k digits, cut to 1,000 samples and a hidden
layer of 16, for 3 epochs, so a member takes about a second."""
import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_cli import cli, results_table

from neuraterm.core.study import spec as study_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.study.folder import StudyFolder

TINY = ["--set", 'data.dataset="mnist-5k"', "--set", "data.limit=1000", "--set", "model.hidden=[16]", "--epochs", "3"]
INIT = ["study-init", *TINY, "--seeds", "0,1"]
# What two runs of one study must agree on (seconds per epoch are measured, so they differ).
SAME = ("member", "model.init", "train.seed", "state", "epochs", "best_epoch", "train_loss", "train_acc", "val_loss",
        "val_acc", "test_loss", "test_acc", "macro_f1", "parameters")
HAS_RAY = importlib.util.find_spec("ray") is not None


def table(folder: Path) -> list[dict]:
    return results_table(folder, SAME)


def parse(text: str, source: str = "s.toml"):
    return study_mod.parse(text.encode(), source)


@pytest.fixture(scope="module")
def init_study(tmp_path_factory):
    """study-init on the embedded digits, one member at a time: the reference the other runs must match."""
    cwd = tmp_path_factory.mktemp("init")
    started = time.perf_counter()
    result = cli("study", *INIT, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd / "studies" / "study-init", result, time.perf_counter() - started


# -- the study file ----------------------------------------------------------------------------------
def test_study_file_mistakes_are_one_line_with_a_suggestion():
    cases = {
        'name = "s"\npreset = "quick"\n[grid]\n"optimizer.lrr" = [0.1]\n': "unknown key 'optimizer.lrr' (did you mean 'lr'?)",
        'name = "s"\n[grid]\n"optimiser.lr" = [0.1]\n': "unknown section 'optimiser'",
        'name = "s"\nseed = [1]\n': "unknown key 'seed' (did you mean 'seeds'?)",
        'name = "s"\n[grid]\n"optimizer.lr" = 0.1\n': "must be a non-empty list",
        'name = "s"\n[paired]\n"optimizer.lr" = [0.1, 0.2]\n"train.batch_size" = [32]\n': "one value per member",
        'name = "s"\nsearch = "random"\n': "needs a [space]",
        'name = "s"\n[results]\ncharts = ["curve"]\n': "(did you mean 'curves'?)",
        'name = "../x"\n': "names the study's folder",
        'name = "s"\nkind = "ce"\n[grid]\n"optimizer.lr" = [0.1]\n': "[ce] table only",
    }
    for text, expected in cases.items():
        with pytest.raises(NeuratermError) as info:
            parse(text)
        assert expected in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith("s.toml")
    with pytest.raises(NeuratermError, match="member lr--1.0: optimizer.lr must be > 0"):
        study_mod.members(parse('name = "s"\n[grid]\n"optimizer.lr" = [0.1, -1.0]\n'))
    with pytest.raises(NeuratermError, match="unknown study 'study-int' \\(did you mean 'study-init'\\?\\)"):
        study_mod.load("study-int")


def test_members_have_stable_path_safe_names():
    grid = parse('name = "g"\nseeds = [0, 1]\n[grid]\n"optimizer.lr" = [0.1, 0.001]\n"model.hidden" = [[64], [128, 64]]\n')
    names = [m.name for m in study_mod.members(grid)]
    assert names[:3] == ["lr-0.1_hidden-64_seed-0", "lr-0.1_hidden-64_seed-1", "lr-0.1_hidden-128x64_seed-0"]
    assert len(names) == 8 == study_mod.member_count(grid)
    member = study_mod.members(grid)[3]
    assert member.config.optimizer.lr == 0.1 and member.config.model.hidden == [128, 64]
    assert member.config.train.seed == 1 and member.group == "lr-0.1_hidden-128x64"
    paired = parse('name = "p"\n[paired]\nnames = ["plain", "nesterov"]\n"optimizer.momentum" = [0.0, 0.9]\n'
                   '"optimizer.nesterov" = [false, true]\n')
    assert [(m.name, m.config.optimizer.nesterov) for m in study_mod.members(paired)] == [("plain", False),
                                                                                         ("nesterov", True)]
    full = parse('name = "b"\n[set]\n"data.limit" = 1000\n[grid]\n"train.batch_size" = [32, "full"]\n')
    assert [(m.name, m.config.train.batch_size) for m in study_mod.members(full)] == [("batch-32", 32),
                                                                                     ("batch-full", 700)]
    random = parse('name = "r"\nsearch = "random"\nsamples = 3\n[space]\n"optimizer.lr" = {loguniform = [1e-4, 1e-1]}\n'
                   '"model.hidden" = {choice = [[16], [32]]}\n')
    drawn = [(m.name, m.config.optimizer.lr, m.config.model.hidden) for m in study_mod.members(random)]
    assert drawn == [(m.name, m.config.optimizer.lr, m.config.model.hidden) for m in study_mod.members(random)]
    assert [d[0] for d in drawn] == ["sample-0", "sample-1", "sample-2"] and all(1e-4 <= d[1] <= 0.1 for d in drawn)


def test_every_shipped_study_is_valid_and_the_study_presets_moved_into_them():
    from neuraterm import presets
    from neuraterm.presets import studies
    assert {"study-init", "study-batch", "study-lr", "study-momentum", "study-ce", "study-m1-steps", "grid-mnist",
            "emnist-m", "k49-m", "capacity-cifar10"} <= set(studies.names())
    for name in studies.names():
        study = study_mod.load(name)
        assert study.name == name and study.description
        members = study_mod.members(study, full_batch=lambda config: 54_000)
        assert len(members) == (study_mod.member_count(study) if study.kind == "train" else 0)
        again = study_mod.parse(study_mod.to_toml(study).encode(), "copy")
        assert study_mod.differences(study, again) == []
    assert not [n for n in presets.names() if n.startswith("study-")]
    grid = study_mod.members(study_mod.load("grid-mnist"))
    assert len(grid) == 12 and {m.config.train.epochs for m in grid} == {20}
    assert {(m.config.optimizer.lr, m.config.train.batch_size, m.config.model.hidden[0]) for m in grid} == \
        {(lr, b, h) for lr in (0.1, 0.001, 0.0001) for b in (32, 64) for h in (64, 128)}
    batch = study_mod.members(study_mod.load("study-batch"), full_batch=lambda config: 54_000)
    assert [m.config.train.batch_size for m in batch] == [1, 16, 32, 64, 128, 256, 1024, 54_000]


def test_listing_studies():
    result = cli("studies")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "12 members" in lines["grid-mnist"] and "8 members" in lines["study-batch"]
    assert "evaluated" in lines["study-ce"] and "11 members" in lines["emnist-m"]


def test_study_modules_import_no_ui_and_no_optional_extra():
    code = ("import sys\n"
            "from neuraterm.core.study import spec, folder, runner, results, figures, cross_entropy, ray_tune, pbt\n"
            "print(','.join(m for m in ('textual', 'click', 'rich', 'ray', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- running ------------------------------------------------------------------------------------------
def test_study_init_zeros_and_ones_stay_at_chance_he_and_glorot_learn(init_study):
    folder, result, seconds = init_study
    rows = {r["member"]: r for r in csv.DictReader(open(folder / "results.csv"))}
    assert len(rows) == 12
    for seed in (0, 1):
        zeros, ones = rows[f"init-zeros_seed-{seed}"], rows[f"init-ones_seed-{seed}"]
        assert zeros["state"] == "finished" and float(zeros["test_acc"]) <= 0.15
        assert ones["state"] == "diverged" or float(ones["test_acc"]) <= 0.15  # its loss explodes at once
        for learner in ("he_normal", "glorot_uniform"):
            assert float(rows[f"init-{learner}_seed-{seed}"]["test_acc"]) >= 0.5
    markdown = (folder / "results.md").read_text()
    assert "| init-he_normal_seed-0 | he_normal | 0 | finished |" in markdown
    assert "Mean ± standard deviation over seeds 0, 1" in markdown and "| init-he_normal | 2 | 2 |" in markdown
    assert "init-ones_seed-0: loss became" in markdown  # a diverged member is a result with its reason
    for figure in ("curves", "final"):
        for suffix in ("png", "svg"):
            assert (folder / "figures" / f"{figure}.{suffix}").stat().st_size > 1000
    # Every member is an ordinary model folder, written by its own `neuraterm train`.
    member = folder / "init-he_normal_seed-1"
    assert json.loads((member / "report.json").read_text())["test_accuracy"] >= 0.5
    assert (member / "events.jsonl").is_file() and (folder / "logs" / "init-he_normal_seed-1.log").is_file()
    assert cli("eval", member).returncode == 0
    assert "init-he_normal_seed-1" in result.stdout and "test acc" in result.stdout
    print(f"study-init (12 members, --jobs 1): {seconds:.1f} s")


def test_jobs_2_gives_the_same_members_as_jobs_1(init_study, tmp_path):
    folder, _, _ = init_study
    started = time.perf_counter()
    result = cli("study", *INIT, "--jobs", 2, "--out", tmp_path / "two")
    assert result.returncode == 0, result.stderr
    assert table(tmp_path / "two") == table(folder)
    configs = study_mod.parse((tmp_path / "two" / "study.toml").read_bytes(), "x")
    assert configs == study_mod.parse((folder / "study.toml").read_bytes(), "y")
    from neuraterm.core.run import checkpoint, threads
    share = max(1, threads.available_cores() // 2)  # BLAS threads divided between the two jobs
    assert checkpoint.load(tmp_path / "two" / "init-he_normal_seed-0").config.train.threads == share
    assert checkpoint.load(folder / "init-he_normal_seed-0").config.train.threads == 0  # one job: automatic
    print(f"study-init (12 members, --jobs 2): {time.perf_counter() - started:.1f} s")


def test_a_study_run_again_skips_what_is_done_and_redraws_its_results(init_study):
    folder, _, _ = init_study
    before = {p.name: (p / "current").readlink() for p in folder.iterdir() if (p / "current").is_symlink()}
    result = cli("study", folder)
    assert result.returncode == 0, result.stderr
    after = {p.name: (p / "current").readlink() for p in folder.iterdir() if (p / "current").is_symlink()}
    assert before == after and "starting" not in result.stdout
    assert cli("study", folder, "--results-only").returncode == 0
    changed = cli("study", "study-init", *TINY, "--seeds", "0", "--out", folder)
    assert changed.returncode == 2 and "in seeds: [0, 1] there, [0] here" in changed.stderr
    assert changed.stderr.count("\n") == 1


def test_a_killed_study_finishes_with_the_same_table(init_study, tmp_path):
    """SIGKILL the driver while a member trains: its members get SIGTERM, save and stop; the next run
    resumes the interrupted one and skips the finished ones."""
    folder, _, _ = init_study
    out = tmp_path / "killed"
    _kill_after(out, "init-uniform_seed-0", INIT)
    assert not (out / "results.csv").exists()
    states = {s.name: s.state for s in StudyFolder.open(out).states()}
    assert states["init-zeros_seed-0"] == "finished" and "interrupted" in states.values()
    assert "waiting" in states.values()
    result = cli("study", out)
    assert result.returncode == 0, result.stderr
    assert table(out) == table(folder)


def test_ctrl_c_stops_every_member_with_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "lr"
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "study", "study-lr", *TINY[:-2], "--epochs", "30",
                             "--jobs", "2", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "NO_COLOR": "1"})
    deadline = time.time() + 120
    while not all((out / m / "current").is_symlink() for m in ("lr-0.001", "lr-0.005")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    states = {s.name: s.state for s in StudyFolder.open(out).states()}
    assert states["lr-0.001"] == states["lr-0.005"] == "interrupted"  # saved, resumable, not running
    assert set(states.values()) <= {"interrupted", "waiting", "finished"}
    assert (out / "results.csv").is_file() and "interrupted" in stdout


def _locked(path: Path) -> bool:
    from neuraterm.core.run.lock import holder
    return holder(path) is not None


def test_study_ce_naive_turns_nan_where_exp_overflows_and_stable_never_does(tmp_path):
    result = cli("study", "study-ce", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "studies" / "study-ce"
    rows = list(csv.DictReader(open(folder / "results.csv")))
    overflow = {"float32": 88.72, "float64": 709.78}
    for dtype, limit in overflow.items():
        mine = [(float(r["max_logit"]), float(r["naive_loss"]), float(r["stable_loss"])) for r in rows
                if r["dtype"] == dtype]
        assert len(mine) == 100 and all(abs(s) < float("inf") for _, _, s in mine)  # stable: always finite
        nan = [x for x, n, _ in mine if n != n]
        assert nan and min(nan) > limit  # NaN only once exp(z) overflows...
        assert all(n != n or n == float("inf") for x, n, _ in mine if x > limit)  # ...and never finite after
        assert all(abs(n - s) < 1e-3 * max(1, s) for x, n, s in mine if abs(n) < float("inf"))
    markdown = (folder / "results.md").read_text()
    assert "| float32 | 88.72 |" in markdown and "| float64 | 709.78 |" in markdown
    assert (folder / "figures" / "ce.png").is_file() and (folder / "figures" / "ce.svg").is_file()
    assert "float32" in result.stdout and "88.72" in result.stdout


def test_a_member_with_bad_input_stops_the_study_with_its_line(tmp_path):
    result = cli("study", "study-lr", "--set", 'data.dataset="mnist-5k"', "--set", "model.hidden=[2000000000]",
                 "--epochs", 1, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("neuraterm: error: member lr-0.001: the model needs about")
    assert result.stderr.count("\n") == 1
    states = {s.name: s.state for s in StudyFolder.open(tmp_path / "studies" / "study-lr").states()}
    assert set(states.values()) == {"waiting"}  # nothing else was started


TWO = ('name = "two"\npreset = "quick"\n[set]\n"data.dataset" = "mnist-5k"\n"data.limit" = 1000\n'
       '"model.hidden" = [16]\n"train.epochs" = 2\n[grid]\n"optimizer.lr" = [0.01, 0.02]\n')


def test_a_study_whose_members_all_fail_exits_1_with_one_line_naming_their_logs(tmp_path):
    """A disk that refuses the members' checkpoints (a 100 kB file-size limit: each member's first
    checkpoint holds 200 kB of weights) fails every member; the study says so and exits 1."""
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    (tmp_path / "two.toml").write_text(TWO)
    result = subprocess.run([sys.executable, "-m", "neuraterm", "study", "two.toml", "--set", "model.hidden=[64]",
                             "--jobs", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            preexec_fn=small_files, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1, result.stdout + result.stderr
    logs = tmp_path / "studies" / "two" / "logs"
    assert result.stderr == ("neuraterm: error: 2 of 2 members failed: lr-0.01 (studies/two/logs/lr-0.01.log), "
                             "lr-0.02 (studies/two/logs/lr-0.02.log)\n")
    assert "(File too large)" in (logs / "lr-0.01.log").read_text()
    assert {s.state for s in StudyFolder.open(tmp_path / "studies" / "two").states()} == {"failed"}


def test_the_folder_api_starts_stops_and_resumes_one_member(tmp_path):
    """What the app's Study screen uses: members with their folders and states, start, stop, resume."""
    study = study_mod.with_overrides(study_mod.load("study-lr"), ['data.dataset="mnist-5k"', "data.limit=3000",
                                                                  "model.hidden=[64]", "train.batch_size=8"], epochs=40)
    folder = StudyFolder.create(study, tmp_path / "lr")
    assert [s.state for s in folder.states()] == ["waiting"] * 7
    name = "lr-0.01"
    process = folder.start(name)
    deadline = time.time() + 60
    while folder.state(name).state != "running" or not folder.state(name).info.history:
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.1)
    folder.stop(name)
    assert process.wait(timeout=60) == 0
    stopped = folder.state(name)
    assert stopped.state == "interrupted" and 0 < stopped.info.epoch < 40
    assert folder.command(name)[3] == "resume"
    assert folder.start(name, threads=1).wait(timeout=300) == 0
    assert folder.state(name).state == "finished" and folder.state(name).info.epoch == 40



def test_a_member_ray_is_about_to_retry_is_not_started_beside_it(tmp_path):
    """While the Ray driver holds the study and its last note says it retries the member, starting the
    member here would put two trainers on one folder: one line instead, and nothing started."""
    from neuraterm.core.study.folder import RETRY_NOTE
    study = study_mod.with_overrides(study_mod.load("study-lr"), ['data.dataset="mnist-5k"', "data.limit=300"], epochs=2)
    folder = StudyFolder.create(study, tmp_path / "lr")
    name = "lr-0.01"
    folder.log_path(name).parent.mkdir(exist_ok=True)
    folder.log_path(name).write_text(f"neuraterm: its node 1a2b3c4d was lost{RETRY_NOTE}4\n")
    driver = folder.lock()
    try:
        assert folder.state(name).state == "retrying"
        with pytest.raises(NeuratermError) as error:
            started = folder.start(name)
            started.kill()  # (only without the fix: the test fails, and leaves no trainer behind)
            started.wait()
        assert str(error.value) == (f"{name} is being retried by the Ray driver of {folder.path} (its node 1a2b3c4d "
                                    f"was lost; retrying from epoch 4); wait for it, or stop that driver first")
    finally:
        driver.release()
    assert not folder.member_dir(name).exists()


AGREE = ('name = "agree"\ndescription = "seeds that agree"\npreset = "quick"\nseeds = [0, 1, 2]\n'
         '[set]\n"data.limit" = 500\n"model.hidden" = [16]\n"train.epochs" = 1\n'
         '[grid]\n"model.init" = ["zeros", "he_normal"]\n[results]\ncharts = ["curves", "final"]\n')


@pytest.fixture(scope="module")
def agreeing_seeds(tmp_path_factory):
    """Three seeds of a zeros init: each one 10.00% (the mean minus the minimum is -1e-17)."""
    cwd = tmp_path_factory.mktemp("agree")
    (cwd / "agree.toml").write_text(AGREE)
    return cwd, cli("study", "agree.toml", "--jobs", 2, cwd=cwd)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_seeds_that_agree_still_get_their_tables_and_figures(agreeing_seeds):
    cwd, result = agreeing_seeds
    assert result.returncode == 0 and result.stderr == "", result.stderr
    folder = cwd / "studies" / "agree"
    rows = {r["member"]: r for r in csv.DictReader(open(folder / "results.csv"))}
    assert len({rows[f"init-zeros_seed-{s}"]["test_acc"] for s in (0, 1, 2)}) == 1  # the seeds agree exactly
    assert "| init-zeros | 3 | 3 |" in (folder / "results.md").read_text()
    assert (folder / "figures" / "final.png").stat().st_size > 1000


def test_a_figure_that_cannot_be_drawn_is_one_line_and_never_costs_the_tables(agreeing_seeds, monkeypatch, capsys):
    from neuraterm import cli as cli_mod
    from neuraterm.core.study import figures
    cwd, _ = agreeing_seeds
    folder = cwd / "studies" / "agree"
    for name in ("results.csv", "results.md"):
        (folder / name).unlink()

    def broken(plt, folder, rows):
        raise ValueError("'yerr' must not contain\nnegative values")
    monkeypatch.setitem(figures.CHARTS, "final", broken)
    assert cli_mod.main(["study", str(folder), "--results-only"]) == 0
    err = capsys.readouterr().err
    assert err == "neuraterm: note: figure 'final' could not be drawn (ValueError: 'yerr' must not contain " \
                  "negative values)\n"
    markdown = (folder / "results.md").read_text()
    assert (folder / "results.csv").is_file() and "| init-he_normal | 3 | 3 |" in markdown
    assert "figures/curves.png" in markdown and "figures/final.png" not in markdown


def test_a_study_folder_where_no_member_started_takes_the_new_plan(tmp_path):
    """The first run's dataset is not on the machine and cannot be downloaded: the study says so
    before it starts and stops; run again on the embedded digits, the folder takes the new plan. Once
    a member trained, a different plan is refused with what differs and what to do."""
    offline = {"NEURATERM_DATA": str(tmp_path / "cache"), "HOME": str(tmp_path), "http_proxy": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    args = ["study", "study-momentum", "--set", "data.limit=500", "--set", "model.hidden=[16]", "--epochs", 1, "--out", "m"]
    first = cli(*args, "--set", 'data.dataset="kmnist"', cwd=tmp_path, env=offline)
    assert first.returncode == 2, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0].startswith(f"neuraterm: note: kmnist is not on this machine: the first member downloads it "
                               f"into {tmp_path / 'cache' / 'kmnist'}") and "mnist-5k" in lines[0]
    assert lines[1].startswith("neuraterm: error: member momentum-0:") and len(lines) == 2
    second = cli(*args, "--set", 'data.dataset="mnist-5k"', cwd=tmp_path, env=offline)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ('neuraterm: note: no member of m had started, so it now holds this study '
                             '(set "data.dataset": "kmnist" there, "mnist-5k" here)\n')
    folder = StudyFolder.open(tmp_path / "m")
    assert {s.state for s in folder.states()} == {"finished"}
    assert {s.info.dataset for s in folder.states()} == {"mnist-5k"}
    third = cli(*args, "--set", 'data.dataset="mnist-5k"', "--seeds", "0,1", cwd=tmp_path)
    assert third.returncode == 2 and third.stderr.count("\n") == 1
    assert "differs from this one in seeds: (not set) there, [0, 1] here; 4 of its members started" in third.stderr
    assert "run 'neuraterm study m' to continue it, or pass --out DIR for a new study folder" in third.stderr


def test_set_refuses_a_key_that_the_members_set_themselves():
    with pytest.raises(NeuratermError, match="--set optimizer.lr: study-lr varies optimizer.lr between its members"):
        study_mod.with_overrides(study_mod.load("study-lr"), ["optimizer.lr=0.5"])
    k49 = study_mod.with_overrides(study_mod.load("k49-m"), ['data.dataset="mnist-5k"'])
    assert {m.config.data.dataset for m in study_mod.members(k49)} == {"mnist-5k"}  # every member, m0 and m2 too


# -- every shipped study, on the embedded digits --------------------------------------------------------
SHIPPED = __import__("neuraterm.presets.studies", fromlist=["names"]).names()
HAS_PLOT = importlib.util.find_spec("matplotlib") is not None


def _shortened(study) -> list[str]:
    """The CLI options that run a shipped study on 500 embedded digits, 1 epoch, two seeds; a key the
    study varies per member (hidden sizes of a capacity study) is left to the members."""
    tiny = {"data.dataset": '"mnist-5k"', "data.limit": "500", "model.hidden": "[16]"}
    sets = [a for k, v in tiny.items() if k not in study.axes for a in ("--set", f"{k}={v}")]
    return [*sets, "--epochs", "1", "--seeds", "0,1", "--jobs", "2"]


def _png(path: Path):
    from matplotlib import image
    pixels = image.imread(path)[..., :3]
    assert (pixels < 0.95).any(axis=-1).mean() > 0.02, f"{path} is blank"
    return pixels


def _colours(pixels, colours) -> list[int]:
    """How many pixels show each colour exactly (a line's core, a legend sample)."""
    import numpy as np
    return [int((np.abs(pixels - np.array(c[:3])).max(axis=-1) < 0.02).sum()) for c in colours]


def _svg_text(path: Path) -> str:
    """The texts of an SVG figure (matplotlib writes each one as a comment before its glyphs)."""
    import re
    return "\n".join(re.findall(r"<!-- (.*?) -->", path.read_text()))


@pytest.mark.skipif(not HAS_PLOT, reason="figures need matplotlib (pip install 'neuraterm[plot]')")
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_study_runs_on_the_embedded_digits_and_draws_its_figures(name, tmp_path):
    """Each shipped study, shortened (two seeds, one epoch, 500 samples), leaves its tables and figures
    with content: a curve per group in the PNG, every group's name in the SVG."""
    from matplotlib import colormaps
    study = study_mod.load(name)
    out = tmp_path / name
    result = cli("study", name, *([] if study.kind == "ce" else _shortened(study)), "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: figure" not in result.stderr, result.stderr
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()
    rows = list(csv.DictReader(open(out / "results.csv")))
    figures = out / "figures"
    for chart in study.results.charts:
        png, svg = figures / f"{chart}.png", figures / f"{chart}.svg"
        assert f"](figures/{chart}.png)" in (out / "results.md").read_text()
        pixels, text = _png(png), _svg_text(svg)
        assert name in text  # every chart's title names its study
        if chart == "ce":
            assert "float32" in text and "float64" in text
            continue
        groups = list(dict.fromkeys(r["member"].rsplit("_seed-", 1)[0] for r in rows))
        assert len(rows) == 2 * len(groups) and {r["state"] for r in rows} <= {"finished", "diverged"}
        if chart in ("curves", "capacity", "noise"):
            assert all(g in text for g in groups), (chart, [g for g in groups if g not in text])
        if chart == "curves":
            palette = colormaps["tab10" if len(groups) <= 10 else "tab20"]
            colours = [palette(i) for i in range(palette.N)]
            counts = _colours(pixels, colours)
            grey = [len(set(c[:3])) == 1 for c in colours]  # a grid line shares these
            assert all(c >= 10 for c in counts[:len(groups)]), counts  # each group's line, in its colour
            assert not any(n for n, g in zip(counts[len(groups):], grey[len(groups):]) if not g), counts  # no other
        if chart == "final":
            assert "test" in text and "validation (last epoch)" in text
            assert all(c >= 10 for c in _colours(pixels, [colormaps["tab10"](0), colormaps["tab10"](1)]))
        if chart == "time":
            assert "seconds per epoch (log)" in text and min(_colours(pixels, [colormaps["tab10"](0)])) >= 10


def test_a_packed_member_folder_unpacks_into_a_complete_model_folder_and_leaves_user_files(tmp_path):
    """What --storage ships: a member folder packed on a worker, unpacked in the driver's study folder
    over an older copy of it: the same checkpoint (verified against its manifest), `current` switched,
    the older checkpoint gone, a file the user put there kept; a packed name that leaves the folder
    is refused."""
    import numpy as np
    from neuraterm.core.run import checkpoint
    from neuraterm.core.study import member_transfer
    run = tmp_path / "worker" / "m"
    trained = cli("train", "--preset", "quick", "--set", 'data.dataset="mnist-5k"', "--set", "data.limit=1000",
                  "--set", "model.hidden=[16]", "--epochs", 2, "--out", run)
    assert trained.returncode == 0, trained.stderr
    driver, early = tmp_path / "driver" / "m", tmp_path / "early"
    early.mkdir()
    (run / "current").rename(run / "current.keep")  # an earlier shipment: the first epoch's checkpoint only
    oldest = sorted((run / "checkpoints").iterdir())[0].name
    (run / "current").symlink_to(f"checkpoints/{oldest}")
    member_transfer.pack(run, early)
    (run / "current").unlink()
    (run / "current.keep").rename(run / "current")
    member_transfer.unpack(early, driver)
    (driver / "notes.txt").write_text("mine")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    member_transfer.pack(run, shipped)
    member_transfer.unpack(shipped, driver)
    here, there = checkpoint.load(driver), checkpoint.load(run)
    assert here.epoch == there.epoch == 2 and (driver / "report.json").is_file()
    assert all(np.array_equal(here.weights[k], there.weights[k]) for k in there.weights)
    assert os.readlink(driver / "current") == os.readlink(run / "current")
    assert {p.name for p in (driver / "checkpoints").iterdir()} == {Path(os.readlink(run / link)).name
                                                                    for link in ("current", "best")}
    assert (driver / "notes.txt").read_text() == "mine"
    assert (driver / "events.jsonl").read_bytes() == (run / "events.jsonl").read_bytes()
    (shipped / "packed.json").write_text('{"format": 1, "links": {"current": "../../etc"}}')
    with pytest.raises(NeuratermError, match="unexpected checkpoint names"):
        member_transfer.unpack(shipped, driver)


# -- Ray ------------------------------------------------------------------------------------------------
def _kill_after(out: Path, member: str, args) -> None:
    """Start `neuraterm study ARGS --out OUT` and SIGKILL it once `member` has its first checkpoint."""
    proc = subprocess.Popen([sys.executable, "-m", "neuraterm", "study", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NEURATERM_TEST_SAVE_DELAY": "0.3"})
    deadline = time.time() + 120
    while not (out / member / "current").is_symlink() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.time() + 60
    while any(_locked(p) for p in out.iterdir() if p.is_dir()) and time.time() < deadline:
        time.sleep(0.1)


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'neuraterm[ray]')")
def test_ray_local_finishes_a_study_with_the_same_table_as_jobs_1(init_study, tmp_path):
    """Half a study trained locally and killed; Ray Tune trains the rest (resuming the interrupted
    member from its folder, never retraining a finished one) and the table is the one of --jobs 1."""
    folder, _, _ = init_study
    out = tmp_path / "ray"
    _kill_after(out, "init-uniform_seed-1", INIT)
    done = {p.name: (p / "current").readlink() for p in out.iterdir() if (p / "current").is_symlink()
            and (p / "report.json").exists()}
    assert done and len(done) < 12
    started = time.perf_counter()
    result = cli("study", *INIT, "--ray", "local", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"study-init, {12 - len(done)} of 12 members through --ray local: {time.perf_counter() - started:.1f} s")
    assert table(out) == table(folder)
    assert {name: (out / name / "current").readlink() for name in done} == done
    assert (out / "ray" / "tune").is_dir() and "Ray" in result.stdout
    again = cli("study", out, "--ray", "local")  # nothing left to train: Ray is not even started
    assert again.returncode == 0 and table(out) == table(folder) and not (out / "pruned.txt").exists()


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'neuraterm[ray]')")
def test_ray_asha_stops_bad_members_of_a_random_search_early(tmp_path):
    (tmp_path / "search.toml").write_text(
        'name = "search"\ndescription = "SGD learning rates drawn at random, ASHA"\npreset = "quick"\n'
        'search = "random"\nsamples = 6\nscheduler = "asha"\n'
        '[set]\n"data.limit" = 1000\n"model.hidden" = [16]\n"train.epochs" = 6\n"optimizer.name" = "sgd"\n'
        '[space]\n"optimizer.lr" = {loguniform = [0.0001, 0.5]}\n[asha]\ngrace_period = 1\nreduction_factor = 2\n')
    result = cli("study", "search.toml", "--ray", "local", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = StudyFolder.open(tmp_path / "studies" / "search")
    states = {s.name: s for s in folder.states()}
    pruned = [s for s in states.values() if s.state == "pruned"]
    finished = [s for s in states.values() if s.state == "finished"]
    assert pruned and finished and len(pruned) + len(finished) == 6
    assert all(s.info.epoch < 6 for s in pruned) and all(s.info.epoch == 6 for s in finished)
    best_pruned = max(s.info.history[-1]["val_acc"] for s in pruned)
    assert best_pruned <= max(s.info.history[-1]["val_acc"] for s in finished)
    rows = list(csv.DictReader(open(folder.path / "results.csv")))
    assert {r["state"] for r in rows} == {"pruned", "finished"}
    again = cli("study", folder.path)  # a pruned member is never resumed, with or without Ray
    assert again.returncode == 0 and {s.state for s in folder.states()} == {"pruned", "finished"}


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'neuraterm[ray]')")
def test_a_storage_ray_cannot_use_is_one_line_before_ray_starts(tmp_path):
    (tmp_path / "two.toml").write_text(TWO)
    for storage, expected in (("foo://bar/x", "Unrecognized filesystem type in URI"),
                              ("/proc/x/y", "cannot create the folder")):
        result = cli("study", "two.toml", "--ray", "local", "--storage", storage, cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"neuraterm: error: --storage {storage}: {expected}")
    lonely = cli("study", "two.toml", "--storage", "/tmp/x", cwd=tmp_path)
    assert lonely.returncode == 2 and "--storage goes with --ray" in lonely.stderr


# -- members that branch ------------------------------------------------------------------------------
BRANCHING = """
name = "branching"
preset = "quick"
[set]
"data.limit" = 1000
"model.hidden" = [16]
"train.epochs" = 4
[[member]]
name = "base"
[[member]]
name = "wide"
"model.hidden" = [32]
[[fork]]
name = "base-lr"
from = "base"
epoch = 2
"optimizer.lr" = 0.01
[[fork]]
name = "base-lr-late"
from = "base-lr"
epoch = 3
"optimizer.lr" = 0.0003
"train.epochs" = 5
"""


def test_fork_members_train_from_their_parent_members_kept_epoch(tmp_path):
    from neuraterm.core.run import checkpoint
    (tmp_path / "branching.toml").write_text(BRANCHING)
    result = cli("study", "branching.toml", "--jobs", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "studies" / "branching"
    states = {s.name: s.state for s in StudyFolder.open(folder).states()}
    assert states == {"base": "finished", "wide": "finished", "base-lr": "finished", "base-lr-late": "finished"}
    base, fork, late = (checkpoint.load(folder / n) for n in ("base", "base-lr", "base-lr-late"))
    assert fork.history[:2] == base.history[:2] and [r["lr"] for r in fork.history[2:]] == [0.01, 0.01]
    assert late.history[:3] == fork.history[:3] and len(late.history) == 5
    chain = [(Path(e["parent"]).name, e["epoch"]) for e in late.meta["lineage"]]
    assert chain == [("base", 2), ("base-lr", 3)]
    with open(folder / "results.csv", newline="") as f:
        assert [row["member"] for row in csv.DictReader(f)] == ["base", "wide", "base-lr", "base-lr-late"]
    if importlib.util.find_spec("matplotlib") is not None:  # the curves draw each branch from its fork epoch
        from neuraterm.core.study import figures, results
        opened = StudyFolder.open(folder)
        fig = figures._curves(figures.pyplot(), opened, results.collect(opened))
        starts = {line.get_label(): int(line.get_xdata()[0]) for line in fig.axes[0].get_lines()}
        assert starts == {"base": 1, "wide": 1, "base-lr": 2, "base-lr-late": 3}


@pytest.mark.parametrize("row, message", [
    ('from = "bsae"\nepoch = 2', "from 'bsae' names no member (did you mean 'base'?)"),
    ('from = "base"\nepoch = 2\n"model.hidden" = [8]', "model.hidden cannot change in a fork"),
    ('from = "base"\nepoch = 9', "epoch 9 must be within base's 4 epochs"),
    ('from = "base"\nepoch = 2\n"train.epochs" = 2', "and below the fork's own 2"),
])
def test_fork_member_mistakes_are_one_line(row, message):
    text = BRANCHING.split("[[fork]]")[0] + f'[[fork]]\nname = "f"\n{row}\n'
    with pytest.raises(NeuratermError) as error:
        study_mod.members(parse(text))
    assert str(error.value).startswith("s.toml: [[fork]] f: ") and message in str(error.value)


SPREAD_STUDY = """name = "spread"
description = "three seeds of one member"
preset = "quick"
seeds = [0, 1, 2]
[set]
"data.limit" = 600
"model.hidden" = [16]
"train.epochs" = 3
[results]
metrics = ["train_acc", "val_acc", "test_acc", "test_loss", "macro_f1", "best_epoch", "s_per_epoch"]
charts = []
noise = true
"""


@pytest.fixture(scope="module")
def spread_study(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("spread")
    (cwd / "s.toml").write_text(SPREAD_STUDY)
    result = cli("study", "s.toml", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd / "studies" / "spread"


def test_mean_and_sample_standard_deviation_over_seeds_match_the_full_precision_table(spread_study):
    """Each "mean ± sd" cell of results.md, recomputed by hand from results.csv: the sample deviation
    (n - 1), which is what a spread over three seeds estimates; the population one is sqrt(2/3) of it."""
    folder = spread_study
    rows = list(csv.DictReader(open(folder / "results.csv")))
    assert [r["state"] for r in rows] == ["finished"] * 3
    markdown = (folder / "results.md").read_text()
    spread_table = markdown.split("## Mean ± standard deviation over seeds 0, 1, 2")[1]
    line = next(l for l in spread_table.splitlines() if l.startswith("| base |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["base", "3", "3"]
    shown = dict(zip(["train_acc", "val_acc", "test_acc", "test_loss", "macro_f1", "best_epoch", "s_per_epoch"],
                     cells[3:]))
    checked = 0
    for metric, cell in shown.items():
        values = [float(r[metric]) for r in rows]
        scale = 100 if metric.endswith("acc") else 1
        mean = sum(values) / 3
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        mean_text, sd_text = cell.rstrip().replace("%", "").split(" ± ")
        decimals = 2 if metric.endswith("acc") else 4 if metric in ("test_loss", "macro_f1") else None
        if decimals is None:  # 3 and 2 significant digits
            assert float(mean_text) == pytest.approx(mean * scale, rel=5e-3, abs=5e-3)
            assert float(sd_text) == pytest.approx(sd * scale, rel=5e-2, abs=1e-12)
            continue
        half = 0.5 * 10 ** -decimals + 1e-12
        assert abs(float(mean_text) - mean * scale) <= half, (metric, cell, values)
        assert abs(float(sd_text) - sd * scale) <= half, (metric, cell, values)
        checked += sd * scale * (1 - math.sqrt(2 / 3)) > 2 * half  # pstdev would be visibly different here
    assert checked >= 3


def test_a_results_row_is_the_members_last_epoch_its_report_its_median_seconds_and_its_health(spread_study):
    """results.csv against each member's own files: history.csv's last row (not its first), report.json,
    the median of the epochs' seconds, and the layer health measured at each epoch by default."""
    rows = list(csv.DictReader(open(spread_study / "results.csv")))
    assert len(rows) == 3
    for row in rows:
        member = spread_study / row["member"]
        history = list(csv.DictReader(open(member / "history.csv")))
        assert len(history) == 3 and row["epochs"] == "3"
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert float(row[key]) == float(history[2][key]), key
        assert float(history[2]["train_loss"]) not in (float(history[0]["train_loss"]), float(history[1]["train_loss"]))
        seconds = sorted(float(h["seconds"]) for h in history)
        assert float(row["s_per_epoch"]) == seconds[1]  # the median of three
        report = json.loads((member / "report.json").read_text())
        assert float(row["test_acc"]) == report["test_accuracy"] and float(row["test_loss"]) == report["test_loss"]
        assert float(row["macro_f1"]) == report["macro_f1"] and row["parameters"] == str(report["parameters"])
        assert float(row["balanced_acc"]) == report["balanced_accuracy"]
        noise = {float(n["sigma"]): n["accuracy"] for n in report["noise"]}
        assert len(noise) == 4 and {float(k[6:]): float(v) for k, v in row.items() if k.startswith("noise_")} == noise
        assert row["alerts"] == "healthy", row
    markdown = (spread_study / "results.md").read_text()
    assert "## Layer health at each member's last epoch\n\nEvery member is within the alert thresholds." in markdown
    member_lines = [line for line in markdown.splitlines() if line.startswith("| base_seed-")]
    assert len(member_lines) == 3 and all(line.endswith("| healthy |") for line in member_lines)
