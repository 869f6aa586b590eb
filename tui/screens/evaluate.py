"""Evaluate: test metrics, per-class precision/recall/F1, the confusion matrix as a colored grid,
the most-confused pairs, and accuracy against input noise."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from neuraterm.tui.widgets.curve_chart import CurveChart

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
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run_dir: str, report: dict | None):
        super().__init__()
        self.run_dir, self.report = run_dir, report

    def compose(self) -> ComposeResult:
        with Vertical(id="evaluate"):
            yield Static("", id="eval-summary")
            with Horizontal(id="eval-body"):
                yield DataTable(id="per-class", zebra_stripes=True)
                with VerticalScroll(id="confusion-pane"):
                    yield Static("", id="confusion")
                    yield Static("", id="confused-pairs")
            yield CurveChart("accuracy % vs noise sigma", percent=True, x_label="sigma", id="noise-chart")
        yield Footer()

    def on_mount(self) -> None:
        summary = self.query_one("#eval-summary", Static)
        r = self.report
        if not r:
            summary.update(f"{self.run_dir}: no report yet (the run has not finished); resume it from Runs")
            return
        summary.update(f"[b]{self.run_dir}[/]\ntest accuracy [b]{100 * r['test_accuracy']:.2f}%[/]   "
                       f"macro-F1 [b]{r['macro_f1']:.4f}[/]   cross-entropy {r['test_loss']:.4f}   "
                       f"{r['test_size']:,} samples")
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
