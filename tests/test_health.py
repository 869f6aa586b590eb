"""Layer health and its alerts, as `neuraterm inspect` shows them: real runs, real model folders, and
every value recomputed independently with NumPy from what the checkpoint holds."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import checkpoint, events
from neuraterm.core.run.build import load_data
from neuraterm.core.run.trainer import Trainer

def strided(a: np.ndarray) -> np.ndarray:
    """What the bands are documented to be taken over: every k-th value, at most 4,096 of them."""
    flat = a.ravel()
    return flat[::-(-flat.size // 4096)]


SCALARS = ("weight_norm", "grad_norm", "update_ratio", "act_mean", "act_std", "dead_fraction")
PCT = (0, 7, 16, 31, 50, 69, 84, 93, 100)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "neuraterm", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def train(out: Path, *sets: str, epochs: int = 3) -> Path:
    args = ["train", "--preset", "quick", "--epochs", epochs, "--out", out]
    for s in sets:
        args += ["--set", s]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return out


def inspect_json(run: Path, *extra) -> dict:
    done = cli("inspect", run, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def kinds_on(report: dict, layer: str) -> set:
    return {a["kind"] for a in report["alerts"] if a["layer"] == layer}


def test_zeros_init_is_flagged_dead_or_identical_on_the_first_hidden_layer(tmp_path):
    report = inspect_json(train(tmp_path / "zeros", 'model.init="zeros"', epochs=2))
    assert kinds_on(report, "hidden1") & {"dead_units", "identical_units"}
    alert = next(a for a in report["alerts"] if a["kind"] == "dead_units")
    assert alert["epoch"] == 1 and alert["message"].endswith(".") and alert["advice"] and alert["figure"]


def test_a_tiny_learning_rate_is_flagged_updates_too_small(tmp_path):
    report = inspect_json(train(tmp_path / "tiny", "optimizer.lr=1e-7", epochs=2))
    assert "updates_too_small" in kinds_on(report, "hidden1")
    assert "updates_too_small" in kinds_on(report, "output")


def test_default_quick_has_no_alert_and_every_field_for_every_epoch(tmp_path):
    run = train(tmp_path / "quick", epochs=10)
    report = inspect_json(run)
    assert report["alerts"] == []
    assert [e["epoch"] for e in report["epochs"]] == list(range(1, 11))
    for epoch in report["epochs"]:
        assert [row["layer"] for row in epoch["layers"]] == ["hidden1", "output"]
        for row in epoch["layers"]:
            for key in SCALARS:
                if key == "dead_fraction" and row["layer"] == "output":
                    assert row[key] is None  # logits have no dead units
                else:
                    assert isinstance(row[key], float), (epoch["epoch"], row["layer"], key)
    text = cli("inspect", run)
    assert text.returncode == 0 and "no alerts" in text.stdout and "hidden1" in text.stdout
    one = inspect_json(run, "--epoch", 4)
    assert [e["epoch"] for e in one["epochs"]] == [4]


def test_health_matches_an_independent_numpy_computation(tmp_path):
    """Weights, activations, dead units and class confidence from the saved weights and probe rows; the
    update ratio from plain SGD's update being lr x gradient."""
    run = train(tmp_path / "sgd", 'optimizer.name="sgd"', "optimizer.lr=0.05", "model.hidden=[32, 16]", epochs=2)
    snap = checkpoint.load(run)
    h = snap.health
    layout = h["layout"]
    col = {name: i for i, name in enumerate(layout["fields"])}
    with np.load(run / "health.npz") as z:  # the file a user reads, not only the loader
        values, probe = z["values"], z["probe"]
        assert z["fields"].tolist() == layout["fields"]
    assert values.shape == (2, 3, len(layout["fields"])) and layout["layers"] == ["hidden1", "hidden2", "output"]
    data = load_data(snap.config)
    rows = data.train.rows[probe]
    x = data.train.images[rows].astype(np.float64) / 255.0
    y = data.train.labels[rows]
    w = [snap.weights[f"{i}.weight"].astype(np.float64) for i in (0, 1, 2)]
    b = [snap.weights[f"{i}.bias"].astype(np.float64) for i in (0, 1, 2)]
    last = values[-1]
    a = x
    for i in range(3):
        z = a @ w[i].T + b[i]
        a = np.maximum(z, 0) if i < 2 else z
        row = last[i]
        np.testing.assert_allclose(row[col["weight_norm"]], np.linalg.norm(w[i]), rtol=1e-4)
        np.testing.assert_allclose([row[col[f"weight_p{p}"]] for p in PCT], np.percentile(strided(w[i]), PCT),
                                   rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(row[col["act_mean"]], a.mean(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row[col["act_std"]], a.std(), rtol=1e-4)
        np.testing.assert_allclose([row[col[f"act_p{p}"]] for p in PCT], np.percentile(strided(a), PCT),
                                   rtol=1e-4, atol=1e-6)
        # the strided sample stays within about 2% of the distribution of all values
        full = np.percentile(a, PCT)
        assert np.all(np.abs(np.percentile(strided(a), PCT)[1:-1] - full[1:-1]) <= 0.02 * (full[-1] - full[0]) + 1e-9)
        spread = np.linalg.norm(w[i] - w[i].mean(axis=0)) / np.linalg.norm(w[i])
        np.testing.assert_allclose(row[col["unit_spread"]], spread, rtol=1e-4)
        if i < 2:
            assert row[col["dead_fraction"]] == pytest.approx(np.mean(~(a > 0).any(axis=0)))
        # plain SGD: ||delta W|| = lr ||g||, and W before the last step is W now minus that step
        lr, g, ratio = 0.05, row[col["grad_norm"]], row[col["update_ratio"]]
        before = lr * g / ratio
        assert abs(before - np.linalg.norm(w[i])) <= lr * g * 1.001 + 1e-4
    p = np.exp(a - a.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    true = p[np.arange(len(y)), y]
    expected = [true[y == k].mean() for k in range(10)]
    np.testing.assert_allclose(h["confidence"][-1], expected, rtol=1e-4)
    # 512 rows, or 1/32 of a small training split (at least 64): a probe that is not the epoch's main cost
    expected = min(512, max(64, len(data.train.rows) // 32))
    assert len(probe) == expected and len(set(probe.tolist())) == expected


def small(**train) -> config_mod.Config:
    c = config_mod.Config()
    c.data.limit = 1000
    c.model.hidden = [16]
    c.optimizer.momentum = 0.9
    c.model.dropout = 0.2  # a dropout stream that measuring must not touch
    for k, v in train.items():
        setattr(c.train, k, v)
    return c


def test_measuring_does_not_change_the_trained_bits(tmp_path):
    """Health measured at every step (the most it can be) vs off: the same weights, bit for bit, in the
    fused step and in the autograd step (batch norm)."""
    for batchnorm in (False, True):
        runs = {}
        for every in (1, 0):
            c = small(epochs=2, health_every=every)
            c.model.batchnorm = batchnorm
            trainer = Trainer(c, tmp_path / f"bn{batchnorm}-{every}")
            trainer.run()
            runs[every] = trainer.model.state_dict()
            if every:
                assert ("autograd" in trainer.step.describe()) == batchnorm
        for name in runs[0]:
            assert np.array_equal(runs[0][name], runs[1][name]), (batchnorm, name)
    off = checkpoint.load(tmp_path / "bnFalse-0")
    assert off.health is None and not (tmp_path / "bnFalse-0" / "health.npz").exists()


def test_each_epochs_health_is_measured_off_the_main_thread_and_saved_with_its_checkpoint(tmp_path, monkeypatch):
    """The epoch's measurement runs on the health thread while the event log and the checkpoint's other
    files are fsynced; its event comes after the epoch's end and before its checkpoint, and the checkpoint
    on disk when `CheckpointSaved` arrives holds that epoch's health."""
    from neuraterm.core.run import health
    threads = []
    measure = health.HealthMonitor.measure

    def spy(self):
        threads.append(threading.current_thread().name)
        return measure(self)
    monkeypatch.setattr(health.HealthMonitor, "measure", spy)
    run, order, saved = tmp_path / "r", [], {}

    def listen(event):
        if isinstance(event, (events.EpochEnded, events.HealthMeasured, events.CheckpointSaved)):
            order.append((type(event).__name__, event.epoch))
        if isinstance(event, events.CheckpointSaved):
            with np.load(run / "current" / "health.npz", allow_pickle=False) as z:
                saved[event.epoch] = z["epochs"].tolist()
    Trainer(small(epochs=3), run, listeners=[listen]).run()
    assert threads == ["neuraterm-health"] * 3
    for epoch in (1, 2, 3):
        assert order.index(("EpochEnded", epoch)) < order.index(("HealthMeasured", epoch)) \
            < order.index(("CheckpointSaved", epoch))
        assert saved[epoch] == list(range(1, epoch + 1))
    assert _ended_soon("neuraterm-health")  # the run ends its thread


def _ended_soon(name: str) -> bool:
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name == name]:
            return True
        time.sleep(0.01)
    return False


def test_a_failure_while_measuring_ends_the_run_with_it_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """An error on the health thread is raised in the run (never a hang, never a checkpoint without its
    health), and the checkpoint before it stays current and complete."""
    from neuraterm.core.run import health
    measure, calls = health.HealthMonitor.measure, []

    def failing(self):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no memory for the probe")
        return measure(self)
    monkeypatch.setattr(health.HealthMonitor, "measure", failing)
    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(_run_catching(small(epochs=3), tmp_path / "r")))
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "the run waited forever for its health"
    assert isinstance(outcome[0], MemoryError)
    snap = checkpoint.load(tmp_path / "r")
    assert snap.epoch == 1 and snap.health["epochs"].tolist() == [1]


def _run_catching(c, run):
    try:
        Trainer(c, run).run()
    except BaseException as exc:
        return exc
    return None


def test_batch_norm_layers_report_their_scale_and_shift(tmp_path):
    c = small(epochs=1)
    c.model.batchnorm = True
    seen = []
    Trainer(c, tmp_path / "bn", listeners=[seen.append]).run()
    h = next(e for e in seen if isinstance(e, events.HealthMeasured))
    assert h.kinds == ["relu", "identity"]
    assert h.bn_scale_min[0] is not None and h.bn_scale_min[0] <= h.bn_scale_max[0]
    assert h.bn_shift_min[1] is None  # the output layer has no batch norm
    assert h.samples == 1  # 720 rows / 64: 12 steps, fewer than health_every (50): the last one sampled


def test_steps_are_sampled_every_interval_and_the_last_only_when_none_was(tmp_path):
    c = small(epochs=1)
    c.train.health_every = 5
    seen = []
    Trainer(c, tmp_path / "every5", listeners=[seen.append]).run()
    h = next(e for e in seen if isinstance(e, events.HealthMeasured))
    assert h.samples == 2  # 12 steps: the 5th and the 10th; the 12th is not needed for a sample


def test_resume_keeps_the_health_of_earlier_epochs_and_the_probe(tmp_path):
    run = train(tmp_path / "r", epochs=2)
    probe = checkpoint.load(run).health["probe"]
    done = cli("resume", run, "--epochs", 4)
    assert done.returncode == 0, done.stderr
    snap = checkpoint.load(run)
    assert snap.health["epochs"].tolist() == [1, 2, 3, 4]
    assert np.array_equal(snap.health["probe"], probe)
    with np.load(run / "health.npz") as z:
        assert z["layers"].tolist() == ["hidden1", "output"] and z["epochs"].tolist() == [1, 2, 3, 4]


def test_health_events_are_bounded_and_round_trip_through_the_log(tmp_path):
    c = small(epochs=2)
    Trainer(c, tmp_path / "log").run()
    lines = [json.loads(line) for line in (tmp_path / "log" / "events.jsonl").read_text().splitlines()]
    health = [r for r in lines if r["type"] == "HealthMeasured"]
    assert [r["epoch"] for r in health] == [1, 2]
    for r in health:
        assert len(json.dumps(r)) < 600 * len(r["layers"])  # a few hundred bytes per layer per epoch
        back = events.from_record(r)
        assert isinstance(back, events.HealthMeasured) and back.weight_norm == r["weight_norm"]


def test_inspect_bad_input_is_one_line(tmp_path):
    off = train(tmp_path / "off", "train.health_every=0", epochs=1)
    done = cli("inspect", off)
    assert done.returncode == 2 and "no layer health" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    on = train(tmp_path / "on", epochs=1)
    done = cli("inspect", on, "--epoch", 7)
    assert done.returncode == 2 and "has no layer health of that epoch; it keeps epoch 1\n" in done.stderr
    done = cli("inspect", tmp_path / "nothing")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_a_damaged_health_file_is_one_error(tmp_path):
    """A health.npz whose arrays do not fit the model, re-listed in the manifest as if saved so."""
    import hashlib
    import io
    run = train(tmp_path / "d", epochs=1)
    folder = checkpoint.checkpoint_dir(run)
    with np.load(folder / "health.npz") as z:
        arrays = dict(z)
    arrays["layers"] = np.array(["just-one"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (folder / "health.npz").chmod(0o644)
    (folder / "health.npz").write_bytes(data)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"]["health.npz"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(NeuratermError, match="health.npz: its arrays do not describe 2 layers"):
        checkpoint.load(run)
    done = cli("inspect", run)
    assert done.returncode == 2 and "health.npz" in done.stderr and "Traceback" not in done.stderr


def test_study_results_flag_zeros_init_and_call_he_and_glorot_healthy(tmp_path):
    """study-init on the tiny setting of tests/test_studies.py: an alerts column per member, the reasons
    in results.md, and the update-ratio figure."""
    import csv
    out = tmp_path / "init"
    done = cli("study", "study-init", "--set", 'data.dataset="mnist-5k"', "--set", "data.limit=1000",
               "--set", "model.hidden=[16]", "--epochs", 3, "--seeds", 0, "--out", out, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = {r["member"]: r for r in csv.DictReader(open(out / "results.csv"))}
    zeros = rows["init-zeros_seed-0"]["alerts"].split()
    assert {"dead_units", "identical_units"} <= set(zeros)
    for healthy in ("init-he_normal_seed-0", "init-glorot_uniform_seed-0"):
        assert rows[healthy]["alerts"] == "healthy", rows[healthy]
    markdown = (out / "results.md").read_text()
    assert "## Layer health at each member's last epoch" in markdown
    assert "- init-zeros_seed-0, epoch 3, hidden1: dead_units (100% of units dead)" in markdown
    assert any(line.startswith("| member |") and line.rstrip().endswith("| alerts |") for line in markdown.splitlines())
    for suffix in ("png", "svg"):
        assert (out / "figures" / f"update-ratio.{suffix}").stat().st_size > 1000


def test_small_updates_of_a_network_that_fits_its_data_are_not_called_a_learning_rate_too_small():
    """Converged (train accuracy ~100%, lr 0.1) the output layer's steps are ~1e-6 of its weights: that
    is what convergence looks like, so only a network that does not yet fit its data is told to raise the LR."""
    from types import SimpleNamespace
    from neuraterm.core.run import alerts

    def epoch(confidence):
        return SimpleNamespace(epoch=18, layers=["hidden1", "output"], kinds=["relu", "identity"],
                               unit_spread=[0.5, 0.5], dead_fraction=[0.02, float("nan")],
                               saturated_fraction=[float("nan"), float("nan")], grad_norm=[0.01, 0.01],
                               update_ratio_median=[1.1e-6, 1.1e-6], class_confidence=[confidence] * 10)
    assert [a.kind for a in alerts.check(epoch(0.995))] == []
    assert {(a.kind, a.layer) for a in alerts.check(epoch(0.40))} == {("updates_too_small", "hidden1"),
                                                                      ("updates_too_small", "output")}


def test_kept_epochs_are_bounded_recent_in_full_and_never_bring_an_epoch_back():
    """As the trainer uses it: each checkpoint thins what the previous one kept, plus the new epoch."""
    from neuraterm.core.run.health import kept_epochs
    assert kept_epochs(list(range(1, 9)), limit=8) == list(range(1, 9))
    for limit in (8, 512):
        kept = list(range(1, limit + 1))
        for last in range(limit + 1, 3001):
            now = kept_epochs(kept + [last], limit=limit)
            half = limit // 2
            assert len(now) <= limit and now[-half:] == list(range(last - half + 1, last + 1)) and now == sorted(now)
            assert set(now) <= set(kept) | {last}
            assert len(now) >= limit * 3 // 4  # the older half stays at least half full: nothing lost needlessly
            kept = now
    assert kept[0] <= 32  # at the real limit, 3,000 epochs still reach back to the run's first few


def test_a_long_run_keeps_a_bounded_health_history_and_resumes_with_it(tmp_path, monkeypatch):
    from neuraterm.core.run import health as health_mod
    monkeypatch.setattr(health_mod, "HEALTH_ROWS", 6)
    c = small(epochs=14)
    c.data.limit = 300
    seen = []
    Trainer(c, tmp_path / "long", listeners=[seen.append]).run()
    saved = checkpoint.load(tmp_path / "long").health
    assert len(saved["epochs"]) <= 6 and saved["epochs"][-3:].tolist() == [12, 13, 14]
    assert len([e for e in seen if isinstance(e, events.HealthMeasured)]) == 14  # the log has every epoch
    with np.load(tmp_path / "long" / "health.npz") as z:
        assert z["values"].shape[0] == len(saved["epochs"])
    c.train.epochs = 16
    Trainer(c, tmp_path / "long", resume=True).run()
    again = checkpoint.load(tmp_path / "long").health["epochs"].tolist()
    assert len(again) <= 6 and again[-3:] == [14, 15, 16] and set(again[:-3]) <= set(saved["epochs"].tolist())


@pytest.fixture(scope="module")
def thinned(tmp_path_factory):
    """Two runs of one group: 14 epochs with a checkpoint that keeps at most 6 epochs of health (thinned
    to [4, 8, 10, 12, 13, 14]), and 6 epochs (stopped earlier) that keeps all of them."""
    from neuraterm.core.run import health as health_mod
    root = tmp_path_factory.mktemp("thinned")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(health_mod, "HEALTH_ROWS", 6)
        for name, epochs in (("long", 14), ("short", 6)):
            c = small(epochs=epochs)
            c.data.limit = 300
            Trainer(c, root / name).run()
    return root


def test_inspect_of_a_thinned_epoch_names_the_epochs_kept_and_the_nearest(thinned):
    from neuraterm.core.run.health import describe_kept, kept_epochs
    kept = [int(e) for e in checkpoint.load(thinned / "long").health["epochs"]]
    assert kept == [4, 8, 10, 12, 13, 14]
    done = cli("inspect", thinned / "long", "--epoch", 9)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (f"--epoch 9: {thinned / 'long'} has no layer health of that epoch (nearest: 8 and 10); it keeps "
            f"epochs 4, 8..12 every 2nd, 13, 14\n") in done.stderr
    assert describe_kept(kept_epochs(list(range(1, 3001)))) == "epochs 16..2736 every 16th, 2745..3000"
    assert describe_kept([5, 10, 15, 20]) == "epochs 5..20 every 5th" and describe_kept([1]) == "epoch 1"
    assert inspect_json(thinned / "long", "--epoch", 8)["epochs"][0]["epoch"] == 8


def test_the_health_figure_averages_members_epoch_by_epoch(thinned):
    """A group's line is the mean over its members of each epoch's log10 update/weight ratio, matched by
    epoch number: a thinned history and a shorter one have different epochs at the same positions."""
    from types import SimpleNamespace
    pytest.importorskip("matplotlib")
    from neuraterm.core.run import health as health_mod
    from neuraterm.core.study import figures
    rows = [SimpleNamespace(name=name, member=SimpleNamespace(group="g"), alerts=[],
                            health=health_mod.history_of(checkpoint.load(thinned / name).health))
            for name in ("long", "short")]
    fig = figures._health(figures.pyplot(), SimpleNamespace(study=SimpleNamespace(name="s")), rows)
    for layer, ax in enumerate(fig.axes[:len(rows[0].health[-1].layers)]):
        by_epoch: dict[int, list[float]] = {}
        for r in rows:
            for h in r.health:
                by_epoch.setdefault(h.epoch, []).append(np.log10(h.update_ratio_median[layer]))
        line = ax.lines[0]
        assert list(line.get_xdata()) == [1, 2, 3, 4, 5, 6, 8, 10, 12, 13, 14] == sorted(by_epoch)
        assert np.allclose(line.get_ydata(), [np.mean(by_epoch[e]) for e in sorted(by_epoch)])


def test_class_names_reach_viewers_while_the_run_trains_and_stay_plain_text(tmp_path):
    """RunStarted carries the class names, so the Inside screen and the dashboard's prediction dynamics name
    classes before there is a report; a name from the data is shown as text, never as markup or escapes."""
    from neuraterm.core.run.event_log import LogReader
    from neuraterm.tui.run_state import RunState
    from neuraterm.tui.widgets.health_views import confidence_lines
    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    x = rng.integers(0, 60, (240, 6, 6)).astype(np.uint8)
    for c in range(3):
        x[y == c, 2 * c:2 * c + 2] += 150
    data = tmp_path / "shoes.npz"
    names = ["sandal", "ankle boot", "\x1b[31mred"]
    np.savez(data, x=x, y=y, class_names=np.array(names))
    c = config_mod.Config()
    c.data.dataset, c.train.epochs, c.model.hidden = str(data), 2, [8]
    Trainer(c, tmp_path / "shoes").run()
    state = RunState()
    for event in LogReader(tmp_path / "shoes").read_new():
        if not isinstance(event, events.RunFinished):  # as a viewer sees it mid-run: no report yet
            state.apply(event)
    assert state.report is None and state.class_names == names and state.class_labels() == names
    shown = confidence_lines(state.health, state.class_labels(), 120).plain
    assert "sandal" in shown and "ankle boot" in shown and chr(27) not in shown and "\\x1b" in shown  # escaped, as text
