"""The neuraterm app: Setup, Dashboard and Runs as modes, Evaluate and Help on top.

The app never trains. A run it starts is a process of its own (see `service.py`), and the dashboard
is a viewer of a run folder, like `neuraterm watch` and every browser tab: a thread follows the
folder's event log and reaches the UI only through `RunEvents` messages, tagged with an attachment
id so the messages of a run no longer watched are ignored; pause, stop and save are commands dropped
into the folder. One factory, `make_app`, serves the CLI and the tests.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from rich.markup import escape
from textual import events as events_ui, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen

from textual.worker import get_current_worker

from neuraterm.core.run import events
from neuraterm.core.errors import NeuratermError
from neuraterm.core.screen_text import visible
from neuraterm.core.run.event_log import LOG_FILE, LogReader
from neuraterm.tui.messages import RunDetached, RunError, RunEvents
from neuraterm.tui.run_state import RunState
from neuraterm.tui.screens.dialogs import ConfirmDialog, QuitDialog
from neuraterm.tui.service import TrainingService
from neuraterm.tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmall

# Each screen's module is imported when the screen is first shown (the charts' plotext, the study
# modules), so the first frame, Setup, waits only for what it draws (bench/startup.py).
SCREENS = {"setup": "setup:SetupScreen", "dashboard": "dashboard:DashboardScreen", "runs": "runs:RunsScreen",
           "study": "study:StudyScreen", "inside": "inside:InsideScreen", "evaluate": "evaluate:EvaluateScreen",
           "help": "help:HelpScreen"}


def screen_class(name: str) -> type:
    module, cls = SCREENS[name].split(":")
    return getattr(importlib.import_module(f"neuraterm.tui.screens.{module}"), cls)


class NeuratermApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "neuraterm"
    MODES = {mode: (lambda mode=mode: screen_class(mode)())
             for mode in ("setup", "dashboard", "runs", "study", "inside")}
    BINDINGS = [
        Binding("n", "show_mode('setup')", "Setup", tooltip="Go to the Setup screen"),
        Binding("d", "show_mode('dashboard')", "Dashboard", tooltip="Go to the Dashboard"),
        Binding("r", "show_mode('runs')", "Runs", tooltip="Go to the Runs screen"),
        Binding("i", "show_mode('inside')", "Inside", show=False,  # in Help, the palette and the dashboard's alerts
                tooltip="Inside the run's layers: health, weights, alerts"),
        Binding("S", "show_mode('study')", "Studies", show=False,  # in Help, the palette and the Runs hint
                tooltip="Go to the Study screen (the members of a study)"),
        Binding("question_mark", "help", "Help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks whether a run under way keeps training)"),
    ]

    def __init__(self, service: TrainingService | None = None, preset: str | None = None, start: bool = False,
                 resume_dir: str | None = None, watch_dir: str | None = None, deterministic: bool = False):
        super().__init__()
        self.theme = "textual-dark"
        self.service = service or TrainingService()
        self.initial_preset, self.start_at_once, self.initial_resume = preset, start, resume_dir
        self.initial_watch = watch_dir
        self.deterministic = deterministic  # no rates, ETA or timings on screen (snapshot tests)
        self.run_state = RunState()
        self.run_id = 0  # bumped at each attachment; messages of older ones are ignored
        self.attached: Path | None = None  # the run folder the dashboard follows
        self.launched = None  # the training process this app started for it, if it did
        self.holder: dict | None = None  # who trains it, as the follower last saw
        self.study_dir: Path | None = None  # the study folder the Study screen shows

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self.cover_when_small)
        self.cover_when_small(self.screen)
        self.check_size()
        if self.initial_watch:
            self.watch_run(self.initial_watch)
        elif self.initial_resume:
            self.switch_mode("runs")
            self.resume_run(self.initial_resume)
        elif self.initial_preset and self.start_at_once:
            try:
                config = self.service.load_preset(self.initial_preset)
            except NeuratermError as exc:
                self.switch_mode("setup")
                self.notify(str(exc), severity="error")
                return
            self.start_run(config)
        else:
            self.switch_mode("setup")

    def notify(self, message: str, *, markup: bool = True, **kwargs) -> None:
        """Every toast (screens' included) as plain text: its message may name a folder or quote a file."""
        super().notify(visible(message, 500), markup=False, **kwargs)

    def on_resize(self, event) -> None:
        self.check_size(event.size)

    async def on_event(self, event) -> None:
        """While the too-small notice covers the screen, keys and clicks would act on what nobody sees
        (Enter on Setup starts a run, `x` stops one): only `q` and Ctrl+C (quit) get through."""
        if (isinstance(event, (events_ui.Key, events_ui.MouseEvent)) and self.has_class("-too-small")
                and not (isinstance(event, events_ui.Key) and event.key in ("q", "ctrl+c", "ctrl+q"))):
            event.stop()
            return
        await super().on_event(event)

    def check_size(self, size=None) -> None:
        """The too-small class from the new size (`self.size` still says the old one while the resize is
        handled), and the shown screen's styles again: they do not follow the app's classes by themselves."""
        width, height = size or self.size
        self.set_class(width < MIN_WIDTH or height < MIN_HEIGHT, "-too-small")
        self.update_styles(self.screen)

    def cover_when_small(self, screen) -> None:
        """Give each screen shown its own too-small notice, once."""
        if not screen.query(TooSmall):
            screen.mount(TooSmall())

    # -- runs: each a process of its own; the dashboard follows its folder -------------------
    def start_run(self, config, run_dir: Path | None = None) -> None:
        if self.attached_is_live():
            self.notify("the run on the dashboard keeps training in its own process (Runs lists it)")
        run_dir = Path(run_dir) if run_dir else self.service.new_run_dir(config.name)
        self.attach(run_dir, RunState(name=config.name, epochs=config.train.epochs, status="starting"),
                    self.service.launch(config, run_dir))

    def resume_run(self, run_dir: str, confirmed: bool = False) -> None:
        """Continue a model folder; a finished one is extended only after the user says yes to the
        run and the new total by name (as the CLI asks for `resume --epochs N`)."""
        try:
            snap = self.service.snapshot(run_dir)
        except NeuratermError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.service.is_live(Path(run_dir)):
            self.notify("already training: watching it")
            self.watch_run(run_dir)
            return
        config, history = snap.config, snap.history
        epochs = None
        if len(history) >= config.train.epochs and snap.report:
            epochs = len(history) + max(5, config.train.epochs // 2)
            if not confirmed:
                accuracy = snap.report.get("test_accuracy")
                done = f"finished after {len(history)} epochs" + (
                    f", test accuracy {100 * accuracy:.2f}%" if isinstance(accuracy, float) else "")

                def answer(yes: bool | None) -> None:
                    if yes:
                        self.resume_run(run_dir, confirmed=True)
                self.push_screen(ConfirmDialog(
                    f"[b]{escape(str(run_dir))}[/] is {done}.\nTrain it on to [b]{epochs}[/] epochs? Its report "
                    f"is rewritten at the end (neuraterm resume {escape(str(run_dir))} --epochs {epochs}).",
                    f"train on to {epochs} epochs", "leave it"), answer)
                return
            self.notify(f"continuing to {epochs} epochs")
        self.attach(Path(run_dir), RunState(name=config.name, epochs=epochs or config.train.epochs, status="starting"),
                    self.service.launch_resume(Path(run_dir), epochs))

    async def fork_run(self, run_dir: str, epoch: int) -> None:
        """Open Setup on the parent's settings at `epoch`, the ones a fork cannot change locked."""
        try:
            config = self.service.fork_config(Path(run_dir), epoch)
        except NeuratermError as exc:
            self.notify(str(exc), severity="error")
            return
        await self.action_show_mode("setup")
        self.screen.begin_fork(Path(run_dir), epoch, config)

    def start_fork(self, parent: Path, epoch: int, config) -> None:
        """`neuraterm fork` as a process of its own; the dashboard follows the new folder (the parent's
        first epochs, then the fork's)."""
        run_dir = self.service.new_fork_dir(parent, epoch)
        self.attach(run_dir, RunState(name=config.name, epochs=config.train.epochs, status="starting"),
                    self.service.launch_fork(parent, epoch, config, run_dir))

    def accept_suggestion(self, suggestion) -> None:
        """Fork the run on the dashboard as the curves suggest, at once (one key)."""
        if self.attached is None:
            return
        try:
            config = self.service.fork_config_with(self.attached, suggestion.epoch, suggestion.changes)
        except NeuratermError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.attached_is_live():
            self.notify("the parent keeps training in its own process (Runs lists it)")
        self.start_fork(self.attached, suggestion.epoch, config)

    def watch_run(self, run_dir: str) -> None:
        """Attach the dashboard to any model folder, even one whose first epoch is under way: its whole
        history, then whatever it does next."""
        if self.service.is_study(Path(run_dir)):
            self.study_dir = Path(run_dir)
            self.call_later(self.action_show_mode, "study")
            return
        info = self.service.describe(Path(run_dir))
        if info is None:
            self.notify(f"{run_dir}: not a neuraterm model folder", severity="error")
            return
        self.attach(Path(run_dir), RunState(name=info.name, epochs=info.epochs, status="starting"))

    def attach(self, run_dir: Path, state: RunState, launched=None) -> None:
        self.run_id += 1
        state.run_dir = str(run_dir)
        self.run_state, self.attached, self.launched = state, run_dir, launched
        self.refresh_bindings()
        self.switch_mode("dashboard")
        self.follow(run_dir, self.run_id, launched)

    def attached_is_live(self) -> bool:
        """A process trains (or is about to train) the folder on the dashboard."""
        if self.attached is None:
            return False
        starting = self.launched is not None and self.launched.process.poll() is None
        return starting or self.service.is_live(self.attached)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, run_dir: Path, run_id: int, launched) -> None:
        """Read the folder's event log from the top, then every new line, until no process trains it."""
        worker = get_current_worker()
        reader = LogReader(run_dir)
        if launched is None and not (run_dir / LOG_FILE).exists():  # a folder from before event logs
            self.post_message(RunEvents(run_id, self.service.replay_history(run_dir)))
        failed = False
        while not worker.is_cancelled:
            alive = launched is not None and launched.process.poll() is None
            self.holder = self.service.holder(run_dir)
            live = self.holder is not None
            skipped = reader.skipped
            batch = reader.read_new()
            if batch or reader.skipped != skipped:
                failed = failed or any(isinstance(e, events.RunFailed) for e in batch)
                self.post_message(RunEvents(run_id, batch, reader.skipped))
            if not live and not alive:
                problem = launched.failure() if launched is not None else None
                if problem and not failed:
                    self.post_message(RunError(run_id, problem))
                self.post_message(RunDetached(run_id))
                break
            time.sleep(0.25)
        if launched is not None and launched.process.poll() is not None:
            launched.forget()

    def on_run_events(self, message: RunEvents) -> None:
        if message.run_id == self.run_id:
            status = self.run_state.status
            for event in message.batch:
                self.run_state.apply(event)
            self.run_state.skipped_lines(message.skipped)
            if self.run_state.status != status:
                self.refresh_bindings()  # pause, stop and save come and go with a live run

    def on_run_error(self, message: RunError) -> None:
        if message.run_id == self.run_id:
            self.run_state.fail(message.message)
            self.refresh_bindings()
            self.notify(message.message, severity="error", timeout=8)

    def on_run_detached(self, message: RunDetached) -> None:
        if message.run_id == self.run_id:
            self.run_state.detach()
            self.refresh_bindings()

    # -- actions ----------------------------------------------------------------------------
    def send(self, action: str) -> bool:
        try:
            self.service.send(self.attached, action)
            return True
        except NeuratermError as exc:
            self.notify(str(exc), severity="warning")
            return False

    def action_toggle_pause(self) -> None:
        """Pause or resume; the dashboard says so once the run's log confirms it."""
        if self.attached is not None and self.run_state.status in ("running", "paused"):
            self.send("resume" if self.run_state.status == "paused" else "pause")

    def action_stop_run(self) -> None:
        if self.attached is None or self.run_state.status not in ("running", "paused", "starting"):
            return
        if self.service.is_live(self.attached):
            self.send("stop")
        elif self.launched is not None and self.launched.process.poll() is None:
            self.launched.process.terminate()  # still loading its data: nothing to save yet
        self.run_state.status = "stopping"
        self.run_state.version += 1

    def action_save_now(self) -> None:
        if self.attached is not None and self.run_state.status in ("running", "paused") and self.send("save"):
            self.notify("checkpoint requested")

    def action_evaluate_current(self) -> None:
        if self.run_state.run_dir:
            self.open_evaluation(self.run_state.run_dir)

    def open_evaluation(self, run_dir: str) -> None:
        live = str(run_dir) == self.run_state.run_dir and self.run_state.status in ("running", "paused", "stopping")
        self.push_screen(screen_class("evaluate")(run_dir, live=live))

    def check_action(self, action: str, parameters: tuple) -> bool:
        """The key of the screen already shown is left out of the footer (and does nothing), and so are
        pause, stop and save while no run trains (a finished run, or none yet)."""
        if action in ("toggle_pause", "stop_run", "save_now"):
            return self.attached is not None and self.run_state.status in ("starting", "running", "paused")
        return not (action == "show_mode" and parameters and parameters[0] == self.current_mode
                    and all(isinstance(screen, ModalScreen) for screen in self.screen_stack[1:]))

    async def action_show_mode(self, mode: str) -> None:
        """Switch to a screen, or back to it from a screen opened over it (Evaluate over Runs)."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            await self.pop_screen()

    def key_sections(self) -> list[tuple[str, str | None, list[tuple[str, Binding]]]]:
        """(section, mode, [(keys as shown, binding)]) for the app and every screen, one entry per
        action: the single source for Help and the command palette."""
        sections = [("everywhere", None, list(self.BINDINGS)), *(
            (name, mode, list(screen_class(name).BINDINGS)) for name, mode in (
                ("setup", "setup"), ("dashboard", "dashboard"), ("runs", "runs"), ("study", "study"),
                ("inside", "inside"), ("evaluate", None)))]
        result = []
        for name, mode, bindings in sections:
            by_action: dict[str, list[Binding]] = {}
            for binding in Binding.make_bindings(bindings):
                if binding.description:
                    by_action.setdefault(binding.action, []).append(binding)
            result.append((name, mode, [(" / ".join(self.get_key_display(b) for b in group), group[0])
                                        for group in by_action.values()]))
        return result

    def action_help(self) -> None:
        self.push_screen(screen_class("help")([(name, [(keys, b.tooltip or b.description) for keys, b in entries])
                                     for name, _, entries in self.key_sections()]))

    def get_system_commands(self, screen):
        """Textual's commands, then every action that has a key, run on its screen."""
        yield from super().get_system_commands(screen)
        for name, mode, entries in self.key_sections():
            if name == "everywhere":
                for keys, b in entries:
                    yield SystemCommand(b.tooltip or b.description, f"key: {keys}",
                                        lambda action=b.action: self.run_action(action))
            elif mode is not None:
                for keys, b in entries:
                    if b.key == "escape":
                        continue  # leaving a field or a screen is nothing to run from the palette
                    yield SystemCommand(b.tooltip or b.description, f"{name} screen, key: {keys}",
                                        lambda mode=mode, action=b.action: self.run_on_screen(mode, action))

    async def run_on_screen(self, mode: str, action: str) -> None:
        """Show the screen the action belongs to (closing any screen over it), then run it there."""
        await self.action_show_mode(mode)
        await self.run_action(action, self.screen)

    async def action_quit(self) -> None:
        """Quit; a run under way is its own process, so ask whether it keeps training (with the too-small
        notice over the question, nobody could answer it: the run keeps training, and the exit says so)."""
        if not self.attached_is_live() or self.run_state.status not in ("starting", "running", "paused"):
            self.exit()
            return
        if self.has_class("-too-small"):
            self.exit(message=f"{self.attached} keeps training in its own process (neuraterm watch {self.attached})")
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                self.action_stop_run()
            if choice in ("stop", "leave"):
                self.exit()
        self.push_screen(QuitDialog(str(self.attached)), answer)


def make_app(runs_root: str | Path = "runs", **kwargs) -> NeuratermApp:
    return NeuratermApp(TrainingService(Path(runs_root)), **kwargs)


def run_app(preset: str | None = None, start: bool = False, resume_dir: str | None = None,
            watch_dir: str | None = None) -> None:
    make_app(preset=preset, start=start, resume_dir=resume_dir, watch_dir=watch_dir).run()
