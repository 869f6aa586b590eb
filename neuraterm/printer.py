"""The headless consumer of training events: a progress bar and a per-epoch table on a terminal,
plain lines when output is piped or NO_COLOR is set. Output that goes away (`| head -1`, a dropped SSH
terminal) never stops or loses the run: printing simply stops."""
from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table

from neuraterm.core.run import events
from neuraterm.core.screen_text import markup, visible


def percent(x: float) -> str:
    return f"{100 * x:.2f}%"


class SafeStream:
    """A stream whose reader may vanish: after the first failed write (EPIPE, EIO), its descriptor is
    pointed at /dev/null, so every later write, Rich's refresh thread and Python's final flush included,
    succeeds silently while training goes on."""

    def __init__(self, stream):
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except OSError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except OSError:
                self._silence()

    def isatty(self) -> bool:
        try:
            return not self.broken and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    def _silence(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


class HeadlessPrinter:
    def __init__(self, stream=None):
        self.stream = SafeStream(stream or sys.stdout)
        self.interactive = self.stream.isatty()
        self.console = Console(file=self.stream, no_color="NO_COLOR" in os.environ,
                               force_terminal=self.interactive or None, highlight=False)
        self.progress = None  # a rich Progress while a bar is shown (imported then: piped output never needs it)
        self.task = None
        self.validating = True  # False once a run says it has no validation split
        self.steps = 0  # steps per epoch, from RunStarted

    def download(self, name: str, done: int, total: int) -> None:
        """Progress of a dataset download: a bar on a terminal, one line at the end otherwise."""
        if self.interactive:
            if self.progress is None:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
                self.progress = Progress(TextColumn(f"downloading {name}"), BarColumn(), TextColumn("{task.completed:,.0f} B"),
                                         TimeRemainingColumn(), console=self.console, transient=True)
                self.progress.start()
                self.task = self.progress.add_task("", total=total or None)
            self.progress.update(self.task, completed=done)
        if total and done >= total:
            self._stop_bar()
            self._plain(f"downloaded {name} ({done:,} bytes)")

    def _plain(self, text: str) -> None:
        print(visible(text), file=self.stream, flush=True)  # names and messages from files: escapes shown

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.RunStarted):
            verb = "resuming at epoch" if event.start_epoch else "training"
            self._plain(f"{event.config_name}: {verb} {event.start_epoch or ''} on {event.device}, "
                        f"{event.parameters:,} parameters, {event.train_size:,} train / {event.val_size:,} val / "
                        f"{event.test_size:,} test samples, {event.steps_per_epoch} steps per epoch".replace("  ", " "))
            self._plain(f"model folder: {event.run_dir}")
            if event.data_placement:
                self._plain(f"training data: {event.data_placement}")
            if event.step_engine:
                self._plain(f"training step: {event.step_engine}")
            if event.blas_threads:
                self._plain(f"BLAS threads: {event.blas_threads}")
            for note in event.notes:
                self._plain(f"note: {note}")
            self.validating = event.val_size > 0
            self.steps = event.steps_per_epoch
        elif isinstance(event, events.StepEnded) and self.interactive:
            if self.progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
                self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("loss {task.fields[loss]:.4f}"),
                                         TextColumn("{task.fields[rate]:,.0f} samples/s"), TimeRemainingColumn(),
                                         console=self.console, transient=True)
                self.progress.start()
                self.task = self.progress.add_task("", total=event.steps, epoch=event.epoch, loss=event.loss,
                                                   rate=event.samples_per_s)
            self.progress.update(self.task, completed=event.step, total=event.steps, epoch=event.epoch,
                                 loss=event.loss, rate=event.samples_per_s)
        elif isinstance(event, events.EpochEnded):
            self._stop_bar()
            val = f"val loss {event.val_loss:.4f} acc {percent(event.val_acc)}" if self.validating else "val off"
            self._plain(f"epoch {event.epoch:>3}/{event.epochs}  train loss {event.train_loss:.4f} acc "
                        f"{percent(event.train_acc)}  {val}  "
                        f"lr {event.lr:.3g}  {event.samples_per_s:,.0f} samples/s  {event.seconds:.1f}s")
        elif isinstance(event, events.HealthAlert):
            self._plain(f"alert, epoch {event.epoch}, {event.layer}: {event.kind} ({event.figure}): {event.message} "
                        f"Try: {event.advice}")
        elif isinstance(event, (events.Paused, events.Resumed)):  # a viewer's p: the terminal that runs it says so
            self._stop_bar()
            where = f"epoch {event.epoch}, step {event.step}/{self.steps}" if self.steps else f"epoch {event.epoch}"
            self._plain(f"paused by a viewer at {where}; a viewer's p resumes it, Ctrl-C here stops it (saved)"
                        if isinstance(event, events.Paused) else f"resumed at {where}")
        elif isinstance(event, events.EarlyStopped):
            self._plain(f"early stopping at epoch {event.epoch}: best {event.monitor} {event.best_value:.4f} "
                        f"at epoch {event.best_epoch}")
        elif isinstance(event, events.RunFailed):
            self._stop_bar()
        elif isinstance(event, events.RunFinished):
            self._stop_bar()
            if event.stopped:
                self._plain(f"stopped; checkpoint saved in {event.run_dir} (resume with: neuraterm resume {event.run_dir})")
            else:
                self.print_report(event.report, event.run_dir)

    def print_report(self, report: dict, run_dir: str) -> None:
        table = Table(title="test report", show_header=False, box=None)
        table.add_row("test accuracy", percent(report["test_accuracy"]))
        table.add_row("macro-F1", f"{report['macro_f1']:.4f}")
        table.add_row("cross-entropy", f"{report['test_loss']:.4f}")
        table.add_row("test samples", f"{report['test_size']:,}")
        confused = ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})" for c in report["most_confused"][:3])
        table.add_row("most confused", markup(confused or "none"))
        noise = "  ".join(f"s={n['sigma']:g}: {percent(n['accuracy'])}" for n in report.get("noise", []))
        if noise:
            table.add_row("noise robustness", noise)
        table.add_row("model folder", markup(run_dir))
        self.console.print(table)


