"""Inside: what each layer does while the run trains (the run's `HealthMeasured` events, as the
dashboard follows them, so it works the same in the app, `neuraterm watch` and a browser tab).

A table of layers with a sparkline per figure over the epochs (update/weight ratio, dead or saturated
share, activation spread, weight and gradient norms), then either the percentile bands of one layer's
weights and activations over the epochs, or pictures: the first layer's weights as images and the
per-class confidence on the probe batch. The alerts, with their reasons, sit beside them.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from neuraterm.core.screen_text import visible
from neuraterm.tui.widgets.health_views import bands_chart, confidence_lines, layer_table, weight_tiles
from neuraterm.tui.widgets.keys_footer import KeysFooter


class InsideScreen(Screen):
    BINDINGS = [
        Binding("w", "toggle_view", "Weights/bands", tooltip="Show the first layer's weights as pictures, or the bands"),
        Binding("z", "toggle_learned", "W0", tooltip="Weight pictures: what was learned (W - W0), or the weights W"),
        Binding("left_square_bracket", "layer(-1)", "Layer", key_display="[ ]",
                tooltip="The previous layer in the bands"),
        Binding("right_square_bracket", "layer(1)", "Next layer", show=False, tooltip="The next layer in the bands"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="inside"):
            yield Static("", id="inside-head")
            yield Static("", id="layer-table")
            with Horizontal(id="inside-body"):
                with VerticalScroll(id="inside-left"):
                    yield Static("", id="bands")
                    yield Static("", id="tiles")
                with VerticalScroll(id="inside-right"):
                    yield Static("", id="inside-alerts")
                    yield Static("", id="confidence")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.shown_layer = 0
        self.pictures = False
        self.learned = True  # pictures of W - W0: what the layer learned, not its initial noise
        self.weights = None  # (epoch, first-layer weights) of the checkpoint last read
        self._drawn = None
        self.query_one("#tiles").display = False
        self.redraw()
        self.set_interval(0.5, self.redraw)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """`z` acts on the pictures and `[ ]` on the bands: each is offered (in the footer) only with its view."""
        if action == "toggle_learned":
            return getattr(self, "pictures", False)
        if action == "layer":
            return not getattr(self, "pictures", False)
        return True

    def action_toggle_view(self) -> None:
        self.pictures = not self.pictures
        self.refresh_bindings()
        self.query_one("#tiles").display = self.pictures
        self.query_one("#bands").display = not self.pictures
        self.query_one("#inside-right").display = not self.pictures or self.size.width >= 120
        self.query_one("#inside-left").styles.width = "2fr" if self.pictures else "1fr"
        self.call_after_refresh(self.redraw, True)  # sizes are known once the layout ran

    def action_toggle_learned(self) -> None:
        self.learned = not self.learned
        self.redraw(force=True)

    def action_layer(self, step: int) -> None:
        state = self.app.run_state
        if state.health:
            self.shown_layer = (self.shown_layer + step) % len(state.health[-1].layers)
            self.redraw(force=True)

    def on_resize(self, event) -> None:
        self.query_one("#inside-right").display = not self.pictures or event.size.width >= 120
        self.call_after_refresh(self.redraw, True)

    def redraw(self, force: bool = False) -> None:
        state = self.app.run_state
        key = (state.version, len(state.health), self.size, self.shown_layer, self.pictures, self.learned, id(state))
        if key == self._drawn and not force:
            return
        self._drawn = key
        head = self.query_one("#inside-head", Static)
        if not state.health or not state.health[-1].layers:
            what = ("no run yet: start one (n) or watch one (Runs, w)" if not state.run_dir else
                    f"{state.name}: no layer health yet (it arrives at each epoch's end; "
                    f"train.health_every = 0 turns it off)")
            head.update(what)
            for name in ("#layer-table", "#bands", "#tiles", "#inside-alerts", "#confidence"):
                self.query_one(name, Static).update("")
            return
        last = state.health[-1]
        self.shown_layer = min(self.shown_layer, len(last.layers) - 1)
        width = self.size.width
        shown_name = visible(state.name, 60)
        line = (f"{shown_name}  layer health, epoch {last.epoch}" + (f"/{state.epochs}" if state.epochs else "")
                + f"  probe {last.probe_size:,} samples" + (f", every {last.every} steps" if last.every else ""))
        title = Text(line, no_wrap=True, overflow="ellipsis")
        title.stylize("bold", 0, len(shown_name) + 2)  # the spaces too: an SVG export trims a segment's leading ones
        head.update(title)
        latest = {a.layer for a in state.alerts if a.epoch == last.epoch}
        self.query_one("#layer-table", Static).update(layer_table(state.health, width, latest))
        left = self.query_one("#inside-left")
        left_w = max(20, left.size.width - 3 if left.size.width else width // 2 - 3)
        body_h = max(6, (left.size.height or 12) - 2)
        if self.pictures:
            if self.weights is None or self.weights[0] != len(state.health):
                self.load_weights(state.run_dir, len(state.health))
            if self.weights is not None:
                epochs, epoch, weights, initial = self.weights
                shown = weights - initial if self.learned else weights
                tiles = weight_tiles(shown, left_w, body_h, epoch, self.learned)
                if not self.query_one("#inside-right").display:  # narrow: the confidence goes under the pictures
                    tiles.append("\n\n")
                    tiles.append_text(confidence_lines(state.health, state.class_labels(), left_w))
                self.query_one("#tiles", Static).update(tiles)
        else:
            name = visible(last.layers[self.shown_layer], 40)
            half = max(3, (body_h - 5) // 2)
            text = Text.assemble((f"{name} weights  ", "bold"), "[ ]: layer\n")
            text.append_text(bands_chart(state.health, self.shown_layer, "weights", left_w, half))
            text.append(f"\n{name} activations on the probe batch\n", style="bold")
            text.append_text(bands_chart(state.health, self.shown_layer, "activations", left_w, half))
            text.append("\nbands: percentiles 0-100 ░ 7-93 ▒ 16-84 ▓ 31-69 █, median ━", style="grey62")
            self.query_one("#bands", Static).update(text)
        right_w = max(20, self.query_one("#inside-right").size.width - 2)
        self.query_one("#inside-alerts", Static).update(alert_text(state.alerts))
        self.query_one("#confidence", Static).update(confidence_lines(state.health, state.class_labels(), right_w))

    @work(thread=True, exclusive=True, group="inside-weights", exit_on_error=False)
    def load_weights(self, run_dir: str, epochs: int):
        return (epochs, *self.app.service.first_layer(run_dir))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "inside-weights" and event.state == WorkerState.SUCCESS:
            self.weights = event.worker.result
            self.redraw(force=True)


def alert_text(alerts: list) -> Text:
    if not alerts:
        return Text("no alerts: every layer is within the thresholds of core/run/alerts.py\n", style="green")
    text = Text(f"{len(alerts)} alert{'s' if len(alerts) > 1 else ''}, latest first\n", style="bold red")
    for a in reversed(alerts):  # read from the event log: shown, never obeyed
        text.append(visible(f"epoch {a.epoch}, {a.layer}: {a.kind} ", 200), style="bold")
        text.append(visible(f"({a.figure})", 200) + "\n", style="yellow")
        text.append(visible(f"{a.message} Try: {a.advice}", 2000) + "\n", style="")
    return text
