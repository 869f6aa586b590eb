"""What a training run tells the world: plain dataclasses of plain numbers.

The trainer publishes these to every listener (headless printer, TUI, metrics files); no device
arrays ever cross here, so a consumer never touches the engine's backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union


@dataclass
class RunStarted:
    run_dir: str
    config_name: str
    device: str
    parameters: int
    train_size: int
    val_size: int
    test_size: int
    steps_per_epoch: int
    start_epoch: int
    epochs: int
    data_placement: str = ""
    class_counts: dict = field(default_factory=dict)
    step_engine: str = ""  # which training step runs (fused kernels and graphs, or autograd, and why)


@dataclass
class StepEnded:
    epoch: int  # 1-based, the epoch being run
    step: int  # 1-based within the epoch
    steps: int
    loss: float  # running mean over the epoch so far
    samples_per_s: float


@dataclass
class EpochEnded:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    samples_per_s: float
    seconds: float
    elapsed: float


@dataclass
class CheckpointSaved:
    path: str
    epoch: int
    best: bool


@dataclass
class EarlyStopped:
    epoch: int
    best_epoch: int
    monitor: str
    best_value: float


@dataclass
class RunFinished:
    run_dir: str
    report: dict
    stopped: bool = False  # by the user (Stop, Ctrl-C) rather than by reaching the last epoch


@dataclass
class RunFailed:
    run_dir: str
    message: str


Event = Union[RunStarted, StepEnded, EpochEnded, CheckpointSaved, EarlyStopped, RunFinished, RunFailed]
Listener = Callable[[Event], None]
