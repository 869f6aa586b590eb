"""The neuraterm app: Setup, Dashboard and Runs as modes, Evaluate and Help on top.

Training runs in a thread worker and reaches the UI only through `TrainerEvent` messages, tagged
with a run id so a stopped run's late messages are ignored. One factory, `make_app`, serves the
CLI and the tests.
"""
from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from neuraterm.core.errors import NeuratermError
from neuraterm.core.trainer import RunFailed
from neuraterm.tui.messages import TrainerError, TrainerEvent
from neuraterm.tui.run_state import RunState
from neuraterm.tui.screens.dashboard import DashboardScreen
from neuraterm.tui.screens.evaluate import EvaluateScreen
from neuraterm.tui.screens.help import HelpScreen
from neuraterm.tui.screens.runs import RunsScreen
from neuraterm.tui.screens.setup import SetupScreen
from neuraterm.tui.service import TrainingService

MIN_WIDTH, MIN_HEIGHT = 80, 24


class NeuratermApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "neuraterm"
    MODES = {"setup": SetupScreen, "dashboard": DashboardScreen, "runs": RunsScreen}
    BINDINGS = [
        Binding("n", "show_mode('setup')", "Setup", tooltip="Go to the Setup screen"),
        Binding("d", "show_mode('dashboard')", "Dashboard", tooltip="Go to the Dashboard"),
        Binding("r", "show_mode('runs')", "Runs", tooltip="Go to the Runs screen"),
        Binding("question_mark", "help", "Help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", tooltip="Quit (a running run is checkpointed first)"),
    ]

    def __init__(self, service: TrainingService | None = None, preset: str | None = None, start: bool = False,
                 resume_dir: str | None = None, deterministic: bool = False):
        super().__init__()
        self.theme = "textual-dark"
        self.service = service or TrainingService()
        self.initial_preset, self.start_at_once, self.initial_resume = preset, start, resume_dir
        self.deterministic = deterministic  # no rates, ETA or timings on screen (snapshot tests)
        self.run_state = RunState()
        self.run_id = 0
        self.trainer = None

    def on_mount(self) -> None:
        self.mount(Static("terminal too small: neuraterm needs at least 80x24", id="too-small"))
        self.check_size()
        if self.initial_resume:
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

    def on_resize(self, event) -> None:
        self.check_size()

    def check_size(self) -> None:
        self.set_class(self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT, "-too-small")

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, config, run_dir: Path | None = None, resume: bool = False, history: list[dict] = ()) -> None:
        if self.trainer is not None and self.run_state.status in ("running", "paused"):
            self.notify("a run is in progress: stop it first (x)", severity="warning")
            return
        self.run_id += 1
        self.run_state = RunState(name=config.name, epochs=config.train.epochs, status="starting")
        self.run_state.seed(list(history))  # a resumed run's epochs, drawn before new ones arrive
        run_id = self.run_id
        run_dir = Path(run_dir) if run_dir else self.service.new_run_dir(config.name)
        self.trainer = self.service.trainer(config, run_dir, lambda e: self.post_message(TrainerEvent(run_id, e)),
                                            resume=resume)
        self.switch_mode("dashboard")
        self.train(self.trainer, run_id)

    def resume_run(self, run_dir: str) -> None:
        try:
            config = self.service.run_config(run_dir)
        except NeuratermError as exc:
            self.notify(str(exc), severity="error")
            return
        history = self.service.history(run_dir)
        if len(history) >= config.train.epochs and self.service.report(run_dir):
            config.train.epochs = len(history) + max(5, config.train.epochs // 2)
            self.notify(f"continuing to {config.train.epochs} epochs")
        self.start_run(config, Path(run_dir), resume=True, history=history)

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def train(self, trainer, run_id: int) -> None:
        try:
            trainer.run()
        except (NeuratermError, RunFailed) as exc:
            self.post_message(TrainerError(run_id, str(exc)))

    def on_trainer_event(self, message: TrainerEvent) -> None:
        if message.run_id == self.run_id:
            self.run_state.apply(message.event)

    def on_trainer_error(self, message: TrainerError) -> None:
        if message.run_id == self.run_id:
            self.run_state.fail(message.message)
            self.notify(message.message, severity="error", timeout=8)

    # -- actions ----------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        if self.trainer is None or self.run_state.status not in ("running", "paused"):
            return
        control = self.trainer.control
        if control.paused:
            control.resume()
            self.run_state.status = "running"
        else:
            control.pause()
            self.run_state.status = "paused"
        self.run_state.version += 1

    def action_stop_run(self) -> None:
        if self.trainer is not None and self.run_state.status in ("running", "paused", "starting"):
            self.trainer.control.stop()
            self.run_state.status = "stopping"
            self.run_state.version += 1

    def action_save_now(self) -> None:
        if self.trainer is not None and self.run_state.status == "running":
            self.trainer.control.request_save()
            self.notify("checkpoint requested")

    def action_evaluate_current(self) -> None:
        if self.run_state.run_dir:
            self.open_evaluation(self.run_state.run_dir)

    def open_evaluation(self, run_dir: str) -> None:
        live = str(run_dir) == self.run_state.run_dir and self.run_state.status in ("running", "paused", "stopping")
        self.push_screen(EvaluateScreen(run_dir, live=live))

    def check_action(self, action: str, parameters: tuple) -> bool:
        """The key of the screen already shown is left out of the footer (and does nothing)."""
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
            (name, mode, list(screen.BINDINGS)) for name, mode, screen in (
                ("setup", "setup", SetupScreen), ("dashboard", "dashboard", DashboardScreen),
                ("runs", "runs", RunsScreen), ("evaluate", None, EvaluateScreen)))]
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
        self.push_screen(HelpScreen([(name, [(keys, b.tooltip or b.description) for keys, b in entries])
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
        if self.trainer is not None:
            self.trainer.control.stop()  # the worker saves a checkpoint at the next step boundary
        self.exit()


def make_app(runs_root: str | Path = "runs", **kwargs) -> NeuratermApp:
    return NeuratermApp(TrainingService(Path(runs_root)), **kwargs)


def run_app(preset: str | None = None, start: bool = False, resume_dir: str | None = None) -> None:
    make_app(preset=preset, start=start, resume_dir=resume_dir).run()
