"""Study files: many runs compared, written as one TOML file and expanded into named members.

A study is a base preset, changes that every member shares (`[set]`), and the axes that vary: a
`[grid]` (every combination), paired lists (`[paired]`, one member per position) or explicit rows
(`[[member]]`), repeated over `seeds`; or a random search over a `[space]` of distributions, drawn
here with a seeded generator so that the members, their names and their configs are the same on every
machine and every resume (Ray Tune then schedules them and ASHA may stop the bad ones early). What
the results show is in `[results]`. A `kind = "ce"` study is not trained: it evaluates naive and
stable cross-entropy on growing logits (`core/study/cross_entropy.py`), described by its `[ce]` table.
With `scheduler = "pbt"` the members are a population that trains in generations of `[pbt] interval`
epochs; between two, the worst members copy a better one and perturb its `[pbt.mutations]`
(`core/study/pbt.py`).

Every key is checked like a preset's, with the file named and a "did you mean"; a member's config
is a complete, validated `Config`. Member names are stable and path-safe (`lr-0.01`,
`batch-64_seed-1`), because each member is a model folder `studies/<study>/<member>/`.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from neuraterm.core import config as config_mod, toml_text
from neuraterm.core.run.checkpoint import sanitize_name
from neuraterm.core.errors import NeuratermError, did_you_mean


STUDY_FILE = "study.toml"  # the resolved copy inside a study folder
KINDS = ("train", "ce")
SEARCHES = ("grid", "random")
SCHEDULERS = ("fifo", "asha", "pbt")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
METRICS = ("epochs", "best_epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
           "macro_f1", "balanced_acc", "parameters", "s_per_epoch")
DEFAULT_METRICS = ["train_acc", "val_acc", "test_acc", "test_loss", "best_epoch", "parameters", "s_per_epoch"]
CHARTS = ("curves", "final", "time", "capacity", "noise", "ce", "pbt")
FORK_KEYS = ("name", "from", "epoch")  # a [[fork]] row's own keys; the others are settings it changes
RESERVED = ("configs", "logs", "figures", "pbt", "ray", "results", "study")  # names a member folder may not take
# Short names for axis keys in member names; any other key is named by its last part.
LABELS = {"optimizer.lr": "lr", "train.batch_size": "batch", "model.hidden": "hidden", "model.init": "init",
          "optimizer.momentum": "momentum", "optimizer.name": "opt", "model.activation": "act",
          "optimizer.weight_decay": "wd", "train.seed": "seed", "schedule.name": "schedule"}
FULL_BATCH = "full"  # train.batch_size = "full": the whole training split in one batch


@dataclass
class Results:
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    noise: bool = False  # a column per noise sigma of the test report
    charts: list[str] = field(default_factory=lambda: ["curves"])
    x: str = ""  # the axis on the x of the time chart (default: the first axis)


@dataclass
class CE:
    """The naive-vs-stable cross-entropy study: logits of `samples` x `classes`, scaled so that the
    largest is each of `points` values from `range[0]` to `range[1]` (geometric), in each dtype."""
    dtypes: list[str] = field(default_factory=lambda: ["float32", "float64"])
    range: list[float] = field(default_factory=lambda: [1.0, 2000.0])
    points: int = 100
    classes: int = 10
    samples: int = 256
    seed: int = 0


@dataclass
class Asha:
    grace_period: int = 1  # epochs every member trains before it can be stopped
    reduction_factor: int = 3
    metric: str = "val_acc"


@dataclass
class Pbt:
    """Population Based Training: every `interval` epochs the members ranked in the bottom `quantile`
    by `metric` exploit (become a fork of a member of the top quantile) and explore (perturb the
    fork's `mutations`: a draw from the distribution with `resample_probability`, else the value
    times one of `factors`, or the next value of a choice list). `seed` fixes the draws."""
    interval: int = 2
    quantile: float = 0.25
    metric: str = "val_acc"
    seed: int = 0
    factors: list[float] = field(default_factory=lambda: [0.8, 1.2])
    resample_probability: float = 0.25
    mutations: dict = field(default_factory=dict)  # "section.key" -> {distribution: arguments}, as in [space]


@dataclass
class Study:
    name: str
    description: str = ""
    kind: str = "train"
    preset: str = "quick"  # the base: a shipped preset's name or a TOML file's path
    set: dict = field(default_factory=dict)  # "section.key" -> value, for every member
    grid: dict = field(default_factory=dict)  # "section.key" (or "preset") -> list of values
    paired: dict = field(default_factory=dict)  # the same, one member per position; "names" names them
    member: list = field(default_factory=list)  # [[member]] rows: name, preset, "section.key" -> value
    fork: list = field(default_factory=list)  # [[fork]] rows: name, from (a member), epoch, "section.key" -> value
    seeds: list = field(default_factory=list)
    search: str = "grid"
    samples: int = 0
    search_seed: int = 0
    space: dict = field(default_factory=dict)  # "section.key" -> {distribution: arguments}
    scheduler: str = "fifo"
    asha: Asha = field(default_factory=Asha)
    pbt: Pbt = field(default_factory=Pbt)
    results: Results = field(default_factory=Results)
    ce: CE = field(default_factory=CE)
    source: str = field(default="", compare=False)

    @property
    def axes(self) -> list[str]:
        """The keys that vary between members, in the order their columns are shown."""
        keys = [k for k in self.paired if k != "names"] + list(self.grid) + list(self.space)
        for row in self.member:
            keys += [k for k in row if k not in ("name", *keys)]
        for row in self.fork:
            keys += [k for k in row if k not in (*FORK_KEYS, *keys)]
        return keys + (["train.seed"] if self.seeds else [])


@dataclass
class Member:
    name: str  # the model folder's name inside the study folder
    values: dict  # axis key -> value, what distinguishes this member
    group: str  # the name without the seed: members of one group differ only by seed
    config: config_mod.Config
    fork: tuple[str, int] | None = None  # (member, epoch) a [[fork]] member starts from


# -- reading -----------------------------------------------------------------------------------------
def _fail(source: str, message: str):
    raise NeuratermError(f"{source}: {message}")


def _typed(value, kind, where: str):
    ok = {int: isinstance(value, int) and not isinstance(value, bool), bool: isinstance(value, bool),
          str: isinstance(value, str), list: isinstance(value, list), dict: isinstance(value, dict),
          float: isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if not ok:
        names = {int: "an integer", bool: "true or false", str: "a string", list: "a list", dict: "a table",
                 float: "a number"}
        _fail(where, f"expected {names[kind]}, got {value!r}")
    return float(value) if kind is float else value


def _dotted(table: dict, where: str, special=()) -> dict:
    """`{"optimizer.lr": v}` and `{optimizer = {lr = v}}` alike, as "section.key" -> value; `special`
    names plain keys that are not config keys (`preset`, `names`)."""
    flat = {}
    for key, value in table.items():
        if key in special:
            flat[key] = value
        elif "." in key:
            flat[key] = value
        elif key in config_mod.SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            _fail(where, f"{key!r} is not a section.key (like optimizer.lr)"
                         f"{did_you_mean(key, [*config_mod.SECTIONS, *special])}")
    for key in flat:
        if key not in special:
            _config_key(key, where)
    return flat


def _config_key(key: str, where: str) -> None:
    parts = key.split(".")
    if len(parts) != 2:
        _fail(where, f"{key!r} is not a section.key (like optimizer.lr)")
    section, name = parts
    if section not in config_mod.SECTIONS:
        _fail(where, f"unknown section {section!r} in {key!r}{did_you_mean(section, config_mod.SECTIONS)}")
    known = [f.name for f in fields(config_mod.SECTIONS[section])]
    if name not in known:
        _fail(where, f"unknown key {key!r}{did_you_mean(name, known)}")


def _lists(table: dict, where: str) -> dict:
    for key, values in table.items():
        if not isinstance(values, list) or not values:
            _fail(where, f"{key} must be a non-empty list of values")
    return table


def _sub(cls, value, where: str):
    """A small table (`[results]`, `[ce]`, `[asha]`) into its dataclass, every key typed."""
    _typed(value, dict, where)
    hints = {f.name: f for f in fields(cls)}
    config_mod.check_keys(value, list(hints), where)
    kinds = {"list[str]": list, "list[float]": list, "int": int, "float": float, "bool": bool, "str": str,
             "dict": dict}
    out = {}
    for key, v in value.items():
        kind = kinds[str(hints[key].type)]
        out[key] = _typed(v, kind, f"{where}.{key}")
        if str(hints[key].type) == "list[str]":
            out[key] = [_typed(x, str, f"{where}.{key}") for x in v]
        elif str(hints[key].type) == "list[float]":
            out[key] = [_typed(x, float, f"{where}.{key}") for x in v]
    return cls(**out)


def from_dict(values: dict, source: str) -> Study:
    """A checked Study from a parsed study file; every problem is one line naming `source`."""
    top = {f.name for f in fields(Study)} - {"source"}
    config_mod.check_keys(values, sorted(top), source)
    if "name" not in values:
        _fail(source, "missing name")
    s = {}
    for key in ("name", "description", "kind", "preset", "search", "scheduler"):
        if key in values:
            s[key] = _typed(values[key], str, f"{source}: {key}")
    for key in ("samples", "search_seed"):
        if key in values:
            s[key] = _typed(values[key], int, f"{source}: {key}")
    if "seeds" in values:
        s["seeds"] = [_typed(v, int, f"{source}: seeds") for v in _typed(values["seeds"], list, f"{source}: seeds")]
    if "set" in values:
        s["set"] = _dotted(_typed(values["set"], dict, f"{source}: [set]"), f"{source}: [set]")
    if "grid" in values:
        s["grid"] = _lists(_dotted(_typed(values["grid"], dict, f"{source}: [grid]"), f"{source}: [grid]",
                                   ("preset",)), f"{source}: [grid]")
    if "paired" in values:
        s["paired"] = _lists(_dotted(_typed(values["paired"], dict, f"{source}: [paired]"), f"{source}: [paired]",
                                     ("preset", "names")), f"{source}: [paired]")
    if "member" in values:
        rows = _typed(values["member"], list, f"{source}: [[member]]")
        s["member"] = [_dotted(_typed(r, dict, f"{source}: [[member]] {i + 1}"), f"{source}: [[member]] {i + 1}",
                               ("name", "preset")) for i, r in enumerate(rows)]
    if "fork" in values:
        rows = _typed(values["fork"], list, f"{source}: [[fork]]")
        s["fork"] = [_dotted(_typed(r, dict, f"{source}: [[fork]] {i + 1}"), f"{source}: [[fork]] {i + 1}",
                             FORK_KEYS) for i, r in enumerate(rows)]
    if "space" in values:
        s["space"] = _dotted(_typed(values["space"], dict, f"{source}: [space]"), f"{source}: [space]")
    for key, cls in (("results", Results), ("ce", CE), ("asha", Asha), ("pbt", Pbt)):
        if key in values:
            s[key] = _sub(cls, values[key], f"{source}: [{key}]")
    if "pbt" in values:
        s["pbt"].mutations = _dotted(s["pbt"].mutations, f"{source}: [pbt.mutations]")
    study = Study(**s, source=source)
    validate(study)
    return study


def validate(st: Study) -> None:
    src = st.source
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", st.name):
        _fail(src, f"name {st.name!r} must be letters, digits, '.', '_' or '-' (it names the study's folder)")
    for key, value, choices in (("kind", st.kind, KINDS), ("search", st.search, SEARCHES),
                                ("scheduler", st.scheduler, SCHEDULERS)):
        if value not in choices:
            _fail(src, f"{key} {value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}")
    for metric in st.results.metrics:
        if metric not in METRICS:
            _fail(src, f"[results] metric {metric!r} is not one of {', '.join(METRICS)}{did_you_mean(metric, METRICS)}")
    for chart in st.results.charts:
        if chart not in CHARTS:
            _fail(src, f"[results] chart {chart!r} is not one of {', '.join(CHARTS)}{did_you_mean(chart, CHARTS)}")
    if st.results.x and st.results.x not in st.axes:
        _fail(src, f"[results] x {st.results.x!r} is not an axis of this study (axes: {', '.join(st.axes) or 'none'})")
    if len(set(st.seeds)) != len(st.seeds) or not all(0 <= s <= config_mod.MAX_SEED for s in st.seeds):
        _fail(src, f"seeds must be different integers between 0 and {config_mod.MAX_SEED}")
    if st.kind == "ce":
        _validate_ce(st)
        return
    if st.paired and st.member:
        _fail(src, "give the members as [paired] lists or as [[member]] rows, not both")
    if st.paired:
        lengths = {k: len(v) for k, v in st.paired.items()}
        if len(set(lengths.values())) != 1:
            _fail(src, f"[paired] lists must have one value per member; lengths {lengths}")
    for i, row in enumerate(st.member):
        if "name" in row and not isinstance(row["name"], str):
            _fail(src, f"[[member]] {i + 1}: name must be a string")
    for i, row in enumerate(st.fork):
        if not (isinstance(row.get("name"), str) and isinstance(row.get("from"), str)
                and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool) and row["epoch"] >= 1):
            _fail(src, f"[[fork]] {i + 1}: needs name and from (a member's name) as strings and epoch >= 1")
    if "train.seed" in st.grid or "train.seed" in st.paired:
        if st.seeds:
            _fail(src, "vary train.seed with seeds = [...] or as an axis, not both")
    if st.search == "random":
        if not st.space or st.samples < 1:
            _fail(src, "search = \"random\" needs a [space] of distributions and samples >= 1")
        if st.grid or st.paired or st.member:
            _fail(src, "a random search draws its members from [space]; it has no [grid], [paired] or [[member]]")
        for key, spec in st.space.items():
            _distribution(spec, f"{src}: [space] {key}")
    elif st.space or st.samples:
        _fail(src, "[space] and samples belong to search = \"random\"")
    if st.scheduler == "asha" and st.asha.metric not in config_mod.MONITORS:
        _fail(src, f"[asha] metric must be one of {', '.join(config_mod.MONITORS)}")
    if st.asha.grace_period < 1 or st.asha.reduction_factor < 2:
        _fail(src, "[asha] grace_period must be >= 1 and reduction_factor >= 2")
    if st.scheduler == "pbt":
        _validate_pbt(st)
    elif st.pbt != Pbt():
        _fail(src, "[pbt] belongs to scheduler = \"pbt\"")


# Keys PBT may not perturb: what a fork cannot change, and how long or where a member runs.
PBT_FIXED = ("train.epochs", "train.keep", "train.device", "train.threads", "data.data_dir", "data.placement")


def _validate_pbt(st: Study) -> None:
    from neuraterm.core.run.fork import FROZEN_ON_FORK
    src, pbt = st.source, st.pbt
    if st.fork:
        _fail(src, "a PBT study's members are its population; [[fork]] rows belong to other schedulers")
    if pbt.interval < 1:
        _fail(src, f"[pbt] interval must be >= 1 epoch, got {pbt.interval}")
    if not 0 < pbt.quantile <= 0.5:
        _fail(src, f"[pbt] quantile must be in (0, 0.5] (the bottom fraction that copies the top one), got {pbt.quantile}")
    if pbt.metric not in config_mod.MONITORS:
        _fail(src, f"[pbt] metric {pbt.metric!r} is not one of {', '.join(config_mod.MONITORS)}"
                   f"{did_you_mean(pbt.metric, config_mod.MONITORS)}")
    if not pbt.factors or not all(0 < f and math.isfinite(f) for f in pbt.factors):
        _fail(src, "[pbt] factors must be a non-empty list of positive numbers (like [0.8, 1.2])")
    if not 0 <= pbt.resample_probability <= 1:
        _fail(src, f"[pbt] resample_probability must be in [0, 1], got {pbt.resample_probability}")
    if not 0 <= pbt.seed <= config_mod.MAX_SEED:
        _fail(src, f"[pbt] seed must be between 0 and {config_mod.MAX_SEED}")
    if not pbt.mutations:
        _fail(src, "scheduler = \"pbt\" needs [pbt.mutations]: what explore perturbs, like "
                   "\"optimizer.lr\" = {loguniform = [0.0001, 0.1]}")
    for key, spec in pbt.mutations.items():
        if key in FROZEN_ON_FORK or key in PBT_FIXED:
            _fail(src, f"[pbt.mutations] {key} cannot be perturbed (a fork keeps it: it defines the data, the "
                       f"model, its initialization or the run's length)")
        _distribution(spec, f"{src}: [pbt.mutations] {key}")
    if member_count(st) < 2:
        _fail(src, f"a PBT population needs at least 2 members, this study has {member_count(st)}")


def _validate_ce(st: Study) -> None:
    src, ce = st.source, st.ce
    if st.grid or st.paired or st.member or st.set or st.space or st.seeds:
        _fail(src, "a kind = \"ce\" study is described by its [ce] table only")
    for dtype in ce.dtypes:
        if dtype not in ("float16", "float32", "float64"):
            _fail(src, f"[ce] dtype {dtype!r} is not float16, float32 or float64")
    if len(ce.range) != 2 or not 0 < ce.range[0] < ce.range[1] or not math.isfinite(ce.range[1]):
        _fail(src, "[ce] range must be [smallest, largest] logit with 0 < smallest < largest")
    if not 2 <= ce.points <= 10_000 or not 2 <= ce.classes <= 10_000 or not 1 <= ce.samples <= 100_000:
        _fail(src, "[ce] points must be 2..10000, classes 2..10000 and samples 1..100000")


def _distribution(spec, where: str) -> tuple[str, list]:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        _fail(where, "expected one of {choice = [...]}, {uniform = [low, high]}, {loguniform = [low, high]}, "
                     "{randint = [low, high]}")
    (kind, args), = spec.items()
    if not isinstance(args, list) or not args:
        _fail(where, f"{kind} needs a list")
    if kind != "choice":
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) \
                or not args[0] < args[1] or (kind == "loguniform" and args[0] <= 0):
            _fail(where, f"{kind} needs [low, high] with low < high" + (" and low > 0" if kind == "loguniform" else ""))
        if kind == "randint" and not all(isinstance(a, int) for a in args):
            _fail(where, "randint needs integers")
    return kind, args


def parse(data: bytes, source: str) -> Study:
    return from_dict(toml_text.loads(data, source), source)


def path_of(name_or_path: str) -> Path:
    """A shipped study by name, a study file by path, or a study folder (its resolved copy)."""
    from neuraterm.presets import studies
    candidate = Path(name_or_path)
    if candidate.is_dir():
        if not (candidate / STUDY_FILE).is_file():
            raise NeuratermError(f"{candidate}: not a study folder (no {STUDY_FILE})")
        return candidate / STUDY_FILE
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    return studies.path_of(name_or_path)


def load(name_or_path: str) -> Study:
    path = path_of(name_or_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NeuratermError(f"{path}: no such file") from None
    except OSError as exc:
        raise NeuratermError(f"{path}: cannot be read ({exc.strerror})") from None
    study = parse(data, str(path))
    _resolve_preset_paths(study, path)
    return study


def _resolve_preset_paths(study: Study, path: Path) -> None:
    """A base preset given as a relative path is relative to the study file, and kept absolute so a
    study folder's copy still finds it."""
    def fix(value):
        if isinstance(value, str) and value.endswith(".toml") and not Path(value).is_absolute():
            return str((path.parent / value).resolve())
        return value
    study.preset = fix(study.preset)
    for table in (study.grid, study.paired):
        if "preset" in table:
            table["preset"] = [fix(v) for v in table["preset"]]
    for row in study.member:
        if "preset" in row:
            row["preset"] = fix(row["preset"])


