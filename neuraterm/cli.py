"""The `neuraterm` command: headless training, resume, evaluation, listings, and the TUI.

Exit codes: 0 done, 1 the run failed (diverged, disk full; the last checkpoint is kept), 2 bad input,
130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (a checkpoint is saved first). Every user error is one
line on stderr, never a traceback.
"""
from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import typing
from pathlib import Path

import click

if typing.TYPE_CHECKING:
    from neuraterm.core import config as config_mod

# Modules are imported by the commands that use them: `--help`, a usage error and `runs` start without
# NumPy or the engine (bench/startup.py measures it).

from neuraterm import __version__
from neuraterm.core.backend import DEVICES
from neuraterm.core.screen_text import visible
from neuraterm.core.errors import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, STOP_SIGNALS, NeuratermError,
                                   RunFailed)



class Stopped(Exception):
    """The run stopped at a signal's request after saving; carries the exit code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def with_overrides(config: config_mod.Config, overrides: tuple[str, ...] = (), **options) -> config_mod.Config:
    """`--set` assignments first, then the dedicated options (`epochs=`, `seed=`...), each validated like a preset."""
    from neuraterm.core import config as config_mod
    for assignment in overrides:
        config = config_mod.apply_override(config, assignment)
    keys = {"epochs": "train.epochs", "seed": "train.seed", "device": "train.device", "data_dir": "data.data_dir",
            "tf32": "train.tf32", "graphs": "train.graphs", "threads": "train.threads"}
    for name, value in options.items():
        if value is not None:
            config = config_mod.apply_override(config, f"{keys[name]}={json.dumps(value)}",
                                               f"--{name.replace('_', '-')} {value}")
    return config


def run_training(config: config_mod.Config, run_dir: Path, resume: bool) -> None:
    """Run with the headless printer. The first SIGINT/SIGTERM/SIGHUP asks the loop to stop, which saves
    at the next step boundary; a second one aborts at once, except while a checkpoint is being written."""
    from neuraterm.core.run.trainer import Trainer
    from neuraterm.printer import HeadlessPrinter
    printer = HeadlessPrinter()
    trainer = Trainer(config, run_dir, [printer], resume=resume, download_progress=printer.download)
    received: list[int] = []

    def on_signal(signum, frame):
        if received and not trainer.control.saving:
            raise KeyboardInterrupt
        received.append(signum)
        trainer.control.stop()
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        trainer.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received and getattr(trainer, "stopped", False):
        raise Stopped(STOP_SIGNALS[received[0]])


# -- options ---------------------------------------------------------------------------------------
TRAIN_OPTIONS = {
    "preset": click.option("--preset", help="Preset name or path to a TOML file (default: quick)."),
    "overrides": click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                              help="Override a config value, e.g. optimizer.lr=0.01."),
    "epochs": click.option("--epochs", type=int, help="Total number of epochs."),
    "seed": click.option("--seed", type=int, help="Seed for initialization, splits, shuffling and dropout."),
    "device": click.option("--device", type=click.Choice(DEVICES), help="Where to compute."),
    "threads": click.option("--threads", type=int,
                            help="BLAS threads on the CPU (default: 1 for small models, the free cores for big ones)."),
    "data_dir": click.option("--data-dir", type=click.Path(file_okay=False),
                             help="A folder holding the dataset's original files."),
    "tf32": click.option("--tf32/--no-tf32", default=None, help="TF32 tensor-core matmuls on the GPU (faster, ~3 digits)."),
    "graphs": click.option("--graphs/--no-graphs", default=None,
                           help="Replay each GPU training step as a CUDA graph (default on)."),
    "out": click.option("--out", type=click.Path(), help="The model folder (default runs/<preset>-<time>)."),
}
RESUMABLE = ("overrides", "epochs", "seed", "device", "threads", "data_dir", "tf32", "graphs")


def options(names=tuple(TRAIN_OPTIONS)):
    """The training options named, in one order, for every command that takes them."""
    def decorate(fn):
        for name in reversed([n for n in TRAIN_OPTIONS if n in names]):
            fn = TRAIN_OPTIONS[name](fn)
        return fn
    return decorate


class Main(click.Group):
    """`neuraterm [OPTIONS]` trains like `neuraterm train [OPTIONS]`; with no arguments it opens the app."""

    def parse_args(self, ctx, args):
        if not args and not ctx.resilient_parsing:
            args = ["tui"]
        return super().parse_args(ctx, args)


@click.group(cls=Main, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@options()
@click.version_option(__version__, prog_name="neuraterm")
@click.pass_context
def cli(ctx, **kwargs):
    """neuraterm: train neural networks in the terminal.

    With no arguments it opens the terminal app; with training options (--preset, --epochs, ...) it
    trains headless, exactly like 'neuraterm train'.
    """
    given = {k: v for k, v in kwargs.items() if v not in (None, ())}
    if ctx.invoked_subcommand is None:
        ctx.invoke(train, **kwargs)
    elif given:
        raise click.UsageError(f"training options go after 'train' or with no command, not before "
                               f"'{ctx.invoked_subcommand}'")


@cli.command()
@options()
def train(preset=None, out=None, overrides=(), **opts):
    """Train a preset headless and write its model folder."""
    from neuraterm.core.run import checkpoint
    from neuraterm import presets
    config = with_overrides(presets.load(preset or "quick"), overrides, **opts)
    run_dir = Path(out) if out else checkpoint.new_run_dir(Path("runs"), config.name)
    run_training(config, run_dir, resume=False)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@options(RESUMABLE)
def resume(run_dir, overrides=(), **opts):
    """Continue training a model folder (--epochs is the new total).

    Keys that define the data split, the model or its initialization cannot change; epochs, learning
    rate, schedule, early stopping, device and threads can."""
    from neuraterm.core.run import checkpoint
    from neuraterm.core import config as config_mod
    snap = checkpoint.load(Path(run_dir))
    config = with_overrides(snap.config, overrides, **opts)
    changed = config_mod.frozen_changes(snap.config, config)
    if "data.dataset" in changed and moved_data(snap.config.data.dataset, config.data.dataset):
        changed.remove("data.dataset")  # the same data at a new path: its recorded SHA-256 is checked on load
    if changed:
        raise NeuratermError(f"{', '.join(changed)} cannot change on resume (they define the data split, the model "
                             f"or its initialization); train a new run instead")
    done = snap.epoch
    if config.train.epochs <= done and not snap.train_state.get("partial") and snap.report is not None:
        raise NeuratermError(f"{run_dir} has already trained {done} epochs; pass --epochs N with N > {done}")
    run_training(config, Path(run_dir), resume=True)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--epoch", "at", type=int, required=True, help="The kept epoch to start from ('runs' lists them).")
@options(("preset", "overrides", "epochs", "device", "threads", "data_dir", "tf32", "graphs", "out"))
def fork(run_dir, at, preset=None, out=None, overrides=(), **opts):
    """Train a new model folder from a kept epoch of RUN_DIR with changed settings.

    The fork's first K epochs are the parent's (weights, optimizer moments, data order, history); it
    may change what resume may change, and the optimizer (whose moments then start from zero).
    --preset takes the fork's whole config (- reads TOML on stdin); --epochs is the new total
    (default: the parent's). The parent folder is only read."""
    from neuraterm import presets
    from neuraterm.core.run import fork as fork_mod
    source = fork_mod.read(Path(run_dir), at)
    base = presets.load(preset) if preset else source.snap.config
    config = with_overrides(base, overrides, **opts)
    fork_mod.check(source, config)
    target = Path(out) if out else fork_mod.default_folder(source)
    plan = fork_mod.create(source, config, target)
    from neuraterm.core.run.status import change_text
    changed = ", ".join(change_text(k, *v) for k, v in plan.changes.items()) or "nothing changed"
    click.echo(f"fork of {source.parent} at epoch {at} ({changed}): {plan.run_dir}")
    if plan.fresh_optimizer:
        click.echo(f"optimizer {source.snap.config.optimizer.name} -> {config.optimizer.name}: its moments start "
                   f"from zero (the parent's belong to another update rule)")
    run_training(config, plan.run_dir, resume=True)


def moved_data(saved: str, new: str) -> bool:
    """Whether a resume names your own data at another path (same CSV label column): allowed, since
    loading compares its content with the SHA-256 the model folder recorded."""
    from neuraterm.core.data import csv_table, custom
    return (custom.is_path(saved) and custom.is_path(new)
            and csv_table.split_spec(saved)[1] == csv_table.split_spec(new)[1])


def parse_sigmas(text: str) -> list[float]:
    try:
        sigmas = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise NeuratermError(f"--noise {text!r}: expected numbers separated by commas") from None
    if not all(math.isfinite(s) and s >= 0 for s in sigmas):
        raise NeuratermError(f"--noise {text!r}: sigmas must be finite and >= 0 (pixel units, 0..1 scale)")
    return sigmas


@cli.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--noise", default="0,0.1,0.2,0.3", show_default=True,
              help="Comma-separated sigmas of Gaussian pixel noise (pixels on a 0..1 scale).")
