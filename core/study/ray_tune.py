"""Running a study with Ray Tune (the `[ray]` extra): `--ray local` or `--ray ADDRESS`.

Each member that is not done is one Tune trial of the function trainable `train_member`, which runs
the member's `Trainer` in the Ray worker, writing the member's model folder in the study folder, and
calls `tune.report` after every epoch's checkpoint with the epoch's metrics and a Tune checkpoint
that points at that model-folder checkpoint (`member.json`: the folder and the epoch). So Ray
schedules the trials over the cluster's CPUs and GPUs (one GPU per trial when the members train on
the GPU), retries a trial whose worker died (`FailureConfig`), and hands the retry its last
checkpoint, from which the trainable resumes the folder exactly. A study run again (through Ray or
not) never retrains a finished member: the study folder is the record of what is done.

The study folder must be where every worker can read and write it (a shared filesystem on a
cluster; any local folder for `--ray local`); Tune's own experiment state goes to `<study>/ray/`.
With `scheduler = "asha"`, Tune's ASHA stops members whose validation metric falls behind at each
rung; they are listed in `pruned.txt` and never resumed. Divergence is a result here too: the trial
ends normally with the member's folder marked failed. Ctrl-C ends the Tune run; each member keeps
its last epoch's checkpoint (Ray stops the workers, so the epoch under way is recomputed on resume).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

from neuraterm.core.run import checkpoint, events, threads as threads_mod
from neuraterm.core.errors import NeuratermError, RunFailed
from neuraterm.core.study.folder import DONE, StudyFolder
from neuraterm.core.errors import STOP_SIGNALS
from neuraterm.core.study.runner import MemberProgress, threads_per_member

EXPERIMENTS = "ray"
CHECKPOINT_FILE = "member.json"


def import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise NeuratermError("--ray needs Ray Tune: pip install 'neuraterm[ray]'") from None
    return ray, tune


# -- in the Ray worker ----------------------------------------------------------------------------------
def _metrics(row: dict) -> dict:
    return {k: float(v) for k, v in row.items()}


class _Reporter:
    """A trainer listener: after each epoch's checkpoint is saved, report that epoch to Tune."""

    def __init__(self, tune, run_dir: Path, name: str):
        self.tune, self.run_dir, self.name = tune, run_dir, name
        self.epoch_row: dict | None = None

    def __call__(self, event) -> None:
        if isinstance(event, events.EpochEnded):
            self.epoch_row = {"epoch": event.epoch, "epochs": event.epochs, "train_loss": event.train_loss,
                              "train_acc": event.train_acc, "val_loss": event.val_loss, "val_acc": event.val_acc,
                              "seconds": event.seconds}
        elif isinstance(event, events.CheckpointSaved) and self.epoch_row and event.epoch == self.epoch_row["epoch"]:
            row, self.epoch_row = self.epoch_row, None
            with tempfile.TemporaryDirectory() as d:
                Path(d, CHECKPOINT_FILE).write_text(json.dumps(
                    {"member": self.name, "run_dir": str(self.run_dir), "epoch": row["epoch"],
                     "checkpoint": str(checkpoint.checkpoint_dir(self.run_dir))}), encoding="utf-8")
                self.tune.report(_metrics(row), checkpoint=self.tune.Checkpoint.from_directory(d))


WORST = {"val_acc": -1.0, "train_acc": -1.0, "val_loss": 1e30, "train_loss": 1e30}  # a member that never got there


def _last_result(folder: StudyFolder, name: str) -> dict:
    """What a member that is done (or cannot go on) reports once, so every trial ends with a result
    that holds the metrics Tune and ASHA compare: its last epoch, or the worst values for a member that
    diverged before its first epoch ended."""
    state = folder.state(name)
    last = state.info.history[-1] if state.info.history else {}
    result = {"epoch": state.info.epoch, "epochs": state.info.epochs or state.member.config.train.epochs,
              "seconds": last.get("seconds", 0.0)}
    for key, worst in WORST.items():
        value = last.get(key)
        result[key] = value if value is not None and value == value and state.state != "diverged" else worst
    return _metrics(result)


def train_member(params: dict) -> None:
    """The Tune trainable: train (or resume, or merely report) one study member in this worker."""
    from ray import tune
    from neuraterm.core.run.trainer import Trainer
    folder = StudyFolder.open(Path(params["folder"]))
    name = params["member"]
    state = folder.state(name)
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            saved = json.loads(Path(d, CHECKPOINT_FILE).read_text(encoding="utf-8"))
        if checkpoint.checkpoint_dir(state.path) is None:
            raise NeuratermError(f"{state.path}: missing on this node, but Tune's checkpoint says epoch "
                                 f"{saved['epoch']} was saved there: the study folder must be on a shared filesystem")
    if state.state in DONE:
        tune.report(_last_result(folder, name))
        return
    resume = checkpoint.checkpoint_dir(state.path) is not None
    config = checkpoint.load(state.path).config if resume else state.member.config
    if params.get("threads"):
        config.train.threads = min(params["threads"], config.train.threads or params["threads"])
    reporter = _Reporter(tune, state.path, name)
    try:
        Trainer(config, state.path, [reporter], resume=resume).run()
    except RunFailed:
        tune.report(_last_result(folder, name))  # diverged: a result, recorded in the member's event log
    except NeuratermError as exc:  # bad input: retrying would fail the same way; the driver reports it
        folder.log_path(name).parent.mkdir(exist_ok=True)
        with open(folder.log_path(name), "a", encoding="utf-8") as log:
            log.write(f"neuraterm: error: {exc}\n")
        tune.report(_last_result(folder, name))


