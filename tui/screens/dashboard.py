"""The training dashboard: loss and accuracy per epoch, the step loss within an epoch, the LR,
progress with ETA, and a log. It only reads the app's `RunState`, on a 4 Hz timer."""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, ProgressBar, RichLog

from neuraterm.tui.widgets.curve_chart import CurveChart


class StatusLine(Widget):
    """One line of status; repaints itself only (a `Static.update` re-runs the layout, which costs
    ~20 ms a time while the training thread holds the GIL)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.text = ""

    def show(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> str:
        return self.text


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("p", "app.toggle_pause", "Pause/resume"),
        Binding("x", "app.stop_run", "Stop"),
        Binding("s", "app.save_now", "Save now"),
        Binding("e", "app.evaluate_current", "Evaluate"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dashboard"):
            with Horizontal(id="charts"):
                yield CurveChart("loss", id="loss-chart")
                yield CurveChart("accuracy %", percent=True, id="acc-chart")
            with Horizontal(id="status-row"):
                yield ProgressBar(id="progress", show_eta=False)
                yield StatusLine(id="status")
            with Horizontal(id="bottom"):
                yield RichLog(id="log", max_lines=200, wrap=True, markup=False)
                yield CurveChart("step loss", x_label="step", id="step-chart")
                yield CurveChart("lr", id="lr-chart")
        yield Footer()

    def on_mount(self) -> None:
        self._drawn_version = -1
        self._drawn_epochs = -1
        self._drawn_steps = -1
        self._epoch_drawn_at = self._step_drawn_at = 0.0
        self._logged = 0
        self.redraw()
        self.set_interval(0.5, self.redraw)

    def redraw(self) -> None:
        state = self.app.run_state
        if state.version == self._drawn_version and state.status != "running":
            return
        self._drawn_version = state.version
        # Plotting holds the GIL the training thread needs: redraw a chart only when its data changed.
        # While a run is under way, epoch charts redraw at most twice a second and the step chart once.
        now = time.monotonic()
        live = state.status == "running"
        if len(state.history) != self._drawn_epochs and (not live or now - self._epoch_drawn_at >= 0.5):
            self._drawn_epochs, self._epoch_drawn_at = len(state.history), now
            self.draw_epoch_charts(state)
        if len(state.step_losses) != self._drawn_steps and (not live or now - self._step_drawn_at >= 1.0):
            self._drawn_steps, self._step_drawn_at = len(state.step_losses), now
            self.query_one("#step-chart", CurveChart).set_series(
                {"loss": (list(range(1, len(state.step_losses) + 1)), state.step_losses)}, max(state.steps, 2))
        total = max(state.epochs * max(state.steps, 1), 1)
        done = (len(state.history) * state.steps + (state.step if state.status == "running" and
                                                      state.epoch > len(state.history) else 0))
        self.query_one("#progress", ProgressBar).update(total=total, progress=min(done, total))
        self.query_one("#status", StatusLine).show(self.status_text(state, total, done))
        log = self.query_one("#log", RichLog)
        for line in state.log[self._logged:]:
            log.write(line)
        self._logged = len(state.log)

    def draw_epoch_charts(self, state) -> None:
        epochs = [e.epoch for e in state.history]
        x_max = max(state.epochs, 2)
        self.query_one("#loss-chart", CurveChart).set_series(
            {"train": (epochs, [e.train_loss for e in state.history]),
             "val": (epochs, [e.val_loss for e in state.history])}, x_max)
        self.query_one("#acc-chart", CurveChart).set_series(
            {"train": (epochs, [e.train_acc for e in state.history]),
             "val": (epochs, [e.val_acc for e in state.history])}, x_max)
        self.query_one("#lr-chart", CurveChart).set_series({"lr": (epochs, [e.lr for e in state.history])}, x_max)

    def status_text(self, state, total: int, done: int) -> str:
        if state.status == "idle":
            return "no run yet: pick a preset on the Setup screen (n) and press t"
        epoch = max(state.epoch, len(state.history))
        text = f"{state.status}  epoch {epoch}/{state.epochs}  {state.device}"
        if state.data_placement and self.app.size.width >= 110:
            text += f"  data {state.data_placement.split(' (')[0]}"
        if not self.app.deterministic:
            import resource
            text += f"  RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
        if not self.app.deterministic and state.samples_per_s and state.status == "running":
            eta = (total - done) * (state.history[-1].seconds / max(state.steps, 1) if state.history else 0)
            text += f"  {state.samples_per_s:,.0f} samples/s  ETA {eta:,.0f}s"
        return text
