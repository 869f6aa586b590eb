"""Evaluating a model folder that has not finished: one engine function for the CLI and the app."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from neuraterm.core.run import checkpoint, events
from neuraterm.core.config import Config
from neuraterm.core.run.evaluate import evaluate_folder, report
from neuraterm.core.run.build import build_model, load_data
from neuraterm.core.run.trainer import Trainer


def stopped_after(folder: Path, epoch: int, epochs: int) -> Path:
    config = Config(name="tiny")
    config.data.limit, config.model.hidden, config.train.epochs = 1000, [16], epochs
    trainer = Trainer(config, folder)
    trainer.listeners.append(lambda e: trainer.control.stop() if isinstance(e, events.EpochEnded)
                             and e.epoch == epoch else None)
    trainer.run()
    return folder


def test_evaluate_folder_scores_the_last_checkpoint_and_says_which_epoch(tmp_path):
    run = stopped_after(tmp_path / "run", epoch=2, epochs=6)
    result = evaluate_folder(run, [0.0, 0.2])
    assert (result["epoch"], result["epochs"], result["finished"], result["mid_epoch"]) == (2, 6, False, False)
    snap = checkpoint.load(run)
    data = load_data(snap.config)
    data.normalizer.restore(snap.normalization)
    model = build_model(snap.config, data.num_features, data.num_classes, np)
    model.load_state_dict(snap.weights)
    direct = report(model, data.test.x, data.test.y, data.normalizer, np, data.class_names, [0.0, 0.2],
                    snap.config.train.seed)
    assert result["test_accuracy"] == direct["test_accuracy"] and result["noise"] == direct["noise"]


def test_cli_eval_of_an_unfinished_run_names_the_epoch(tmp_path):
    run = stopped_after(tmp_path / "run", epoch=1, epochs=4)
    result = subprocess.run([sys.executable, "-m", "neuraterm", "eval", str(run), "--noise", "0"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert "has not finished; evaluating its checkpoint after epoch 1 of 4" in result.stdout
    assert "test accuracy" in result.stdout


def test_a_stop_inside_an_epoch_is_reported_as_part_of_the_next(tmp_path):
    config = Config(name="tiny")
    config.data.limit, config.model.hidden, config.train.epochs = 1000, [16], 4
    trainer = Trainer(config, tmp_path / "run", step_events_per_s=1e9)  # every step reports
    trainer.listeners.append(lambda e: trainer.control.stop() if isinstance(e, events.StepEnded)
                             and (e.epoch, e.step) == (2, 3) else None)
    trainer.run()
    result = evaluate_folder(tmp_path / "run", [0.0])
    assert (result["epoch"], result["mid_epoch"], result["finished"]) == (1, True, False)
