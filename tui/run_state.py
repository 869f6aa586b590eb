"""What the dashboard shows, accumulated from a run's events on the UI thread.

The app folds each event of the run's log into this object and bumps `version`; the dashboard
redraws on a timer when the version changed, so the cost of drawing does not depend on how fast
events arrive. Replaying a whole log from the top gives the same state as watching it live: a new
session (`RunStarted` at epoch k) drops what a killed session had shown past epoch k.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from neuraterm.core.run import events
from neuraterm.core.screen_text import visible


@dataclass
class RunState:
    run_dir: str = ""
    name: str = ""
    device: str = ""
    data_placement: str = ""
    parameters: int = 0
    epochs: int = 0
    status: str = "idle"  # idle, starting, running, paused, stopping, finished, stopped, failed, interrupted
    history: list[events.EpochEnded] = field(default_factory=list)
    step_x: list[int] = field(default_factory=list)  # steps since the run began, at each step update
    step_loss: list[float] = field(default_factory=list)  # mean loss of the steps since the update before
    step: int = 0
    steps: int = 0
    epoch: int = 0
    samples_per_s: float = 0.0
    log: list[str] = field(default_factory=list)
    report: dict | None = None
    class_names: list[str] = field(default_factory=list)  # from RunStarted (a log written before it: none)
    health: list[events.HealthMeasured] = field(default_factory=list)  # per epoch, for the Inside screen
    alerts: list[events.HealthAlert] = field(default_factory=list)
    version: int = 0
    _running_mean: float = 0.0
    _save_asked: bool = False  # a viewer's save command was answered and its checkpoint is not logged yet
    _session_first: int = 0  # index in `history` of this session's first epoch (after the latest RunStarted)
    _pace_from: tuple[float, int] | None = None  # (time, steps done) at the first step update of this run
    _pace_to: tuple[float, int] | None = None  # the same at the latest one
    _skipped: int = 0  # malformed log lines reported so far, in the log line at _skipped_line
    _skipped_line: int = 0

    def progress(self) -> tuple[int, int]:
        """(steps done, steps in the whole run), counting the epoch under way."""
        total = max(self.epochs * max(self.steps, 1), 1)
        running = self.status in ("running", "paused") and self.epoch > len(self.history)
        done = len(self.history) * self.steps + (self.step if running else 0)
        return min(done, total), total

    def epoch_period(self) -> float | None:
        """Seconds an epoch of this session takes, as the run measured them in its log: the median gap
        between the `elapsed` of consecutive epochs (training, validation and saving) over the last ten;
        the last epoch's own training time while there is one epoch; None before any. A viewer that
        attaches mid-run reads the same numbers as one that watched from the start."""
        session = self.history[self._session_first:]
        tail = session[-11:]
        gaps = sorted(b.elapsed - a.elapsed for a, b in zip(tail, tail[1:]) if b.elapsed - a.elapsed > 0)
        if gaps:
            return gaps[len(gaps) // 2]
        seconds = session[-1].seconds if session else float("nan")
        return seconds if seconds == seconds and seconds > 0 else None

    def eta(self) -> float | None:
        """Seconds left: the epochs left (and the rest of the one under way) at the run's measured
        epoch period; before this session's first epoch ends, at the pace of its step updates as this
        viewer saw them arrive; None until there is either."""
        period = self.epoch_period()
        if period is not None:
            done, total = self.progress()
            return (total - done) / max(self.steps, 1) * period
        if self._pace_from is None or self._pace_to is None:
            return None
        (t0, done0), (t1, done1) = self._pace_from, self._pace_to
        if done1 <= done0 or t1 - t0 <= 0:
            return None
        done, total = self.progress()
        return (total - done) * (t1 - t0) / (done1 - done0)

    def class_labels(self) -> list[str] | None:
        """The classes' names: the report's, or RunStarted's while the run trains (none from a log
        written before RunStarted carried them)."""
        return (self.report or {}).get("class_names") or self.class_names or None

    def apply(self, event: events.Event, now: float | None = None) -> None:
        if isinstance(event, events.RunStarted):
            # the folder followed stays the one attached: a fork's log begins with its parent's sessions
            self.run_dir = self.run_dir or event.run_dir
            self.name, self.device = event.config_name, event.device
            self.data_placement, self.parameters, self.epochs = event.data_placement, event.parameters, event.epochs
            self.steps, self.status, self.report = event.steps_per_epoch, "running", None
            self.class_names = list(event.class_names)
            self.history = [e for e in self.history if e.epoch <= event.start_epoch]
            self.health = [h for h in self.health if h.epoch <= event.start_epoch]
            self.alerts = [a for a in self.alerts if a.epoch <= event.start_epoch]
            self._session_first = len(self.history)
            kept = [(x, y) for x, y in zip(self.step_x, self.step_loss) if x <= event.start_epoch * event.steps_per_epoch]
            self.step_x, self.step_loss = [x for x, _ in kept], [y for _, y in kept]
            self.epoch, self.step, self._pace_from, self._pace_to = event.start_epoch, 0, None, None
            if event.start_epoch:
                self.say(f"resuming after epoch {event.start_epoch}")
            self.say(f"{event.config_name}: {event.parameters:,} parameters on {event.device}, "
                            f"{event.train_size:,} train / {event.val_size:,} val / {event.test_size:,} test")
            if event.step_engine:
                self.say(f"training step: {event.step_engine}")
            if event.blas_threads:
                self.say(f"BLAS threads: {event.blas_threads}")
        elif isinstance(event, events.StepEnded):
            self.add_step_loss(event)
            self.epoch = event.epoch
            self.step, self.steps, self.samples_per_s = event.step, event.steps, event.samples_per_s
            self.mark_pace(now)
        elif isinstance(event, events.EpochEnded):
            self.history.append(event)
            self.mark_pace(now)
            self.epoch, self.samples_per_s = event.epoch, event.samples_per_s
            self.say(f"epoch {event.epoch}/{event.epochs}  val {event.val_loss:.4f} / "
                            f"{100 * event.val_acc:.2f}%")
        elif isinstance(event, events.HealthMeasured):
            self.health.append(event)
        elif isinstance(event, events.HealthAlert):
            self.alerts.append(event)
            self.say(f"alert, epoch {event.epoch}, {event.layer}: {event.kind} ({event.figure}). "
                     f"{event.message} Try: {event.advice} (i: inside)")
        elif isinstance(event, events.EarlyStopped):
            self.say(f"early stop at epoch {event.epoch} (best {event.monitor} at epoch {event.best_epoch})")
        elif isinstance(event, events.RunFinished):
            self.status = "stopped" if event.stopped else "finished"
            if event.stopped:
                self.say(f"stopped; checkpoint in {event.run_dir}")
            else:
                self.report = event.report
                self.say(f"test acc {100 * event.report['test_accuracy']:.2f}%  "
                                f"F1 {event.report['macro_f1']:.3f} (e: details)")
        elif isinstance(event, events.RunFailed):
            self.status = "failed"
            self.say(f"failed: {event.message}")
        elif isinstance(event, events.Paused):
            self.status = "paused"
            self.say(f"paused at epoch {event.epoch}, step {event.step}")
        elif isinstance(event, events.Resumed):
            self.status = "running"
            self.say("resumed")
        elif isinstance(event, events.CheckpointSaved) and self._save_asked:
            self._save_asked = False  # the save a viewer asked for (every epoch's own save goes unsaid)
            part = " and part of the next" if self.epoch > len(self.history) else ""
            self.say(f"saved: checkpoint after epoch {event.epoch}{part}")
        elif isinstance(event, events.CommandAnswered) and event.action in ("stop", "save"):
            self._save_asked = self._save_asked or event.action == "save"
            self.say(event.result)
            if event.action == "stop" and self.status in ("running", "paused"):
                self.status = "stopping"
        self.version += 1

    def detach(self) -> None:
        """The log is read to its end and no process trains the folder: a run still shown as under way
        was killed (or is resumed elsewhere later)."""
        if self.status in ("starting", "running", "paused", "stopping"):
            self.status = "interrupted"
            self.say("no process trains this run now (R on Runs resumes it)")
            self.version += 1

    def mark_pace(self, now: float | None) -> None:
        point = (time.monotonic() if now is None else now, self.progress()[0])
        if self._pace_from is None:
            self._pace_from = point
        self._pace_to = point

    def add_step_loss(self, event: events.StepEnded) -> None:
        """The event's loss is the epoch's running mean; the steps since the previous update of the
        same epoch have mean (n1 * mean1 - n0 * mean0) / (n1 - n0), with n counted in steps (exact
        but for a short last batch)."""
        before = self.step if event.epoch == self.epoch and event.step > self.step else 0
        previous_mean = self._running_mean if before else 0.0
        self._running_mean = event.loss
        self.step_x.append((event.epoch - 1) * event.steps + event.step)
        self.step_loss.append((event.step * event.loss - before * previous_mean) / (event.step - before))

    def say(self, line: str) -> None:
        """A line of the run's log; what came from the event log is shown, never obeyed (escapes visible)."""
        self.log.append(visible(line, 2000))

    def skipped_lines(self, count: int) -> None:
        """One line in the log, its count kept up to date, for event-log lines that were not valid events."""
        if count == self._skipped:
            return
        line = f"warning: {count} malformed line{'s' * (count != 1)} of events.jsonl skipped"
        if self._skipped and self._skipped_line < len(self.log):
            self.log[self._skipped_line] = line
        else:
            self._skipped_line = len(self.log)
            self.say(line)
        self._skipped = count
        self.version += 1

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.say(f"error: {message}")
        self.version += 1