@click.option("--data-dir", type=click.Path(file_okay=False))
def evaluate_cmd(run_dir, noise, data_dir):
    """Evaluate a model folder's last checkpoint on its test split (with Gaussian-noise robustness)."""
    from neuraterm.core.run.evaluate import evaluate_folder
    from neuraterm.printer import HeadlessPrinter
    sigmas = parse_sigmas(noise)
    result = evaluate_folder(Path(run_dir), sigmas, data_dir)
    if not result["finished"]:
        click.echo(f"{visible(run_dir)}: the run has not finished; evaluating its checkpoint after epoch "
                   f"{result['epoch']} of {result['epochs']}{' (and part of the next)' if result['mid_epoch'] else ''}")
    HeadlessPrinter().print_report(result, run_dir)


@cli.command("inspect")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--epoch", type=int, help="The health of this epoch (default: the last one trained).")
@click.option("--json", "as_json", is_flag=True, help="Print every epoch's health and the alerts as JSON.")
def inspect_cmd(run_dir, epoch, as_json):
    """Layer health of a model folder (weights, gradients, updates, activations) and the alerts it raises."""
    from neuraterm.core.run import alerts, checkpoint, health
    from neuraterm.printer import health_table
    snap = checkpoint.load(Path(run_dir))
    history = health.history_of(snap.health)
    if not history:
        raise NeuratermError(f"{run_dir}: no layer health saved (trained with train.health_every = 0, "
                             f"or by a neuraterm without layer health)")
    epochs = [h.epoch for h in history]
    if epoch is not None:
        if epoch not in epochs:
            nearest = ""
            if epochs[0] < epoch < epochs[-1]:  # thinned away, or between two measured epochs
                nearest = f" (nearest: {max(e for e in epochs if e < epoch)} and {min(e for e in epochs if e > epoch)})"
            raise NeuratermError(f"--epoch {epoch}: {run_dir} has no layer health of that epoch{nearest}; it keeps "
                                 f"{health.describe_kept(epochs)}")
        history = [h for h in history if h.epoch == epoch]
    found = alerts.summary(history)
    if as_json:
        click.echo(json.dumps({"run_dir": str(run_dir), "checkpoint_epoch": snap.epoch,
                               "probe_size": history[-1].probe_size,
                               "epochs": [{"epoch": h.epoch, "layers": health.layer_rows(h),
                                           "class_confidence": h.class_confidence} for h in history],
                               "alerts": [a.as_dict() for a in found]}, indent=1))
        return
    health_table(history[-1], found)


