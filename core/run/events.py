"""What a training run tells the world: plain dataclasses of plain numbers.

The trainer publishes these to every listener (headless printer, the run's event log); no device
arrays ever cross here, so a consumer never touches the engine's backend. Each event is also a JSON
record (`to_record`/`from_record`), one line of `events.jsonl`, which is how viewers in other
processes (the app, `neuraterm watch`, a browser tab) follow a run.
"""
from __future__ import annotations

import dataclasses
import time
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
    blas_threads: str = ""  # on the CPU: how many BLAS threads, and why


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


@dataclass
class Paused:
    """The loop is waiting between steps (a viewer's pause took effect)."""
    epoch: int
    step: int


@dataclass
class Resumed:
    epoch: int
    step: int


@dataclass
class CommandAnswered:
    """A viewer's command (pause, resume, stop, save) was read by the run; `result` says what it does."""
    id: str
    action: str
    result: str


@dataclass
class Heartbeat:
    """Written while nothing else is (a paused run), so viewers can tell a live run from a stale log."""
    paused: bool


@dataclass
class HealthMeasured:
    """Layer health at an epoch's end (see `core/run/health.py`): each field a list over `layers`, None
    where it does not apply (no dead fraction for tanh, no batch-norm range without batch norm)."""
    epoch: int
    layers: list  # names: hidden1, hidden2, ..., output
    kinds: list  # each layer's activation (relu, tanh, ..., identity for the logits)
    weight_norm: list
    grad_norm: list  # of the epoch's last step
    update_ratio: list  # ||delta W|| / ||W|| of the epoch's last step
    update_ratio_median: list  # over the steps sampled this epoch
    act_mean: list  # on the probe batch, from here on
    act_std: list
    dead_fraction: list
    saturated_fraction: list
    unit_spread: list
    bn_scale_min: list
    bn_scale_max: list
    bn_shift_min: list
    bn_shift_max: list
    weight_bands: list  # per layer the percentiles 0, 7, 16, 31, 50, 69, 84, 93, 100 of the weights
    act_bands: list  # ... of the activations on the probe batch
    class_confidence: list  # per class, the mean probability of the true class on the probe batch
    probe_size: int = 0
    samples: int = 0  # steps sampled this epoch
    every: int = 0  # steps between samples


@dataclass
class HealthAlert:
    """A layer's health went wrong (see `core/run/alerts.py`): what, where, the figure, why, what to try."""
    epoch: int
    layer: str
    kind: str
    figure: str
    message: str
    advice: str


Event = Union[RunStarted, StepEnded, EpochEnded, CheckpointSaved, EarlyStopped, RunFinished, RunFailed, Paused,
              Resumed, CommandAnswered, Heartbeat, HealthMeasured, HealthAlert]
Listener = Callable[[Event], None]
KINDS = {cls.__name__: cls for cls in (RunStarted, StepEnded, EpochEnded, CheckpointSaved, EarlyStopped, RunFinished,
                                       RunFailed, Paused, Resumed, CommandAnswered, Heartbeat, HealthMeasured,
                                       HealthAlert)}


def to_record(event: Event) -> dict:
    """The event as a JSON-ready dict: its type, the wall-clock time, and its fields."""
    return {"type": type(event).__name__, "time": time.time(), **dataclasses.asdict(event)}


def from_record(record: dict) -> Event | None:
    """The event a record describes, or None for a type this version does not know; fields this
    version does not know are ignored and missing ones take their defaults where they have one."""
    cls = KINDS.get(record.get("type")) if isinstance(record, dict) else None
    if cls is None:
        return None
    floats = {f.name for f in dataclasses.fields(cls) if f.type == "float"}
    names = {f.name for f in dataclasses.fields(cls)}
    try:  # JSON has no NaN or infinity: a float field may arrive as the string 'nan' or 'inf'
        return cls(**{k: (float(v) if k in floats and isinstance(v, str) else v)
                      for k, v in record.items() if k in names})
    except (TypeError, ValueError):
        return None