# -- in the driver ------------------------------------------------------------------------------------
class _Interrupted(KeyboardInterrupt):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _scheduler(folder: StudyFolder, epochs: int):
    """Tune's ASHA with its decisions recorded: a member it stops before its last epoch is pruned."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler
    asha = folder.study.asha

    class RecordingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and result.get("epoch", epochs) < result.get("epochs", epochs):
                StudyFolder.open(folder.path).mark_pruned(trial.config["member"])
            return action

    # stop_last_trials=False: a member that reaches its last epoch ends by itself, after its test report.
    return RecordingASHA(time_attr="epoch", max_t=epochs, grace_period=min(asha.grace_period, epochs),
                         reduction_factor=asha.reduction_factor, stop_last_trials=False)


def _callback(tune, listeners):
    class Progress(tune.Callback):
        """Tune's trial events as the CLI's member rows (the driver side). Tune pickles its callbacks
        with the experiment's state; a restored copy has no listeners (a terminal is not state)."""

        def __getstate__(self):
            return {}

        def on_trial_start(self, iteration, trials, trial, **info):
            for listener in self.__dict__.get("listeners", ()):
                listener(MemberProgress(trial.config["member"], "running"))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            for listener in self.__dict__.get("listeners", ()):
                listener(MemberProgress(trial.config["member"], "running", int(result.get("epoch", 0)),
                                        int(result.get("epochs", 0)), result.get("val_acc"), None,
                                        result.get("seconds")))

        def on_trial_error(self, iteration, trials, trial, **info):
            for listener in self.__dict__.get("listeners", ()):
                listener(MemberProgress(trial.config["member"], "failed", message="the Ray trial failed"))
    progress = Progress()
    progress.listeners = listeners
    return progress


def run(folder: StudyFolder, address: str = "local", jobs: int = 0, listeners=(), threads: int = 0) -> int:
    """Run the members that are not done as Tune trials; returns 0, or 130/143/129 when interrupted.
    Raises NeuratermError when a member reports bad input (as the local runner does)."""
    if any(m.fork is not None for m in folder.members):
        raise NeuratermError("[[fork]] members train with the local runner for now (leave out --ray)")
    ray, tune = import_ray()
    listeners = list(listeners)
    lock = folder.lock()
    try:
        states = folder.states()
        for state in states:
            for listener in listeners:
                listener(MemberProgress.of(state))
        busy = [s.name for s in states if s.state in ("running", "paused")]
        if busy:
            raise NeuratermError(f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} being trained by another "
                                 f"process; stop it or wait for it before running the study through Ray")
        pending = [s.member for s in states if s.state not in DONE]
        if not pending:
            return 0
        for m in pending:  # a member's own error line is read after the run: drop older ones
            folder.log_path(m.name).unlink(missing_ok=True)
        return _fit(ray, tune, folder, pending, address, jobs, listeners, threads)
    finally:
        lock.release()
        for state in folder.states():
            for listener in listeners:
                listener(MemberProgress.of(state))


def _fit(ray, tune, folder, pending, address, jobs, listeners, threads) -> int:
    local = address == "local"
    cores = threads_mod.available_cores()
    per_member = threads_per_member(jobs or (cores if local else 1), threads) or 1
    gpu = any(m.config.train.device == "gpu" for m in pending)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is ours: exit 130 like every command
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine  # Tune's console output honours verbose=0: our rows only
    init = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        ray.init(**({"num_cpus": cores} if local else {"address": address}), **init)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise NeuratermError(f"--ray {address}: cannot start or join Ray ({str(exc).splitlines()[0]})") from None
    previous = {}

    def on_signal(signum, frame):
        raise _Interrupted(STOP_SIGNALS[signum])
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        epochs = max(m.config.train.epochs for m in pending)
        asha, metric = folder.study.scheduler == "asha", folder.study.asha.metric
        trainable = tune.with_resources(train_member, {"cpu": per_member, "gpu": 1 if gpu else 0})
        tuner = tune.Tuner(
            trainable,
            param_space={"member": tune.grid_search([m.name for m in pending]), "folder": str(folder.path.resolve()),
                         "threads": per_member},
            tune_config=tune.TuneConfig(
                scheduler=_scheduler(folder, epochs) if asha else None, max_concurrent_trials=jobs or None,
                reuse_actors=False, **({"metric": metric, "mode": "max" if metric.endswith("acc") else "min"}
                                       if asha else {})),
            run_config=tune.RunConfig(
                name="tune", storage_path=str((folder.path / EXPERIMENTS).resolve()), verbose=0,
                failure_config=tune.FailureConfig(max_failures=2),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1), callbacks=[_callback(tune, listeners)]))
        try:
            tuner.fit()
        except (KeyboardInterrupt, _Interrupted) as exc:
            return exc.code if isinstance(exc, _Interrupted) else 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ray.shutdown()
    for m in pending:
        error = folder.last_error(m.name)
        if error and folder.state(m.name).state not in DONE:
            raise NeuratermError(f"member {m.name}: {error}")
    return 0
