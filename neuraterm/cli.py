"""The `neuraterm` command: headless training, resume, evaluation, listings, and the TUI.

Exit codes: 0 done, 1 the run failed (diverged), 2 bad input, 130 interrupted (checkpoint saved).
Every user error is one line on stderr, never a traceback.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from neuraterm import __version__
from neuraterm.core import checkpoint, config as config_mod
from neuraterm.core.backend import DEVICES
from neuraterm.core.data import registry
from neuraterm.core.errors import NeuratermError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"neuraterm: error: {message}", err=True)
    sys.exit(code)


def with_overrides(config: config_mod.Config, overrides: tuple[str, ...], epochs: int | None = None,
                   seed: int | None = None, device: str | None = None, data_dir: str | None = None,
                   tf32: bool | None = None, graphs: bool | None = None) -> config_mod.Config:
    """`--set` assignments first, then the dedicated options, each validated like a preset."""
    for assignment in overrides:
        config = config_mod.apply_override(config, assignment)
    for key, value in (("train.epochs", epochs), ("train.seed", seed), ("train.device", device),
                       ("data.data_dir", data_dir), ("train.tf32", tf32), ("train.graphs", graphs)):
        if value is not None:
            config = config_mod.apply_override(config, f"{key}={json.dumps(value)}")
    return config


def run_training(config: config_mod.Config, run_dir: Path, resume: bool) -> None:
    """Run with the headless printer; Ctrl-C asks the loop to stop, which saves and exits 130."""
    from neuraterm.core.trainer import RunFailed, Trainer
    from neuraterm.printer import HeadlessPrinter
    printer = HeadlessPrinter()
    trainer = Trainer(config, run_dir, [printer], resume=resume, download_progress=printer.download)

    def interrupt(signum, frame):
        if trainer.control.stop_requested:
            raise KeyboardInterrupt
        trainer.control.stop()
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        trainer.run()
    except RunFailed as exc:
        fail(str(exc), EXIT_FAILED)
    finally:
        signal.signal(signal.SIGINT, previous)
    if trainer.control.stop_requested:
        sys.exit(EXIT_INTERRUPTED)


class Main(click.Group):
    """Turns NeuratermError into one line and exit 2 for every subcommand."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NeuratermError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{getattr(exc, 'filename', '') or ''} {exc.strerror or exc}".strip())


train_options = [
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. optimizer.lr=0.01."),
    click.option("--epochs", type=int, help="Total number of epochs."),
    click.option("--seed", type=int, help="Seed for initialization, splits, shuffling and dropout."),
    click.option("--device", type=click.Choice(DEVICES), help="Where to compute."),
    click.option("--data-dir", type=click.Path(file_okay=False), help="A folder holding the dataset's original files."),
    click.option("--tf32/--no-tf32", default=None, help="TF32 tensor-core matmuls on the GPU (faster, ~3 digits)."),
    click.option("--graphs/--no-graphs", default=None, help="Replay each GPU training step as a CUDA graph (default on)."),
]


def with_train_options(fn):
    for option in reversed(train_options):
        fn = option(fn)
    return fn


