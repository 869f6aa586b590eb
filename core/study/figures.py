"""Figures for a report, drawn from a study's results rows as PNG and SVG (the `[plot]` extra).

matplotlib is imported only here and only when a figure is drawn, with the Agg backend (no display
needed); without it `draw` raises `PlotUnavailable`, one line saying what to install. Members that
differ only by seed are drawn as their mean with the spread (minimum to maximum) shaded.

Charts (`[results] charts`): `curves` (validation accuracy, validation loss, training loss and
accuracy per epoch), `final` (test and validation accuracy against the x axis), `time` (median
seconds per epoch against the x axis, log scale), `capacity` (test accuracy against the parameter
count, log scale), `noise` (test accuracy against the noise sigma), `pbt` (a PBT study's metric per
member over epochs, each member's own line, with its exploits drawn as jumps from the donor's point). The `ce` chart belongs to the
cross-entropy study (`core/study/cross_entropy.py`). Every study whose members measured layer health
also gets `update-ratio`: the update/weight ratio per layer and epoch, a line per member.
"""
from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np

from neuraterm.core.run import checkpoint
from neuraterm.core.errors import NeuratermError
from neuraterm.core.study.spec import label, short_text, value_text
from neuraterm.core.study.folder import FIGURES, StudyFolder
from neuraterm.core.study.results import Row, groups

FORMATS = ("png", "svg")


class PlotUnavailable(NeuratermError):
    """matplotlib is not installed."""


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("figures need matplotlib: pip install 'neuraterm[plot]'") from None
    return plt


