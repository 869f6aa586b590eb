"""The mistakes gallery (from Evaluate, `g`): the test images the last checkpoint gets wrong with the
most confidence, each with its true class, the prediction and the probability it gave it. A screen of
its own, so Evaluate's layout stays as it is."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from neuraterm.core.errors import NeuratermError
from neuraterm.tui.widgets.health_views import mistake_tiles
from neuraterm.tui.widgets.keys_footer import KeysFooter


class MistakesScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", tooltip="Back to Evaluate")]

    def __init__(self, run_dir: str):
        super().__init__()
        self.run_dir = str(run_dir)
        self.result: dict | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="mistakes"):
            yield Static(f"{self.run_dir}: finding the most confident mistakes…", id="gallery")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.find()

    @work(thread=True, exclusive=True, group="mistakes", exit_on_error=False)
    def find(self) -> dict:
        return self.app.service.mistakes(self.run_dir, 12)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "mistakes":
            return
        gallery = self.query_one("#gallery", Static)
        if event.state == WorkerState.SUCCESS:
            self.result = event.worker.result
            self.draw()
        elif event.state == WorkerState.ERROR:
            error = event.worker.error
            reason = str(error) if isinstance(error, NeuratermError) else f"{type(error).__name__}: {error}"
            gallery.update(Text.assemble((self.run_dir, "bold"), "\n", ("cannot evaluate: ", "bold red"), reason))

    def on_resize(self, event) -> None:
        self.draw()

    def draw(self) -> None:
        if self.result is not None:
            text = Text(shown_path(self.run_dir) + "\n", style="bold")
            text.append_text(mistake_tiles(self.result, self.size.width - 2))
            self.query_one("#gallery", Static).update(text)


def shown_path(run_dir: str) -> str:
    """The run folder relative to the working directory when it lies under it (shorter, and the same on
    every machine), else as given."""
    path = Path(run_dir)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