@click.group(cls=Main, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--preset", help="Train this preset headless (same as 'neuraterm train --preset').")
@click.version_option(__version__, prog_name="neuraterm")
@click.pass_context
def main(ctx, preset):
    """neuraterm: train neural networks in the terminal.

    With no arguments it opens the terminal app; with --preset it trains headless.
    """
    if ctx.invoked_subcommand is not None:
        return
    if preset:
        ctx.invoke(train, preset=preset)
    else:
        ctx.invoke(tui)


@main.command()
@click.option("--preset", default="quick", show_default=True, help="Preset name or path to a TOML file.")
@with_train_options
@click.option("--out", type=click.Path(file_okay=False), help="The model folder (default runs/<preset>-<time>).")
def train(preset, overrides=(), epochs=None, seed=None, device=None, data_dir=None, tf32=None, graphs=None, out=None):
    """Train a preset headless and write its model folder."""
    from neuraterm import presets
    config = with_overrides(presets.load(preset), overrides, epochs, seed, device, data_dir, tf32, graphs)
    run_dir = Path(out) if out else checkpoint.new_run_dir(Path("runs"), config.name)
    if (run_dir / "model.json").exists():
        raise NeuratermError(f"{run_dir} already holds a model; use 'neuraterm resume {run_dir}' or another --out")
    run_training(config, run_dir, resume=False)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@with_train_options
def resume(run_dir, overrides=(), epochs=None, seed=None, device=None, data_dir=None, tf32=None, graphs=None):
    """Continue training a model folder (--epochs is the new total)."""
    snap = checkpoint.load(Path(run_dir))
    config = with_overrides(snap.config, overrides, epochs, seed, device, data_dir, tf32, graphs)
    done = int(snap.train_state.get("epoch", 0))
    if config.train.epochs <= done and not snap.train_state.get("partial"):
        raise NeuratermError(f"{run_dir} has already trained {done} epochs; pass --epochs N with N > {done}")
    run_training(config, Path(run_dir), resume=True)


@main.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--noise", default="0,0.1,0.2,0.3", show_default=True, help="Comma-separated noise sigmas.")
@click.option("--data-dir", type=click.Path(file_okay=False))
def evaluate_cmd(run_dir, noise, data_dir):
    """Evaluate a model folder on its test split (with Gaussian-noise robustness)."""
    from neuraterm.core import backend
    from neuraterm.core.evaluate import report
    from neuraterm.core.trainer import build_model, load_data
    from neuraterm.printer import HeadlessPrinter
    try:
        sigmas = [float(s) for s in noise.split(",") if s.strip()]
    except ValueError:
        raise NeuratermError(f"--noise {noise!r}: expected numbers separated by commas") from None
    snap = checkpoint.load(Path(run_dir))
    config = with_overrides(snap.config, (), data_dir=data_dir)
    data = load_data(config, recorded=snap.meta.get("dataset_source"))
    data.normalizer.restore(snap.normalization)
    xp = backend.select("cpu")
    model = build_model(config, data.num_features, data.num_classes, xp)
    model.load_state_dict(snap.weights)
    result = report(model, data.test.x, data.test.y, data.normalizer, xp, data.class_names, sigmas, config.train.seed)
    HeadlessPrinter().print_report(result, run_dir)


@main.command("presets")
def presets_cmd():
    """List the shipped presets."""
    from neuraterm import presets
    for name in presets.names():
        config = presets.load(name)
        click.echo(f"{name:16} {config.description}")


@main.command("datasets")
@click.argument("paths", nargs=-1)
@click.option("--data-dir", type=click.Path(file_okay=False))
def datasets_cmd(paths, data_dir):
    """List every dataset, its size and whether it is available on this machine; with PATHS, check your own."""
    from neuraterm.core.data import custom
    summaries = [custom.describe(path, validate=True) for path in paths]
    click.echo(f"{'name':16} {'classes':>7} {'train':>9} {'test':>8}  where")
    for summary in summaries:
        click.echo(f"{summary.name:16} {summary.classes:>7} {summary.train:>9,} {summary.test:>8,}  "
                   f"{summary.path} ({summary.format}, {' x '.join(map(str, summary.image_shape))}, checked)")
    if paths:
        return
    for name, spec in registry.DATASETS.items():
        where = registry.locate(name, Path(data_dir) if data_dir else None)
        click.echo(f"{name:16} {spec.classes:>7} {spec.train:>9,} {spec.test:>8,}  "
                   f"{where or 'not here (downloads to ' + str(registry.cache_dir() / name) + ')'}")
    click.echo("your own data: --set data.dataset=PATH, a .npz (x, y), a .csv (label first, or data.csv#column), "
               "a folder of x.npy and y.npy, or a folder of images per class; 'neuraterm datasets PATH' checks it")


@main.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
def export_cmd(run_dir, out):
    """Write the weights as a PyTorch nn.Sequential state_dict-compatible .npz."""
    from neuraterm.core.export import torch_state_dict
    snap = checkpoint.load(Path(run_dir))
    state = torch_state_dict(snap)
    import numpy as np
    np.savez(out, **state)
    click.echo(f"wrote {out}: {', '.join(state)}")


@main.command()
@click.option("--preset", help="Open on the dashboard with this preset.")
@click.option("--start", is_flag=True, help="Start training the preset at once.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Open a model folder.")
def tui(preset, start, resume_dir):
    """Open the terminal app."""
    if not sys.stdout.isatty():
        raise NeuratermError("the app needs a terminal; use 'ssh -t' or train headless with --preset NAME")
    from neuraterm.tui.app import run_app
    run_app(preset=preset, start=start, resume_dir=resume_dir)


if __name__ == "__main__":
    main()
