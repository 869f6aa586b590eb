"""Runs: the model folders on disk with their final metrics; overlay several runs' curves."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from neuraterm.tui.shorten import middle
from neuraterm.core.screen_text import markup, visible
from neuraterm.tui.widgets.curve_chart import CurveChart
from neuraterm.tui.widgets.keys_footer import KeysFooter


def pct(value) -> str:
    """A fraction as a percentage; '-' for none (and for NaN: a diverged run has no accuracy to show)."""
    return "-" if value is None or value != value else f"{100 * value:.2f}%"


class RunsScreen(Screen):
    BINDINGS = [
        Binding("space", "toggle_overlay", "Overlay", tooltip="Overlay the highlighted run's curves, or take them off"),
        # priority: the table binds enter too (hidden), which would take the key and its footer slot
        Binding("enter", "open", "Evaluate", tooltip="Evaluate the highlighted run", priority=True, key_display="enter"),
        Binding("R", "resume", "Resume", tooltip="Resume training the highlighted run"),
        Binding("w", "watch", "Watch", tooltip="Watch the highlighted run on the dashboard (live if it trains)"),
        Binding("f5", "refresh_runs", "Refresh", show=False, tooltip="Refresh the list of runs"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="runs"):
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="runs-hint")
            yield CurveChart("validation accuracy %", percent=True, id="overlay-chart")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.selected: set[str] = set()
        table = self.query_one(DataTable)
        self.columns = table.add_columns(" ", "run", "status", "dataset", "epochs", "val acc", "test acc")
        self.action_refresh_runs()
        self.live_timer = self.set_interval(2.0, self.refresh_live)

    def on_screen_suspend(self) -> None:
        self.live_timer.pause()  # a hidden screen reads no folders

    def on_screen_resume(self) -> None:
        self.action_refresh_runs()
        self.live_timer.resume()

    def action_refresh_runs(self) -> None:
        """Read the folders again; the cursor stays on the run it was on (by its folder, not its row)."""
        table = self.query_one(DataTable)
        picked = self.current()
        table.clear()
        self.runs = {str(r.path): r for r in self.app.service.list_runs()}
        room = self.name_room()
        for key, run in self.runs.items():
            table.add_row("●" if key in self.selected else " ", markup(middle(visible(run.name), room)), *self.cells(run), key=key)
        if picked in self.runs:
            table.move_cursor(row=table.get_row_index(picked))
        hint = ("no model folders yet in " + markup(self.app.service.runs_root) if not self.runs else
                "space: overlay  enter: evaluate  w: watch  R: resume  S: studies")
        self.query_one("#runs-hint", Static).update(hint)
        self.update_overlay()

    def name_room(self) -> int:
        """The width the run column can have with every other column whole: long names are shortened
        in the middle (the preset and the start time stay), never the metrics at the right edge."""
        headers = ("status", "dataset", "epochs", "val acc", "test acc")
        widths = [max([len(h)] + [len(c) for c in cells]) for h, *cells in
                  zip(headers, *(self.cells(run) for run in self.runs.values()))] if self.runs else []
        used = sum(w + 2 for w in widths) + 3 + 2 + 2  # the marker column, the run column's padding, a scrollbar
        return max(12, self.size.width - used)

    def on_resize(self) -> None:
        if getattr(self, "runs", None):
            self.action_refresh_runs()

    @staticmethod
    def cells(run) -> tuple[str, ...]:
        return (run.status, markup(run.dataset or "-"), f"{run.epoch}/{run.epochs}" if run.epochs else "-", pct(run.val_acc),
                pct(run.test_acc))

    def refresh_live(self) -> None:
        """Every two seconds: the status and metrics of each row, in place (the cursor stays where it is);
        the whole table when folders came or went."""
        fresh = {str(r.path): r for r in self.app.service.list_runs()}
        if fresh.keys() != self.runs.keys():
            self.action_refresh_runs()
            return
        table = self.query_one(DataTable)
        for key, run in fresh.items():
            if self.cells(run) != self.cells(self.runs[key]):
                for column, value in zip(self.columns[2:], self.cells(run)):
                    table.update_cell(key, column, value)
        self.runs = fresh

    def current(self) -> str | None:
        table = self.query_one(DataTable)
        if not getattr(self, "runs", None) or table.cursor_row is None or not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_overlay()

    def update_overlay(self) -> None:
        keys = sorted(self.selected) or ([self.current()] if self.current() else [])
        series = {}
        x_max = 2
        for key in keys:
            history = self.runs[key].history if key in self.runs else self.app.service.history(key)
            series[visible(self.runs[key].name if key in self.runs else key)] = (
                [r["epoch"] for r in history], [r["val_acc"] for r in history])
            x_max = max(x_max, len(history))
        self.query_one("#overlay-chart", CurveChart).set_series(series, x_max)

    def action_toggle_overlay(self) -> None:
        key = self.current()
        if key is None:
            return
        self.selected.symmetric_difference_update({key})
        self.action_refresh_runs()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A click on the highlighted row evaluates it, as enter does."""
        self.action_open()

    def action_open(self) -> None:
        key = self.current()
        if key is not None:
            self.app.open_evaluation(key)

    def action_resume(self) -> None:
        key = self.current()
        if key is not None:
            self.app.resume_run(key)

    def action_watch(self) -> None:
        key = self.current()
        if key is not None:
            self.app.watch_run(key)
