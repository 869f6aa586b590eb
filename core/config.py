"""A run's configuration: typed sections, read from TOML presets and checked key by key.

Unknown keys, wrong types and values out of range are errors that name the key and the file (with a
"did you mean"), because a typo in a preset (`learning_rate` for `lr`) must not silently train with a
default. The resolved config is written back to every model folder as TOML, every key included, and
reads back identically; a model folder's config must be complete, since a default filled in there
would silently change the run it describes.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from neuraterm.core import toml_text
from neuraterm.core.nn.activations import ACTIVATIONS
from neuraterm.core.backend import DEVICES
from neuraterm.core.data.feeder import PLACEMENTS
from neuraterm.core.data.normalize import MODES as NORMALIZATIONS
from neuraterm.core.errors import NeuratermError, did_you_mean
from neuraterm.core.nn.initializers import INITIALIZERS
from neuraterm.core.optim.optimizers import OPTIMIZERS
from neuraterm.core.optim.schedules import SCHEDULES



@dataclass
class DataConfig:
    dataset: str = "mnist-5k"
    val_fraction: float = 0.1
    test_fraction: float = 0.2  # used when there is no published test split, or with pool = true
    pool: bool = False  # merge the published train and test splits, then split 70/10/20-style
    limit: int = 0  # 0 = all training samples; else a stratified subset
    normalize: str = "scale"
    data_dir: str = ""
    placement: str = "auto"  # GPU: keep the images on the device ("device"), stream them ("host"), or choose


@dataclass
class ModelConfig:
    hidden: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    batchnorm: bool = False
    dropout: float = 0.0
    init: str = "auto"


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    alpha: float = 0.99
    weight_decay: float = 0.0  # decoupled (AdamW)
    l2: float = 0.0  # coupled penalty on weights
    clip_norm: float = 0.0  # 0 = off


@dataclass
class ScheduleConfig:
    name: str = "constant"  # constant, linear, exponential, step, cosine, plateau
    lr_min: float = 0.0
    gamma: float = 0.95
    step_size: int = 10
    warmup: int = 0
    decay_epochs: int = 0  # linear: epochs to reach lr_min (0 = the run's epochs)
    factor: float = 0.1  # plateau
    patience: int = 5  # plateau
    monitor: str = "val_loss"  # plateau


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    tf32: bool = False  # TF32 tensor-core GEMMs in the fused GPU step (about 3 significant digits)
    graphs: bool = True  # replay the fused GPU step as a CUDA graph
    threads: int = 0  # BLAS threads on the CPU; 0 = chosen from the model's size (see core/run/threads.py)
    early_stopping: int = 0  # patience in epochs; 0 = off
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = True
    noise: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    health_every: int = 50  # steps between layer-health samples (core/run/health.py); 0 = off


@dataclass
class Config:
    name: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


ACTIVATION_CHOICES = tuple(a for a in ACTIVATIONS if a != "identity")
INIT_CHOICES = ("auto", *INITIALIZERS)
SECTIONS = {"data": DataConfig, "model": ModelConfig, "optimizer": OptimizerConfig,
            "schedule": ScheduleConfig, "train": TrainConfig}
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")


def _coerce(value, kind, where: str):
    """Check `value` against an annotation (int, float, str, bool, list[int], list[float])."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise NeuratermError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            raise NeuratermError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NeuratermError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NeuratermError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise NeuratermError(f"{where}: expected a string, got {value!r}")
    try:
        value.encode("utf-8")  # an argv byte that is not UTF-8 arrives as a lone surrogate
    except UnicodeEncodeError:
        raise NeuratermError(f"{where}: {value!r} is not valid UTF-8 text") from None
    return value


# Keys a model folder written before them may lack: their default changes nothing the run trained.
ADDED_LATER = ("health_every",)


def check_keys(values: dict, known: list[str], where: str, complete: bool = False) -> None:
    for key in values:
        if key not in known:
            hint = did_you_mean(key, known) or f" (known: {', '.join(sorted(known))})"
            raise NeuratermError(f"{where}: unknown key {key!r}{hint}")
    missing = [k for k in known if k not in values and k not in ADDED_LATER]
    if complete and missing:
        raise NeuratermError(f"{where}: missing {', '.join(missing)} (a model folder's config lists every key)")


def _section(cls, values: dict, where: str, complete: bool = False):
    if not isinstance(values, dict):
        raise NeuratermError(f"{where}: expected a table")
    hints = typing.get_type_hints(cls)
    check_keys(values, [f.name for f in dataclasses.fields(cls)], where, complete)
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def from_dict(values: dict, source: str = "config", complete: bool = False) -> Config:
    """A checked Config; `complete` demands every key (a model folder's config, never a preset)."""
    values = dict(values)
    check_keys(values, ["name", "description", *SECTIONS], source, complete)
    config = Config(name=_coerce(values.get("name", "custom"), str, f"{source}: name"),
                    description=_coerce(values.get("description", ""), str, f"{source}: description"),
                    **{k: _section(cls, values.get(k, {}), f"{source}: [{k}]", complete)
                       for k, cls in SECTIONS.items()})
    validate(config, source)
    return config


def _one_of(choices: tuple[str, ...]) -> str:
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def _choice(value: str, choices, key: str) -> tuple[bool, str]:
    return value in choices, f"{key} {value!r} is not one of {_one_of(tuple(choices))}{did_you_mean(value, choices)}"


MAX_EPOCHS, MAX_SEED = 1_000_000, 2**32 - 1