@cli.command("presets")
def presets_cmd():
    """List the shipped presets."""
    from neuraterm import presets
    for name in presets.names():
        config = presets.load(name)
        click.echo(f"{name:16} {config.description}")


@cli.command("datasets")
@click.argument("paths", nargs=-1)
@click.option("--data-dir", type=click.Path(file_okay=False))
def datasets_cmd(paths, data_dir):
    """List every dataset, its size and whether it is available on this machine; with PATHS, check your own."""
    from neuraterm.core.data import registry
    from neuraterm.core.data import custom
    summaries = [custom.describe(path, validate=True) for path in paths]
    click.echo(f"{'name':16} {'classes':>7} {'train':>9} {'test':>8}  where")
    for summary in summaries:
        click.echo(visible(f"{summary.name:16} {summary.classes:>7} {summary.train:>9,} {summary.test:>8,}  "
                           f"{summary.path} ({summary.format}, {' x '.join(map(str, summary.image_shape))}, checked)"))
        names = summary.class_names
        if names == tuple(str(i) for i in range(len(names))):
            click.echo(f"{'':16} classes: {', '.join(names)}")
        else:  # label: name, as the file wrote it (escaped: a name is data, never a terminal sequence)
            click.echo(f"{'':16} classes (label: name): " + ", ".join(f"{i}: {visible(name)}" for i, name in enumerate(names)))
        for note in summary.notes:
            click.echo(f"{'':16} note: {visible(note)}")
    if paths:
        return
    for name, spec in registry.DATASETS.items():
        where = registry.locate(name, Path(data_dir) if data_dir else None)
        click.echo(f"{name:16} {spec.classes:>7} {spec.train:>9,} {spec.test:>8,}  "
                   f"{where or 'not here (downloads to ' + str(registry.cache_dir() / name) + ')'}")
    click.echo("your own data: --set data.dataset=PATH, a .npz (x, y), a .csv (label first, or data.csv#column), "
               "a folder of x.npy and y.npy, or a folder of images per class; 'neuraterm datasets PATH' checks it")


