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
    notes: list = field(default_factory=list)  # about the data, one line each (a remapping, an empty class)


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


Event = Union[RunStarted, StepEnded, EpochEnded, CheckpointSaved, EarlyStopped, RunFinished, RunFailed, Paused,
              Resumed, CommandAnswered, Heartbeat]
Listener = Callable[[Event], None]
KINDS = {cls.__name__: cls for cls in (RunStarted, StepEnded, EpochEnded, CheckpointSaved, EarlyStopped, RunFinished,
                                       RunFailed, Paused, Resumed, CommandAnswered, Heartbeat)}


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
