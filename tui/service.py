"""What the screens ask of the engine, in one small object: presets, datasets, runs, training processes.

Screens never read model folders or start training themselves; they call this service, which uses
only the engine's public modules (config, checkpoint, runs, commands, event log, evaluate), so tests
can inject a service that points at a temporary runs folder.

A run started here is its own process in its own session (`neuraterm train --preset - --out DIR`,
the edited configuration on its standard input): it survives the app, a closed terminal and a
dropped SSH connection, and the app is one more viewer of its folder.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from neuraterm import presets
from neuraterm.core.run import checkpoint, child, commands, fork, lock, status as runs, suggestions
from neuraterm.core import config as config_mod, toml_text
from neuraterm.core.data import registry
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run.evaluate import evaluate_folder


@dataclass
class Launched:
    """A training process this app started: how to tell whether it died before it got going."""
    run_dir: Path
    process: subprocess.Popen
    errors: Path  # its standard error (one line when it refuses its input)

    def failure(self) -> str | None:
        """The process's one-line complaint once it has exited unsuccessfully, else None."""
        code = self.process.poll()
        if code in (None, 0):
            return None
        try:
            lines = self.errors.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return (lines[-1].removeprefix("neuraterm: ").removeprefix("error: ") if lines
                else f"the training process exited with code {code}")

    def forget(self) -> None:
        self.errors.unlink(missing_ok=True)


