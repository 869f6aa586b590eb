"""Runs: the model folders on disk with their final metrics, forks under their parents; overlay several
runs' curves (a family draws its shared epochs once and each fork from its fork epoch); an epoch
cursor picks where `f` forks."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from neuraterm.core.run.status import families
from neuraterm.core.screen_text import markup, visible
from neuraterm.tui.shorten import middle
from neuraterm.tui.widgets.curve_chart import CurveChart, Series
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
        Binding("left_square_bracket", "epoch(-1)", "Epoch", key_display="[ ]", show=False,  # the hint line names them
                tooltip="Move the epoch cursor to the previous kept epoch of the highlighted run"),
        Binding("right_square_bracket", "epoch(1)", "Next epoch", show=False,
                tooltip="Move the epoch cursor to the next kept epoch of the highlighted run"),
        Binding("f", "fork", "Fork", show=False, tooltip="Fork the highlighted run at the epoch under the cursor (Setup opens)"),
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
        self.cursor: tuple[str, int] | None = None  # (run, kept epoch) under the epoch cursor
        self.kept: dict[str, list[int]] = {}  # kept epochs per run, read when the cursor first visits it
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
        self.runs = {str(r.path): r for r, _ in families(self.app.service.list_runs())}
        self.depth = {str(r.path): depth for r, depth in families(list(self.runs.values()))}
        self.kept = {}
        room = self.name_room()
        for key, run in self.runs.items():
            table.add_row("●" if key in self.selected else " ", self.tree_name(run, self.depth[key], room),
                          *self.cells(run), key=key)
        if picked in self.runs:
            table.move_cursor(row=table.get_row_index(picked))
        self.update_hint()
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
    def tree_name(run, depth: int, room: int) -> str:
        """A fork under its parent: indented, with the epoch it started from (the name shortened to fit)."""
        if not depth:
            return markup(middle(visible(run.name), room))
        prefix, suffix = "  " * (depth - 1) + "└ ", f" @{run.lineage[-1]['epoch']}"
        return prefix + markup(middle(visible(run.name), max(6, room - len(prefix) - len(suffix)))) + suffix

    def update_hint(self) -> None:
        hint = self.query_one("#runs-hint", Static)
        if not self.runs:
            hint.update("no model folders yet in " + markup(self.app.service.runs_root))
            return
        if self.cursor is None or self.cursor[0] != self.current():
            hint.update("space: overlay  enter: evaluate  w: watch  R: resume  [ ]: epoch  f: fork")
            return
        key, epoch = self.cursor
        row = next((r for r in self.runs[key].history if r["epoch"] == epoch), None)
        metrics = f": val acc {pct(row['val_acc'])}, val loss {row['val_loss']:.4f}" if row else ""
        hint.update(f"epoch {epoch} of {markup(visible(self.runs[key].name))}{metrics}  f: fork here  [ ]: move")

    @staticmethod
    def cells(run) -> tuple[str, ...]:
        return (run.status, markup(run.dataset or "-"), f"{run.epoch}/{run.epochs}" if run.epochs else "-", pct(run.val_acc),
                pct(run.test_acc))

    def refresh_live(self) -> None:
        """Every two seconds: the status and metrics of each row, in place (the cursor stays where it is);
        the whole table when folders came or went."""
        fresh = {str(r.path): r for r, _ in families(self.app.service.list_runs())}
        if fresh.keys() != self.runs.keys():
            self.action_refresh_runs()
            return
        table = self.query_one(DataTable)
        for key, run in fresh.items():
            if self.cells(run) != self.cells(self.runs[key]):
                for column, value in zip(self.columns[2:], self.cells(run)):
                    table.update_cell(key, column, value, update_width=True)  # "interrupted" whole
        self.runs = fresh

    def current(self) -> str | None:
        table = self.query_one(DataTable)
        if not getattr(self, "runs", None) or table.cursor_row is None or not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_hint()
        self.update_overlay()

    def family(self, key: str) -> list[str]:
        """The highlighted run's tree (its root and every fork below it), in table order."""
        by_path = {self.runs[k].path.resolve(): k for k in self.runs}

        def root(k: str, hops: int = 0) -> str:
            lineage = self.runs[k].lineage
            parent = by_path.get(Path(lineage[-1]["parent"]).resolve()) if lineage else None
            return root(parent, hops + 1) if parent is not None and hops < len(self.runs) else k
        top = root(key)
        return [k for k in self.runs if root(k) == top]

    def update_overlay(self) -> None:
        current = self.current()
        keys = [k for k in self.runs if k in self.selected] or (self.family(current) if current else [])
        shown = {self.runs[k].path.resolve(): k for k in keys if k in self.runs}
        series, x_max, branched = [], 2, False
        for key in keys:
            run = self.runs.get(key)
            history = run.history if run else self.app.service.history(key)
            name, start = (run.name if run else key), 1
            if run is not None and run.lineage and Path(run.lineage[-1]["parent"]).resolve() in shown:
                start = run.lineage[-1]["epoch"]  # the shared epochs are the parent's line
                branched = True
                name = f"{self.app.service.change_legend(run.lineage[-1]) or run.name} @ {start}"
            rows = [r for r in history if r["epoch"] >= start]
            series.append(Series(visible(name), [r["epoch"] for r in rows], [r["val_acc"] for r in rows]))
            x_max = max(x_max, len(history))
        chart = self.query_one("#overlay-chart", CurveChart)
        chart.cursor = self.cursor[1] if self.cursor and self.cursor[0] == current else None
        chart.legend_rows = 2 if branched else 1  # 'lr 0.1 -> 0.01 @ 10' is never cut
        chart.set_series(series, x_max)

    # -- the epoch cursor and forks ------------------------------------------------------------------
    def action_epoch(self, step: int) -> None:
        key = self.current()
        if key is None:
            return
        if key not in self.kept:
            self.kept[key] = self.app.service.kept_epochs(Path(key))
        kept = self.kept[key]
        if not kept:
            self.notify("this run keeps no epoch's checkpoint yet", severity="warning")
            return
        at = self.cursor[1] if self.cursor and self.cursor[0] == key else None
        if at is None:
            epoch = kept[-1] if step < 0 else kept[0]
        else:
            later = [e for e in kept if (e - at) * step > 0]
            epoch = (min(later) if step > 0 else max(later)) if later else at
        self.cursor = (key, epoch)
        self.update_hint()
        self.update_overlay()

    async def action_fork(self) -> None:
        key = self.current()
        if key is None:
            return
        if self.cursor is None or self.cursor[0] != key:
            self.notify("pick an epoch first: [ and ] move over the kept epochs", severity="warning")
            return
        await self.app.fork_run(key, self.cursor[1])

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