def with_overrides(study: Study, assignments=(), epochs: int | None = None, seeds: list[int] | None = None) -> Study:
    """`neuraterm study --set key=value --epochs N --seeds 0,1`: changes for every member, checked like
    the file's own; they become part of the study (its folder's copy records them)."""
    values = _to_plain(study)
    for assignment in assignments:
        if "=" not in assignment:
            raise NeuratermError(f"--set {assignment!r}: expected section.key=value")
        key, raw = (part.strip() for part in assignment.split("=", 1))
        _config_key(key, f"--set {key}")
        if key in study.axes:  # a member's own value wins over [set]: the change would silently do nothing
            raise NeuratermError(f"--set {key}: {study.name} varies {key} between its members, so --set cannot "
                                 f"change it; copy the study file and edit its members instead")
        values.setdefault("set", {})[key] = toml_text.assigned(raw)
    if epochs is not None:
        values.setdefault("set", {})["train.epochs"] = epochs
    if seeds is not None:
        values["seeds"] = seeds
    result = from_dict(values, study.source)
    result.source = study.source
    return result


# -- members -----------------------------------------------------------------------------------------
def value_text(value) -> str:
    """A value as it appears in a member name and a table: 0.01, 128x64, true, he_normal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "x".join(value_text(v) for v in value)
    return str(value)


def short_text(value) -> str:
    """A value as a table cell: like `value_text`, floats to 4 significant digits (random draws)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(short_text(v) for v in value)
    return value_text(value)