@cli.command("runs")
@click.argument("root", default="runs", type=click.Path(file_okay=False))
@click.option("--sort", "sort_key", default="updated", show_default=True,
              help="name, status, dataset, epoch, val_acc, best_val_acc, test_acc, parameters or updated.")
def runs_cmd(root, sort_key):
    """List model folders with their status and metrics (a folder, or the folders inside it)."""
    from neuraterm.core.run import status as runs
    from neuraterm.printer import runs_table
    found = runs.sort(runs.find(Path(root)), sort_key)
    if not found:
        click.echo(f"no model folders in {root}")
        return
    runs_table(found)


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def export_cmd(run_dir, out, force):
    """Write a .npz for PyTorch (OUT gets '.npz' if it lacks it): an nn.Sequential state dict (the keys
    that start with a layer index) and the input transform and class names that reproduce 'eval'."""
    from neuraterm.core.run import checkpoint
    import numpy as np
    from neuraterm.core.run.export import INPUT_KEYS, export_arrays
    snap = checkpoint.load(Path(run_dir))
    target = Path(out if out.endswith(".npz") else out + ".npz")
    if target.exists() and not force:
        raise NeuratermError(f"{target} exists; pass --force to replace it")
    arrays = export_arrays(snap)
    data = io.BytesIO()
    np.savez(data, **arrays)
    checkpoint.write_atomic(target, data.getvalue())
    click.echo(f"wrote {target} (epoch {snap.epoch}): {', '.join(k for k in arrays if k not in INPUT_KEYS)}; "
               f"inputs = (values * input_scale - input_mean) / input_std, and class_names")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@cli.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--public", is_flag=True, help="Allow a non-loopback --host (anyone with the token controls your runs).")
@click.option("--token", default=None, help="The token the page asks for (default: a new random one per server).")
@click.option("--no-token", is_flag=True, help="No token (loopback --host only, never with --public).")
def serve(run_dir, host, port, public, token, no_token):
    """Serve the app to a browser (each tab is a viewer; with RUN_DIR, of that run's dashboard).

    Like Jupyter, the page needs a token: open the URL it prints (http://127.0.0.1:8000/?token=...);
    the browser then keeps it as a cookie. It listens on 127.0.0.1 unless --public is given: reach it
    through 'ssh -L 8000:localhost:8000 HOST'."""
    from neuraterm.core.run import checkpoint
    import shlex
    try:
        from neuraterm.web_server import TokenServer, new_token
    except ImportError:
        raise NeuratermError("neuraterm serve needs the web extra: pip install 'neuraterm[web]'") from None
    if host not in LOOPBACK and not public:
        raise NeuratermError(f"--host {host} would let anyone who can reach it and has the token control your "
                             f"runs; use ssh -L with the default 127.0.0.1, or pass --public")
    if no_token and (public or host not in LOOPBACK):
        raise NeuratermError("--no-token is allowed on a loopback --host only, never with --public")
    if no_token and token is not None:
        raise NeuratermError("--token and --no-token contradict each other; pass one")
    if token is not None and (len(token) < 8 or not token.isascii() or not token.isprintable() or " " in token):
        raise NeuratermError("--token must be at least 8 printable ASCII characters without spaces")
    from neuraterm.core.run import child
    from neuraterm.core.study.spec import STUDY_FILE
    if run_dir and not checkpoint.is_run_folder(Path(run_dir)) and not (Path(run_dir) / STUDY_FILE).is_file():
        raise NeuratermError(f"{visible(run_dir)}: not a neuraterm model folder or study folder")
    if host not in LOOPBACK:
        say(f"warning: serving on {host}:{port} to anyone who reaches it and has the token; prefer ssh -L")
    command = child.command(*(["watch", str(Path(run_dir).resolve())] if run_dir else ["tui"]))
    TokenServer(shlex.join(command), None if no_token else (token or new_token()), host=host, port=port,
                title="neuraterm").serve()


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def watch(run_dir):
    """Open the dashboard of any run folder: its history so far, then live while a process trains it,
    with pause (p), stop (x) and save now (s) working from here. Several viewers may watch one run.
    A study folder opens the Study screen: every member live, stop and resume them from there."""
    from neuraterm.core.run import checkpoint
    from neuraterm.core.study.spec import STUDY_FILE
    if not sys.stdout.isatty() and "TEXTUAL_DRIVER" not in os.environ:
        raise NeuratermError("watch needs a terminal; use 'ssh -t', 'neuraterm serve RUN_DIR', or 'neuraterm runs'")
    if not checkpoint.is_run_folder(Path(run_dir)) and not (Path(run_dir) / STUDY_FILE).is_file():
        raise NeuratermError(f"{run_dir}: not a neuraterm model folder or study folder")
    from neuraterm.tui.app import run_app
    run_app(watch_dir=run_dir)


