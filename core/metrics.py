"""Classification metrics on host arrays of integer labels.

Everything derives from the confusion matrix, so accuracy, per-class precision/recall/F1 and
macro-F1 always agree with each other. A class with no predictions (or no samples) gets 0 rather
than NaN, as scikit-learn's `zero_division=0` does.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """`cm[i, j]` = samples of true class i predicted as j."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if y_true.size else 0.0


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support for each class."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes the test split holds or the model predicts (as scikit-learn counts
    them): a class with neither has no F1, and counting it as 0 would cap a perfect model below 1."""
    stats = per_class(cm)
    counted = (stats["support"] > 0) | (cm.sum(axis=0) > 0)
    return float(stats["f1"][counted].mean()) if counted.any() else 0.0


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over classes present: the metric Kuzushiji-49's authors recommend."""
    stats = per_class(cm)
    present = stats["support"] > 0
    return float(stats["recall"][present].mean()) if present.any() else 0.0


def mean_cross_entropy(logits: np.ndarray, labels) -> float:
    """Mean cross-entropy from logits via log-sum-exp, computed in float64 for a faithful report."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(z)), np.asarray(labels)]).mean())


def most_confused(cm: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The `k` largest off-diagonal cells as (true, predicted, count), largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    return [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(flat, off.shape)) if off[i, j] > 0]