def label(key: str) -> str:
    return LABELS.get(key, key.rsplit(".", 1)[-1].replace("_", "-"))


def _part(key: str, value) -> str:
    if key == "preset":
        return sanitize_name(Path(value).stem if str(value).endswith(".toml") else str(value), "member", None)
    return sanitize_name(f"{label(key)}-{value_text(value)}", "member", None)


def _draw(kind: str, args: list, rng: np.random.Generator):
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    return int(rng.integers(args[0], args[1] + 1))


def _rows(study: Study) -> list[tuple[str, dict]]:
    """(name, changes) for every member before seeds; changes hold "section.key" and "preset"."""
    rows: list[tuple[str, dict]] = []
    if study.search == "random":
        rng = np.random.default_rng(study.search_seed)
        width = len(str(study.samples - 1))
        for i in range(study.samples):
            rows.append((f"sample-{i:0{width}d}", {k: _draw(*_distribution(v, k), rng) for k, v in study.space.items()}))
        return rows
    listed: list[tuple[str, dict]] = []
    if study.paired:
        keys = [k for k in study.paired if k != "names"]
        count = len(next(iter(study.paired.values())))
        for i in range(count):
            changes = {k: study.paired[k][i] for k in keys}
            name = study.paired["names"][i] if "names" in study.paired else "_".join(_part(k, v) for k, v in changes.items())
            listed.append((sanitize_name(str(name), "member", None), changes))
    for i, row in enumerate(study.member):
        changes = {k: v for k, v in row.items() if k != "name"}
        name = row.get("name") or "_".join(_part(k, v) for k, v in changes.items()) or f"member-{i + 1}"
        listed.append((sanitize_name(name, "member", None), changes))
    combos = [dict(zip(study.grid, values)) for values in itertools.product(*study.grid.values())] or [{}]
    for name, changes in listed or [("", {})]:
        for combo in combos:
            parts = [name] if name else []
            parts += [_part(k, v) for k, v in combo.items()]
            rows.append(("_".join(parts) or "base", {**changes, **combo}))
    return rows


