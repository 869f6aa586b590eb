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
    class_names: list = field(default_factory=list)  # in label order, so viewers name classes while it trains


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
    grad_norm: list  # of the epoch's last sampled step
    update_ratio: list  # ||delta W|| / ||W|| of the epoch's last sampled step
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
    """The event as a dict: its type, the wall-clock time, and its fields, shared, not copied (the event
    log's `_plain` builds the JSON-ready copy; `asdict`'s deep copy cost a health event 0.2 ms)."""
    return {"type": type(event).__name__, "time": time.time(),
            **{f.name: getattr(event, f.name) for f in dataclasses.fields(event)}}


# -- reading a record back: parsed, not trusted ---------------------------------------------------
# A log may come from anyone (a copied folder, a hand-made file), so every field is checked against its
# event type's schema before a viewer sees it: ints are integers >= 0, numbers are finite (losses may
# be nan or inf: a diverged run writes them, as the strings 'nan' and 'inf'), fractions lie in [0, 1],
# strings are strings (at most TEXT_LIMIT characters), and a report has the fields viewers show.
TEXT_LIMIT = 4000
LOSSES = {"loss", "train_loss", "val_loss", "best_value"}  # may be non-finite: the run diverged
FRACTIONS = {"train_acc", "val_acc"}
NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "infinity": float("inf"),
              "-infinity": float("-inf")}


class Invalid(ValueError):
    """A record of a known type whose fields do not fit its schema."""


def _int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
        raise Invalid(f"{name}: not an integer >= 0")
    return value


def _float(value, name: str, non_finite: bool = False, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, str) and non_finite and value.lower() in NON_FINITE:
        return NON_FINITE[value.lower()]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise Invalid(f"{name}: not a number")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        if non_finite:
            return value
        raise Invalid(f"{name}: not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"{name}: out of range")
    return value


def _str(value, name: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{name}: not a string")
    return value[:TEXT_LIMIT]


def _list(value, name: str, item) -> list:
    if not isinstance(value, list) or len(value) > 100_000:
        raise Invalid(f"{name}: not a list")
    return [item(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _class_counts(value, name: str) -> dict:
    if not isinstance(value, dict) or len(value) > 100_000:
        raise Invalid(f"{name}: not a table")
    return {_str(k, name): _list(v, f"{name}.{k}", _int) for k, v in value.items()}


def _confused(value, name: str) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{name}: not a table")
    return {"true": _str(str(value.get("true")) if isinstance(value.get("true"), int) else value.get("true"), name),
            "predicted": _str(str(value.get("predicted")) if isinstance(value.get("predicted"), int)
                              else value.get("predicted"), name),
            "count": _int(value.get("count"), name)}


def _noise(value, name: str) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{name}: not a table")
    return {"sigma": _float(value.get("sigma"), name, low=0), "accuracy": _float(value.get("accuracy"), name, low=0, high=1)}


def check_report(report) -> dict:
    """A final evaluation (report.json, or a `RunFinished` event's) with the fields viewers show, each
    of its type; raises `Invalid`. Fields this version does not show are kept as they are."""
    if not isinstance(report, dict):
        raise Invalid("report: not a table")
    out = dict(report)
    out["test_accuracy"] = _float(report.get("test_accuracy"), "test_accuracy", low=0, high=1)
    out["macro_f1"] = _float(report.get("macro_f1"), "macro_f1", low=0, high=1)
    out["test_loss"] = _float(report.get("test_loss"), "test_loss", non_finite=True)
    out["test_size"] = _int(report.get("test_size"), "test_size")
    out["most_confused"] = _list(report.get("most_confused", []), "most_confused", _confused)
    out["noise"] = _list(report.get("noise", []), "noise", _noise)
    if "balanced_accuracy" in report:
        out["balanced_accuracy"] = _float(report["balanced_accuracy"], "balanced_accuracy", low=0, high=1)
    if "class_names" in report:
        out["class_names"] = _list(report["class_names"], "class_names", _str)
    if "per_class" in report:
        per = report["per_class"]
        if not isinstance(per, dict):
            raise Invalid("per_class: not a table")
        out["per_class"] = {_str(k, "per_class"): _list(v, f"per_class.{k}", lambda x, n: _float(x, n, low=0, high=1))
                            for k, v in per.items()}
    if "support" in report:
        out["support"] = _list(report["support"], "support", _int)
    if "confusion_matrix" in report:
        out["confusion_matrix"] = _list(report["confusion_matrix"], "confusion_matrix",
                                        lambda row, n: _list(row, n, _int))
    for key in ("epochs_trained", "best_epoch"):
        if report.get(key) is not None:
            out[key] = _int(report[key], key)
    return out


def _number_or_none(value, name: str):
    """A health figure: a finite number of any sign, or None where it does not apply."""
    return None if value is None else _float(value, name, low=None)


HEALTH_NAMES = ("layers", "kinds")
HEALTH_BANDS = ("weight_bands", "act_bands")


def _health_list(name: str, value) -> list:
    """A `HealthMeasured` list: names, per-layer bands (lists of numbers), or one figure per layer."""
    if name in HEALTH_NAMES:
        return _list(value, name, _str)
    if name in HEALTH_BANDS:
        return _list(value, name, lambda row, n: _list(row, n, _number_or_none))
    return _list(value, name, _number_or_none)


def _field(cls, name: str, kind: str, value):
    if kind == "int":
        if name == "steps" or (name == "step" and cls is StepEnded):
            if _int(value, name) < 1:
                raise Invalid(f"{name}: must be >= 1")
        return _int(value, name)
    if kind == "float":
        if name in FRACTIONS:
            return _float(value, name, low=0, high=1)
        return _float(value, name, non_finite=name in LOSSES, low=None if name in LOSSES else 0)
    if kind == "str":
        return _str(value, name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise Invalid(f"{name}: not true or false")
        return value
    if kind == "dict":
        return check_report(value) if name == "report" else _class_counts(value, name)
    if kind == "list" and cls is HealthMeasured:
        return _health_list(name, value)
    if kind == "list":  # RunStarted.notes and class_names: lines of text
        return _list(value, name, _str)
    raise Invalid(f"{name}: a field of unknown kind {kind}")


def from_record(record: dict) -> Event | None:
    """The event a record describes, or None for a type this version does not know; fields this
    version does not know are ignored and missing ones take their defaults where they have one.
    A record of a known type whose fields do not fit its schema raises `Invalid` (the reader counts
    and skips it: it is never passed on to a viewer)."""
    cls = KINDS.get(record.get("type")) if isinstance(record, dict) else None
    if cls is None:
        return None
    values = {}
    for f in dataclasses.fields(cls):
        if cls is RunFinished and f.name == "report" and record.get("stopped") is True and record.get("report") == {}:
            values["report"] = {}  # a run stopped by the user has no report
        elif f.name in record:
            values[f.name] = _field(cls, f.name, f.type, record[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise Invalid(f"{f.name}: missing")
    if cls is StepEnded and values["step"] > values["steps"]:
        raise Invalid("step: more than steps")
    if cls in (EpochEnded, HealthMeasured, HealthAlert) and values["epoch"] < 1:
        raise Invalid("epoch: must be >= 1")
    if cls is HealthMeasured:  # every per-layer list has one entry per layer (class_confidence: per class)
        n = len(values["layers"])
        for f in dataclasses.fields(cls):
            if f.type == "list" and f.name not in ("layers", "class_confidence") and len(values[f.name]) != n:
                raise Invalid(f"{f.name}: {len(values[f.name])} entries for {n} layers")
    return cls(**values)
