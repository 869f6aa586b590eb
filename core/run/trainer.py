"""The training loop: epochs of mini-batches that publish events and checkpoint every epoch.

The loop knows no UI. It checks one `Control` between steps, so Pause, Stop, Ctrl-C and a closing
window all act within a step; early stopping is a flag too (Keras' `stop_training`). Everything
that decides what happens next (weights, optimizer moments, data-order and dropout RNG states,
position inside the epoch, early-stopping and plateau counters) is saved, which makes a resumed
run continue bit for bit as if it had never stopped (on the CPU).

The run holds its folder's writer lock from start to end (`checkpoint.RunWriter`). It stops as
diverged (exit 1, the last good checkpoint stays current) when the mean training loss over the steps
since the last progress read is not finite, or is more than `DIVERGED` times the reference loss: the
larger of chance level, ln(classes), and the first loss the run read. The reference is saved, so a
resume with a wild learning rate is judged against the run's own start.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuraterm import __version__
from neuraterm.core import backend
from neuraterm.core.run import alerts, checkpoint, events, health, threads
from neuraterm.core.optim import schedules
from neuraterm.core.run.commands import CommandWatcher
from neuraterm.core.run.event_log import EventLog
from neuraterm.core.config import Config
from neuraterm.core.data.batches import BatchOrder
from neuraterm.core.data.feeder import Feeder
from neuraterm.core.data.prepare import Prepared
from neuraterm.core.nn.dropout import Dropout
from neuraterm.core.errors import NeuratermError, RunFailed
from neuraterm.core.run.build import (build_model, build_optimizer, build_schedule, check_fits_in_memory,
                                      check_validation, load_data)
from neuraterm.core.run.evaluate import loss_and_accuracy, report
from neuraterm.core.run.export import input_record
from neuraterm.core.run.steps import make_step


DIVERGED = 10.0  # times the reference loss (see the module docstring)


class Control:
    """Pause, resume and stop from any thread; the loop polls it between steps."""

    def __init__(self):
        self._running = threading.Event()
        self._running.set()
        self.stop_requested = False
        self.save_requested = False
        self.saving = False  # a checkpoint is being written (a second Ctrl-C waits for it)

    def request_save(self) -> None:
        """Checkpoint at the next step boundary and carry on ('save now')."""
        self.save_requested = True

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.stop_requested = True
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, timeout: float | None = None) -> None:
        self._running.wait(timeout)


@dataclass
class EarlyStopping:
    """Keras semantics: stop after `patience` epochs without an improvement larger than `min_delta`."""
    monitor: str
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.monitor.endswith("acc"):
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, epoch: int, value: float) -> bool:
        """Record an epoch's value; True when this is the best so far."""
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.wait >= self.patience