def members(study: Study, full_batch=None) -> list[Member]:
    """Every member with its complete, validated config, in the study's order.

    `full_batch(config) -> int` gives the training split's size for train.batch_size = "full"; by
    default the data is loaded to count it (only when a member asks for it)."""
    from neuraterm import presets
    if study.kind != "train":
        return []
    full_batch = full_batch or training_samples
    found: list[Member] = []
    bases: dict[str, config_mod.Config] = {}
    for group, changes in _rows(study):
        for seed in study.seeds or [None]:
            name = group if seed is None else f"{group}_seed-{seed}"
            preset = changes.get("preset", study.preset)
            if preset not in bases:
                bases[preset] = presets.load(preset)
            values = bases[preset].to_dict()
            where = f"{study.source}: member {name}"
            for key, value in {**study.set, **{k: v for k, v in changes.items() if k != "preset"}}.items():
                section, sub = key.split(".")
                values[section][sub] = value
            if seed is not None:
                values["train"]["seed"] = seed
            values["name"] = f"{study.name}/{name}"
            values["description"] = f"{study.name} member {name}"
            full = values["train"]["batch_size"] == FULL_BATCH
            if full:
                values["train"]["batch_size"] = 1
            config = config_mod.from_dict(values, where)
            if full:
                config.train.batch_size = full_batch(config)
            shown = {k: v for k, v in changes.items()}
            if seed is not None:
                shown["train.seed"] = seed
            found.append(Member(name, shown, group, config))
    found += _forks(study, found)
    if study.scheduler == "pbt":
        for m in found:
            sched = m.config.schedule
            if sched.name == "cosine" or (sched.name == "linear" and not sched.decay_epochs):
                _fail(f"{study.source}: member {m.name}", f"schedule {sched.name!r} spans the run's epochs, but a "
                      f"PBT member trains in generations; use constant, step, exponential, plateau, or linear "
                      f"with schedule.decay_epochs")
    names = [m.name for m in found]
    for m in found:
        if names.count(m.name) > 1:
            _fail(study.source, f"two members are named {m.name!r}; give them names ([paired] names or [[member]] name)")
        if m.name.lower() in RESERVED or len(m.name) > 120:
            _fail(study.source, f"member name {m.name!r} is reserved or too long; name it otherwise")
    return found


