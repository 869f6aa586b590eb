"""A run's configuration: typed sections, read from TOML presets and checked key by key.

Unknown keys and wrong types are errors that name the key and the file, because a typo in a
preset (`learning_rate` for `lr`) must not silently train with a default. The resolved config is
written back to every model folder as TOML.
"""
from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from neuraterm.core.backend import DEVICES
from neuraterm.core.data.feeder import PLACEMENTS
from neuraterm.core.errors import NeuratermError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
    early_stopping: int = 0  # patience in epochs; 0 = off
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = True
    noise: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])


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
    return value


def _section(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise NeuratermError(f"{where}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise NeuratermError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def from_dict(values: dict, source: str = "config") -> Config:
    values = dict(values)
    known = {"name", "description", *SECTIONS}
    for key in values:
        if key not in known:
            raise NeuratermError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    config = Config(name=_coerce(values.get("name", "custom"), str, f"{source}: name"),
                    description=_coerce(values.get("description", ""), str, f"{source}: description"),
                    **{k: _section(cls, values.get(k, {}), f"{source}: [{k}]") for k, cls in SECTIONS.items()})
    validate(config, source)
    return config


def _one_of(choices: tuple[str, ...]) -> str:
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def validate(c: Config, source: str = "config") -> None:
    """Range checks that types alone cannot express; the message names the key."""
    checks = [
        (c.optimizer.lr > 0, "optimizer.lr must be > 0"),
        (c.optimizer.momentum >= 0 and c.optimizer.weight_decay >= 0 and c.optimizer.l2 >= 0,
         "optimizer.momentum, weight_decay and l2 must be >= 0"),
        (0 <= c.optimizer.beta1 < 1 and 0 <= c.optimizer.beta2 < 1, "optimizer.beta1/beta2 must be in [0, 1)"),
        (c.optimizer.clip_norm >= 0, "optimizer.clip_norm must be >= 0"),
        (c.train.epochs >= 1, "train.epochs must be >= 1"),
        (c.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (c.train.early_stopping >= 0, "train.early_stopping must be >= 0"),
        (c.train.monitor in MONITORS, f"train.monitor must be one of {', '.join(MONITORS)}"),
        (c.schedule.monitor in MONITORS, f"schedule.monitor must be one of {', '.join(MONITORS)}"),
        (all(h >= 1 for h in c.model.hidden), "model.hidden sizes must be >= 1"),
        (0 <= c.model.dropout < 1, "model.dropout must be in [0, 1)"),
        (c.data.limit >= 0, "data.limit must be >= 0"),
        (all(s >= 0 for s in c.train.noise), "train.noise sigmas must be >= 0"),
        (c.train.device in DEVICES, f"train.device must be {_one_of(DEVICES)}"),
        (c.data.placement in PLACEMENTS, f"data.placement must be {_one_of(PLACEMENTS)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise NeuratermError(f"{source}: {message}")


def load_toml(path: Path) -> Config:
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NeuratermError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NeuratermError(f"{path}: not valid TOML ({exc})") from None
    return from_dict(values, str(path))


def apply_override(config: Config, assignment: str) -> Config:
    """`--set optimizer.lr=0.01`: the value is parsed as TOML, so types are checked as in a file."""
    if "=" not in assignment:
        raise NeuratermError(f"--set {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    values = config.to_dict()
    target = values
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            raise NeuratermError(f"--set {key}: unknown section {part!r}")
        target = target[part]
    target[parts[-1]] = value
    return from_dict(values, f"--set {key}")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(config: Config) -> str:
    values = config.to_dict()
    lines = [f"{k} = {_toml_value(values[k])}" for k in ("name", "description")]
    for section in SECTIONS:
        lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in values[section].items()]
    return "\n".join(lines) + "\n"
