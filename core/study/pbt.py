"""Population Based Training (`scheduler = "pbt"`): the members train in generations, and between two
the worst copy a better one and perturb its hyper-parameters.

Without Ray (`LocalPbt`) the generations are synchronous: every member trains to epoch k * interval
(`--jobs` at a time), then the members are ranked by `[pbt] metric` at that epoch. Each member of the
bottom quantile *exploits*: its folder becomes a recorded fork (`core/run/fork.py`) of a member of the
top quantile at that epoch, with the donor's weights, optimizer moments, data order and history, and
its lineage in `model.json`; and *explores*: the fork's `[pbt.mutations]` are perturbed. Donors and
perturbations are drawn from a generator seeded by (`[pbt] seed`, generation) and ties are broken by
the study's member order, so a rerun of the same study draws the same ones and, since training and
forks are exact, ends bit-identical.

The schedule's record is `pbt/state.json` in the study folder, replaced atomically: each round (its
epoch, every member's metric over the generation, its exploits) is written *before* it is applied,
and each exploit is marked applied after its folder switched. The switch keeps the folder rules: the
fork is written under `pbt/incoming/`, the member's folder moves to `pbt/replaced/<member>-e<epoch>/`
(nothing is deleted) and the fork takes its place; each step is a rename, and a rerun after a crash
or a signal at any point finishes the round from the record (a signal during a round is acted on
after it). A PBT study through Ray (`ray_tune.py`) records its exploits in the same file.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuraterm.core import config as config_mod
from neuraterm.core.errors import STOP_SIGNALS, NeuratermError
from neuraterm.core.run import checkpoint, folder_files, fork as fork_mod, status as runs
from neuraterm.core.study import spec as study_mod
from neuraterm.core.study.folder import MemberState, StudyFolder
from neuraterm.core.study.runner import UNFINISHED, LocalRunner, MemberProgress

FOLDER = "pbt"
STATE = f"{FOLDER}/state.json"
INCOMING, REPLACED = f"{FOLDER}/incoming", f"{FOLDER}/replaced"


# -- the record -----------------------------------------------------------------------------------------
def load_record(folder: StudyFolder) -> dict:
    """`pbt/state.json`: {"format": 1, "rounds": [...]} (empty before the first round), checked whole:
    the results, the figure, the Study screen and the drivers index it without further checks."""
    _refuse_links(folder.path)
    try:
        data = folder_files.read_bytes(folder.path, STATE, 1 << 24)
    except FileNotFoundError:
        return {"format": 1, "rounds": []}
    except OSError as exc:
        raise NeuratermError(f"{folder.path / STATE}: cannot be read ({exc})") from None
    try:
        record = json.loads(data)
        problem = _problem(record, {m.name for m in folder.members}, set(folder.study.pbt.mutations))
    except ValueError:
        problem = "not JSON"
    if problem:
        raise NeuratermError(f"{folder.path / STATE}: not a PBT record ({problem}); move it away to start the "
                             f"schedule afresh")
    return record


def _problem(record, members: set[str], mutations: set[str]) -> str:
    """What makes `record` unusable as a PBT record, or "" (a hand edit or another program's file)."""
    def number(v, none=False):
        return (v is None and none) or (isinstance(v, (int, float)) and not isinstance(v, bool))

    def count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not isinstance(record, dict) or not isinstance(record.get("rounds"), list):
        return "no list of rounds"
    for i, r in enumerate(record["rounds"], 1):
        where = f"round {i}"
        if not isinstance(r, dict):
            return f"{where} is not a table"
        if not (count(r.get("generation")) and count(r.get("epoch")) and isinstance(r.get("metric"), str)):
            return f"{where} needs a generation, an epoch and a metric"
        curves = r.get("curves", {})
        if not isinstance(curves, dict) or not all(
                isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 and count(p[0]) and number(p[1])
                                                 for p in points) for points in curves.values()):
            return f"{where}: curves must map members to [epoch, value] pairs"
        if not isinstance(r.get("exploits"), list):
            return f"{where} has no list of exploits"
        for e in r["exploits"]:
            if not (isinstance(e, dict) and all(isinstance(e.get(k), str) and e[k] in members for k in ("member", "donor"))
                    and isinstance(e.get("applied"), bool) and number(e.get("score"), True)
                    and number(e.get("donor_score"), True) and isinstance(e.get("changes"), dict)
                    and set(e["changes"]) <= mutations
                    and all(isinstance(c, list) and len(c) == 2 for c in e["changes"].values())):
                return (f"{where}: an exploit needs a member and a donor of the study, scores, changes of "
                        f"[pbt.mutations] keys and applied")
    return ""


def save_record(folder: StudyFolder, record: dict) -> None:
    _refuse_links(folder.path)
    (folder.path / FOLDER).mkdir(exist_ok=True)
    checkpoint.write_atomic(folder.path / STATE, json.dumps(record, indent=1).encode("utf-8"))