def _forks(study: Study, found: list[Member]) -> list[Member]:
    """[[fork]] members: a member's settings with the row's changes, trained from its kept epoch."""
    from neuraterm.core.run import retention
    from neuraterm.core.run.fork import FROZEN_ON_FORK, changes as changed_keys
    by_name = {m.name: m for m in found}
    out = []
    for row in study.fork:
        name, parent, epoch = sanitize_name(row["name"], "fork", None), row["from"], row["epoch"]
        where = f"{study.source}: [[fork]] {name}"
        if parent not in by_name:
            _fail(where, f"from {parent!r} names no member{did_you_mean(parent, by_name)} (a fork follows "
                         f"the member it forks)")
        base = by_name[parent].config
        values = base.to_dict()
        for key, value in row.items():
            if key not in FORK_KEYS:
                section, sub = key.split(".")
                values[section][sub] = value
        values["name"], values["description"] = f"{study.name}/{name}", f"{study.name} member {name}"
        config = config_mod.from_dict(values, where)
        frozen = [k for k in FROZEN_ON_FORK if k in changed_keys(base, config)]
        if frozen:
            _fail(where, f"{', '.join(frozen)} cannot change in a fork (they define the data split, the model or "
                         f"its initialization)")
        if not epoch < config.train.epochs or epoch > base.train.epochs:
            _fail(where, f"epoch {epoch} must be within {parent}'s {base.train.epochs} epochs and below the "
                         f"fork's own {config.train.epochs}")
        if not retention.keeps(base.train.keep, epoch, base.train.epochs):
            _fail(where, f"{parent} does not keep epoch {epoch} (train.keep = {base.train.keep!r}); set "
                         f"train.keep for it, or fork at a kept epoch")
        shown = {k: v for k, v in row.items() if k not in FORK_KEYS}
        member = Member(name, shown, name, config, (parent, epoch))
        by_name[name] = member
        out.append(member)
    return out


