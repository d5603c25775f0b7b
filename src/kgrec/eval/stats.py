"""Statistics of repeated runs: mean ± std over seeds, relative differences and the paired
t-test used to compare a model with MKR across the same seeds (same splits, same negatives)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["mean_std", "paired_ttest", "relative_diff"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def relative_diff(value: float, reference: float) -> float:
    """``(value - reference) / reference`` (NaN when the reference is 0 or missing)."""
    if reference == 0 or not math.isfinite(reference):
        return math.nan
    return (value - reference) / reference


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired t-test of ``mean(a - b) == 0``: ``(t, p)``.

    The pairs are runs with the same seed (the same split and sampled negatives), so the
    split's variance cancels. With fewer than two pairs, or no variance in the differences,
    the test is undefined: ``(nan, nan)``, except identical samples (``t = 0``, ``p = 1``).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError("paired_ttest takes two 1-D samples")
    n = d.size
    if n < 2:
        return math.nan, math.nan
    sd = d.std(ddof=1)
    if sd == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = float(d.mean() / (sd / math.sqrt(n)))
    from scipy.stats import t as student_t

    return t, float(2.0 * student_t.sf(abs(t), df=n - 1))