def _num(value, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def health_table(h, found: list, stream=None) -> None:
    """`neuraterm inspect`: one epoch's layer health, then the alerts with their reasons."""
    import math
    out = SafeStream(stream or sys.stdout)
    console = Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False,
                      width=None if out.isatty() else 200)
    table = Table(title=f"layer health, epoch {h.epoch} (probe batch of {h.probe_size:,} training samples)",
                  box=None, header_style="bold", pad_edge=False, title_justify="left")
    for column in ("layer", "act", "|W|", "|grad|", "log10 upd/W", "act mean", "act std", "dead", "saturated",
                   "unit spread"):
        table.add_column(column, justify="left" if column in ("layer", "act") else "right")
    for i, name in enumerate(h.layers):
        ratio = h.update_ratio_median[i]
        table.add_row(name, h.kinds[i], _num(h.weight_norm[i]), _num(h.grad_norm[i]),
                      "-" if ratio is None else ("-inf" if ratio <= 0 else f"{math.log10(ratio):.2f}"),
                      _num(h.act_mean[i]), _num(h.act_std[i]), _pct(h.dead_fraction[i]),
                      _pct(h.saturated_fraction[i]), _num(h.unit_spread[i]))
    console.print(table)
    if not found:
        console.print("no alerts")
    for a in found:
        when = f"epoch {a.epoch}" + (f"-{a.last_epoch}" if a.last_epoch and a.last_epoch != a.epoch else "")
        console.print(f"alert {a.kind}, {a.layer}, {when} ({a.figure}): {a.message} Try: {a.advice}", markup=False)


def _pct(value) -> str:
    return "-" if value is None or value != value else percent(value)


