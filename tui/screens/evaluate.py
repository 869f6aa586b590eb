"""Evaluate: test metrics of a run's final or last-saved weights (which epoch, said on screen),
per-class precision/recall/F1, the confusion matrix (counts or a heatmap, with a cursor that reads a
cell), the most-confused pairs, and accuracy against input noise."""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from neuraterm.core.errors import NeuratermError
from neuraterm.tui.shorten import middle
from neuraterm.tui.widgets.confusion_matrix import ConfusionMatrix
from neuraterm.core.screen_text import visible
from neuraterm.tui.widgets.curve_chart import CurveChart
from neuraterm.tui.widgets.keys_footer import KeysFooter

HEADLINE_ROWS = 2
NOISE_MIN_ROWS = 7
PER_CLASS_WIDTH = 44
FOOTER_ROWS = 1


class Summary(Widget):
    """Two lines that never wrap: the run (its name shortened in the middle) and which weights, then the
    headline metrics, which always show at 80 columns."""

    DEFAULT_CSS = "Summary { height: 2; padding: 0 1; }"

    def __init__(self, run_dir: str, **kwargs):
        super().__init__(**kwargs)
        self.run_dir = visible(run_dir)  # a folder name is shown, never obeyed
        self.source = Text("evaluating…")
        self.metrics: Text | None = None

    def show(self, source: Text, metrics: Text | None = None) -> None:
        self.source, self.metrics = source, metrics
        self.refresh()

    def render(self) -> Text:
        width = max(self.size.width, 20)
        name = middle(self.run_dir, max(width - len(self.source.plain) - 2, min(len(self.run_dir), 24)))
        source = self.source.copy()
        source.truncate(max(width - len(name) - 2, 1), overflow="ellipsis")
        text = Text.assemble((name, "bold"), ("  ", ""), source)
        text.truncate(width, overflow="ellipsis")
        if self.metrics is not None:
            metrics = self.metrics.copy()
            metrics.truncate(width, overflow="ellipsis")
            text.append("\n")
            text.append_text(metrics)
        return text


def headline(r: dict) -> Text:
    """Test accuracy, macro-F1, cross-entropy, then the sample count (the first to go when narrow). Each
    value's span carries the gap after it: a span that starts with spaces loses them in some renderers."""
    return Text.assemble("test accuracy ", (f"{100 * r['test_accuracy']:.2f}%   ", "bold"),
                         "macro-F1 ", (f"{r['macro_f1']:.4f}   ", "bold"),
                         "cross-entropy ", (f"{r['test_loss']:.4f}   ", "bold"), f"{r['test_size']:,} samples")


class EvaluateScreen(Screen):
    """Evaluates in a thread worker: a finished run's report is read back at once, but an unfinished
    run's checkpoint is evaluated on the test split, which loads the dataset (seconds on big ones)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", tooltip="Back to the previous screen"),
                Binding("g", "mistakes", "Mistakes", tooltip="The most confident mistakes, as pictures")]

    def action_mistakes(self) -> None:
        from neuraterm.tui.screens.mistakes import MistakesScreen
        self.app.push_screen(MistakesScreen(self.run_dir))

    def __init__(self, run_dir: str, live: bool = False):
        super().__init__()
        self.run_dir, self.live = str(run_dir), live
        self.result: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="evaluate"):
            yield Summary(self.run_dir, id="eval-summary")
            with Horizontal(id="eval-body"):
                with Vertical(id="eval-left"):
                    yield DataTable(id="per-class", zebra_stripes=True)
                    yield Static("", id="confused-pairs")
                yield ConfusionMatrix(id="confusion")
            yield CurveChart("accuracy % vs noise sigma", percent=True, x_label="sigma", id="noise-chart")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.evaluate()

    def on_resize(self) -> None:
        self.fit_body()

    def fit_body(self) -> None:
        """The body as tall as the matrix and the per-class table need, as far as the screen has room
        above a noise chart of a few rows; the noise chart takes the rest (no blank band between)."""
        if self.result is None:
            return
        pairs = len(self.result["most_confused"])
        left = len(self.result["class_names"]) + 1 + (1 + max(pairs, 1))
        matrix = self.query_one("#confusion", ConfusionMatrix)
        wanted = max(left, matrix.wanted_height(max(self.size.width - PER_CLASS_WIDTH - 1, 1)))
        room = self.size.height - HEADLINE_ROWS - FOOTER_ROWS - NOISE_MIN_ROWS
        self.query_one("#eval-body").styles.height = max(min(wanted, room), 4)

    @work(thread=True, exclusive=True, group="evaluate", exit_on_error=False)
    def evaluate(self) -> dict:
        return self.app.service.evaluation(self.run_dir)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "evaluate":
            return
        if event.state == WorkerState.SUCCESS:
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            error = event.worker.error
            reason = str(error) if isinstance(error, NeuratermError) else f"{type(error).__name__}: {error}"
            self.query_one("#eval-summary", Summary).show(Text.assemble(("cannot evaluate: ", "bold red"), visible(reason)))

    def show(self, r: dict) -> None:
        self.result = r
        self.query_one("#eval-summary", Summary).show(source_of(r, self.live), headline(r))
        table = self.query_one("#per-class", DataTable)
        table.add_columns("class", "prec", "recall", "F1", "n")
        for k, name in enumerate(r["class_names"]):
            table.add_row(Text(visible(name)), *(f"{r['per_class'][m][k]:.3f}" for m in ("precision", "recall", "f1")),
                          f"{r['support'][k]:,}")
        matrix = self.query_one("#confusion", ConfusionMatrix)
        matrix.set_matrix(r["confusion_matrix"], [visible(n, 60) for n in r["class_names"]])
        pairs = "\n".join(f"{visible(p['true'], 60)} → {visible(p['predicted'], 60)}: {p['count']:,}" for p in r["most_confused"])
        self.query_one("#confused-pairs", Static).update(Text.assemble(("most confused", "bold"), "\n",
                                                                       pairs or "none"))
        noise = r.get("noise", [])
        chart = self.query_one("#noise-chart", CurveChart)
        chart.set_series({"test": ([n["sigma"] for n in noise], [n["accuracy"] for n in noise])},
                         max([n["sigma"] for n in noise] + [0.1]))
        self.fit_body()
        matrix.focus()


def source_of(r: dict, live: bool) -> Text:
    """Which weights were evaluated: the epoch, and whether they are the run's final ones."""
    if r["finished"]:
        text = f"finished after {r['epoch']} epochs"
        if r.get("early_stopped"):
            text += f" (early stop; best epoch {r.get('best_epoch')})"
        return Text(text, style="green")
    where = f"checkpoint after epoch {r['epoch']} of {r['epochs']}" + (" and part of the next" if r["mid_epoch"] else "")
    return Text(f"{'still training' if live else 'not finished'}: {where}", style="yellow")
