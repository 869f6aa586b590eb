"""The training dashboard: loss and accuracy per epoch, the step loss within an epoch, the LR,
progress with ETA, and a log. It only reads the app's `RunState`, on a 4 Hz timer."""
from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ProgressBar, RichLog, Static

from neuraterm.core.screen_text import visible
from neuraterm.tui.smoothing import WEIGHTS, Smoother
from neuraterm.tui.ticks import nice_steps
from neuraterm.tui.widgets.curve_chart import CurveChart, Series
from neuraterm.tui.widgets.health_views import confidence_lines
from neuraterm.tui.widgets.keys_footer import KeysFooter


class StatusLine(Widget):
    """One line of status; repaints itself only (a `Static.update` re-runs the layout, which costs
    ~20 ms a time while the training thread holds the GIL). Its parts come most wanted first: the
    first three always show, each later one only where it fits whole (never cut at the edge)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.parts: list[str] = []

    def show(self, parts: list[str]) -> None:
        if parts != self.parts:
            self.parts = parts
            self.refresh()

    @property
    def text(self) -> str:
        return fit(self.parts, self.size.width or 200)

    def render(self) -> Text:
        return Text(self.text)  # plain text: a device or folder name is never markup


def fit(parts: list[str], width: int, always: int = 3) -> str:
    """The parts two spaces apart, in order, leaving out those after the first `always` that would
    run past `width`."""
    text = "  ".join(parts[:always])
    for part in parts[always:]:
        if len(text) + 2 + len(part) <= width:
            text += "  " + part
    return text


def epoch_axis_end(seen: int, planned: int) -> int:
    """The last epoch of the x axis: the epochs seen with a quarter more room (at least 10, in round
    steps), never past the plan. Thirty epochs of a 600-epoch run fill most of the chart instead of
    its left twentieth; the plan shows in the progress bar and the status line."""
    want = max(10, seen + max(2, seen // 4))
    step = next(s for s, _, _ in nice_steps(want / 5))
    return max(2, min(planned or want, int(math.ceil(want / step) * step)))


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("p", "app.toggle_pause", "Pause", tooltip="Pause or resume training"),
        Binding("x", "app.stop_run", "Stop", tooltip="Stop training (saves a checkpoint)"),
        Binding("s", "app.save_now", "Save", tooltip="Save a checkpoint now"),
        Binding("e", "app.evaluate_current", "Evaluate", tooltip="Evaluate the current run's last checkpoint"),
        Binding("m", "smoothing", "Smoothing", show=False, tooltip="Change the step-loss smoothing"),
        Binding("l", "log_scale", "Log scale", show=False, tooltip="Log scale on or off for the loss and LR charts"),
        Binding("c", "confidence", "Confidence", show=False,
                tooltip="The LR chart, or per class the confidence in the true class on the probe batch over the epochs"),
        Binding("F", "accept_fork", "Fork", tooltip="Start the fork the curves suggest (the log says which)"),
    ]
    suggestion = None  # the fork the curves suggest for the run shown (core/run/suggestions.py)

    def compose(self) -> ComposeResult:
        with Vertical(id="dashboard"):
            with Horizontal(id="charts"):
                yield CurveChart("loss", id="loss-chart")
                yield CurveChart("accuracy %", percent=True, id="acc-chart")
            with Horizontal(id="status-row"):
                yield ProgressBar(id="progress", show_eta=False, show_percentage=False)  # the percent is in the status
                # line: a label whose width changes would re-run the layout at every percent
                yield StatusLine(id="status")
            with Horizontal(id="bottom"):
                yield RichLog(id="log", max_lines=200, wrap=True, markup=False, min_width=16)  # wrap at its width, not 78
                yield CurveChart("step loss", x_label="step", id="step-chart")
                yield CurveChart("lr", id="lr-chart")
                yield Static("", id="confidence-panel")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.smoother = Smoother(WEIGHTS[3])
        self._smoothed_state = None
        self.show_smoothing()
        self.query_one("#loss-chart", CurveChart).set_note("l: log scale")
        self.query_one("#lr-chart", CurveChart).set_note("c: class confidence")
        panel = self.query_one("#confidence-panel", Static)
        panel.display = False
        panel.border_title, panel.border_subtitle = "class confidence", "c: LR"
        self._drawn_health = (-1, None)
        self._drawn_version = -1
        self._drawn_epochs = -1
        self._drawn_steps = -1
        self._drawn_progress = (0, -1)
        self._epoch_drawn_at = self._step_drawn_at = 0.0
        self._logged = 0
        self.redraw()
        self.set_interval(0.5, self.redraw)

    def redraw(self) -> None:
        state = self.app.run_state
        if state.version == self._drawn_version and state.status != "running":
            return
        self._drawn_version = state.version
        # Every redraw costs CPU the training process on the same machine wants: redraw a chart only when
        # its data changed; while a run is under way, epoch charts at most twice a second (an epoch shows
        # within a second of its end), the step chart every two seconds, the bar when its percent moves.
        now = time.monotonic()
        live = state.status == "running"
        if len(state.history) != self._drawn_epochs and (not live or now - self._epoch_drawn_at >= 0.5):
            self._drawn_epochs, self._epoch_drawn_at = len(state.history), now
            self.draw_epoch_charts(state)
            self.update_suggestion(state)
        if len(state.step_loss) != self._drawn_steps and (not live or now - self._step_drawn_at >= 2.0):
            self._drawn_steps, self._step_drawn_at = len(state.step_loss), now
            self.draw_step_chart(state)
        done, total = state.progress()
        if (total, 100 * done // total) != self._drawn_progress or not live:
            self._drawn_progress = (total, 100 * done // total)
            self.query_one("#progress", ProgressBar).update(total=total, progress=done)
        self.query_one("#status", StatusLine).show(self.status_text(state))
        panel = self.query_one("#confidence-panel", Static)
        if panel.display and (len(state.health), panel.size) != self._drawn_health:
            self._drawn_health = (len(state.health), panel.size)
            self.draw_confidence(state, panel)
        log = self.query_one("#log", RichLog)
        for line in state.log[self._logged:]:
            log.write(line)
        self._logged = len(state.log)

    def draw_epoch_charts(self, state) -> None:
        epochs = [e.epoch for e in state.history]
        x_max = epoch_axis_end(max(epochs, default=0), state.epochs)
        self.query_one("#loss-chart", CurveChart).set_series(
            {"train": (epochs, [e.train_loss for e in state.history]),
             "val": (epochs, [e.val_loss for e in state.history])}, x_max)
        self.query_one("#acc-chart", CurveChart).set_series(
            {"train": (epochs, [e.train_acc for e in state.history]),
             "val": (epochs, [e.val_acc for e in state.history])}, x_max)
        self.query_one("#lr-chart", CurveChart).set_series({"lr": (epochs, [e.lr for e in state.history])}, x_max)

    def action_confidence(self) -> None:
        """Swap the LR chart for the prediction dynamics (Karpathy's recipe) and back."""
        panel = self.query_one("#confidence-panel", Static)
        panel.display = not panel.display
        self.query_one("#lr-chart").display = not panel.display
        self._drawn_health = (-1, None)
        self.call_after_refresh(self.redraw_now)

    def redraw_now(self) -> None:
        self._drawn_version = -1
        self.redraw()

    def draw_confidence(self, state, panel: Static) -> None:
        if not state.health:
            panel.update(Text("no layer health yet: it arrives at each epoch's end (train.health_every = 0 "
                              "turns it off)", style="grey62"))
            return
        width, height = panel.content_size
        panel.update(confidence_lines(state.health, state.class_labels(), max(width, 12), rows=max(height, 2)))

    def update_suggestion(self, state) -> None:
        """Offer a fork when the curves say the run overfits; the log says from where and with what."""
        folder = self.app.attached
        found = self.app.service.suggest_fork(folder, [e.train_loss for e in state.history],
                                              [e.val_loss for e in state.history]) if folder and state.history else None
        before, self.suggestion = self.suggestion, found
        if found is not None and (before is None or (before.epoch, before.changes) != (found.epoch, found.changes)):
            change = ", ".join(f"{k.split('.')[-1]} {old:g} -> {new:g}" for k, (old, new) in found.changes.items())
            self.query_one("#log", RichLog).write(f"suggested fork: {found.reason}; F forks at epoch {found.epoch} "
                                                  f"with {change}")
        if (before is None) != (found is None):
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple) -> bool:
        return self.suggestion is not None if action == "accept_fork" else True

    def action_accept_fork(self) -> None:
        if self.suggestion is not None:
            suggestion, self.suggestion = self.suggestion, None
            self.refresh_bindings()
            self.app.accept_suggestion(suggestion)

    def draw_step_chart(self, state) -> None:
        """The raw per-step loss, faint, under its smoothed curve; smoothing extends, never redoes."""
        if state is not self._smoothed_state or len(self.smoother.values) > len(state.step_loss):
            self.smoother, self._smoothed_state = Smoother(self.smoother.weight), state
        smoothed = self.smoother.extend(state.step_loss[len(self.smoother.values):])
        series = [Series("raw", state.step_x, state.step_loss, markers=False, faint=True)]
        if self.smoother.weight:
            series.append(Series("ema", state.step_x, smoothed, markers=False))
        self.query_one("#step-chart", CurveChart).set_series(series, max(state.step_x, default=2))

    def show_smoothing(self) -> None:
        self.query_one("#step-chart", CurveChart).set_note(
            f"m: ema {self.smoother.weight:g}" if self.smoother.weight else "m: no smoothing")

    def action_smoothing(self) -> None:
        weight = WEIGHTS[(WEIGHTS.index(self.smoother.weight) + 1) % len(WEIGHTS)]
        self.smoother = Smoother(weight)
        self.show_smoothing()
        self.draw_step_chart(self.app.run_state)

    def action_log_scale(self) -> None:
        on = not self.query_one("#loss-chart", CurveChart).log_scale
        for chart in ("#loss-chart", "#lr-chart", "#step-chart"):
            self.query_one(chart, CurveChart).set_log_scale(on)

    def status_text(self, state) -> list[str]:
        """The status line's parts, most wanted first (`fit` leaves out what does not fit whole)."""
        if state.status == "idle":
            return ["no run yet: pick a preset in Setup (n), then t"]
        epoch = max(state.epoch, len(state.history))
        done, total = state.progress()
        parts = [f"{100 * done // total:3d}%", state.status, f"epoch {epoch}/{state.epochs}"]
        if not self.app.deterministic and state.samples_per_s and state.status == "running":
            eta = state.eta()
            parts += [f"ETA {'…' if eta is None else duration(eta)}", rate(state.samples_per_s)]
        memory = None if self.app.deterministic else self.app.service.process_memory(self.app.holder)
        if memory:
            parts.append(f"RSS {memory / 2**20:,.0f} MB")  # the training process's, when it runs on this machine
        parts.append(visible(state.device, 60))
        if state.data_placement:
            parts.append(f"data {visible(state.data_placement.split(' (')[0], 60)}")
        return parts


def rate(samples_per_s: float) -> str:
    """Samples per second in at most 14 characters (thousands as k from 10,000)."""
    return f"{samples_per_s:,.0f} samples/s" if samples_per_s < 10_000 else f"{samples_per_s / 1000:,.0f}k samples/s"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
