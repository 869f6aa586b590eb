"""What the dashboard shows, accumulated from trainer events on the UI thread.

The app folds each event into this object and bumps `version`; the dashboard redraws on a timer
when the version changed, so the cost of drawing does not depend on how fast events arrive.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from neuraterm.core import events


@dataclass
class RunState:
    run_dir: str = ""
    name: str = ""
    device: str = ""
    data_placement: str = ""
    parameters: int = 0
    epochs: int = 0
    status: str = "idle"  # idle, running, paused, stopping, finished, stopped, failed
    history: list[events.EpochEnded] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)  # smoothed, within the epoch under way
    step: int = 0
    steps: int = 0
    epoch: int = 0
    samples_per_s: float = 0.0
    log: list[str] = field(default_factory=list)
    report: dict | None = None
    version: int = 0

    def apply(self, event: events.Event) -> None:
        if isinstance(event, events.RunStarted):
            self.run_dir, self.name, self.device = event.run_dir, event.config_name, event.device
            self.data_placement, self.parameters, self.epochs = event.data_placement, event.parameters, event.epochs
            self.steps, self.status = event.steps_per_epoch, "running"
            self.log.append(f"{event.config_name}: {event.parameters:,} parameters on {event.device}, "
                            f"{event.train_size:,} train / {event.val_size:,} val / {event.test_size:,} test")
            if event.step_engine:
                self.log.append(f"training step: {event.step_engine}")
        elif isinstance(event, events.StepEnded):
            if event.epoch != self.epoch:
                self.epoch, self.step_losses = event.epoch, []
            previous = self.step_losses[-1] if self.step_losses else event.loss
            self.step_losses.append(0.8 * previous + 0.2 * event.loss)
            self.step, self.steps, self.samples_per_s = event.step, event.steps, event.samples_per_s
        elif isinstance(event, events.EpochEnded):
            self.history.append(event)
            self.epoch, self.samples_per_s = event.epoch, event.samples_per_s
            self.step_losses = []  # the step curve shows the epoch under way; finished epochs are on the epoch charts
            self.log.append(f"epoch {event.epoch}/{event.epochs}  val {event.val_loss:.4f} / "
                            f"{100 * event.val_acc:.2f}%")
        elif isinstance(event, events.EarlyStopped):
            self.log.append(f"early stop at epoch {event.epoch} (best {event.monitor} at epoch {event.best_epoch})")
        elif isinstance(event, events.RunFinished):
            self.status = "stopped" if event.stopped else "finished"
            if event.stopped:
                self.log.append(f"stopped; checkpoint in {event.run_dir}")
            else:
                self.report = event.report
                self.log.append(f"test acc {100 * event.report['test_accuracy']:.2f}%  "
                                f"F1 {event.report['macro_f1']:.3f} (e: details)")
        elif isinstance(event, events.RunFailed):
            self.status = "failed"
            self.log.append(f"failed: {event.message}")
        self.version += 1

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.log.append(f"error: {message}")
        self.version += 1
