"""Running a study with Ray Tune (the `[ray]` extra): `--ray local` or `--ray ADDRESS`.

Each member that is not done is one Tune trial of the function trainable `train_member`, which runs
the member's `Trainer` in a Ray worker and calls `tune.report` after every epoch's checkpoint with the
epoch's metrics and a Tune checkpoint. So Ray schedules the trials over the cluster's CPUs and GPUs
(one GPU per trial when the members train on the GPU), retries a trial whose worker or node died
(`FailureConfig`), and hands the retry its last checkpoint, from which the member resumes exactly. A
study run again (through Ray or not) never retrains a finished member: the study folder is the record
of what is done.

Where the member folders live:
- a shared filesystem (the default): the trial trains in the member's folder in the study folder,
  and its Tune checkpoint only points there (`member.json`). Every node must see the study folder at
  the same path; `_check_shared` asks each one before any member starts. Tune's state: `<study>/ray/`.
- `--storage URI`: the trial trains in a scratch folder of its node; its Tune checkpoint carries the
  member's folder (`member_transfer`), Tune uploads it to the storage, and the driver unpacks it into
  the study folder after every epoch (holding the member's writer lock meanwhile).

The driver's terminal shows the table only: Ray's and Tune's output goes to `<study>/ray/driver.log`
(`--verbose` shows it). With `scheduler = "asha"`, Tune's ASHA stops members whose validation metric
falls behind at each rung; they are listed in `pruned.txt` and never resumed. With `scheduler = "pbt"`,
Tune's PopulationBasedTraining (synchronous) restarts a member of the bottom quantile from a top
member's Tune checkpoint (at the epochs a round can copy, multiples of the interval, it carries the
member's folder, packed, in any storage mode; Tune keeps the last few of those, `KEPT`): the
worker makes the member's folder a recorded fork of it (`pbt.switch`) with the values Tune explored,
and the driver records each exploit in `pbt/state.json`, as the local schedule does. Divergence is a result
here too: the trial ends normally with the member's folder marked failed. Ctrl-C ends the Tune run;
each member keeps its last epoch's checkpoint (Ray stops the workers, so the epoch under way is
recomputed on resume).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from neuraterm.core import config as config_mod
from neuraterm.core.run import checkpoint, events, status as runs, threads as threads_mod
from neuraterm.core.errors import NeuratermError, RunFailed
from neuraterm.core.run.lock import WriterLock
from neuraterm.core.study import member_transfer
from neuraterm.core.study.folder import DONE, RETRY_NOTE, StudyFolder
from neuraterm.core.errors import STOP_SIGNALS
from neuraterm.core.study.runner import MemberProgress, threads_per_member

EXPERIMENTS = "ray"
CHECKPOINT_FILE = "member.json"
DRIVER_LOG = "driver.log"  # Ray's and Tune's own output, unless --verbose
# PBT: the epoch whose Tune checkpoint carries the member's folder (0 when it only points there). Tune
# keeps a trial's latest checkpoint and the KEPT highest of these: the last rounds' packed folders, which
# a member that copies a donor restarts from (synch PBT holds the donor at the next round until then).
PACKED, KEPT = "packed_epoch", 3


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


def _node() -> str:
    """This worker's node, as rows name it: the first 8 digits of Ray's node id."""
    try:
        import ray
        return ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # noqa: BLE001 -- a name for a row, never worth a failed trial
        return "?"


class _Reporter:
    """A trainer listener: after each epoch's checkpoint is saved, report that epoch to Tune, with a
    Tune checkpoint that points at the member's folder (shared filesystem) or carries it (`ship`).
    Under PBT (`interval`), the epochs where a round can happen (multiples of the interval) and the
    last carry it in any case: another member may fork from them."""

    def __init__(self, tune, run_dir: Path, name: str, ship: bool, interval: int = 0):
        self.tune, self.run_dir, self.name, self.ship, self.interval = tune, run_dir, name, ship, interval
        self.epoch_row: dict | None = None
        self.node = _node()

    def __call__(self, event) -> None:
        if isinstance(event, events.EpochEnded):
            self.epoch_row = {"epoch": event.epoch, "epochs": event.epochs, "train_loss": event.train_loss,
                              "train_acc": event.train_acc, "val_loss": event.val_loss, "val_acc": event.val_acc,
                              "seconds": event.seconds}
        elif isinstance(event, events.CheckpointSaved) and self.epoch_row and event.epoch == self.epoch_row["epoch"]:
            row, self.epoch_row = self.epoch_row, None
            self.report(_metrics(row))

    def report(self, result: dict) -> None:
        epoch = int(result.get("epoch", 0))
        round_ = self.interval and (epoch % self.interval == 0 or epoch >= result.get("epochs", epoch))
        if self.interval:
            result = {**result, PACKED: float(epoch if round_ else 0)}
        with tempfile.TemporaryDirectory() as d:
            if self.ship or round_:
                member_transfer.pack(self.run_dir, Path(d))
            Path(d, CHECKPOINT_FILE).write_text(json.dumps(
                {"member": self.name, "run_dir": str(self.run_dir), "epoch": int(result.get("epoch", 0)),
                 "checkpoint": str(checkpoint.checkpoint_dir(self.run_dir))}), encoding="utf-8")
            self.tune.report({**result, "node": self.node}, checkpoint=self.tune.Checkpoint.from_directory(d))


WORST = {"val_acc": -1.0, "train_acc": -1.0, "val_loss": 1e30, "train_loss": 1e30}  # a member that never got there


def _last_result(run_dir: Path, epochs: int) -> dict:
    """What a member that is done (or cannot go on) reports once, so every trial ends with a result
    that holds the metrics Tune and ASHA compare: its last epoch, or the worst values for a member that
    diverged before its first epoch ended."""
    info = runs.describe(run_dir)
    last = info.history[-1] if info.history else {}
    diverged = info.status == "failed" and "diverged" in info.failure
    result = {"epoch": info.epoch, "epochs": info.epochs or epochs, "seconds": last.get("seconds", 0.0)}
    for key, worst in WORST.items():
        value = last.get(key)
        result[key] = value if value is not None and value == value and not diverged else worst
    return _metrics(result)


def train_member(params: dict, configs: dict | None = None, seeds: dict | None = None) -> None:
    """The Tune trainable: train (or resume, or merely report) one study member in this worker.

    With `configs` (`--storage`) the member trains in a scratch folder of this node, restored from
    Tune's checkpoint (or from `seeds`, what the driver had of it) and shipped back with every report;
    without, it trains in its folder in the study folder, which every node sees."""
    name = params["member"]
    if configs is None:
        state = StudyFolder.open(Path(params["folder"])).state(name)
        _train(name, state.path, state.member.config, params, False, seeds)
        return
    scratch = Path(tempfile.mkdtemp(prefix="neuraterm-member-"))
    try:
        config = config_mod.parse_toml(configs[name].encode("utf-8"), f"{name}.toml")
        _train(name, scratch / name, config, params, True, seeds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(name: str, run_dir: Path, config, params: dict, ship: bool, seeds: dict | None) -> None:
    from ray import tune
    from neuraterm.core.run.trainer import Trainer
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            saved = _saved(Path(d))
            if saved.get("member", name) != name:  # PBT's exploit: another member's checkpoint
                _exploit(Path(d), saved, run_dir, params)
            elif ship:
                member_transfer.unpack(Path(d), run_dir)
            elif checkpoint.checkpoint_dir(run_dir) is None:
                saved = json.loads(Path(d, CHECKPOINT_FILE).read_text(encoding="utf-8"))
                raise NeuratermError(f"{run_dir}: missing on this node, but Tune's checkpoint says epoch "
                                     f"{saved['epoch']} was saved there: the study folder must be on a shared filesystem")
    elif ship and seeds and name in seeds:
        member_transfer.unpack_bytes(seeds[name], run_dir)
    reporter = _Reporter(tune, run_dir, name, ship, params["pbt"]["interval"] if "pbt" in params else 0)
    info = runs.describe(run_dir)
    if info.status not in ("finished", "failed"):
        resume = checkpoint.checkpoint_dir(run_dir) is not None
        if resume:
            config = checkpoint.load(run_dir).config
        if params.get("threads"):
            config.train.threads = min(params["threads"], config.train.threads or params["threads"])
        try:
            Trainer(config, run_dir, [reporter], resume=resume).run()
        except RunFailed:
            pass  # diverged, or the disk refused a save: a result, recorded in the member's event log
        except NeuratermError as exc:  # bad input: retrying would fail the same way; the driver reports it
            tune.report({**_last_result(run_dir, config.train.epochs), "error": str(exc)})
            return
    reporter.report(_last_result(run_dir, config.train.epochs))


def _saved(d: Path) -> dict:
    try:
        saved = json.loads(Path(d, CHECKPOINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _exploit(packed: Path, saved: dict, run_dir: Path, params: dict) -> None:
    """Ray's PBT restarts this member from a better member's checkpoint (packed in `packed`): the
    member's folder becomes a recorded fork of the donor at that epoch, with the values PBT explored
    (in the trial's config), as the local schedule does (`pbt.switch`). The lineage names the donor's
    folder in the study folder."""
    import dataclasses
    from neuraterm.core.run import fork as fork_mod
    from neuraterm.core.study import pbt
    donor, epoch, spec = saved["member"], int(saved["epoch"]), params["pbt"]
    values = {k: params[k] for k in spec["keys"]}
    with tempfile.TemporaryDirectory() as d:
        def source():
            copy = Path(d) / donor
            member_transfer.unpack(packed, copy)
            # the fork's history comes from the copy (the donor's folder may be on no disk of this node)
            return dataclasses.replace(fork_mod.read(copy, epoch), named=Path(spec["study"]) / donor)
        pbt.switch(run_dir, spec["name"], source, values, epoch, spec["epochs"])


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


def _clip(bounds: dict, config: dict) -> dict:
    """PBT's custom explore: a perturbed value stays within its distribution's bounds (as locally)."""
    for key, (low, high) in bounds.items():
        config[key] = type(config[key])(min(max(config[key], low), high))
    return config


def _pbt(folder: StudyFolder, pending):
    """Tune's PopulationBasedTraining (synchronous, a round every `[pbt] interval` epochs) that records
    each exploit in the study's PBT record (`pbt/state.json`, written by this driver only) and starts
    every member from its own values of the mutated keys. A member's last epoch is never a round: it
    ends, with its test report."""
    import functools
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
    from neuraterm.core.study import pbt as pbt_mod
    from neuraterm.core.study.spec import _distribution
    spec = folder.study.pbt
    mutations, bounds = {}, {}
    for key, distribution in spec.mutations.items():
        kind, args = _distribution(distribution, key)
        if kind == "choice":
            mutations[key] = list(args)
            continue
        mutations[key] = {"uniform": tune.uniform, "loguniform": tune.loguniform}[kind](*args) if kind != "randint" \
            else tune.randint(args[0], args[1] + 1)
        bounds[key] = tuple(args)
    initial = {m.name: {k: config_mod.value_at(m.config.to_dict(), k) for k in spec.mutations} for m in pending}

    class RecordingPBT(PopulationBasedTraining):
        def on_trial_add(self, tune_controller, trial):
            member = trial.config["member"]
            current = folder.member_dir(member) / "config.toml"
            values = config_mod.load_toml(current).to_dict() if current.is_file() else None
            for key in spec.mutations:  # a member resumed by a rerun goes on with its values
                trial.config[key] = config_mod.value_at(values, key) if values else initial[member][key]
            super().on_trial_add(tune_controller, trial)
            # ... and with the rounds where they were: the next one at the next multiple of the interval
            epoch = folder.state(member).info.epoch
            self._trial_state[trial].last_perturbation_time = epoch // spec.interval * spec.interval
            self._next_perturbation_sync = max(self._next_perturbation_sync, (epoch // spec.interval + 1) * spec.interval)

        def on_trial_result(self, tune_controller, trial, result):
            if result.get("epoch", 0) >= result.get("epochs", float("inf")):
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        def _get_new_config(self, trial, trial_to_clone):
            """The donor's explored values, in the trial's own config (Ray copies the donor's whole
            config, which names the donor member)."""
            new, operations = super()._get_new_config(trial, trial_to_clone)
            return {**trial.config, **{k: new[k] for k in spec.mutations}}, operations

        def _exploit(self, tune_controller, trial, trial_to_clone):
            before = {k: trial_to_clone.config[k] for k in spec.mutations}
            super()._exploit(tune_controller, trial, trial_to_clone)
            state, donor_state = self._trial_state[trial], self._trial_state[trial_to_clone]
            epoch = int((donor_state.last_result or {}).get("epoch", 0))
            score = (state.last_result or {}).get(spec.metric)
            record = pbt_mod.load_record(folder)
            rounds = record["rounds"]
            if not rounds or rounds[-1]["epoch"] != epoch:
                previous = rounds[-1]["epoch"] if rounds else 0
                curves = {s.name: [[r["epoch"], r[spec.metric]] for r in s.info.history if previous < r["epoch"] <= epoch]
                          for s in folder.states()}
                rounds.append({"generation": len(rounds) + 1, "epoch": epoch, "metric": spec.metric,
                               "curves": pbt_mod._finite(curves), "exploits": []})
            rounds[-1]["exploits"].append({
                "member": trial.config["member"], "donor": trial_to_clone.config["member"],
                "score": None if score is None or score in WORST.values() else float(score),
                "donor_score": float(donor_state.last_result[spec.metric]),
                "changes": {k: [before[k], trial.config[k]] for k in spec.mutations}, "applied": False})
            pbt_mod.save_record(folder, record)

    return RecordingPBT(time_attr="epoch", perturbation_interval=spec.interval, quantile_fraction=spec.quantile,
                        resample_probability=spec.resample_probability, perturbation_factors=tuple(spec.factors),
                        hyperparam_mutations=mutations, custom_explore_fn=functools.partial(_clip, bounds),
                        synch=True)


def _mark_applied(folder: StudyFolder) -> None:
    """An exploit of the record is applied once the member's folder is the fork (its lineage names the
    donor at that epoch); one whose member never restarted (an interrupted run) stays unapplied."""
    from neuraterm.core.study import pbt as pbt_mod
    record = pbt_mod.load_record(folder)
    changed = False
    for round_ in record["rounds"]:
        for e in round_["exploits"]:
            if not e["applied"]:
                lineage = folder.state(e["member"]).info.lineage
                if any(Path(l.get("parent", "")).name == e["donor"] and l.get("epoch") == round_["epoch"] for l in lineage):
                    e["applied"] = changed = True
    if changed:
        pbt_mod.save_record(folder, record)


def _callback(tune, folder: StudyFolder, listeners, held: dict | None):
    class Progress(tune.Callback):
        """Tune's trial events as the CLI's member rows (the driver side): results, retries after a
        lost node, failures (written to the member's log), and with `--storage` (`held` is then the
        members' writer locks the driver holds) each shipped checkpoint unpacked into the study
        folder. Tune pickles its callbacks with the experiment's state; a restored copy has no
        listeners (a terminal is not state)."""

        def __getstate__(self):
            return {}

        def emit(self, progress: MemberProgress) -> None:
            for listener in self.__dict__.get("listeners", ()):
                listener(progress)

        def on_trial_start(self, iteration, trials, trial, **info):
            name = trial.config["member"]
            held = self.__dict__.get("held")
            if held is not None and name not in held:  # the driver writes this folder now: it reads as running
                try:
                    folder.member_dir(name).mkdir(parents=True, exist_ok=True)
                    held[name] = WriterLock(folder.member_dir(name)).acquire()
                except (NeuratermError, OSError):
                    pass
            if name not in self.retried:
                self.emit(MemberProgress(name, "running"))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            name = trial.config["member"]
            if result.get("error") and name not in self.bad_input:
                self.bad_input[name] = str(result["error"])
                self.write(name, f"neuraterm: error: {result['error']}")
            message = ""
            if name in self.retried:
                message = f"retried on node {result.get('node', '?')} from epoch {self.retried[name]}"
            self.emit(MemberProgress(name, "running", int(result.get("epoch", 0)), int(result.get("epochs", 0)),
                                     result.get("val_acc"), None, result.get("seconds"), message))

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            if self.__dict__.get("held") is not None:
                with checkpoint.as_directory() as d:
                    member_transfer.unpack(Path(d), folder.member_dir(trial.config["member"]))

        def on_trial_recover(self, iteration, trials, trial, **info):
            name, last = trial.config["member"], trial.last_result or {}
            epoch = int(last.get("epoch", 0))
            self.retried[name] = epoch
            message = f"{_why(trial)}{RETRY_NOTE}{epoch}"
            self.log(name, trial, f"neuraterm: {message}")
            self.emit(MemberProgress(name, "retrying", epoch, int(last.get("epochs", 0)), last.get("val_acc"),
                                     message=message))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.release(trial.config["member"])

        def release(self, name: str) -> None:
            lock = (self.__dict__.get("held") or {}).pop(name, None)
            if lock is not None:
                lock.release()

        def on_trial_error(self, iteration, trials, trial, **info):
            name = trial.config["member"]
            self.release(name)
            why = _why(trial)
            self.log(name, trial, f"neuraterm: error: the Ray trial failed {trial.num_failures} times: {why}")
            self.emit(MemberProgress(name, "failed", message=why))

        def log(self, name: str, trial, last_line: str) -> None:
            """Tune's error (a traceback) in the member's log, where the driver's last line points."""
            try:
                text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace") if trial.error_file else ""
            except OSError:
                text = ""
            self.write(name, (text.rstrip() + "\n" if text.strip() else "") + last_line)

        def write(self, name: str, text: str) -> None:
            try:
                folder.log_path(name).parent.mkdir(exist_ok=True)
                with open(folder.log_path(name), "a", encoding="utf-8") as f:
                    f.write(text + "\n")
            except OSError:
                pass
    progress = Progress()
    progress.listeners, progress.retried, progress.bad_input, progress.held = listeners, {}, {}, held
    return progress


def _why(trial) -> str:
    """A trial's failure in a few words: a lost node, or the last line of its error."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace") if trial.error_file else ""
    except OSError:
        text = ""
    text = text or str(trial.get_error() or "")
    if re.search(r"node has died|NodeDiedError|node was terminated|ActorUnavailableError", text):
        node = re.search(r"Node Id: ([0-9a-f]{8})", text)
        return f"its node {node.group(1) if node else ''} was lost".replace("  ", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "the Ray trial failed"


def run(folder: StudyFolder, address: str = "local", jobs: int = 0, listeners=(), threads: int = 0,
        storage: str | None = None, verbose: bool = False) -> int:
    """Run the members that are not done as Tune trials; returns 0, or 130/143/129 when interrupted.
    Raises NeuratermError when Ray cannot start or join the cluster, when a node cannot see the study
    folder (without `storage`), or when a member reports bad input (as the local runner does)."""
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
        return _fit(ray, tune, folder, pending, address, jobs, listeners, threads, storage, verbose)
    finally:
        lock.release()
        for state in folder.states():
            for listener in listeners:
                listener(MemberProgress.of(state))


@contextlib.contextmanager
def _quiet(log: Path, verbose: bool):
    """Ray's and Tune's own output (C++ warnings, raylet dumps, node deaths, Tune's tracebacks) into
    `log` instead of the terminal, where the table is: the file descriptor 2 of this process,
    `sys.stderr`, `sys.stdout` (Ray prints the cluster's errors there; the table holds its own handle
    on the terminal) and the stream handlers of Ray's loggers, each put back afterwards."""
    if verbose:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8", buffering=1) as stream:
        sys.stderr.flush()
        saved_fd, saved_stderr, saved_stdout = os.dup(2), sys.stderr, sys.stdout
        handlers = [h for name, lg in logging.root.manager.loggerDict.items() if name.startswith("ray")
                    and isinstance(lg, logging.Logger) for h in lg.handlers
                    if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
        streams = [h.stream for h in handlers]
        os.dup2(stream.fileno(), 2)
        sys.stderr = sys.stdout = stream
        for h in handlers:
            h.setStream(stream)
        try:
            yield
        finally:
            for h, s in zip(handlers, streams):
                h.setStream(s)
            sys.stderr, sys.stdout = saved_stderr, saved_stdout
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def _refused(address: str, exc: BaseException, log: Path) -> str:
    """Why Ray could not start or join `address`, with what to do: token authentication, a version
    mismatch, or an address nobody answers at (Ray says only 'Failed to connect')."""
    text, cause = [], exc
    while cause is not None and len(text) < 5:
        text.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    try:
        text.append(log.read_text(encoding="utf-8", errors="replace")[-20000:])
    except OSError:
        pass
    text = "\n".join(text)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if address == "local":
        return f"--ray local: cannot start Ray ({first})"
    if re.search(r"InvalidAuthToken|Unauthenticated|AuthenticationError", text):
        return (f"--ray {address}: the cluster uses token authentication and refused this machine's token; run "
                f"with RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                f"~/.ray/auth_token ('ray get-auth-token' on the head node prints it)")
    if re.search(r"[Vv]ersion mismatch", text):
        line = next((l for l in text.splitlines() if re.search(r"[Vv]ersion mismatch", l)), first)
        return (f"--ray {address}: the cluster runs another Ray or Python version ({line.strip()[:160]}); install "
                f"the head node's versions on this machine")
    return (f"--ray {address}: cannot join a Ray cluster there ({first}); check the address ('ray status' on the "
            f"head node shows it, port 6379 unless 'ray start --port' chose another) and that this machine reaches it")


def _check_shared(ray, folder: StudyFolder, address: str) -> None:
    """Before any member starts: every node that can run one must see the study folder (the same
    path, on a shared filesystem), or every trial would fail there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    probe = (folder.path / EXPERIMENTS / "probe").resolve()
    token = uuid.uuid4().hex
    checkpoint.write_atomic(probe, token.encode())

    @ray.remote(num_cpus=0, max_retries=0)
    def sees(path: str, expected: str) -> bool:
        try:
            return Path(path).read_text(encoding="utf-8") == expected
        except OSError:
            return False
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        checks = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                  .remote(str(probe), token) for n in nodes]
        seen = ray.get(checks, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    blind = [f"{n['NodeID'][:8]} ({n.get('NodeManagerAddress', '?')})" for n, ok in zip(nodes, seen) if not ok]
    if blind:
        raise NeuratermError(f"--ray {address}: node {', '.join(blind)} cannot see the study folder "
                             f"{folder.path.resolve()}; put it on a filesystem every node mounts at that path "
                             f"(NFS), or pass --storage URI (a folder every node reaches, or s3://, gs://) and "
                             f"the members travel through it")


def _storage(uri: str) -> str:
    """`--storage` as Tune's `storage_path`, checked before Ray starts: a URI pyarrow knows, or a
    folder (made if missing) given as an absolute path."""
    if "://" in uri:
        try:
            import pyarrow.fs
            pyarrow.fs.FileSystem.from_uri(uri)
        except Exception as exc:  # noqa: BLE001 -- pyarrow's errors have no common base
            raise NeuratermError(f"--storage {uri}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return uri
    path = Path(uri).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeuratermError(f"--storage {uri}: cannot create the folder ({exc.strerror})") from None
    return str(path)


def _fit(ray, tune, folder, pending, address, jobs, listeners, threads, storage, verbose) -> int:
    local = address == "local"
    cores = threads_mod.available_cores()
    per_member = threads_per_member(jobs or (cores if local else 1), threads) or 1
    gpu = any(m.config.train.device == "gpu" for m in pending)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is ours: exit 130 like every command
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's console output honours verbose=0: our rows only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    init = {"include_dashboard": False, "logging_level": logging.WARNING if verbose else logging.ERROR,
            "log_to_driver": verbose}
    log = folder.path / EXPERIMENTS / DRIVER_LOG
    if storage is not None:
        storage = _storage(storage)
    with _quiet(log, verbose):
        try:
            ray.init(**({"num_cpus": cores} if local else {"address": address}), **init)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise NeuratermError(_refused(address, exc, log)) from None
        previous, held = {}, {}

        def on_signal(signum, frame):
            raise _Interrupted(STOP_SIGNALS[signum])
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
        try:
            if not local and storage is None:
                _check_shared(ray, folder, address)
            epochs = max(m.config.train.epochs for m in pending)
            asha, metric = folder.study.scheduler == "asha", folder.study.asha.metric
            population, space = folder.study.scheduler == "pbt", {}
            if population:
                metric = folder.study.pbt.metric
                space["pbt"] = {"keys": list(folder.study.pbt.mutations), "study": str(folder.path.resolve()),
                                "name": folder.study.name, "epochs": epochs, "interval": folder.study.pbt.interval}
            if storage is None:
                trainable = train_member
                space.update({"folder": str(folder.path.resolve())})
                where, name = str((folder.path / EXPERIMENTS).resolve()), "tune"
            else:
                configs = {m.name: folder.config_path(m.name).read_text(encoding="utf-8") for m in pending}
                seeds = {m.name: member_transfer.packed_bytes(folder.member_dir(m.name)) for m in pending
                         if checkpoint.checkpoint_dir(folder.member_dir(m.name)) is not None}
                trainable = tune.with_parameters(train_member, configs=configs, seeds=seeds)
                where = storage
                name = f"{folder.path.resolve().name}-{hashlib.sha256(str(folder.path.resolve()).encode()).hexdigest()[:8]}"
            progress = _callback(tune, folder, listeners, held if storage is not None else None)
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": per_member, "gpu": 1 if gpu else 0}),
                param_space={"member": tune.grid_search([m.name for m in pending]), "threads": per_member, **space},
                tune_config=tune.TuneConfig(
                    scheduler=_scheduler(folder, epochs) if asha else _pbt(folder, pending) if population else None,
                    max_concurrent_trials=jobs or None, reuse_actors=False,
                    **({"metric": metric, "mode": "max" if metric.endswith("acc") else "min"}
                       if asha or population else {})),
                run_config=tune.RunConfig(
                    name=name, storage_path=where, verbose=0,
                    failure_config=tune.FailureConfig(max_failures=2),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT, checkpoint_score_attribute=PACKED,
                                                            checkpoint_score_order="max") if population
                    else tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[progress]))
            try:
                tuner.fit()
            except (KeyboardInterrupt, _Interrupted) as exc:
                return exc.code if isinstance(exc, _Interrupted) else 130
            finally:
                if population:
                    _mark_applied(folder)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            ray.shutdown()
            for lock in held.values():
                lock.release()
    for member, error in progress.bad_input.items():
        if folder.state(member).state not in DONE:
            raise NeuratermError(f"member {member}: {error}")
    return 0