def _refuse_links(root: Path) -> None:
    """`pbt/`, `pbt/replaced/` and `pbt/incoming/` are written and renamed into: a study folder is
    input (copied, shared), and a link planted there would move member folders or the record elsewhere."""
    for rel in (FOLDER, REPLACED, INCOMING):
        if os.path.islink(root / rel):
            raise NeuratermError(f"{root / rel}: a symbolic link, which a study's PBT folders never are; "
                                 f"replace it by a folder (links are not followed)")


def exploits(folder: StudyFolder) -> dict[str, list[dict]]:
    """Each member's applied exploits, oldest first: {"generation", "epoch", "donor", "changes"...}."""
    found: dict[str, list[dict]] = {}
    for round_ in load_record(folder)["rounds"]:
        for e in round_.get("exploits", []):
            if e.get("applied"):
                found.setdefault(e["member"], []).append({**e, "epoch": round_["epoch"]})
    return found


def lineage_text(exploit: dict) -> str:
    """'m0 @ epoch 4, lr 0.0012': whom a member copied, when, and what explore changed."""
    changed = ", ".join(f"{k.split('.', 1)[-1]} {study_mod.short_text(new)}" for k, (_, new) in exploit["changes"].items())
    return f"{exploit['donor']} @ epoch {exploit['epoch']}" + (f", {changed}" if changed else "")


# -- deciding a round -----------------------------------------------------------------------------------
def better_first(metric: str):
    """Sort key: the best score first (highest accuracy, lowest loss), no score (diverged) last."""
    def key(item):
        score = item[1]
        if score is None or not math.isfinite(score):
            return (1, 0.0, item[2])
        return (0, -score if metric.endswith("acc") else score, item[2])
    return key


def quantile_count(population: int, quantile: float) -> int:
    """Members that exploit in a round (Ray's rule: ceil(n * q), at most half the population)."""
    count = int(math.ceil(population * quantile))
    return int(math.floor(population / 2)) if count > population / 2 else count


def explore(values: dict, pbt: study_mod.Pbt, rng: np.random.Generator) -> dict:
    """New values of the mutated keys: a draw from the distribution with `resample_probability`, else
    the next or previous value of a choice list, or the value times one of `factors` (kept within the
    distribution's bounds, so a perturbed momentum never reaches 1)."""
    out = {}
    for key, spec in pbt.mutations.items():
        kind, args = study_mod._distribution(spec, key)
        old = values[key]
        if rng.random() < pbt.resample_probability or (kind == "choice" and old not in args):
            new = study_mod._draw(kind, args, rng)
        elif kind == "choice":
            i = args.index(old) + (1 if rng.random() < 0.5 else -1)
            new = args[min(max(i, 0), len(args) - 1)]
        else:
            new = min(max(old * pbt.factors[int(rng.integers(len(pbt.factors)))], args[0]), args[1])
            new = int(round(new)) if kind == "randint" else float(new)
        out[key] = new
    return out


def score_of(state: MemberState, metric: str, epoch: int) -> float | None:
    """The member's metric at `epoch` (None when it diverged before, or the value is not finite)."""
    rows = [r for r in state.info.history if r["epoch"] == epoch]
    if state.state != "finished" or not rows or not math.isfinite(rows[0][metric]):
        return None
    return float(rows[0][metric])


def plan_round(folder: StudyFolder, generation: int, epoch: int, previous: int) -> dict:
    """The round after generation `generation`, which ended at `epoch` (the one before ended at
    `previous`): every member's metric over the generation (for the figure), and its exploits."""
    pbt = folder.study.pbt
    states = [s for s in folder.states() if s.state in ("finished", "diverged")]
    order = {m.name: i for i, m in enumerate(folder.members)}
    scored = sorted(((s, score_of(s, pbt.metric, epoch), order[s.name]) for s in states), key=better_first(pbt.metric))
    count = quantile_count(len(scored), pbt.quantile)
    top = [s for s, score, _ in scored[:count] if score is not None]
    bottom = [s for s, _, _ in scored[len(scored) - count:]] if top else []
    rng = np.random.default_rng([pbt.seed, generation])
    planned = []
    for state in sorted(bottom, key=lambda s: order[s.name]):
        donor = top[int(rng.integers(len(top)))]
        config = _config(folder.member_dir(donor.name))
        values = config.to_dict()
        before = {k: config_mod.value_at(values, k) for k in pbt.mutations}
        after = explore(before, pbt, rng)
        planned.append({"member": state.name, "donor": donor.name, "score": score_of(state, pbt.metric, epoch),
                        "donor_score": score_of(donor, pbt.metric, epoch),
                        "changes": {k: [before[k], after[k]] for k in pbt.mutations}, "applied": False})
    curves = {s.name: [[r["epoch"], r[pbt.metric]] for r in s.info.history if previous < r["epoch"] <= epoch]
              for s in folder.states()}
    return {"generation": generation, "epoch": epoch, "metric": pbt.metric, "curves": _finite(curves),
            "exploits": planned}