@cli.command()
@click.option("--preset", help="Open on the dashboard with this preset.")
@click.option("--start", is_flag=True, help="Start training the preset at once.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Open a model folder.")
def tui(preset, start, resume_dir):
    """Open the terminal app."""
    from neuraterm.core.run import checkpoint
    if not sys.stdout.isatty() and "TEXTUAL_DRIVER" not in os.environ:  # textual-serve drives it through pipes
        raise NeuratermError("the app needs a terminal; use 'ssh -t' or train headless with --preset NAME")
    if preset:
        from neuraterm import presets
        presets.load(preset)
    if resume_dir:
        checkpoint.load(Path(resume_dir))
    from neuraterm.tui.app import run_app
    run_app(preset=preset, start=start, resume_dir=resume_dir)


# -- studies ---------------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise NeuratermError(f"--seeds {text!r}: expected integers separated by commas") from None


@cli.command("study")
@click.argument("study_ref", metavar="NAME_OR_TOML_OR_FOLDER")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change a config value of every member, e.g. data.dataset=mnist-5k.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of every member.")
@click.option("--seeds", help="Repeat every member over these seeds, e.g. 0,1,2.")
@click.option("--jobs", type=int, default=0, help="Members trained at once (default 1, or one per GPU).")
@click.option("--threads", type=int, default=0, help="BLAS threads per member (default: each member chooses; with --jobs N at most cores // N).")
@click.option("--ray", "ray_address", metavar="local|ADDRESS",
              help="Run the members as Ray Tune trials: a local Ray, or join a cluster (needs neuraterm[ray]).")
@click.option("--storage", metavar="URI",
              help="With --ray ADDRESS on machines without a shared disk: where members' checkpoints travel "
                   "(a folder every node reaches, or s3://, gs://...).")
