"""Evaluate: test metrics of a run's final or last-saved weights (which epoch, said on screen),
per-class precision/recall/F1, the confusion matrix as a colored grid, the most-confused pairs,
and accuracy against input noise."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from neuraterm.core.errors import NeuratermError
from neuraterm.tui.widgets.curve_chart import CurveChart
from neuraterm.tui.widgets.keys_footer import KeysFooter

SHADES = ("grey23", "grey37", "dark_cyan", "cyan3", "cyan1")


def confusion_grid(cm: list[list[int]], names: list[str]) -> Table:
    """Cells shaded by their share of the true class's row; the diagonal in green."""
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 0), pad_edge=False)
    short = [n[:3] for n in names]
    table.add_column("t\\p", no_wrap=True)
    for name in short:
        table.add_column(name, justify="right", no_wrap=True)
    for i, row in enumerate(cm):
        total = max(sum(row), 1)
        cells = []
        for j, count in enumerate(row):
            share = count / total
            if i == j:
                style = "bold green"
            elif count == 0:
                style = "grey23"
            else:
                style = "bold " + SHADES[min(len(SHADES) - 1, 1 + int(share * 20))]
            cells.append(Text(f"{count:>3}" if count < 1000 else f"{count // 1000:>2}k", style=style))
        table.add_row(short[i], *cells)
    return table


class EvaluateScreen(Screen):
    """Evaluates in a thread worker: a finished run's report is read back at once, but an unfinished
    run's checkpoint is evaluated on the test split, which loads the dataset (seconds on big ones)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", tooltip="Back to the previous screen"),
                Binding("g", "mistakes", "Mistakes", show=False,  # in Help and the palette
                        tooltip="The most confident mistakes, as pictures")]

    def action_mistakes(self) -> None:
        from neuraterm.tui.screens.mistakes import MistakesScreen
        self.app.push_screen(MistakesScreen(self.run_dir))

    def __init__(self, run_dir: str, live: bool = False):
        super().__init__()
        self.run_dir, self.live = str(run_dir), live
        self.result: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="evaluate"):
            yield Static("", id="eval-summary")
            with Horizontal(id="eval-body"):
                yield DataTable(id="per-class", zebra_stripes=True)
                with VerticalScroll(id="confusion-pane"):
                    yield Static("", id="confusion")
                    yield Static("", id="confused-pairs")
            yield CurveChart("accuracy % vs noise sigma", percent=True, x_label="sigma", id="noise-chart")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#eval-summary", Static).update(f"[b]{self.run_dir}[/]\nevaluating…")
        self.evaluate()

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
            self.query_one("#eval-summary", Static).update(
                Text.assemble((self.run_dir, "bold"), "\n", ("cannot evaluate: ", "bold red"), reason))

    def show(self, r: dict) -> None:
        self.result = r
        self.query_one("#eval-summary", Static).update(
            Text.assemble((self.run_dir, "bold"), "  ", source_of(r, self.live), "\n",
                          "test accuracy ", (f"{100 * r['test_accuracy']:.2f}%", "bold"),
                          f"   macro-F1 {r['macro_f1']:.4f}   cross-entropy {r['test_loss']:.4f}   "
                          f"{r['test_size']:,} samples"))
        table = self.query_one("#per-class", DataTable)
        table.add_columns("class", "prec", "recall", "F1", "n")
        for k, name in enumerate(r["class_names"]):
            table.add_row(name, *(f"{r['per_class'][m][k]:.3f}" for m in ("precision", "recall", "f1")),
                          str(r["support"][k]))
        self.query_one("#confusion", Static).update(confusion_grid(r["confusion_matrix"], r["class_names"]))
        pairs = "\n".join(f"{p['true']} → {p['predicted']}: {p['count']}" for p in r["most_confused"])
        self.query_one("#confused-pairs", Static).update("[b]most confused[/]\n" + (pairs or "none"))
        noise = r.get("noise", [])
        chart = self.query_one("#noise-chart", CurveChart)
        chart.set_series({"test": ([n["sigma"] for n in noise], [n["accuracy"] for n in noise])},
                         max([n["sigma"] for n in noise] + [0.1]))


def source_of(r: dict, live: bool) -> Text:
    """Which weights were evaluated: the epoch, and whether they are the run's final ones."""
    if r["finished"]:
        text = f"finished after {r['epoch']} epochs"
        if r.get("early_stopped"):
            text += f" (early stop; best epoch {r.get('best_epoch')})"
        return Text(text, style="green")
    where = f"checkpoint after epoch {r['epoch']} of {r['epochs']}" + (" and part of the next" if r["mid_epoch"] else "")
    return Text(f"{'still training' if live else 'not finished'}: {where}", style="yellow")