def _finite(curves: dict) -> dict:
    """JSON has no NaN: a diverged member's non-finite values are left out."""
    return {k: [[e, v] for e, v in points if isinstance(v, (int, float)) and math.isfinite(v)] for k, points in curves.items()}


def _config(run_dir: Path) -> config_mod.Config:
    return checkpoint.load(run_dir).config


# -- applying an exploit --------------------------------------------------------------------------------
def apply_exploit(folder: StudyFolder, exploit: dict, epoch: int, total: int) -> None:
    """Make the member's folder a fork of the donor's at `epoch` with the explored values."""
    def source():
        return fork_mod.read(folder.member_dir(exploit["donor"]), epoch)
    switch(folder.member_dir(exploit["member"]), folder.study.name, source,
           {k: new for k, (_, new) in exploit["changes"].items()}, epoch, total)


def switch(target: Path, study: str, source, values: dict, epoch: int, total: int) -> None:
    """Replace the model folder `target` by a fork of `source()` (a `fork.Source`) at `epoch` with
    `values` ("section.key" -> value) changed: the fork is written under `pbt/incoming/` beside it,
    then the member's folder moves to `pbt/replaced/<member>-e<epoch>/` and the fork takes its place.
    Each step is a rename, and called again after a crash at any point it finishes the switch. A
    replaced folder of that name with no fork in place (left by an earlier schedule whose record was
    moved away) is one line: the exploit would otherwise be recorded without happening."""
    member, root = target.name, target.parent
    incoming = root / INCOMING / f"{member}-e{epoch}"
    aside = root / REPLACED / f"{member}-e{epoch}"
    _refuse_links(root)
    if os.path.lexists(aside) and not os.path.lexists(incoming):
        src = source()
        if not _forked_from(target, src.parent.name, epoch):
            raise NeuratermError(f"{aside}: a folder an earlier PBT exploit of {member} at epoch {epoch} replaced, "
                                 f"but {target} is not a fork of {src.parent.name} at that epoch; move {aside} out "
                                 f"of {root / REPLACED} and run the study again")
        return
    if not os.path.lexists(aside):
        if checkpoint.checkpoint_dir(incoming) is None:
            src = source()
            changed = src.snap.config.to_dict()
            for key, new in values.items():
                section, name = key.split(".")
                changed[section][name] = new
            changed["name"], changed["description"] = f"{study}/{member}", f"{study} member {member}"
            changed["train"]["epochs"] = total
            config = config_mod.from_dict(changed, f"{root}: PBT exploit of {member}")
            incoming.parent.mkdir(parents=True, exist_ok=True)
            _refuse_links(root)
            fork_mod.create(src, config, incoming)
        aside.parent.mkdir(parents=True, exist_ok=True)
        _refuse_links(root)
        if target.exists():
            os.rename(target, aside)
    if incoming.exists():
        os.rename(incoming, target)


def _forked_from(target: Path, donor: str, epoch: int) -> bool:
    """Whether the last entry of `target`'s lineage (model.json, see fork.py) is `donor` at `epoch`."""
    lineage = runs.describe(target).lineage
    return bool(lineage) and Path(lineage[-1]["parent"]).name == donor and lineage[-1]["epoch"] == epoch


# -- the local driver -----------------------------------------------------------------------------------
@dataclass
class LocalPbt(LocalRunner):
    """`LocalRunner` in generations, with a round of exploits between two (see the module's text)."""

    def _drive(self) -> int:
        folder, pbt = self.folder, self.folder.study.pbt
        totals = {m.config.train.epochs for m in folder.members}
        if len(totals) != 1:
            raise NeuratermError(f"{folder.study.source}: the members of a PBT study train the same number of "
                                 f"epochs; these ask for {', '.join(map(str, sorted(totals)))}")
        total = totals.pop()
        record = load_record(folder)
        while True:
            rounds = record["rounds"]
            if rounds and not all(e["applied"] for e in rounds[-1]["exploits"]):
                self._apply(record, rounds[-1], total)
                continue
            until = min((len(rounds) + 1) * pbt.interval, total)
            code = self._run(until)
            if self.signals:
                return STOP_SIGNALS[self.signals[0]]
            if code:
                return code
            states = folder.states()
            if until >= total or any(s.state in UNFINISHED for s in states):
                return 0  # done, or members stopped by someone else: the study's last line names them
            previous = rounds[-1]["epoch"] if rounds else 0
            rounds.append(plan_round(folder, len(rounds) + 1, until, previous))
            save_record(folder, record)

    def _apply(self, record: dict, round_: dict, total: int) -> None:
        for exploit in round_["exploits"]:
            if exploit["applied"]:
                continue
            apply_exploit(self.folder, exploit, round_["epoch"], total)
            exploit["applied"] = True
            save_record(self.folder, record)
            progress = MemberProgress.of(self.folder.state(exploit["member"]))
            progress.message = "exploit: " + lineage_text({**exploit, "epoch": round_["epoch"]})
            self.emit(progress)