@dataclass
class Trainer:
    config: Config
    run_dir: Path
    listeners: list = field(default_factory=list)
    resume: bool = False
    data: Prepared | None = None
    control: Control = field(default_factory=Control)
    step_events_per_s: float = 20.0
    download_progress: object = None  # (file name, bytes done, bytes total) -> None, while a dataset downloads
    _measuring: health.Measuring | None = field(default=None, init=False, repr=False)  # the health thread

    def emit(self, event: events.Event) -> None:
        for listener in self.listeners:
            listener(event)

    # -- set-up -----------------------------------------------------------------------------
    def _setup(self) -> None:
        c = self.config
        self.xp = backend.select(c.train.device)
        snap = checkpoint.load(self.run_dir, with_best=True) if self.resume else None
        if self.data is None:
            self.data = load_data(c, self.download_progress, snap.meta.get("dataset_source") if snap else None)
        data = self.data
        check_validation(data, c, new_run=snap is None)
        sizes = [data.num_features, *c.model.hidden, data.num_classes]
        if snap is not None:
            saved = snap.meta.get("architecture", {}).get("sizes")
            if saved != sizes:
                raise NeuratermError(f"{self.run_dir}: the model is {saved}, but {c.data.dataset} now gives {sizes}")
            data.normalizer.restore(snap.normalization)
        check_fits_in_memory(sizes, c.train.batch_size, c.optimizer.name)
        # BLAS threads matter on the CPU only (choosing them samples the machine's load for 0.2 s)
        self.threads, self.threads_why = threads.choose(c.train.threads, sizes, c.train.batch_size) \
            if self.xp is np else (0, "")
        self.model = build_model(c, data.num_features, data.num_classes, self.xp)
        self.optimizer = build_optimizer(c, self.model)
        self.schedule = build_schedule(c)
        self.plateau = (schedules.ReduceLROnPlateau(c.optimizer.lr, c.schedule.factor, c.schedule.patience,
                                                    c.schedule.lr_min) if c.schedule.name == "plateau" else None)
        self.early = EarlyStopping(c.train.monitor, c.train.early_stopping, c.train.min_delta)
        self.order = BatchOrder(len(data.train), c.train.batch_size, c.train.seed, rows=data.train.rows)
        self.dropouts = [m for m in self.model.layers() if isinstance(m, Dropout)]
        self.history: list[dict] = []
        self.best_weights: dict = {}
        self.epoch = 0  # epochs completed
        self.partial: dict | None = None  # position inside an interrupted epoch
        self.reference_loss: float | None = None  # the divergence guard's yardstick
        self.saved_health = snap.health if snap is not None else None
        self.lineage = snap.meta.get("lineage") if snap is not None else None  # a fork's parents (fork.py)
        if snap is not None:
            self._restore(snap)

    def _restore(self, snap: checkpoint.Snapshot) -> None:
        self.model.load_state_dict(snap.weights)
        self.optimizer.load_state_dict(snap.optimizer)
        try:
            s = snap.train_state
            self.epoch = int(s["epoch"])
            self.order.set_state(s["order_rng"])
            for layer, state in zip(self.dropouts, s.get("dropout_rng", [])):
                layer.set_rng_state(state)
            self.early.best, self.early.best_epoch, self.early.wait = s["early"]["best"], s["early"]["best_epoch"], s["early"]["wait"]
            if self.plateau is not None and s.get("plateau"):
                for k, v in s["plateau"].items():
                    setattr(self.plateau, k, v)
            self.partial = s.get("partial")
            self.reference_loss = s.get("reference_loss")
            if self.partial is not None and self.partial["step"] > len(self.order):
                raise ValueError(f"partial.step {self.partial['step']} is past the epoch's {len(self.order)} steps")
        except (KeyError, TypeError, ValueError) as exc:
            raise NeuratermError(f"{self.run_dir / 'state' / 'train.json'}: incomplete training state ({exc})") from None
        self.history = snap.history
        self.best_weights = snap.best_weights
        if snap.report is not None and self.epoch < self.config.train.epochs:
            self.early.wait = 0  # a finished run asked for more epochs: early stopping starts counting again

    # -- checkpoints ------------------------------------------------------------------------
    def _snapshot(self, weights: dict, report_dict: dict | None = None) -> checkpoint.Snapshot:
        data, c = self.data, self.config
        meta = {
            "neuraterm_version": __version__,
            "architecture": {"sizes": [data.num_features, *c.model.hidden, data.num_classes],
                             "activation": c.model.activation, "batchnorm": c.model.batchnorm,
                             "dropout": c.model.dropout, "layers": [repr(m) for m in self.model.layers()]},
            "parameters": self.model.num_parameters(),
            "dataset": c.data.dataset,
            "dataset_source": data.origin,
            "class_names": data.class_names,
            "normalization": data.normalizer.mode,
            "input": input_record(data),
            "device": backend.name_of(self.xp),
        }
        if self.lineage:
            meta["lineage"] = self.lineage
        state = {
            "epoch": self.epoch,
            "order_rng": self.order.get_state(),
            "dropout_rng": [layer.get_rng_state() for layer in self.dropouts],
            "early": {"best": self.early.best, "best_epoch": self.early.best_epoch, "wait": self.early.wait},
            "plateau": self.plateau.state() if self.plateau else None,
            "partial": self.partial,
            "lr": self.optimizer.lr,
            "reference_loss": self.reference_loss,
        }
        late = self._measuring is not None and self._measuring.pending  # taken when the save comes to it
        return checkpoint.Snapshot(c, meta, weights, self.optimizer.state_dict(), state,
                                   self.history, data.normalizer.arrays(), report=report_dict,
                                   health=self._take_health if late else self._health_arrays())

    # -- layer health -----------------------------------------------------------------------
    def _start_health(self) -> None:
        """The probe batch (the saved one on a resume) and the monitor, unless `train.health_every` is 0;
        the health of the epochs already trained comes back from the checkpoint."""
        c, data, saved = self.config, self.data, self.saved_health
        self.health = None
        self.health_history: list[events.HealthMeasured] = []
        self.health_values: dict[int, tuple] = {}  # epoch -> (values, confidence) at full precision
        self.alerting: set = set()
        names = [layer.name for layer in health.layers_of(self.model)]
        if saved is not None and saved["layout"]["layers"] == names:
            self.health_history = health.history_of(saved)
            self.health_values = {int(e): (v, conf) for e, v, conf in
                                  zip(saved["epochs"], saved["values"], saved["confidence"])}
            if self.health_history:
                self.alerting = {(a.kind, a.layer) for a in alerts.check(self.health_history[-1])}
        probe = saved["probe"] if saved is not None else None
        if probe is None or len(probe) == 0 or int(probe.max()) >= len(data.train):
            probe = health.probe_rows(len(data.train), c.train.seed)
        self.probe = probe
        if c.train.health_every > 0 and len(probe):
            rows = data.train.rows[probe]
            x = data.normalizer(self.xp.asarray(np.take(data.train.images, rows, axis=0)), self.xp)
            self.health = health.HealthMonitor(self.model, self.xp, x, data.train.labels[rows],
                                               data.num_classes, c.train.health_every)
            self._measuring = health.Measuring(self.health, len(probe), self._keep_health)

    def _measure_health(self) -> None:
        """Starts measuring the epoch's health (on a second thread: `health.Measuring`); `_take_health`
        publishes it, before the checkpoint's save ends."""
        self._measuring.start(self.epoch)

    def _keep_health(self, values, confidence, event) -> bytes | None:
        """On the health thread, once it has measured: the epoch joins the history and health.npz is made
        (the main thread does not touch either until it takes the measurement)."""
        self.health_history.append(event)
        self.health_values[event.epoch] = (values, confidence)
        return checkpoint.health_file(self._health_arrays())

    def _take_health(self) -> bytes | None:
        """Waits for the epoch's measurement, if one is under way, and publishes it: the event, and an alert
        for each problem that was not there an epoch ago. Returns health.npz's bytes."""
        if self._measuring is None or not self._measuring.pending:
            return None
        event, health_file = self._measuring.result()
        self.emit(event)
        now = alerts.check(event)
        for a in now:
            if (a.kind, a.layer) not in self.alerting:
                self.emit(events.HealthAlert(a.epoch, a.layer, a.kind, a.figure, a.message, a.advice))
        self.alerting = {(a.kind, a.layer) for a in now}
        return health_file

    def _health_arrays(self) -> dict | None:
        """The health of the epochs so far, for the checkpoint (at most HEALTH_ROWS of them, older ones
        thinned: `health.kept_epochs`); what is thinned away is dropped from memory too."""
        if not getattr(self, "health_history", None):
            return None
        keep = set(health.kept_epochs([h.epoch for h in self.health_history]))
        self.health_history = [h for h in self.health_history if h.epoch in keep]
        known = self.health_values = {e: v for e, v in self.health_values.items() if e in keep}
        first = self.health_history[0]
        values = np.stack([known[h.epoch][0] for h in self.health_history]).astype(np.float32)
        confidence = np.stack([known[h.epoch][1] for h in self.health_history]).astype(np.float32)
        layout = {"layers": first.layers, "kinds": first.kinds, "fields": list(health.FIELDS),
                  "percentiles": list(health.PERCENTILES), "every": self.config.train.health_every,
                  "probe_seed": self.config.train.seed + health.PROBE_SEED}
        return {"layout": layout, "values": values, "epochs": np.array([h.epoch for h in self.health_history], np.int32),
                "confidence": confidence, "probe": np.asarray(self.probe, np.int64)}

    def _kept(self) -> str:
        """What a failed run leaves: its last checkpoint, current and untouched, or nothing yet."""
        return "the last checkpoint is kept" if checkpoint.checkpoint_dir(self.run_dir) else "nothing was saved"

    def _save(self, report_dict: dict | None = None, best: bool = False) -> None:
        """A new checkpoint made current (and best); the best epoch's checkpoint is kept beside it."""
        weights = self.model.state_dict()
        if not all(np.isfinite(a).all() for a in weights.values()):
            self._take_health()  # its alerts explain the divergence (exploding gradients, updates too large)
            raise RunFailed(f"weights are not finite: the run diverged (try a lower learning rate); {self._kept()}")
        self.control.saving = True
        try:
            self.writer.save(self._snapshot(weights, report_dict), best=best)
        finally:
            self.control.saving = False
            self._take_health()  # the save took it, unless it failed before health.npz
        self.emit(events.CheckpointSaved(str(self.run_dir), self.epoch, best))

    # -- the loop ---------------------------------------------------------------------------
    def _lr_for(self, epoch: int) -> float:
        return self.plateau.lr if self.plateau is not None else self.schedule(epoch)

    def _train_epoch(self) -> bool:
        """One epoch (or the rest of an interrupted one); False if stopped partway.

        Floating-point warnings are silenced: a non-finite loss is detected and reported as one line.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train_steps()

    def _train_steps(self) -> bool:
        start_rng = self.order.get_state() if self.partial is None else self.partial["order_rng"]
        if self.partial is not None:
            self.order.set_state(self.partial["order_rng"])
        skip = self.partial["step"] if self.partial else 0
        loss_sum = self.partial["loss_sum"] if self.partial else 0.0
        correct = self.partial["correct"] if self.partial else 0
        seen = self.partial["seen"] if self.partial else 0
        self._window = (loss_sum, seen)  # totals at the last read: the divergence guard's window starts here
        self.partial = None
        steps = len(self.order)
        remaining = list(self.order.epoch())[skip:]
        self.step.begin_epoch(remaining, loss_sum, correct)
        epoch_start = time.perf_counter()
        last_emit = 0.0
        trained = 0
        for step, idx in enumerate(remaining, start=skip + 1):
            paused = False
            while True:  # between two steps: act on stop and save requests, wait while paused
                if self.control.stop_requested or self.control.save_requested:
                    loss_sum, correct = self._totals(step - 1, seen)
                    self.partial = {"step": step - 1, "order_rng": start_rng, "loss_sum": loss_sum,
                                    "correct": correct, "seen": seen}
                    if self.control.stop_requested:
                        return False
                    self.control.save_requested = False
                    self._save()
                    self.partial = None
                if not self.control.paused:
                    break
                if not paused:
                    paused, paused_at = True, time.perf_counter()
                    self.emit(events.Paused(self.epoch + 1, step - 1))
                self.control.wait_if_paused(timeout=0.25)
            if paused:
                epoch_start += time.perf_counter() - paused_at  # time spent paused is not training time
                self.emit(events.Resumed(self.epoch + 1, step - 1))
            n = len(idx)
            sample = self.health is not None and self.health.due(step, steps)
            if sample:
                self.health.before_step()
            self.step.run(n)
            if sample:
                self.health.after_step()
            seen += n
            trained += n
            now = time.perf_counter()
            if now - last_emit >= 1.0 / self.step_events_per_s or step == steps:
                last_emit = now
                loss_sum, correct = self._totals(step, seen)  # the only waits for the device inside an epoch
                self.emit(events.StepEnded(self.epoch + 1, step, steps, loss_sum / seen,
                                           trained / max(now - epoch_start, 1e-9)))
        # The last step always reported, so loss_sum and correct are the epoch's totals already.
        self.epoch_stats = (loss_sum / max(seen, 1), correct / max(seen, 1), trained,
                            time.perf_counter() - epoch_start)
        return True

    def _totals(self, step: int, seen: int) -> tuple[float, int]:
        """The epoch's loss sum and correct count so far, read off the device; a diverged run stops here."""
        loss_sum, correct = self.step.totals_on_host()
        last_sum, last_seen = self._window
        if seen > last_seen:
            window = (loss_sum - last_sum) / (seen - last_seen)
            if self.reference_loss is None and math.isfinite(window):
                self.reference_loss = max(window, math.log(self.data.num_classes))
            limit = DIVERGED * (self.reference_loss or math.log(self.data.num_classes))
            if not math.isfinite(window) or window > limit:
                shown = f"{window:.4g}" if math.isfinite(window) else str(window)
                raise RunFailed(f"loss became {shown} by epoch {self.epoch + 1}, step {step} (over {DIVERGED:g}x its "
                                f"reference {limit / DIVERGED:.3g}): the run diverged (try a lower learning rate); "
                                f"{self._kept()}")
            self._window = (loss_sum, seen)
        return loss_sum, correct

    def run(self) -> dict:
        """Train to `config.train.epochs`; returns the final report (partial if stopped).

        Holds the folder's writer lock throughout: a resume takes it before it reads the checkpoint, a new
        run once its data and model are ready, so bad input never leaves a folder behind."""
        self.writer = None
        try:
            if self.resume:
                self.writer = checkpoint.RunWriter(self.run_dir, new=False)
            else:
                checkpoint.RunWriter.check_new(self.run_dir)
            self._setup()
            if self.writer is None:
                self.writer = checkpoint.RunWriter(self.run_dir, new=True)
            log = EventLog(self.writer.run_dir)
            watcher = CommandWatcher(self.writer.run_dir, self.control, log.write, lambda: log.last_write)
            self.listeners = [*self.listeners, log]
            watcher.start()
            try:
                with threads.limited(self.threads) if self.threads else contextlib.nullcontext():
                    return self._run()
            finally:
                if self._measuring is not None:
                    self._measuring.close()
                watcher.stop()
                self.listeners.remove(log)
                log.close()
        finally:
            if self.writer is not None:
                self.writer.close()

    def _run(self) -> dict:
        c, data = self.config, self.data
        self.stopped = False  # True when the run ended early at the user's request (the CLI exits 130)
        self.feeder = Feeder(self.xp, data.train.images, data.train.labels, data.normalizer, self.order.batch_size,
                             c.data.placement)
        self.step = make_step(self.model, self.optimizer, self.feeder, self.order.batch_size, c.train.tf32,
                              c.train.graphs)
        self._start_health()
        total_epochs = c.train.epochs
        self.emit(events.RunStarted(str(self.run_dir), c.name, backend.name_of(self.xp), self.model.num_parameters(),
                                    len(data.train.y), len(data.val.y), len(data.test.y), len(self.order),
                                    self.epoch, total_epochs, self.feeder.describe(), data.counts(),
                                    self.step.describe(),
                                    f"{self.threads} ({self.threads_why})" if self.threads else "", list(data.notes),
                                    list(data.class_names)))
        run_start = time.perf_counter()
        early_stopped = self.early.should_stop  # a run killed between its early stop and its report
        try:
            while self.epoch < total_epochs and not early_stopped and not self.control.stop_requested:
                self.optimizer.lr = self._lr_for(self.epoch)
                if not self._train_epoch():
                    self._save()
                    self.stopped = True
                    self.emit(events.RunFinished(str(self.run_dir), {}, stopped=True))
                    return {}
                train_loss, train_acc, trained, seconds = self.epoch_stats
                val_loss, val_acc = loss_and_accuracy(self.model, data.val.x, data.val.y, data.normalizer, self.xp)
                self.epoch += 1
                row = {"epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                       "val_acc": val_acc, "lr": self.optimizer.lr, "seconds": seconds,
                       "samples_per_s": trained / max(seconds, 1e-9)}
                self.history.append(row)
                if self.health is not None:  # measured while the event log and the checkpoint are fsynced
                    self._measure_health()
                self.emit(events.EpochEnded(self.epoch, total_epochs, train_loss, train_acc, val_loss, val_acc,
                                            self.optimizer.lr, row["samples_per_s"], seconds,
                                            time.perf_counter() - run_start))
                monitored = row[c.train.monitor]
                if math.isnan(monitored):  # no validation: the training figure of the same kind (an accuracy is maximized)
                    monitored = train_acc if c.train.monitor.endswith("acc") else train_loss
                is_best = self.early.update(self.epoch, monitored)
                if is_best:
                    self.best_weights = self.model.state_dict()
                if self.plateau is not None:
                    self.plateau.step(row[c.schedule.monitor])
                self._save(best=is_best)
                if self.early.should_stop:
                    early_stopped = True
                    self.emit(events.EarlyStopped(self.epoch, self.early.best_epoch, c.train.monitor, self.early.best))
                    break
            if self.epoch < total_epochs and not early_stopped:  # stopped between epochs or before the first step
                self.stopped = True
                self.emit(events.RunFinished(str(self.run_dir), {}, stopped=True))
                return {}
            if early_stopped and c.train.restore_best and self.best_weights:
                self.model.load_state_dict(self.best_weights)
            final = report(self.model, data.test.x, data.test.y, data.normalizer, self.xp, data.class_names,
                           c.train.noise, c.train.seed)
            final.update(epochs_trained=self.epoch, best_epoch=self.early.best_epoch, early_stopped=early_stopped,
                         seconds=time.perf_counter() - run_start, device=backend.name_of(self.xp),
                         parameters=self.model.num_parameters())
            self._save(report_dict=final)
        except RunFailed as exc:
            self.emit(events.RunFailed(str(self.run_dir), str(exc)))
            raise
        self.emit(events.RunFinished(str(self.run_dir), final))
        return final
