"""Study: the members of a study as live rows (state, epoch, metrics, a sparkline of validation
accuracy), an overlay of one metric for every member, and, for two selected members, what differs in
their configs and per-class F1. Members are steered like any run: `x` stops one (it checkpoints), `R`
starts or resumes it, `enter` watches it on the dashboard or evaluates it."""
from __future__ import annotations

import math

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from neuraterm.core.errors import NeuratermError
from neuraterm.core.screen_text import markup, visible
from neuraterm.tui.screens.runs import pct
from neuraterm.tui.widgets.curve_chart import CurveChart
from neuraterm.tui.widgets.keys_footer import KeysFooter

BLOCKS = "▁▂▃▄▅▆▇█"
# (label, history column, percent) of the metrics the overlay cycles through; "noise" is the test report's
METRICS = (("validation accuracy %", "val_acc", True), ("train accuracy %", "train_acc", True),
           ("validation loss", "val_loss", False), ("train loss", "train_loss", False),
           ("test accuracy % vs noise sigma", "noise", True))


def sparkline(values: list[float], width: int = 12) -> str:
    """The shape of the last `width` values, as block heights from their own lowest to highest (the
    value itself is in the row beside it)."""
    shown = [v for v in values[-width:] if v == v]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    if high == low:
        return BLOCKS[3] * len(shown)
    span = high - low
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - low) / span * len(BLOCKS)))] for v in shown)


def flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(a, b) -> list[str]:
    """Lines saying how two members differ: their configs, then their per-class F1 (largest gaps)."""
    ca, cb = flat(a.member.config.to_dict()), flat(b.member.config.to_dict())
    lines = [f"{key}: {ca[key]} → {cb[key]}" for key in ca
             if key not in ("name", "description") and ca[key] != cb.get(key)]
    fa, fb = a.f1, b.f1
    if fa and fb:
        gaps = sorted(((fb[c] - fa[c], c) for c in fa if c in fb), key=lambda g: -abs(g[0]))[:4]
        lines.append("F1 " + "  ".join(f"{c} {fa[c]:.2f}→{fb[c]:.2f}" for _, c in gaps))
    return lines or ["the two configs are the same"]


class StudyRows(Message):
    def __init__(self, rows: list, error: str = ""):
        super().__init__()
        self.rows, self.error = rows, error  # error: why the folder cannot be read (a damaged PBT record)


