"""What a run is built from: its model, optimizer, schedule and data splits, from a `Config`.

Out of the trainer so that readers (evaluate, studies, benchmarks) build the same things without
importing the training loop, and the trainer can import evaluation without a circle.
"""
from __future__ import annotations


import numpy as np

from neuraterm.core.config import Config
from neuraterm.core.data import registry
from neuraterm.core.data.npy import available_memory
from neuraterm.core.data.prepare import Prepared, prepare
from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.mlp import MLP
from neuraterm.core.optim import optimizers, schedules


def build_model(config: Config, num_features: int, num_classes: int, xp):
    m = config.model
    return MLP([num_features, *m.hidden, num_classes], activation=m.activation, batchnorm=m.batchnorm,
               dropout=m.dropout, init=m.init, seed=config.train.seed, xp=xp)


def build_optimizer(config: Config, model):
    o = config.optimizer
    common = {"lr": o.lr, "l2": o.l2, "clip_norm": o.clip_norm or None}
    specific = {
        "sgd": {"momentum": o.momentum, "nesterov": o.nesterov},
        "adam": {"betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay},
        "adamw": {"betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay},
        "rmsprop": {"alpha": o.alpha, "eps": o.eps, "momentum": o.momentum},
    }
    return optimizers.build(o.name, model.parameters(), **common, **specific.get(o.name, {}))


def build_schedule(config: Config):
    s = config.schedule
    return schedules.build(s.name, config.optimizer.lr, config.train.epochs, lr_min=s.lr_min, gamma=s.gamma,
                           step_size=s.step_size, warmup=s.warmup,
                           decay_epochs=s.decay_epochs or config.train.epochs)


def load_data(config: Config, progress=None, recorded: dict | None = None) -> Prepared:
    """The run's splits; `recorded` is the model folder's `dataset_source` (your own data is checked against it)."""
    d = config.data
    dataset = registry.load(d.dataset, d.data_dir or None, progress=progress, recorded=recorded)
    data = prepare(dataset, d.val_fraction, d.test_fraction, d.limit, d.normalize, config.train.seed, d.pool)
    check_data(data, d.dataset)
    return data


def check_data(data: Prepared, name: str) -> None:
    """What would otherwise fail after hours, or silently: checked before the first step."""
    if len(data.train.y) == 0 or len(data.test.y) == 0:
        empty = "training" if len(data.train.y) == 0 else "test"
        raise NeuratermError(f"{name}: the {empty} split is empty; lower data.val_fraction/test_fraction or limit less")
    for split_name, split in (("train", data.train), ("validation", data.val), ("test", data.test)):
        if split.images.ndim != 2 or split.images.shape[1] != data.num_features:
            raise NeuratermError(f"{name}: {split_name} images have {split.images.shape[1:]} values each, "
                                 f"train images {data.num_features}")
        if len(split.y) and (split.y.min() < 0 or split.y.max() >= data.num_classes):
            raise NeuratermError(f"{name}: {split_name} labels outside 0..{data.num_classes - 1}")
    missing = [data.class_names[k] for k in np.flatnonzero(np.bincount(data.test.y, minlength=data.num_classes) == 0)]
    if missing:  # its recall is undefined: the test report leaves it out of macro-F1 and balanced accuracy
        data.notes.append(f"the test split has no sample of class {', '.join(map(repr, missing[:5]))}"
                          f"{', ...' if len(missing) > 5 else ''} ({len(missing)} of {data.num_classes}): "
                          f"macro-F1 and balanced accuracy are over the classes it holds (and, for macro-F1, those predicted)")


def check_validation(data: Prepared, config: Config, new_run: bool) -> None:
    """A new run's validation split must hold samples (its loss and accuracy would be NaN in every epoch)
    unless validation is off by choice (data.val_fraction = 0); the run then says so. Resuming a folder
    trained before this check, or evaluating one, needs no validation and is not refused."""
    if len(data.val.y):
        return
    d = config.data
    if d.val_fraction > 0 and new_run:
        raise NeuratermError(f"{d.dataset}: the validation split is empty ({len(data.train.y):,} train / "
                             f"{len(data.test.y):,} test samples); raise data.val_fraction or data.limit, "
                             f"or set data.val_fraction = 0 to train without validation")
    note = ("validation is off (data.val_fraction = 0): no validation loss or accuracy in any epoch"
            if d.val_fraction == 0 else "the validation split is empty: no validation loss or accuracy")
    if note not in data.notes:  # data handed to a second trainer is checked again
        data.notes.append(note)


def check_fits_in_memory(sizes: list[int], batch_size: int, optimizer: str) -> None:
    """Refuse a model that cannot fit before allocating it (hidden = [1000000000] would ask for TiB)."""
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    states = {"sgd": 1, "rmsprop": 2, "adam": 2, "adamw": 2}.get(optimizer, 2)
    # weights, gradient, optimizer states, an update buffer and the best weights; activations and their gradients
    need = 4 * params * (4 + states) + 4 * 3 * batch_size * sum(sizes)
    have = available_memory()
    if have and need > have:
        raise NeuratermError(f"the model needs about {need / 2**30:,.1f} GiB ({params:,} parameters) but this "
                             f"machine has {have / 2**30:,.1f} GiB available; make model.hidden smaller")
