"""The cross-entropy study: the textbook formula against the log-sum-exp form, on growing logits.

Random logits (seeded, `samples` x `classes`) are scaled so that the largest one is each value of a
geometric range, cast to each dtype, and fed to both losses of `core/nn/losses.py`. The naive
`-log(exp(z_y) / sum exp(z))` fails in two ways: once a logit passes ln(largest float) (88.72 in
float32, 709.78 in float64) `exp` overflows, `inf / inf` is NaN and the mean is NaN; a little earlier
a true-class probability can underflow to 0, and `-log 0` is inf. The stable form subtracts each
row's largest logit first, so nothing it exponentiates exceeds 1 and the loss stays finite (and
exact) at any scale. Nothing is trained; the whole study takes milliseconds.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from neuraterm.core.nn.losses import cross_entropy, naive_cross_entropy
from neuraterm.core.study.spec import CE
from neuraterm.core.study.folder import FIGURES, StudyFolder
from neuraterm.core.nn.tensor import Tensor


@dataclass
class Point:
    dtype: str
    max_logit: float
    naive: float
    stable: float


@dataclass
class Summary:
    dtype: str
    overflow_at: float  # ln(largest finite value of the dtype): where exp overflows
    first_inf: float | None  # the smallest max logit where the naive loss is inf
    first_nan: float | None  # ... where it is NaN
    stable_finite: bool  # the stable loss is finite at every point
    worst_gap: float  # the largest |naive - stable| where the naive loss is still finite


def logits(ce: CE) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float64 logits whose largest value is 1, and labels."""
    rng = np.random.default_rng(ce.seed)
    base = rng.standard_normal((ce.samples, ce.classes))
    base /= base.max()
    return base, rng.integers(ce.classes, size=ce.samples)


def evaluate(ce: CE) -> list[Point]:
    base, labels = logits(ce)
    scales = np.geomspace(ce.range[0], ce.range[1], ce.points)
    points = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for dtype in ce.dtypes:
            for scale in scales:
                z = (base * scale).astype(dtype)
                naive = float(naive_cross_entropy(Tensor(z), labels).data)
                stable = float(cross_entropy(Tensor(z), labels).data)
                points.append(Point(dtype, float(scale), naive, stable))
    return points


def summarize(ce: CE, points: list[Point]) -> list[Summary]:
    out = []
    for dtype in ce.dtypes:
        mine = [p for p in points if p.dtype == dtype]
        inf = [p.max_logit for p in mine if math.isinf(p.naive)]
        nan = [p.max_logit for p in mine if math.isnan(p.naive)]
        gaps = [abs(p.naive - p.stable) for p in mine if math.isfinite(p.naive) and math.isfinite(p.stable)]
        out.append(Summary(dtype, float(np.log(np.finfo(dtype).max)), min(inf) if inf else None,
                           min(nan) if nan else None, all(math.isfinite(p.stable) for p in mine),
                           max(gaps) if gaps else float("nan")))
    return out


def to_csv(points: list[Point]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dtype", "max_logit", "naive_loss", "stable_loss", "naive_finite"])
    for p in points:
        writer.writerow([p.dtype, repr(p.max_logit), repr(p.naive), repr(p.stable), str(math.isfinite(p.naive)).lower()])
    return out.getvalue()


def _at(value: float | None) -> str:
    return "never" if value is None else f"{value:.4g}"


def table(summary: list[Summary]) -> tuple[list[str], list[list[str]]]:
    header = ["dtype", "ln(max float)", "naive: first inf at", "naive: first NaN at", "stable finite everywhere",
              "largest gap naive/stable while finite"]
    cells = [[s.dtype, f"{s.overflow_at:.2f}", _at(s.first_inf), _at(s.first_nan), "yes" if s.stable_finite else "NO",
              f"{s.worst_gap:.3g}"] for s in summary]
    return header, cells


def to_markdown(folder: StudyFolder, ce: CE, points: list[Point], summary: list[Summary], figures=()) -> str:
    from neuraterm.core.study.results import markdown_table
    # The detail around each dtype's failure: the last finite point and the first failing one.
    detail = []
    for s in summary:
        mine = [p for p in points if p.dtype == s.dtype]
        keep = set()
        for i, p in enumerate(mine):
            if i == 0 or i == len(mine) - 1 or math.isfinite(p.naive) != math.isfinite(mine[i - 1].naive) \
                    or (math.isnan(p.naive) and not math.isnan(mine[i - 1].naive)):
                keep.update({max(0, i - 1), i})
        detail += [[p.dtype, f"{p.max_logit:.4g}", f"{p.naive:.6g}", f"{p.stable:.6g}"] for i, p in enumerate(mine)
                   if i in keep]
    parts = [f"# {folder.study.name}", "", folder.study.description, "",
             f"{ce.samples} x {ce.classes} seeded random logits scaled so that the largest is each of {ce.points} "
             f"values from {ce.range[0]:g} to {ce.range[1]:g} (geometric); every point is in results.csv. "
             f"The naive loss is inf where some exp(z_y) underflows to 0 or a row's sum overflows (-log 0), and NaN "
             f"once a true class's own exp overflows (inf / inf): never below ln(max float), where exp overflows. "
             f"The stable loss subtracts each row's largest logit first.", "",
             markdown_table(*table(summary)), "", "## Around the failures", "",
             markdown_table(["dtype", "max logit", "naive loss", "stable loss"], detail)]
    if figures:
        parts += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder.path).as_posix()})"
                                           for p in figures if p.suffix == ".png"]
    return "\n".join(parts) + "\n"


