"""The trainer as a library: events, early stopping, pause/stop from another thread."""
import threading
import time

import numpy as np

from neuraterm.core.run import checkpoint, events
from neuraterm.core.config import Config
from neuraterm.core.run.trainer import EarlyStopping, Trainer


def small_config(**train) -> Config:
    config = Config()
    config.data.limit = 1000
    config.model.hidden = [16]
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def test_events_arrive_in_order_with_plain_numbers(tmp_path):
    seen = []
    Trainer(small_config(epochs=2), tmp_path / "run", [seen.append]).run()
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("EpochEnded") == 2 and "StepEnded" in kinds and "CheckpointSaved" in kinds
    epoch = next(e for e in seen if isinstance(e, events.EpochEnded))
    assert all(isinstance(getattr(epoch, f), (int, float)) for f in ("train_loss", "val_acc", "lr", "seconds"))


def test_early_stopping_semantics():
    early = EarlyStopping("val_loss", patience=2, min_delta=0.1)
    assert early.update(1, 1.0) and not early.update(2, 0.95) and not early.should_stop
    assert not early.update(3, 0.99) and early.should_stop and early.best_epoch == 1
    acc = EarlyStopping("val_acc", patience=1)
    assert acc.update(1, 0.5) and acc.update(2, 0.6) and not acc.update(3, 0.6) and acc.should_stop


def test_early_stopping_restores_the_best_weights(tmp_path):
    config = small_config(epochs=10, early_stopping=1, min_delta=100.0)  # nothing counts as improvement after epoch 1
    seen = []
    report = Trainer(config, tmp_path / "run", [seen.append]).run()
    assert report["epochs_trained"] == 2 and report["best_epoch"] == 1 and report["early_stopped"]
    assert any(isinstance(e, events.EarlyStopped) for e in seen)
    snap = checkpoint.load(tmp_path / "run")
    for name, array in snap.best_weights.items():
        np.testing.assert_array_equal(snap.weights[name], array)


def test_pause_and_stop_from_another_thread(tmp_path):
    config = small_config(epochs=200, batch_size=8)
    steps = []
    trainer = Trainer(config, tmp_path / "run", [lambda e: steps.append(e) if isinstance(e, events.StepEnded) else None],
                      step_events_per_s=1000)
    worker = threading.Thread(target=trainer.run)
    worker.start()
    while len(steps) < 5:
        time.sleep(0.01)
    trainer.control.pause()
    time.sleep(0.2)
    frozen = len(steps)
    time.sleep(0.3)
    assert len(steps) <= frozen + 1  # at most the step already under way
    trainer.control.resume()
    time.sleep(0.2)
    assert len(steps) > frozen + 1
    trainer.control.stop()
    worker.join(timeout=30)
    assert not worker.is_alive()
    state = checkpoint.load(tmp_path / "run").train_state
    assert state["epoch"] < 200
