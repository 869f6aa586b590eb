"""What the screens ask of the engine, in one small object: presets, datasets, runs, trainers.

Screens never read model folders or build trainers themselves; they call this service, which uses
only the engine's public modules (config, trainer, checkpoint, events, evaluate), so tests can
inject a service that points at a temporary runs folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuraterm import presets
from neuraterm.core import checkpoint, config as config_mod
from neuraterm.core.data import registry
from neuraterm.core.errors import NeuratermError
from neuraterm.core.evaluate import evaluate_folder
from neuraterm.core.trainer import Trainer


@dataclass
class RunSummary:
    path: Path
    name: str
    dataset: str
    epochs: int
    val_acc: float | None
    test_acc: float | None
    finished: bool


class TrainingService:
    def __init__(self, runs_root: Path = Path("runs")):
        self.runs_root = Path(runs_root)

    # -- presets and datasets ---------------------------------------------------------------
    def preset_names(self) -> list[str]:
        return presets.names()

    def load_preset(self, name: str) -> config_mod.Config:
        return presets.load(name)

    def datasets(self) -> list[tuple[str, int, int, int, str]]:
        return [(name, spec.classes, spec.train, spec.test, registry.locate(name) or "download")
                for name, spec in registry.DATASETS.items()]

    # -- runs -------------------------------------------------------------------------------
    def new_run_dir(self, name: str) -> Path:
        return checkpoint.new_run_dir(self.runs_root, name)

    def list_runs(self) -> list[RunSummary]:
        runs = []
        if not self.runs_root.is_dir():
            return runs
        for folder in sorted(p for p in self.runs_root.iterdir() if p.is_dir() and (p / "model.json").exists()):
            try:
                history = checkpoint.read_history(folder / "history.csv")
                report = self.report(folder)
                config = config_mod.load_toml(folder / "config.toml")
            except NeuratermError:
                continue
            runs.append(RunSummary(folder, folder.name, config.data.dataset, len(history),
                                   history[-1]["val_acc"] if history else None,
                                   report["test_accuracy"] if report else None, report is not None))
        return runs

    def history(self, folder: Path) -> list[dict]:
        return checkpoint.read_history(Path(folder) / "history.csv")

    def report(self, folder: Path) -> dict | None:
        path = Path(folder) / "report.json"
        try:
            return checkpoint.read_json(path) if path.exists() else None
        except NeuratermError:
            return None

    def evaluation(self, folder: Path) -> dict:
        """A finished run's stored report, else an evaluation of its last checkpoint (seconds on big
        datasets: call it from a worker). Either way the result says which epoch it describes."""
        snap = checkpoint.load(Path(folder))
        if snap.report is None:
            return evaluate_folder(Path(folder), snap.config.train.noise)
        epoch = int(snap.report.get("epochs_trained", snap.train_state.get("epoch", len(snap.history))))
        return {**snap.report, "epoch": epoch, "mid_epoch": False, "epochs": snap.config.train.epochs,
                "finished": True}

    def run_config(self, folder: Path) -> config_mod.Config:
        return checkpoint.load(Path(folder)).config

    def trainer(self, config: config_mod.Config, run_dir: Path, listener, resume: bool = False) -> Trainer:
        # Four step updates a second are plenty for a progress bar and cost the run nothing measurable.
        return Trainer(config, Path(run_dir), [listener], resume=resume, step_events_per_s=4.0)
