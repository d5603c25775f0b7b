"""Splits of labelled rows: MKR's random 6:2:2 and training-ratio subsampling."""

from __future__ import annotations

import numpy as np

from kgrec.data.dataset import Split

__all__ = ["random_split", "subsample"]


def random_split(
    ratings: np.ndarray, *, ratios: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> Split:
    """Random row split as MKR's ``dataset_split``: ``int(n * r)`` rows each for validation and
    test, the rest for training. Rows keep their original order inside each part.

    The same ``seed`` gives the same rows.
    """
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    ratings = np.asarray(ratings)
    n = len(ratings)
    n_valid = int(n * ratios[1])
    n_test = int(n * ratios[2])
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.sort(perm[:n_valid])
    test = np.sort(perm[n_valid : n_valid + n_test])
    train = np.sort(perm[n_valid + n_test :])
    return Split(train=ratings[train], valid=ratings[valid], test=ratings[test])


def subsample(rows: np.ndarray, ratio: float, *, seed: int = 0) -> np.ndarray:
    """Keep a random ``ratio`` of the rows (order preserved): the sparse-training experiments."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    n = len(rows)
    k = round(n * ratio)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[:k])
    return rows[keep]
