"""A study's results table, read from its members' model folders: `results.csv` and `results.md`.

Nothing here is kept in memory from the run: the table is drawn from the folders (`runs.describe`,
each current checkpoint's `report.json`), so it is the same whether the members ran in one process,
in N, on a Ray cluster, or some of them yesterday. Final means the last epoch trained (train and
validation) and the model the report tested (the best epoch's weights when early stopping restored
them). Seconds per epoch are the median over epochs (the first one pays for warm-up). Diverged members
are rows too, with what they reached before the guard stopped them.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from neuraterm.core.errors import NeuratermError
from neuraterm.core.run import alerts as alerts_mod, checkpoint, health as health_mod
from neuraterm.core.study.spec import Member, label, short_text, value_text
from neuraterm.core.study.folder import StudyFolder

RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"
PERCENT = ("train_acc", "val_acc", "test_acc", "balanced_acc")
HEADINGS = {"epochs": "epochs", "best_epoch": "best epoch", "train_loss": "train loss", "train_acc": "train acc",
            "val_loss": "val loss", "val_acc": "val acc", "test_loss": "test loss", "test_acc": "test acc",
            "macro_f1": "macro-F1", "balanced_acc": "balanced acc", "parameters": "parameters",
            "s_per_epoch": "s/epoch"}


@dataclass
class Row:
    member: Member
    state: str
    metrics: dict  # every METRICS name -> number or None
    noise: dict = field(default_factory=dict)  # sigma -> test accuracy under that noise
    history: list = field(default_factory=list)  # the member's history.csv rows
    message: str = ""  # why it failed
    report: dict | None = None  # the member's test report, once it finished
    health: list = field(default_factory=list)  # its layer health per epoch (HealthMeasured), if measured
    exploits: list = field(default_factory=list)  # a PBT member's exploits, oldest first (pbt.exploits)
    final: dict = field(default_factory=dict)  # a PBT member's mutated keys as it ended ("optimizer.lr" -> value)

    @property
    def alerts(self) -> list:
        """The alerts of the member's last measured epoch (what is wrong with it as it ends)."""
        return alerts_mod.check(self.health[-1]) if self.health else []

    @property
    def alert_kinds(self) -> str:
        """'healthy', the alert kinds of its last epoch, or '' when no health was measured."""
        if not self.health:
            return ""
        return " ".join(dict.fromkeys(a.kind for a in self.alerts)) or "healthy"

    @property
    def name(self) -> str:
        return self.member.name


def _best_epoch(history: list[dict], monitor: str) -> int | None:
    rows = [r for r in history if math.isfinite(r[monitor])]
    if not rows:
        return None
    pick = max if monitor.endswith("acc") else min
    return pick(rows, key=lambda r: r[monitor])["epoch"]


def row_of(folder: StudyFolder, name: str) -> Row:
    state = folder.state(name)
    info, config = state.info, state.member.config
    report = info.report
    history = info.history
    last = history[-1] if history else {}
    seconds = [r["seconds"] for r in history if math.isfinite(r["seconds"])]
    best = report.get("best_epoch") if report and report.get("best_epoch") else None
    metrics = {
        "epochs": info.epoch,
        "best_epoch": best or _best_epoch(history, config.train.monitor),
        "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
        "val_loss": last.get("val_loss"), "val_acc": last.get("val_acc"),
        "test_loss": report.get("test_loss") if report else None,
        "test_acc": report.get("test_accuracy") if report else None,
        "macro_f1": report.get("macro_f1") if report else None,
        "balanced_acc": report.get("balanced_accuracy") if report else None,
        "parameters": info.parameters,
        "s_per_epoch": statistics.median(seconds) if seconds else None,
    }
    noise = {float(n["sigma"]): float(n["accuracy"]) for n in (report or {}).get("noise", [])
             if isinstance(n, dict) and "sigma" in n and "accuracy" in n}
    row = Row(state.member, state.state, metrics, noise, history, state.note or info.failure or info.problem,
              report, _health(folder.member_dir(name)))
    if folder.study.scheduler == "pbt":
        from neuraterm.core.study import pbt
        row.exploits = pbt.exploits(folder).get(name, [])
        row.final = _final_values(folder, name)
    return row