def save(fig, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = folder / f"{stem}.{fmt}"
        data = io.BytesIO()
        fig.savefig(data, format=fmt, dpi=120, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        checkpoint.write_atomic(path, data.getvalue())
        paths.append(path)
    return paths


def _config_value(row: Row, key: str):
    if key == "preset":
        return row.member.values.get("preset")
    section, name = key.split(".")
    return getattr(getattr(row.member.config, section), name)


def _x_axis(folder: StudyFolder) -> str | None:
    axes = [a for a in folder.study.axes if a != "train.seed"]
    return folder.study.results.x or (axes[0] if axes else None)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_scale(values) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) >= 20


def _curves(plt, folder: StudyFolder, rows: list[Row]):
    panels = (("val_acc", "validation accuracy"), ("val_loss", "validation loss"),
              ("train_acc", "training accuracy"), ("train_loss", "training loss"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    grouped = groups(rows)
    colors = plt.get_cmap("tab10" if len(grouped) <= 10 else "tab20")
    for i, (group, members) in enumerate(grouped.items()):
        color = colors(i % colors.N)
        if not any(r.history for r in members):  # stopped before its first epoch ended: only named
            state = members[0].state
            axes.flat[0].plot([], [], color=color, linestyle="--", label=f"{group} ({state}, no epoch)")
        # a [[fork]] member is drawn from its fork epoch: the epochs before are its parent's line
        start = members[0].member.fork[1] if members[0].member.fork else 1
        for ax, (key, title) in zip(axes.flat, panels):
            series = [[h[key] for h in r.history][start - 1:] for r in members if r.history]
            if not series:
                continue
            length = max(len(s) for s in series)
            grid = np.full((len(series), length), np.nan)
            for j, s in enumerate(series):
                grid[j, :len(s)] = s
            grid[~np.isfinite(grid)] = np.nan
            epochs = np.arange(start, start + length)
            with warnings.catch_warnings():  # an epoch that no seed reached is NaN, silently
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = np.nanmean(grid, 0), np.nanmin(grid, 0), np.nanmax(grid, 0)
            scale = 100 if key.endswith("acc") else 1
            ax.plot(epochs, scale * mean, color=color, label=group, marker="o" if length <= 3 else None, ms=3)
            if len(series) > 1:
                ax.fill_between(epochs, scale * low, scale * high, color=color, alpha=0.2, linewidth=0)
            if any(r.state == "diverged" for r in members):
                ax.plot(epochs[-1], scale * mean[-1], marker="x", color=color, ms=8)
            ax.set_title(title + (" (%)" if scale == 100 else ""))
    from matplotlib.ticker import MaxNLocator
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 1]:
        if all(v > 0 for line in ax.get_lines() for v in line.get_ydata() if np.isfinite(v)) and ax.get_lines():
            ax.set_yscale("log")
    seeds = " (mean and min-max over seeds)" if len(folder.study.seeds) > 1 else ""
    fig.suptitle(f"{folder.study.name}: learning curves{seeds}")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _by_x(folder: StudyFolder, rows: list[Row], metric: str):
    """The x axis key and, per group in the study's order, (x value, finite values of `metric`, tick text)."""
    key = _x_axis(folder)
    points = []
    for group, members in groups(rows).items():
        values = [float(r.metrics[metric]) for r in members if r.metrics[metric] is not None
                  and math.isfinite(float(r.metrics[metric]))]
        x = _config_value(members[0], key) if key else group
        given = members[0].member.values.get(key, x) if key else group
        text = value_text(x) if given == x else f"{value_text(given)}\n({value_text(x)})"
        if not values:  # a group with no value (diverged, say): its tick says why, no line passes through it
            text += "\n(" + ", ".join(dict.fromkeys(r.state for r in members)) + ")"
        points.append((x, values, text))
    return key, points


def _against_x(plt, folder: StudyFolder, rows: list[Row], metrics: list[tuple[str, str]], ylabel: str, log_y: bool):
    """Mean (and min-max over seeds) of each metric against the x axis: log scale for a wide numeric
    range (batch sizes, learning rates), one tick per member's value."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    key = None
    for metric, name in metrics:
        key, points = _by_x(folder, rows, metric)
        xs = [p[0] for p in points]
        numeric = _numeric(xs)
        positions = xs if numeric else list(range(len(xs)))
        scale = 100 if metric.endswith("acc") else 1
        # The spread is clamped at zero: seeds that agree give mean - min = -1e-17 in floating point.
        shown = [(x, scale * np.mean(v), max(0.0, scale * (np.mean(v) - min(v))), max(0.0, scale * (max(v) - np.mean(v))))
                 if v else (x, np.nan, 0.0, 0.0) for x, (_, v, _) in zip(positions, points)]
        if all(np.isnan(s[1]) for s in shown):
            continue
        ax.errorbar([s[0] for s in shown], [s[1] for s in shown], yerr=[[s[2] for s in shown], [s[3] for s in shown]],
                    marker="o", capsize=3, label=name)
        if numeric and _log_scale(xs):
            ax.set_xscale("log")
        ax.set_xticks(positions, [p[2] for p in points], rotation=0 if numeric else 30, ha="center" if numeric else "right")
        ax.minorticks_off()
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(label(key) if key else "member")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    if len(metrics) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


def _time(plt, folder, rows):
    fig = _against_x(plt, folder, rows, [("s_per_epoch", "median seconds per epoch")], "seconds per epoch (log)", True)
    fig.axes[0].set_title(f"{folder.study.name}: time per epoch")
    return fig


def _final(plt, folder, rows):
    fig = _against_x(plt, folder, rows, [("test_acc", "test"), ("val_acc", "validation (last epoch)")],
                     "accuracy (%)", False)
    fig.axes[0].set_title(f"{folder.study.name}: final accuracy")
    return fig


def _capacity(plt, folder, rows):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for group, members in groups(rows).items():
        params = [r.metrics["parameters"] for r in members if r.metrics["parameters"]]
        accs = [100 * r.metrics["test_acc"] for r in members if r.metrics["test_acc"] is not None]
        if params and accs:
            ax.scatter([params[0]] * len(accs), accs, s=18)
            ax.annotate(group, (params[0], float(np.mean(accs))), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{folder.study.name}: parameters vs accuracy")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def _noise(plt, folder, rows):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for group, members in groups(rows).items():
        sigmas = sorted({s for r in members for s in r.noise})
        if not sigmas:
            continue
        means = [100 * np.mean([r.noise[s] for r in members if s in r.noise]) for s in sigmas]
        ax.plot(sigmas, means, marker="o", ms=3, label=group)
    ax.set_xlabel("Gaussian pixel noise sigma (pixels on a 0..1 scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{folder.study.name}: noise robustness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _health(plt, folder, rows):
    """log10 of the median update/weight ratio per epoch, a panel per layer, a line per member group
    (mean over seeds), with cs231n's healthy 1e-3 and the alert thresholds marked."""
    from neuraterm.core.run import alerts
    with_health = [r for r in rows if r.health]
    layers = with_health[0].health[-1].layers
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), sharey=True, squeeze=False)
    grouped = groups(with_health)
    colors = plt.get_cmap("tab10" if len(grouped) <= 10 else "tab20")
    for k, (group, members) in enumerate(grouped.items()):
        for i, ax in enumerate(axes[0]):
            # by epoch number: a checkpoint thins old epochs (health.kept_epochs) and members stop at
            # different epochs (early stopping, divergence), so positions in two histories differ
            epochs = sorted({h.epoch for r in members for h in r.health})
            column = {e: c for c, e in enumerate(epochs)}
            grid = np.full((len(members), len(epochs)), np.nan)
            for j, r in enumerate(members):
                for h in r.health:
                    ratio = h.update_ratio_median[i] if i < len(h.layers) else None
                    grid[j, column[h.epoch]] = np.log10(ratio) if ratio and ratio > 0 else np.nan
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(grid, 0)
            length = len(epochs)
            flagged = any(a.layer == layers[i] and a.kind.startswith("updates") for r in members for a in r.alerts)
            ax.plot(epochs, mean, color=colors(k % colors.N), marker="o" if length <= 3 else None, ms=3,
                    label=group if i == 0 else None, linestyle="--" if flagged else "-")
    from matplotlib.ticker import MaxNLocator
    for i, ax in enumerate(axes[0]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.axhline(-3, color="green", alpha=0.4, linewidth=1)
        for bound in (alerts.RATIO_LOW, alerts.RATIO_HIGH):
            ax.axhline(np.log10(bound), color="red", alpha=0.3, linewidth=1, linestyle=":")
        ax.set_title(layers[i])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("log10 update / weight")
    fig.suptitle(f"{folder.study.name}: update/weight ratio per layer (green: healthy 1e-3; dotted: alert "
                 f"thresholds; dashed: members flagged; no line: no update at all)")
    fig.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _pbt(plt, folder, rows):
    """Each member's own metric over epochs (from the PBT record's rounds, then its folder), broken where
    it exploited: a cross where its line was abandoned, a dashed jump from the donor's point at that
    epoch (a dot in the member's colour) to where the member went on."""
    from neuraterm.core.study import pbt
    record = pbt.load_record(folder)
    metric = folder.study.pbt.metric
    scale = 100 if metric.endswith("acc") else 1
    own: dict[str, dict[int, float]] = {r.name: {} for r in rows}
    last = 0
    for round_ in record["rounds"]:
        for name, points in round_.get("curves", {}).items():
            own.setdefault(name, {}).update({int(e): float(v) for e, v in points})
        last = round_["epoch"]
    for r in rows:
        own[r.name].update({h["epoch"]: h[metric] for h in r.history if h["epoch"] > last and math.isfinite(h[metric])})
    fig, ax = plt.subplots(figsize=(9, 5.2))
    colors = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")
    for round_ in record["rounds"]:
        ax.axvline(round_["epoch"], color="0.85", linewidth=1, zorder=0)
    for i, r in enumerate(rows):
        color, points = colors(i % colors.N), own[r.name]
        cuts = [e["epoch"] for e in r.exploits]
        bounds = [0, *cuts, max(points, default=0)]
        final = ", ".join(f"{label(k)} {short_text(v)}" for k, v in r.final.items())
        label_ = r.name + (f" (final {final})" if final else "")
        for j, (low, high) in enumerate(zip(bounds, bounds[1:])):
            epochs = [e for e in sorted(points) if low < e <= high]
            ax.plot(epochs, [scale * points[e] for e in epochs], color=color, marker="o" if len(points) <= 3 else None,
                    ms=3, label=label_ if j == 0 else None)
        for e in r.exploits:
            at, donor = e["epoch"], e.get("donor_score")
            if at in points:
                ax.plot([at], [scale * points[at]], marker="x", color=color, ms=8, linestyle="none")
            if donor is None:
                continue
            if at in points:  # the jump itself: from where the member was to the donor's point
                ax.plot([at, at], [scale * points[at], scale * donor], color=color, linestyle=":", linewidth=1)
            after = [x for x in sorted(points) if x > at][:1]
            ax.plot([at, *after], [scale * donor, *[scale * points[x] for x in after]], color=color, linestyle="--",
                    linewidth=1.2)
            ax.plot([at], [scale * donor], marker="o", color=color, ms=6, markeredgecolor="black", linestyle="none")
            ax.annotate(f"<- {e['donor']}", (at, scale * donor), fontsize=7, xytext=(4, -10), textcoords="offset points",
                        color=color)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    names = {"val_acc": "validation accuracy", "val_loss": "validation loss", "train_acc": "training accuracy",
             "train_loss": "training loss"}
    ax.set_ylabel(names[metric] + (" (%)" if scale == 100 else ""))
    ax.set_title(f"{folder.study.name}: PBT, {names[metric]} per member (x: line left at an exploit; dashed: "
                 f"the copy of the donor's point)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


CHARTS = {"pbt": _pbt, "curves": _curves, "final": _final, "time": _time, "capacity": _capacity, "noise": _noise}


def draw(folder: StudyFolder, rows: list[Row]) -> tuple[list[Path], list[str]]:
    """Every chart the study asks for, under `figures/`: the files written, and one line for each chart
    that could not be drawn (a figure is never worth the study's tables: the caller says the line and
    goes on). Raises PlotUnavailable without matplotlib."""
    plt = pyplot()
    written, problems = [], []
    for chart in folder.study.results.charts:
        if chart not in CHARTS:
            continue
        fig = None
        try:
            fig = CHARTS[chart](plt, folder, rows)
            written += save(fig, folder.path / FIGURES, chart)
        except Exception as exc:  # noqa: BLE001 - any drawing error costs this figure only
            text = " ".join(str(exc).split()) or type(exc).__name__
            problems.append(f"figure {chart!r} could not be drawn ({type(exc).__name__}: {text[:200]})")
            plt.close("all")  # a chart that failed half-way leaves its figure open
        finally:
            if fig is not None:
                plt.close(fig)
    if any(r.health for r in rows):  # every study whose members measured layer health gets this one
        fig = None
        try:
            fig = _health(plt, folder, rows)
            written += save(fig, folder.path / FIGURES, "update-ratio")
        except Exception as exc:  # noqa: BLE001 - any drawing error costs this figure only
            text = " ".join(str(exc).split()) or type(exc).__name__
            problems.append(f"figure 'update-ratio' could not be drawn ({type(exc).__name__}: {text[:200]})")
            plt.close("all")
        finally:
            if fig is not None:
                plt.close(fig)
    return written, problems