class StudyScreen(Screen):
    BINDINGS = [
        Binding("space", "select", "Select", show=False, tooltip="Select a member (two selected: their differences)"),
        Binding("enter", "open", "Open", tooltip="Watch the member on the dashboard, or evaluate it",
                priority=True, key_display="enter"),
        Binding("x", "stop", "Stop", tooltip="Stop the highlighted member (it saves a checkpoint)"),
        Binding("R", "start", "Resume", tooltip="Start or resume the highlighted member"),
        Binding("m", "metric", "Metric", show=False, tooltip="Overlay the next metric for every member"),
        Binding("right_square_bracket", "next_study", "Next study", show=False, key_display="]",
                tooltip="Show the next study folder"),
    ]

    def __init__(self):
        super().__init__()
        self.folder = None
        self.rows: dict[str, object] = {}
        self.selected: list[str] = []
        self.metric = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="study"):
            yield Static("", id="study-title")
            yield DataTable(id="study-table", cursor_type="row", zebra_stripes=True)
            yield CurveChart(METRICS[0][0], percent=True, id="study-chart")
            yield Static("", id="study-diff")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.columns = self.query_one(DataTable).add_columns(" ", "member", "state", "epoch", "val acc", "test acc",
                                                             "val acc curve")
        self.show_study(self.app.study_dir)
        self.rows_timer = self.set_interval(1.0, self.refresh_rows)

    def on_screen_suspend(self) -> None:
        self.rows_timer.pause()  # a hidden screen reads no folders

    def on_screen_resume(self) -> None:
        self.rows_timer.resume()
        if self.app.study_dir is not None and (self.folder is None or self.folder.path != self.app.study_dir):
            self.show_study(self.app.study_dir)

    def show_study(self, path) -> None:
        folders = self.app.service.study_folders()
        if path is None and folders:
            path = folders[0]
        self.folder, self.rows, self.selected = None, {}, []
        table = self.query_one(DataTable)
        table.clear()
        if path is None:
            self.query_one("#study-title", Static).update(
                f"no studies yet in {markup(self.app.service.studies_root)}: run one with 'neuraterm study study-init'")
            return
        try:
            self.folder = self.app.service.open_study(path)
        except NeuratermError as exc:
            self.query_one("#study-title", Static).update(f"[b red]✗[/] {markup(exc)}")
            return
        self.app.study_dir = self.folder.path
        self.refresh_rows()

    def refresh_rows(self) -> None:
        if self.folder is not None:
            self.read_rows(self.folder)

    @work(thread=True, exclusive=True, group="study-rows", exit_on_error=False)
    def read_rows(self, folder) -> None:
        """Every member's state and metrics, read from its folder off the UI thread."""
        try:
            self.post_message(StudyRows(self.app.service.study_rows(folder)))
        except NeuratermError as exc:
            self.post_message(StudyRows([], str(exc)))

    def on_study_rows(self, message: StudyRows) -> None:
        if message.error:
            self.query_one("#study-title", Static).update(f"[b red]✗[/] {markup(message.error)}")
            return
        table = self.query_one(DataTable)
        fresh = {row.name: row for row in message.rows}
        counts = {}
        for row in message.rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        self.query_one("#study-title", Static).update(
            f"[b]{markup(self.folder.study.name)}[/] {markup(self.folder.path)}: {len(fresh)} members · "
            + " · ".join(f"{n} {markup(state)}" for state, n in counts.items()))
        if list(fresh) != list(self.rows):
            row = table.cursor_row
            table.clear()
            for name, r in fresh.items():
                table.add_row(*self.cells(r), key=name)
            table.move_cursor(row=min(row or 0, max(len(fresh) - 1, 0)))
        else:
            for name, r in fresh.items():
                for column, old, new in zip(self.columns, self.cells(self.rows[name]), self.cells(r)):
                    if old != new:
                        table.update_cell(name, column, new, update_width=True)  # a longer state whole
        drawn = self.signature(self.rows)
        self.rows = fresh
        if self.signature(fresh) != drawn:
            self.draw_chart()

    @staticmethod
    def signature(rows: dict) -> list:
        """What the chart and the comparison show: redraw only when it changed."""
        return [(name, r.state, len(r.history), tuple(sorted(r.noise.items())), r.message if r.state == "retrying" else "")
                for name, r in rows.items()]

    def cells(self, row) -> tuple[str, ...]:
        epochs = row.member.config.train.epochs
        state = f"[yellow]{row.state}[/]" if row.state == "retrying" else markup(row.state)
        return ("●" if row.name in self.selected else " ", markup(row.name), state, f"{row.metrics['epochs']}/{epochs}",
                pct(row.metrics["val_acc"]), pct(row.metrics["test_acc"]),
                sparkline([r["val_acc"] for r in row.history]))

    def draw_chart(self) -> None:
        title, column, percent = METRICS[self.metric]
        chart = self.query_one("#study-chart", CurveChart)
        chart.title, chart.percent = title, percent
        chart.x_label = "sigma" if column == "noise" else "epoch"
        series, x_max = {}, 2
        for name, row in self.rows.items():
            if column == "noise":
                sigmas = sorted(row.noise)
                series[visible(name)] = (sigmas, [row.noise[s] for s in sigmas])
                x_max = max([x_max, *sigmas]) if sigmas else x_max
            else:
                fork = row.member.fork  # a [[fork]] member from its fork epoch: before it, its parent's line
                shown = [r for r in row.history if not fork or r["epoch"] >= fork[1]]
                ys = [r[column] for r in shown]
                series[visible(name)] = ([r["epoch"] for r in shown], [y if math.isfinite(y) else float("nan") for y in ys])
                x_max = max(x_max, len(ys), row.member.config.train.epochs)
        chart.set_series(series, x_max if column != "noise" else max(x_max, 0.1))
        self.show_differences()

    def show_differences(self) -> None:
        diff = self.query_one("#study-diff", Static)
        if len(self.selected) == 2 and all(name in self.rows for name in self.selected):
            a, b = (self.rows[name] for name in self.selected)
            diff.update(f"[b]{markup(a.name)}[/] → [b]{markup(b.name)}[/]: " + "; ".join(markup(d) for d in differences(a, b)))
        else:
            notes = [f"[yellow]{markup(r.name)}[/]: {markup(r.message)}" for r in self.rows.values()
                     if r.state == "retrying" and r.message]  # what the driver says while Ray runs it again
            diff.update("\n".join([*notes[:2], "space: select two members to compare them   m: next metric   ]: next study"]))

    def current(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_select(self) -> None:
        name = self.current()
        if name is None:
            return
        if name in self.selected:
            self.selected.remove(name)
        else:
            self.selected = (self.selected + [name])[-2:]
        table = self.query_one(DataTable)
        for key in self.rows:
            table.update_cell(key, self.columns[0], "●" if key in self.selected else " ")
        self.show_differences()

    def action_metric(self) -> None:
        self.metric = (self.metric + 1) % len(METRICS)
        self.draw_chart()

    def action_stop(self) -> None:
        name = self.current()
        if name is None:
            return
        try:
            self.folder.stop(name)
            self.notify(f"stopping {name} (it saves a checkpoint)")
        except NeuratermError as exc:
            self.notify(str(exc), severity="warning")

    def action_start(self) -> None:
        name = self.current()
        if name is None:
            return
        try:
            self.folder.start(name)
            self.notify(f"training {name}")
        except NeuratermError as exc:
            self.notify(str(exc), severity="warning")

    def action_open(self) -> None:
        name = self.current()
        if name is None:
            return
        row, path = self.rows[name], self.folder.member_dir(name)
        if row.state in ("running", "paused"):
            self.app.watch_run(str(path))
        elif row.metrics["epochs"]:
            self.app.open_evaluation(str(path))
        else:
            self.notify(f"{name} has no checkpoint yet: R starts it")

    def action_next_study(self) -> None:
        folders = self.app.service.study_folders()
        if folders and self.folder is not None:
            here = [str(f) for f in folders].index(str(self.folder.path)) if str(self.folder.path) in map(str, folders) else -1
            self.show_study(folders[(here + 1) % len(folders)])