def _final_values(folder: StudyFolder, name: str) -> dict:
    """The mutated keys of a PBT member's current config (its own until an exploit, then explored)."""
    from neuraterm.core import config as config_mod
    path = folder.member_dir(name) / "config.toml"
    try:
        values = config_mod.load_toml(path).to_dict() if path.is_file() else folder.member(name).config.to_dict()
    except NeuratermError:
        return {}
    return {k: config_mod.value_at(values, k) for k in folder.study.pbt.mutations}


def lineage(row: Row) -> str:
    """'m0 @ epoch 4, lr 0.0012; m3 @ epoch 6, lr 0.002': whom a PBT member copied, oldest first."""
    from neuraterm.core.study import pbt
    return "; ".join(pbt.lineage_text(e) for e in row.exploits)


def _pbt_keys(folder: StudyFolder) -> list[str]:
    return list(folder.study.pbt.mutations) if folder.study.scheduler == "pbt" else []


def _health(run_dir: Path) -> list:
    """A member's layer health from its current checkpoint ([] before its first epoch, or when off)."""
    if checkpoint.checkpoint_dir(run_dir) is None:
        return []
    try:
        return health_mod.history_of(checkpoint.load(run_dir).health)
    except NeuratermError:
        return []  # a damaged member is reported by its state; its health is simply not shown


def collect(folder: StudyFolder) -> list[Row]:
    return [row_of(folder, m.name) for m in folder.members]


def _sigmas(folder: StudyFolder, rows: list[Row]) -> list[float]:
    if not folder.study.results.noise:
        return []
    return sorted({s for r in rows for s in r.noise})