def validate(c: Config, source: str = "config") -> None:
    """Range checks that types alone cannot express; the message names the key."""
    o, s, t, m, d = c.optimizer, c.schedule, c.train, c.model, c.data
    for section, values in c.to_dict().items():
        for key, value in (values.items() if isinstance(values, dict) else ()):
            if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
                raise NeuratermError(f"{source}: {section}.{key} must be a finite number")
    checks = [
        _choice(o.name, OPTIMIZERS, "optimizer.name"),
        (o.lr > 0, "optimizer.lr must be > 0"),
        (0 <= o.momentum < 1, "optimizer.momentum must be in [0, 1)"),
        (o.weight_decay >= 0 and o.l2 >= 0, "optimizer.weight_decay and l2 must be >= 0"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "optimizer.beta1/beta2 must be in [0, 1)"),
        (o.eps > 0, "optimizer.eps must be > 0"),
        (0 <= o.alpha < 1, "optimizer.alpha must be in [0, 1)"),
        (o.clip_norm >= 0, "optimizer.clip_norm must be >= 0 (0 = off)"),
        (not o.nesterov or o.momentum > 0, "optimizer.nesterov needs optimizer.momentum > 0"),
        _choice(s.name, SCHEDULES, "schedule.name"),
        (s.lr_min >= 0, "schedule.lr_min must be >= 0"),
        (0 < s.gamma <= 1, "schedule.gamma must be in (0, 1]"),
        (s.step_size >= 1, "schedule.step_size must be >= 1"),
        (s.warmup >= 0 and s.decay_epochs >= 0 and s.patience >= 0,
         "schedule.warmup, decay_epochs and patience must be >= 0"),
        (0 < s.factor < 1, "schedule.factor must be in (0, 1)"),
        (s.monitor in MONITORS, f"schedule.monitor must be one of {', '.join(MONITORS)}"),
        (1 <= t.epochs <= MAX_EPOCHS, f"train.epochs must be between 1 and {MAX_EPOCHS:,}"),
        (1 <= t.batch_size <= 2**31 - 1, "train.batch_size must be >= 1"),
        (0 <= t.seed <= MAX_SEED, f"train.seed must be between 0 and {MAX_SEED}"),
        (t.early_stopping >= 0, "train.early_stopping must be >= 0"),
        (t.monitor in MONITORS, f"train.monitor must be one of {', '.join(MONITORS)}"),
        (t.min_delta >= 0, "train.min_delta must be >= 0"),
        (all(v >= 0 for v in t.noise), "train.noise sigmas must be >= 0"),
        (0 <= t.threads <= 1024, "train.threads must be >= 0 (0 = automatic)"),
        (t.health_every >= 0, "train.health_every must be >= 0 (0 = off)"),
        _choice(t.device, DEVICES, "train.device"),
        (all(1 <= h <= 2**31 - 1 for h in m.hidden), "model.hidden sizes must be >= 1"),
        _choice(m.activation, ACTIVATION_CHOICES, "model.activation"),
        _choice(m.init, INIT_CHOICES, "model.init"),
        (0 <= m.dropout < 1, "model.dropout must be in [0, 1)"),
        (d.limit >= 0, "data.limit must be >= 0"),
        (0 <= d.val_fraction < 1 and 0 <= d.test_fraction < 1
         and d.val_fraction + d.test_fraction < 1, "data.val_fraction + data.test_fraction must leave data to train on"),
        _choice(d.normalize, NORMALIZATIONS, "data.normalize"),
        _choice(d.placement, PLACEMENTS, "data.placement"),
    ]
    for ok, message in checks:
        if not ok:
            raise NeuratermError(f"{source}: {message}")


# Keys that define the data split, the model's shape or its initialization: a resume that changed one
# would silently train another experiment (a new seed re-draws the split and leaks test images).
FROZEN_ON_RESUME = ("data.dataset", "data.val_fraction", "data.test_fraction", "data.pool", "data.limit",
                    "data.normalize", "model.hidden", "model.activation", "model.batchnorm", "model.dropout",
                    "model.init", "train.seed", "optimizer.name")


def frozen_changes(saved: Config, new: Config) -> list[str]:
    """The frozen keys whose value differs between a model folder's config and the one asked for."""
    a, b = saved.to_dict(), new.to_dict()
    return [key for key in FROZEN_ON_RESUME if value_at(a, key) != value_at(b, key)]


def value_at(values: dict, key: str):
    """`values["train"]["seed"]` for the key 'train.seed' of a config's `to_dict()`."""
    section, name = key.split(".")
    return values[section][name]


def parse_toml(data: bytes, source: str, complete: bool = False) -> Config:
    """A Config from TOML bytes; every problem is one line naming `source`."""
    return from_dict(toml_text.loads(data, source), source, complete)


def load_toml(path: Path, complete: bool = False) -> Config:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NeuratermError(f"{path}: no such file") from None
    except OSError as exc:
        raise NeuratermError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_toml(data, str(path), complete)


def apply_override(config: Config, assignment: str, source: str = "") -> Config:
    """`--set optimizer.lr=0.01`: the value is parsed as TOML, so types are checked as in a file.
    `source` names the option in errors when it is not `--set` (`--epochs`)."""
    if "=" not in assignment:
        raise NeuratermError(f"--set {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    value = toml_text.assigned(raw)
    values = config.to_dict()
    target = values
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            raise NeuratermError(f"--set {key}: unknown section {part!r}{did_you_mean(part, SECTIONS)}")
        target = target[part]
    target[parts[-1]] = value
    return from_dict(values, source or f"--set {key}")


def to_toml(config: Config) -> str:
    values = config.to_dict()
    lines = [f"{k} = {toml_text.value(values[k])}" for k in ("name", "description")]
    for section in SECTIONS:
        lines += ["", f"[{section}]"] + [f"{k} = {toml_text.value(v)}" for k, v in values[section].items()]
    return "\n".join(lines) + "\n"