def draw(folder: StudyFolder, ce: CE, points: list[Point], summary: list[Summary]) -> list:
    """One panel per dtype: both losses against the largest logit, the naive one's state shaded
    (finite, inf, NaN) and exp's overflow point marked."""
    from neuraterm.core.study.figures import pyplot, save
    plt = pyplot()
    fig, axes = plt.subplots(len(summary), 1, figsize=(8, 3.4 * len(summary)), squeeze=False)
    shades = {"inf": ("#f5b041", "naive loss inf"), "nan": ("#e74c3c", "naive loss NaN")}
    for ax, s in zip(axes[:, 0], summary):
        mine = [p for p in points if p.dtype == s.dtype]
        x = np.array([p.max_logit for p in mine])
        edges = np.sqrt(x[1:] * x[:-1])
        edges = np.concatenate([[x[0]], edges, [x[-1]]])
        labelled = set()
        for i, p in enumerate(mine):
            kind = "nan" if math.isnan(p.naive) else "inf" if math.isinf(p.naive) else None
            if kind:
                color, text = shades[kind]
                ax.axvspan(edges[i], edges[i + 1], color=color, alpha=0.25, linewidth=0,
                           label=None if kind in labelled else text)
                labelled.add(kind)
        ax.plot(x, [p.stable for p in mine], color="#1f618d", linewidth=2, label="stable (log-sum-exp)")
        finite = [(p.max_logit, p.naive) for p in mine if math.isfinite(p.naive)]
        ax.plot([f[0] for f in finite], [f[1] for f in finite], "o", ms=3, color="black", label="naive, while finite")
        ax.axvline(s.overflow_at, color="black", linestyle=":", linewidth=1.2)
        ax.annotate(f"exp overflows: ln(max {s.dtype}) = {s.overflow_at:.1f}", (s.overflow_at, 0.96),
                    xycoords=("data", "axes fraction"), xytext=(-6, 0), textcoords="offset points",
                    ha="right", va="top", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("mean cross-entropy")
        ax.set_title(f"{s.dtype}: naive non-finite from {min(v for v in (s.first_inf, s.first_nan, math.inf) if v is not None):.4g}, "
                     f"NaN from {_at(s.first_nan)}; stable {'finite everywhere' if s.stable_finite else 'NOT finite'}",
                     fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    axes[-1, 0].set_xlabel("largest logit (log)")
    fig.suptitle(f"{folder.study.name}: naive vs stable cross-entropy on growing logits")
    fig.tight_layout()
    try:
        return save(fig, folder.path / FIGURES, "ce")
    finally:
        plt.close(fig)


def run(folder: StudyFolder) -> tuple[list[Summary], list, str]:
    """Evaluate, then write results.csv, results.md and the figure; returns the summary, the figure
    files and a note (why there is no figure, when matplotlib is missing)."""
    from neuraterm.core.study.figures import PlotUnavailable
    from neuraterm.core.study.results import RESULTS_CSV, RESULTS_MD, replace_file
    ce = folder.study.ce
    points = evaluate(ce)
    summary = summarize(ce, points)
    figures, note = [], ""
    replace_file(folder.path / RESULTS_CSV, to_csv(points))  # the tables first: a figure never costs them
    replace_file(folder.path / RESULTS_MD, to_markdown(folder, ce, points, summary, figures))
    try:
        figures = draw(folder, ce, points, summary)
    except PlotUnavailable as exc:
        note = str(exc)
    except Exception as exc:  # noqa: BLE001 - as figures.draw: one line, the tables stay
        note = f"figure 'ce' could not be drawn ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    if figures:
        replace_file(folder.path / RESULTS_MD, to_markdown(folder, ce, points, summary, figures))
    return summary, figures, note
