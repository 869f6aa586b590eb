"""Evaluation: loss, accuracy and the full report (macro-F1, per-class, confusion, noise robustness)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from neuraterm.core import backend, metrics
from neuraterm.core.run import checkpoint
from neuraterm.core.run.build import build_model, load_data
from neuraterm.core.backend import to_host
from neuraterm.core.data import noise
from neuraterm.core.data.normalize import Normalizer, unit
from neuraterm.core.errors import NeuratermError
from neuraterm.core.nn.module import Module
from neuraterm.core.nn.tensor import Tensor, no_grad


def logits_of(model: Module, x, normalizer: Normalizer, xp, batch: int = 2048,
              add_noise: noise.Gaussian | None = None) -> np.ndarray:
    """Host logits for all rows of `x` (an array or a split's rows), in evaluation mode and without a
    graph, batch by batch (noise, if any, is added in units before standardizing); training mode is restored."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with no_grad():
            for start in range(0, len(x), batch):
                rows = x[start:start + batch]
                if add_noise is None:
                    xb = normalizer(xp.asarray(rows), xp)
                else:
                    xb = normalizer.standardize(xp.asarray(add_noise(np.multiply(rows, unit(rows), dtype=np.float32))), xp)
                outputs.append(to_host(model(Tensor(xb)).data))
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def loss_and_accuracy(model, x_uint8, y, normalizer, xp) -> tuple[float, float]:
    if len(y) == 0:
        return float("nan"), float("nan")
    logits = logits_of(model, x_uint8, normalizer, xp)
    return metrics.mean_cross_entropy(logits, y), metrics.accuracy(y, logits.argmax(1))


def report(model, x_uint8, y, normalizer, xp, class_names: list[str], sigmas=(0.0,), seed: int = 0) -> dict:
    """The final evaluation: fractions, not percentages; JSON-ready."""
    logits = logits_of(model, x_uint8, normalizer, xp)
    predictions = logits.argmax(1)
    cm = metrics.confusion_matrix(y, predictions, len(class_names))
    stats = metrics.per_class(cm)
    robustness = []
    for sigma in sigmas:
        noisy = predictions if sigma == 0 else logits_of(
            model, x_uint8, normalizer, xp, add_noise=noise.Gaussian(sigma, seed, clip=x_uint8.dtype == np.uint8)).argmax(1)
        robustness.append({"sigma": float(sigma), "accuracy": metrics.accuracy(y, noisy)})
    return {
        "test_accuracy": metrics.accuracy(y, predictions),
        "test_loss": metrics.mean_cross_entropy(logits, y),
        "macro_f1": metrics.macro_f1(cm),
        "balanced_accuracy": metrics.balanced_accuracy(cm),
        "test_size": int(len(y)),
        "class_names": list(class_names),
        "per_class": {k: [float(v) for v in stats[k]] for k in ("precision", "recall", "f1")},
        "support": [int(v) for v in stats["support"]],
        "confusion_matrix": cm.tolist(),
        "most_confused": [{"true": class_names[i], "predicted": class_names[j], "count": c}
                          for i, j, c in metrics.most_confused(cm)],
        "noise": robustness,
    }


def evaluate_folder(run_dir: Path | str, sigmas=(0.0,), data_dir: str | None = None,
                    snap: checkpoint.Snapshot | None = None) -> dict:
    """Evaluate a model folder's last checkpoint on its test split, finished or not.

    The result is `report(...)` plus where the weights come from: `epoch` (epochs completed),
    `mid_epoch` (a stop inside the next epoch saved weights partway through it), `epochs` (the
    configured total) and `finished` (the run wrote its final report). Loading the data again
    costs seconds on big datasets: callers with a UI run this in a worker.
    """

    snap = snap or checkpoint.load(Path(run_dir))
    config = snap.config
    if data_dir:
        config.data.data_dir = str(data_dir)
    data = load_data(config, recorded=snap.meta.get("dataset_source"))
    trained = snap.meta.get("class_names")
    if trained is not None and len(trained) != len(data.class_names):  # labels 1..K were once read as K+1 classes
        raise NeuratermError(f"the model was trained on {len(trained)} classes but {config.data.dataset} now reads "
                             f"as {len(data.class_names)}" + (f" ({data.notes[0]})" if data.notes else "")
                             + "; train a new model on it")
    data.normalizer.restore(snap.normalization)
    xp = backend.select("cpu")
    model = build_model(config, data.num_features, data.num_classes, xp)
    model.load_state_dict(snap.weights)
    result = report(model, data.test.x, data.test.y, data.normalizer, xp, data.class_names, sigmas,
                    config.train.seed)
    result.update(epoch=snap.epoch,
                  mid_epoch=bool((snap.train_state.get("partial") or {}).get("step")), epochs=config.train.epochs,
                  finished=snap.report is not None)
    return result


def confident_mistakes(run_dir: Path | str, k: int = 8, data_dir: str | None = None) -> dict:
    """The `k` test samples the last checkpoint gets wrong with the highest confidence: each with its
    pixels (the raw row), true and predicted class and the probability it gave the wrong class."""
    snap = checkpoint.load(Path(run_dir))
    config = snap.config
    if data_dir:
        config.data.data_dir = str(data_dir)
    data = load_data(config, recorded=snap.meta.get("dataset_source"))
    data.normalizer.restore(snap.normalization)
    xp = backend.select("cpu")
    model = build_model(config, data.num_features, data.num_classes, xp)
    model.load_state_dict(snap.weights)
    logits = logits_of(model, data.test.x, data.normalizer, xp).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    predicted = p.argmax(1)
    wrong = np.flatnonzero(predicted != data.test.y)
    worst = wrong[np.argsort(-p[wrong, predicted[wrong]], kind="stable")][:k]
    names = data.class_names
    rows = data.test.rows[worst]
    return {"epoch": snap.epoch, "test_size": int(len(data.test.y)), "wrong": int(len(wrong)),
            "mistakes": [{"index": int(i), "image": np.asarray(data.test.images[r]),
                          "true": names[int(data.test.y[i])], "predicted": names[int(predicted[i])],
                          "confidence": float(p[i, predicted[i]])} for i, r in zip(worst, rows)]}