def member_count(study: Study) -> int:
    """How many members, without building their configs (for listings)."""
    if study.kind == "ce":
        return len(study.ce.dtypes)
    return len(_rows(study)) * max(1, len(study.seeds)) + len(study.fork)


_TRAIN_SIZES: dict[str, int] = {}


def training_samples(config: config_mod.Config) -> int:
    """The size of a config's training split (for batch_size = "full"); loads the data once per split."""
    from neuraterm.core.run.build import load_data
    d = config.data
    key = json.dumps([d.dataset, d.val_fraction, d.test_fraction, d.pool, d.limit, d.data_dir, config.train.seed])
    if key not in _TRAIN_SIZES:
        _TRAIN_SIZES[key] = len(load_data(config).train.y)
    return _TRAIN_SIZES[key]


# -- writing -----------------------------------------------------------------------------------------
def _to_plain(study: Study) -> dict:
    """The study as the dict a study file parses into (what `to_toml` writes)."""
    out: dict = {"name": study.name}
    defaults = Study(name=study.name)
    for f in fields(Study):
        if f.name in ("name", "source"):
            continue
        value = getattr(study, f.name)
        if value == getattr(defaults, f.name) and f.name not in ("kind", "preset"):
            continue
        if f.name in ("results", "ce", "asha", "pbt"):
            value = {sub.name: getattr(value, sub.name) for sub in fields(value)}
        out[f.name] = json.loads(json.dumps(value))
    return out