@click.option("--verbose", is_flag=True, help="With --ray: show Ray's and Tune's own output (else in <study>/ray/driver.log).")
@click.option("--out", type=click.Path(file_okay=False), help="The study folder (default studies/<name>).")
@click.option("--results-only", is_flag=True, help="Only re-draw results.csv, results.md and the figures.")
def study_cmd(study_ref, overrides, epochs, seeds, jobs, threads, ray_address, storage, verbose, out, results_only):
    """Run a study: its members as model folders under studies/<name>/, then its results table and figures.

    A study run again continues: finished members are skipped, interrupted ones resume. Pass a study
    folder to continue it or re-draw its results. Exits 0 when every member finished (or diverged, or
    was pruned), 1 when members failed or did not finish (one line names them and their logs), 2 when
    the study could not start, 130/143/129 when stopped by a signal."""
    from neuraterm.core.study import spec as study_mod, results as study_results
    from neuraterm.core.study.folder import StudyFolder
    from neuraterm.printer import StudyPrinter, study_table
    if jobs < 0 or threads < 0:
        raise NeuratermError("--jobs and --threads must be >= 0")
    if (storage or verbose) and not ray_address:
        raise NeuratermError(f"{'--storage' if storage else '--verbose'} goes with --ray")
    study = study_mod.with_overrides(study_mod.load(study_ref), overrides, epochs,
                                     parse_seeds(seeds) if seeds is not None else None)
    given = Path(study_ref)
    path = Path(out) if out else (given if (given / study_mod.STUDY_FILE).is_file() else Path("studies") / study.name)
    folder = StudyFolder.create(study, path)
    if folder.replanned:
        say(f"note: no member of {folder.path} had started, so it now holds this study ({'; '.join(folder.replanned)})")
    code = 0
    if study.kind == "ce":
        return _ce_study(folder)
    if not results_only:
        for line in folder.missing_data():
            say(f"note: {line}")
        names = [m.name for m in folder.members]
        click.echo(f"{study.name}: {len(names)} members in {folder.path}" + (f" (Ray: {ray_address})" if ray_address else ""))
        with StudyPrinter(names) as printer:
            if ray_address:
                from neuraterm.core.study import ray_tune as study_ray
                code = study_ray.run(folder, ray_address, jobs, [printer], threads, storage, verbose)
            else:
                from neuraterm.core.study.runner import LocalRunner, default_jobs
                if study.scheduler == "pbt":
                    from neuraterm.core.study.pbt import LocalPbt as LocalRunner
                code = LocalRunner(folder, jobs or default_jobs(folder), [printer], threads).run()
    rows = study_results.write(folder)  # the tables first: nothing after this can cost them
    figures = []
    if code == 0:
        from neuraterm.core.study import figures as study_figures
        try:
            figures, problems = study_figures.draw(folder, rows)
        except study_figures.PlotUnavailable as exc:
            problems = [str(exc)]
        for problem in problems:
            say(f"note: {problem}")
        if figures:
            study_results.write(folder, rows, figures)  # results.md again, now linking its figures
    study_table(*study_results.table(folder, rows), title=f"{study.name}: {folder.path / study_results.RESULTS_MD}")
    if figures:
        click.echo(f"figures: {', '.join(str(p) for p in figures if p.suffix == '.png')} (and .svg)")
    if code == 0 and not results_only:
        from neuraterm.core.study.runner import shortfall
        line = shortfall(folder)
        if line:
            say(f"error: {line}")
            return EXIT_FAILED
    return code


def _ce_study(folder) -> int:
    from neuraterm.core.study import cross_entropy as study_ce
    from neuraterm.core.study.results import RESULTS_MD
    from neuraterm.printer import study_table
    summary, figures, note = study_ce.run(folder)
    if note:
        say(f"note: {note}")
    study_table(*study_ce.table(summary), title=f"{folder.study.name}: {folder.path / RESULTS_MD}")
    if figures:
        click.echo(f"figures: {', '.join(str(p) for p in figures if p.suffix == '.png')} (and .svg)")
    return 0


@cli.command("studies")
def studies_cmd():
    """List the shipped studies with their member counts."""
    from neuraterm.core.study import spec as study_mod
    from neuraterm.presets import studies
    for name in studies.names():
        study = study_mod.load(name)
        count = f"{study_mod.member_count(study):>3} members" if study.kind == "train" else "evaluated  "
        click.echo(f"{name:18} {count}  {study.description}")


# -- the entry point -------------------------------------------------------------------------------
def say(message: str) -> None:
    """One line on stderr: control characters (a newline or an escape sequence in a path) are shown escaped."""
    message = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    try:
        print(f"neuraterm: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass


def main(args: list[str] | None = None) -> int:
    """Run the command line; every way it can end is an exit code and at most one line on stderr."""
    try:
        result = cli.main(args, prog_name="neuraterm", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "neuraterm"
        say(f"error: {exc.format_message()} (see '{command} --help')")
        return EXIT_BAD_INPUT
    except click.exceptions.ClickException as exc:
        say(f"error: {exc.format_message()}")
        return EXIT_BAD_INPUT
    except NeuratermError as exc:
        say(f"error: {exc}")
        return EXIT_BAD_INPUT
    except RunFailed as exc:
        say(f"error: {exc}")
        return EXIT_FAILED
    except Stopped as exc:
        return exc.code
    except (KeyboardInterrupt, click.exceptions.Abort):
        say("interrupted; the last saved checkpoint is kept")
        return EXIT_INTERRUPTED
    except OSError as exc:
        say(f"error: {getattr(exc, 'filename', '') or ''} {exc.strerror or exc}".replace("None ", "").strip())
        return EXIT_BAD_INPUT
