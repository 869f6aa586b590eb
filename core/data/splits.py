"""Stratified, seeded splits and subsets: every class in every split, the same split every time.

Each class's indices are permuted by one seeded generator and cut by the fractions, so class
proportions agree between splits within one sample per class (imbalance matters: ByMerge is 15:1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neuraterm.core.errors import NeuratermError


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Index arrays, one per fraction (fractions sum to 1), each sorted for cache-friendly gathers."""
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise NeuratermError(f"split fractions must be >= 0 and sum to 1; got {list(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.rint(bounds * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.array([], dtype=np.int64) for p in parts]


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """`limit` indices keeping class proportions (each class at least once when limit allows)."""
    if limit >= len(labels):
        return np.arange(len(labels))
    keep, _ = stratified_split(labels, [limit / len(labels), 1 - limit / len(labels)], seed)
    return keep


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=num_classes)