def runs_table(found, stream=None) -> None:
    """`neuraterm runs`: one row per model folder, what the app's Runs screen shows."""
    import time
    out = SafeStream(stream or sys.stdout)
    console = Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False,
                      width=None if out.isatty() else 200)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (("run", "left"), ("status", "left"), ("dataset", "left"), ("epochs", "right"),
                            ("val acc", "right"), ("best val acc", "right"), ("test acc", "right"),
                            ("parameters", "right"), ("updated", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    for r in found:
        best = f"{_pct(r.best_val_acc)} (e{r.best_epoch})" if r.best_epoch else "-"
        updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated)) if r.updated else "-"
        why = r.problem or r.failure
        status = r.status + (f" (pid {r.holder.get('pid')})" if r.holder else "") + (
            f": {why[:48]}{'...' if len(why) > 48 else ''}" if why else "")
        table.add_row(markup(r.name), markup(status), markup(r.dataset or "-"), f"{r.epoch}/{r.epochs}" if r.epochs else "-", _pct(r.val_acc),
                      best, _pct(r.test_acc), f"{r.parameters:,}" if r.parameters else "-", updated)
    console.print(table)


# -- studies ---------------------------------------------------------------------------------------
class StudyPrinter:
    """`neuraterm study`: a live table of the members on a terminal (one row each: state, epoch,
    validation and test accuracy), or one plain line per change when piped."""

    def __init__(self, names: list[str], stream=None):
        self.stream = SafeStream(stream or sys.stdout)
        self.interactive = self.stream.isatty()
        self.console = Console(file=self.stream, no_color="NO_COLOR" in os.environ,
                               force_terminal=self.interactive or None, highlight=False)
        self.rows: dict = {name: None for name in names}
        self.printed: dict = {}
        self.live = None
        self.width = max([len(n) for n in names] + [6])

    def __enter__(self):
        if self.interactive:
            from rich.live import Live
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
            self.live = None

    def __call__(self, progress) -> None:
        self.rows[progress.name] = progress
        if self.live is not None:
            self.live.update(self._table())
            return
        key = (progress.state, progress.epoch, progress.test_acc, progress.message)
        if self.printed.get(progress.name) == key or (progress.state == "waiting" and progress.name not in self.printed):
            self.printed.setdefault(progress.name, key)
            return
        self.printed[progress.name] = key
        try:
            print(self._line(progress), file=self.stream, flush=True)
        except (OSError, ValueError):
            pass

    def _line(self, p) -> str:
        parts = [f"{p.name:<{self.width}}", f"{p.state:<11}"]
        if p.epochs:
            parts.append(f"epoch {p.epoch:>3}/{p.epochs}")
        if p.val_acc is not None:
            parts.append(f"val acc {_pct(p.val_acc)}")
        if p.test_acc is not None:
            parts.append(f"test acc {_pct(p.test_acc)}")
        if p.message and p.state in ("failed", "diverged", "damaged", "interrupted", "retrying", "running", "paused"):
            parts.append(p.message[:120])
        return visible("  ".join(parts).rstrip())

    def _table(self):
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column, justify in (("member", "left"), ("state", "left"), ("epoch", "right"), ("val acc", "right"),
                                ("test acc", "right"), ("s/epoch", "right"), ("", "left")):
            table.add_column(column, justify=justify, no_wrap=True)
        for name, p in self.rows.items():
            if p is None:
                table.add_row(markup(name), "waiting", "", "", "", "", "")
                continue
            style = {"running": "cyan", "finished": "green", "diverged": "red", "failed": "red",
                     "interrupted": "yellow", "pruned": "magenta", "paused": "yellow", "retrying": "yellow"}.get(p.state, "")
            note = p.message[:60] if p.state in ("failed", "diverged", "damaged", "retrying", "running") else ""
            table.add_row(markup(name), f"[{style}]{markup(p.state)}[/]" if style else markup(p.state),
                          f"{p.epoch}/{p.epochs}" if p.epochs else "", _pct(p.val_acc) if p.val_acc is not None else "",
                          _pct(p.test_acc) if p.test_acc is not None else "",
                          f"{p.seconds:.3g}" if p.seconds is not None else "", markup(note))
        return table


def study_table(header: list[str], cells: list[list[str]], title: str = "", stream=None) -> None:
    """A results table (the one in results.md) on the terminal."""
    out = SafeStream(stream or sys.stdout)
    console = Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False,
                      width=None if out.isatty() else 250)
    table = Table(title=markup(title) or None, box=None, header_style="bold", pad_edge=False, title_justify="left")
    for i, column in enumerate(header):
        table.add_column(markup(column), justify="left" if i == 0 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(markup(cell) for cell in row))
    console.print(table)
