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
        Binding("n", "switch_mode('setup')", "Setup"),
        Binding("d", "switch_mode('dashboard')", "Dashboard"),
        Binding("r", "switch_mode('runs')", "Runs"),
        Binding("question_mark", "help", "Help"),
        Binding("q,ctrl+q", "quit", "Quit"),
    ]
    ACTIONS = {
        "toggle_pause": ("Pause or resume training", "p"), "stop_run": ("Stop training (saves a checkpoint)", "x"),
        "save_now": ("Save a checkpoint now", "s"), "evaluate_current": ("Evaluate the current run", "e"),
        "help": ("Show the key bindings", "?"),
    }

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
    def start_run(self, config, run_dir: Path | None = None, resume: bool = False) -> None:
        if self.trainer is not None and self.run_state.status in ("running", "paused"):
            self.notify("a run is in progress: stop it first (x)", severity="warning")
            return
        self.run_id += 1
        self.run_state = RunState(name=config.name, epochs=config.train.epochs, status="starting")
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
        done = len(self.service.history(run_dir))
        if done >= config.train.epochs and self.service.report(run_dir):
            config.train.epochs = done + max(5, config.train.epochs // 2)
            self.notify(f"continuing to {config.train.epochs} epochs")
        self.start_run(config, Path(run_dir), resume=True)

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

    def action_help(self) -> None:
        sections = [("everywhere", list(self.BINDINGS))]
        for name, screen in (("setup", SetupScreen), ("dashboard", DashboardScreen), ("runs", RunsScreen),
                             ("evaluate", EvaluateScreen)):
            sections.append((name, list(screen.BINDINGS)))
        self.push_screen(HelpScreen(sections))

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for mode in self.MODES:
            yield SystemCommand(f"Go to {mode}", f"Switch to the {mode} screen",
                                lambda mode=mode: self.switch_mode(mode))
        for action, (title, key) in self.ACTIONS.items():
            yield SystemCommand(title, f"key: {key}", getattr(self, f"action_{action}"))
        yield SystemCommand("Start training", "Train the configuration on the Setup screen (key t)",
                            lambda: (self.switch_mode("setup"), self.call_later(self.screen.action_start)))

    async def action_quit(self) -> None:
        if self.trainer is not None:
            self.trainer.control.stop()  # the worker saves a checkpoint at the next step boundary
        self.exit()


def make_app(runs_root: str | Path = "runs", **kwargs) -> NeuratermApp:
    return NeuratermApp(TrainingService(Path(runs_root)), **kwargs)


def run_app(preset: str | None = None, start: bool = False, resume_dir: str | None = None) -> None:
    make_app(preset=preset, start=start, resume_dir=resume_dir).run()