def _number(value) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def to_csv(folder: StudyFolder, rows: list[Row]) -> str:
    """Every metric of every member at full precision; blank where a member has no value."""
    from neuraterm.core.study.spec import METRICS
    axes = folder.study.axes
    sigmas = _sigmas(folder, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    pbt_keys = _pbt_keys(folder)
    pbt_head = ["lineage", *[f"final_{k}" for k in pbt_keys]] if pbt_keys else []
    writer.writerow(["member", *axes, "state", *pbt_head, *METRICS, *[f"noise_{s:g}" for s in sigmas], "alerts",
                     "message"])
    for r in rows:
        pbt_cells = [lineage(r), *[value_text(r.final[k]) if k in r.final else "" for k in pbt_keys]] if pbt_keys else []
        writer.writerow([r.name, *[value_text(r.member.values[a]) if a in r.member.values else "" for a in axes],
                         r.state, *pbt_cells, *[_number(r.metrics[m]) for m in METRICS],
                         *[_number(r.noise.get(s)) for s in sigmas], r.alert_kinds, r.message])
    return out.getvalue()


def shown(metric: str, value) -> str:
    """A metric as the tables show it: percentages, 4-digit losses, thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric in PERCENT or metric.startswith("noise"):
        return f"{100 * value:.2f}%"
    if metric in ("train_loss", "val_loss", "test_loss", "macro_f1"):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    if metric == "s_per_epoch":
        return f"{value:.3g}"
    if metric == "parameters":
        return f"{value:,}"
    return str(value)


def table(folder: StudyFolder, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The header and cells of the results table (what results.md and the terminal show)."""
    axes = [a for a in folder.study.axes if a != "train.seed" or len(folder.study.seeds) > 1]
    metrics = folder.study.results.metrics
    sigmas = _sigmas(folder, rows)
    with_health = any(r.health for r in rows)
    pbt_keys = _pbt_keys(folder)
    pbt_head = ["copied", *[f"final {label(k)}" for k in pbt_keys]] if pbt_keys else []
    header = ["member", *[label(a) for a in axes], "state", *pbt_head, *[HEADINGS[m] for m in metrics],
              *[f"s={s:g}" for s in sigmas], *(["alerts"] if with_health else [])]
    cells = [[r.name, *[short_text(r.member.values[a]) if a in r.member.values else "" for a in axes], r.state,
              *([", ".join(f"{e['donor']} @ {e['epoch']}" for e in r.exploits) or "-",
                 *[short_text(r.final[k]) if k in r.final else "-" for k in pbt_keys]] if pbt_keys else []),
              *[shown(m, r.metrics[m]) for m in metrics], *[shown("noise", r.noise.get(s)) for s in sigmas],
              *([r.alert_kinds or "-"] if with_health else [])]
             for r in rows]
    return header, cells


def spread(folder: StudyFolder, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Mean ± standard deviation over the seeds of each group (members that differ only by seed)."""
    metrics = [m for m in folder.study.results.metrics if m not in ("parameters",)]
    header = ["group", "seeds", "done", *[HEADINGS[m] for m in metrics]]
    cells = []
    for group, members in groups(rows).items():
        line = [group, str(len(members)), str(sum(r.state in ("finished",) for r in members))]
        for m in metrics:
            values = [float(r.metrics[m]) for r in members if r.metrics[m] is not None
                      and math.isfinite(float(r.metrics[m]))]
            if not values:
                line.append("-")
                continue
            mean = statistics.fmean(values)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            if m in PERCENT:
                line.append(f"{100 * mean:.2f}% ± {100 * sd:.2f}")
            elif "loss" in m or m == "macro_f1":
                line.append(f"{mean:.4f} ± {sd:.4f}")
            else:
                line.append(f"{mean:.3g} ± {sd:.2g}")
        cells.append(line)
    return header, cells


def groups(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows by group: the members that differ only by their seed."""
    found: dict[str, list[Row]] = {}
    for r in rows:
        found.setdefault(r.member.group, []).append(r)
    return found


def markdown_table(header: list[str], cells: list[list[str]]) -> str:
    right = [i for i, h in enumerate(header) if i > 0 and all(_numeric(c[i]) for c in cells if c[i] not in ("", "-"))]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "-.") and not text.startswith("--")


def to_markdown(folder: StudyFolder, rows: list[Row], figures: list[Path] = ()) -> str:
    study = folder.study
    states = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    shared = ", ".join(f"{k} = {value_text(v)}" for k, v in study.set.items())
    parts = [f"# {study.name}", "", study.description, "",
             f"Base preset: {Path(study.preset).stem if study.preset.endswith('.toml') else study.preset}"
             + (f"; for every member: {shared}" if shared else "") + ".", "",
             f"{len(rows)} members: " + ", ".join(f"{n} {s}" for s, n in states.items()) + ".", "",
             markdown_table(*table(folder, rows))]
    if len(study.seeds) > 1:
        parts += ["", f"## Mean ± standard deviation over seeds {', '.join(map(str, study.seeds))}", "",
                  markdown_table(*spread(folder, rows))]
    if study.scheduler == "pbt":
        pbt = study.pbt
        parts += ["", f"## Population Based Training: every {pbt.interval} epochs the bottom {pbt.quantile:g} by "
                      f"{HEADINGS[pbt.metric]} copies a member of the top {pbt.quantile:g} and perturbs "
                      f"{', '.join(label(k) for k in pbt.mutations)}", ""]
        copied = [(e, r) for r in rows for e in r.exploits]
        parts += [f"- {r.name} <- {_lineage_line(e, pbt.metric)}" for e, r in sorted(copied, key=lambda x: x[0]["epoch"])] \
            or ["No member copied another (no round was reached)."]
    failed = [r for r in rows if r.message and r.state in ("diverged", "failed", "damaged")]
    if failed:
        parts += ["", "## Members that did not finish", ""] + [f"- {r.name}: {r.message}" for r in failed]
    flagged = [r for r in rows if r.alerts]
    if any(r.health for r in rows):
        parts += ["", "## Layer health at each member's last epoch", ""]
        parts += [f"- {r.name}, epoch {a.epoch}, {a.layer}: {a.kind} ({a.figure}): {a.message} Try: {a.advice}"
                  for r in flagged for a in r.alerts] or ["Every member is within the alert thresholds."]
    if figures:
        parts += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder.path).as_posix()})"
                                           for p in figures if p.suffix == ".png"]
    return "\n".join(parts) + "\n"


def _lineage_line(exploit: dict, metric: str) -> str:
    from neuraterm.core.study import pbt
    return (f"{pbt.lineage_text(exploit)} ({HEADINGS[metric]} {shown(metric, exploit.get('score'))} -> "
            f"{shown(metric, exploit.get('donor_score'))})")


def write(folder: StudyFolder, rows: list[Row] | None = None, figures: list[Path] = ()) -> list[Row]:
    """results.csv and results.md in the study folder; returns the rows."""
    rows = collect(folder) if rows is None else rows
    replace_file(folder.path / RESULTS_CSV, to_csv(folder, rows))
    replace_file(folder.path / RESULTS_MD, to_markdown(folder, rows, figures))
    return rows


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` by an atomic replace (a reader never sees half a table)."""
    checkpoint.write_atomic(path, text.encode("utf-8"))