def to_toml(study: Study) -> str:
    """The study file, every setting resolved (what a study folder keeps as `study.toml`)."""
    plain = _to_plain(study)
    lines = ["# The resolved study: `neuraterm study <this folder>` resumes it and re-draws its results."]
    tables = []
    for key, value in plain.items():
        if key in ("member", "fork"):
            for row in value:
                tables += ["", f"[[{key}]]"] + [f"{toml_text.key(k)} = {toml_text.value(v)}" for k, v in row.items()]
        elif isinstance(value, dict):
            tables += ["", f"[{key}]"] + [f"{toml_text.key(k)} = {toml_text.value(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {toml_text.value(value)}")
    return "\n".join(lines + tables) + "\n"


def differences(a: Study, b: Study) -> list[str]:
    """The top-level settings in which two studies differ."""
    pa, pb = _to_plain(a), _to_plain(b)
    return [k for k in dict.fromkeys([*pa, *pb]) if pa.get(k) != pb.get(k)]


def difference_lines(there: Study, here: Study) -> list[str]:
    """Each setting in which two studies differ, as `key: <there> there, <here> here` (a table's
    entries one by one, so that a refusal can name `set "data.dataset"`, not just `set`)."""
    pa, pb = _to_plain(there), _to_plain(here)
    lines = []
    for key in differences(there, here):
        a, b = pa.get(key), pb.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in dict.fromkeys([*a, *b]):
                if a.get(sub) != b.get(sub):
                    unset = "(the preset's)" if key == "set" else "(not set)"
                    lines.append(f"{key} {json.dumps(sub)}: {_shown(a.get(sub), unset)} there, "
                                 f"{_shown(b.get(sub), unset)} here")
        else:
            lines.append(f"{key}: {_shown(a)} there, {_shown(b)} here")
    return lines


def _shown(value, unset: str = "(not set)") -> str:
    return unset if value is None else json.dumps(value)