class TrainingService:
    def __init__(self, runs_root: Path = Path("runs"), studies_root: Path = Path("studies")):
        self.runs_root, self.studies_root = Path(runs_root), Path(studies_root)

    # -- presets and datasets ---------------------------------------------------------------
    def preset_names(self) -> list[str]:
        return presets.names()

    def load_preset(self, name: str) -> config_mod.Config:
        return presets.load(name)

    def datasets(self) -> list[tuple[str, int, int, int, str]]:
        return [(name, spec.classes, spec.train, spec.test, registry.locate(name) or "download")
                for name, spec in registry.DATASETS.items()]

    def dataset_problem(self, spec: str) -> str | None:
        """Why a typed dataset path cannot be trained on (missing, an unknown layout, no x or y...), or
        None: the cheap checks `neuraterm datasets PATH` makes (headers and labels, not every pixel)."""
        from neuraterm.core.data import custom
        if not custom.is_path(spec):
            return None
        try:
            custom.describe(spec)
        except NeuratermError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"{spec}: {exc}"
        return None

    # -- runs -------------------------------------------------------------------------------
    def new_run_dir(self, name: str) -> Path:
        return checkpoint.new_run_dir(self.runs_root, name)

    def list_runs(self) -> list[runs.RunInfo]:
        """The model folders under the runs folder, with their status (running, paused, finished...)."""
        if not self.runs_root.is_dir():
            return []
        return runs.find(self.runs_root)

    def describe(self, folder: Path) -> runs.RunInfo | None:
        return runs.describe(Path(folder)) if checkpoint.is_run_folder(Path(folder)) else None

    def history(self, folder: Path) -> list[dict]:
        return runs.describe(Path(folder)).history

    def report(self, folder: Path) -> dict | None:
        current = checkpoint.checkpoint_dir(Path(folder))
        try:
            return checkpoint.read_json(current / "report.json") if current and (current / "report.json").exists() else None
        except NeuratermError:
            return None

    def replay_history(self, folder: Path) -> list:
        """A folder without an event log (written before there was one) told as events: its epochs, and
        its end when it has a report."""
        from neuraterm.core.run import events
        info, nan = runs.describe(Path(folder)), float("nan")
        replay = [events.EpochEnded(int(r["epoch"]), info.epochs, r["train_loss"], r["train_acc"], r["val_loss"],
                                    r["val_acc"], r["lr"], r.get("samples_per_s", nan), r.get("seconds", nan), nan)
                  for r in info.history]
        return replay + ([events.RunFinished(str(folder), info.report)] if info.report else [])

    def evaluation(self, folder: Path) -> dict:
        """A finished run's stored report, else an evaluation of its last checkpoint (seconds on big
        datasets: call it from a worker). Either way the result says which epoch it describes."""
        snap = checkpoint.load(Path(folder))
        if snap.report is None:
            return evaluate_folder(Path(folder), snap.config.train.noise, snap=snap)
        epoch = int(snap.report.get("epochs_trained", snap.train_state.get("epoch", len(snap.history))))
        return {**snap.report, "epoch": epoch, "mid_epoch": False, "epochs": snap.config.train.epochs,
                "finished": True}

    def first_layer(self, folder: Path):
        """(epoch, weights, initial weights) of the first layer (units x inputs) of the current checkpoint,
        for the weight pictures; the initial ones are drawn again from the run's seed, as training did."""
        import numpy as np
        from neuraterm.core.run.build import build_model
        snap = checkpoint.load(Path(folder))
        first = min((name for name in snap.weights if name.endswith(".weight")), key=lambda n: int(n.split(".")[0]))
        sizes = snap.meta["architecture"]["sizes"]
        initial = build_model(snap.config, sizes[0], sizes[-1], np).state_dict()[first]
        return snap.epoch, snap.weights[first], initial

    def mistakes(self, folder: Path, k: int = 8) -> dict:
        """The test samples the last checkpoint gets wrong most confidently (loads the dataset: a worker)."""
        from neuraterm.core.run.evaluate import confident_mistakes
        return confident_mistakes(Path(folder), k)

    def snapshot(self, folder: Path) -> checkpoint.Snapshot:
        return checkpoint.load(Path(folder))

    # -- studies ------------------------------------------------------------------------------
    def study_folders(self) -> list[Path]:
        """The study folders under the studies folder (each holds its resolved study.toml)."""
        from neuraterm.core.study.spec import STUDY_FILE
        if not self.studies_root.is_dir():
            return []
        return sorted(p for p in self.studies_root.iterdir() if (p / STUDY_FILE).is_file())

    def is_study(self, path: Path) -> bool:
        from neuraterm.core.study.spec import STUDY_FILE
        return (Path(path) / STUDY_FILE).is_file()

    def open_study(self, path: Path):
        from neuraterm.core.study.folder import StudyFolder
        return StudyFolder.open(Path(path))

    def study_rows(self, folder) -> list:
        """Every member's state, metrics and history, plus `f1` (class -> F1 of its test report)."""
        from neuraterm.core.study import results as study_results
        rows = study_results.collect(folder)
        for row in rows:
            report = row.report or {}
            names, f1 = report.get("class_names") or [], (report.get("per_class") or {}).get("f1") or []
            row.f1 = dict(zip(names, f1))
        return rows

    # -- training processes -------------------------------------------------------------------
    def launch(self, config: config_mod.Config, run_dir: Path) -> Launched:
        """Start training `config` into `run_dir` as a process of its own session."""
        return self._spawn(["train", "--preset", "-", "--out", str(run_dir)], run_dir,
                           config_mod.to_toml(config).encode("utf-8"))

    def launch_resume(self, run_dir: Path, epochs: int | None = None) -> Launched:
        return self._spawn(["resume", str(run_dir)] + (["--epochs", str(epochs)] if epochs else []), run_dir, b"")

    # -- forks ------------------------------------------------------------------------------------
    def kept_epochs(self, run_dir: Path) -> list[int]:
        """The epochs a fork of `run_dir` can start from."""
        return fork.kept_epochs(Path(run_dir))

    def fork_config(self, run_dir: Path, epoch: int) -> config_mod.Config:
        """The settings the parent trained epoch `epoch` with (its checkpoint's, read and verified)."""
        return fork.read(Path(run_dir), epoch).snap.config

    frozen_in_fork = fork.FROZEN_ON_FORK

    def fork_changes(self, before: config_mod.Config, after: config_mod.Config) -> str:
        """'lr 0.1 -> 0.01, epochs 20 -> 30': what a fork changes, as its lineage will record it."""
        changed = {k: v for k, v in fork.changes(before, after).items() if k not in ("name", "description")}
        return ", ".join(runs.change_text(k, *v) for k, v in changed.items())

    def change_legend(self, entry: dict) -> str:
        """A lineage entry's changes as a legend shows them ('lr 0.1 -> 0.01'); the new total of epochs
        only when nothing else changed."""
        changed = entry.get("changes", {})
        shown = {k: v for k, v in changed.items() if k != "train.epochs"} or changed
        return ", ".join(runs.change_text(k, *v) for k, v in shown.items())

    def suggest_fork(self, run_dir: Path, train_loss: list[float], val_loss: list[float]):
        """A fork the curves suggest (`suggestions.Suggestion`), or None; reads the folder only when the
        rule fires (its kept epochs and learning rate)."""
        if suggestions.overfitting(train_loss, val_loss) is None:
            return None
        folder = checkpoint.checkpoint_dir(Path(run_dir))
        try:
            lr = config_mod.load_toml(folder / "config.toml").optimizer.lr if folder else None
        except NeuratermError:
            lr = None
        return suggestions.suggest(train_loss, val_loss, lr, self.kept_epochs(run_dir)) if lr else None

    def fork_config_with(self, run_dir: Path, epoch: int, changes: dict) -> config_mod.Config:
        """The parent's settings at `epoch` with `changes` ({key: [old, new]}) applied."""
        config = self.fork_config(run_dir, epoch)
        for key, (_, new) in changes.items():
            config = config_mod.apply_override(config, f"{key}={toml_text.value(new)}")
        return config

    def new_fork_dir(self, parent: Path, epoch: int) -> Path:
        return fork.folder_for(Path(parent), epoch)

    def launch_fork(self, parent: Path, epoch: int, config: config_mod.Config, run_dir: Path) -> Launched:
        """Start `neuraterm fork PARENT --epoch K --preset - --out DIR` as a process of its own session."""
        return self._spawn(["fork", str(parent), "--epoch", str(epoch), "--preset", "-", "--out", str(run_dir)],
                           run_dir, config_mod.to_toml(config).encode("utf-8"))

    def _spawn(self, args: list[str], run_dir: Path, stdin: bytes) -> Launched:
        errors = Path(tempfile.mkstemp(prefix="neuraterm-run-", suffix=".err")[1])
        with open(errors, "wb") as err:
            process = subprocess.Popen(child.command(*args), stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                       env={**os.environ, "NO_COLOR": "1"})
        process.stdin.write(stdin)
        process.stdin.close()
        return Launched(Path(run_dir), process, errors)

    def send(self, run_dir: Path, action: str) -> None:
        """pause, resume, stop or save: a command to whichever process trains the folder."""
        commands.send(Path(run_dir), action)

    def process_memory(self, who: dict | None) -> int | None:
        """Resident memory in bytes of the process a lock holder names, when it runs on this machine."""
        who = who or {}
        if who.get("host") != socket.gethostname():
            return None
        try:
            with open(f"/proc/{int(who['pid'])}/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, ValueError, KeyError, StopIteration):
            return None

    def holder(self, run_dir: Path) -> dict | None:
        """The process training `run_dir` (pid, host...), or None."""
        return lock.holder(Path(run_dir))

    def is_live(self, run_dir: Path) -> bool:
        return self.holder(run_dir) is not None
