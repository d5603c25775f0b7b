"""Evaluation metrics as pure functions on numpy arrays.

CTR (click-through-rate prediction on labelled rows):

* ROC AUC: the Mann-Whitney U statistic over ranks with ties averaged,
  ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where ``R_pos`` is the sum of the
  (1-based, tie-averaged) ranks of the positives; it equals ``sklearn.metrics.roc_auc_score``.
* accuracy and F1 of the hard predictions ``probs >= threshold`` (MKR's ``>= 0.5``);
  ``F1 = 2 TP / (2 TP + FP + FN)`` (0 when undefined, as scikit-learn).
* log loss: ``-mean(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``.

Top-K (full ranking), from a hit matrix ``hits[u, j]`` = "the item ranked ``j`` (0-based) for
user ``u`` is relevant", with ``n_rel[u]`` relevant items and ``h_K[u] = sum_{j<K} hits[u, j]``:

* ``precision@K = h_K / K`` (MKR divides by ``K`` even when fewer than ``K`` items exist).
* ``recall@K = h_K / n_rel``.
* ``ndcg@K = DCG@K / IDCG@K`` with binary gains and log2 discount,
  ``DCG@K = sum_{j<K} hits[u, j] / log2(j + 2)`` and
  ``IDCG@K = sum_{j<min(n_rel, K)} 1 / log2(j + 2)``
  (Jarvelin & Kekalainen 2002): a perfect ranking scores 1 whatever ``n_rel``. ComiRec's
  published code (Cen et al. KDD'20, THUDM/ComiRec ``train.py``) computes NDCG differently,
  and its numbers are not comparable: its IDCG sums over the number of *hits* instead of
  ``min(n_rel, K)`` (so one hit at rank 1 scores 1 however many targets were missed, GitHub
  issue #25), and its DCG discounts by the position in the target list, not the rank (issues
  #6 and #21; fixed on its ``dev`` branch only).
* ``hit@K`` (hit ratio) ``= 1[h_K >= 1]``; ``hr@K`` is the same value under the name the
  sequential-recommendation papers use (SASRec, S3-Rec, ComiRec).
* ``mrr@K = 1 / r`` with ``r`` the 1-based rank of the first relevant item if ``r <= K``,
  else 0 (truncated reciprocal rank).

Each is averaged over users. :func:`topk_sums` returns the per-metric *sums* over users so that a
chunked evaluation adds the sums of its chunks and divides by the total user count once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["TOPK_METRICS", "auc", "check_ks", "ctr_metrics", "topk_metrics", "topk_sums"]

TOPK_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "hit", "hr", "mrr")


def _binary_labels(labels: np.ndarray) -> np.ndarray:
    """Flatten ``labels`` to a bool array; raise unless every value is 0/1 (or bool)."""
    y = np.asarray(labels).ravel()
    if y.dtype == bool:
        return y
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:10].tolist()}")
    return y.astype(bool)


def _scores(values: np.ndarray, n: int, name: str) -> np.ndarray:
    """Flatten ``values`` to float64 of length ``n``; raise on a length mismatch or NaN."""
    s = np.asarray(values, dtype=np.float64).ravel()
    if len(s) != n:
        raise ValueError(f"{name} has {len(s)} values but labels has {n}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains NaN")
    return s


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic with ties averaged, ``O(n log n)``.

    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, ``R_pos`` the sum of the 1-based
    tie-averaged ranks of the positives (equal to ``sklearn.metrics.roc_auc_score``).

    Raises:
        ValueError: if only one class is present (AUC is undefined), on NaN scores or on labels
            other than 0/1.
    """
    y = _binary_labels(labels)
    s = _scores(scores, len(y), "scores")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUC is undefined when only one class is present "
            f"(got {n_pos} positives and {n_neg} negatives)"
        )
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    # Tie groups of equal scores: [starts[g], ends[g]) in sorted order, 1-based ranks
    # starts+1 .. ends, whose average is (starts + 1 + ends) / 2.
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], len(s)]
    pos_per_group = np.add.reduceat(y[order].astype(np.int64), starts)
    rank_sum = float(np.dot((starts + ends + 1) / 2.0, pos_per_group))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def ctr_metrics(
    labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5, *, eps: float = 1e-7
) -> dict[str, float]:
    """CTR metrics of predicted click probabilities against 0/1 labels.

    Returns ``{"auc", "acc", "f1", "logloss", "n"}``: AUC (:func:`auc`; raises if one class only),
    accuracy and F1 (positive class) of ``probs >= threshold`` as MKR, log loss with ``probs``
    clipped to ``[eps, 1 - eps]`` averaged over rows, and the row count.
    """
    y = _binary_labels(labels)
    p = _scores(probs, len(y), "probs")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    pred = p >= threshold
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    denom = 2 * tp + fp + fn
    pc = np.clip(p, eps, 1.0 - eps)
    logloss = -float(np.mean(np.where(y, np.log(pc), np.log1p(-pc))))
    return {
        "auc": auc(y, p),
        "acc": float(np.mean(pred == y)),
        "f1": 2.0 * tp / denom if denom else 0.0,
        "logloss": logloss,
        "n": len(y),
    }


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Validate cut-offs: a non-empty collection of positive ints, returned sorted and unique."""
    out = sorted({int(k) for k in ks})
    if not out or out[0] < 1:
        raise ValueError(f"ks must be a non-empty collection of positive integers, got {ks!r}")
    return tuple(out)


def topk_sums(hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """Per-metric sums over users of ``precision@K``, ``recall@K``, ``ndcg@K``, ``hit@K``,
    ``hr@K`` (equal to ``hit@K``) and ``mrr@K``.

    Args:
        hits: ``(n_users, Kmax)`` bool, ``hits[u, j]`` = the ``j``-th ranked item of ``u`` is
            relevant. A cut-off ``K > Kmax`` (fewer items than ``K``) counts the missing ranks
            as misses; ``precision@K`` still divides by ``K``.
        n_relevant: ``(n_users,)`` number of relevant items of each user (may exceed the hits:
            relevant items that cannot be ranked still count). Users with ``n_relevant == 0``
            get recall and NDCG 0 by convention.
        ks: cut-offs.

    Returns:
        ``{"precision@K": sum, ...}`` for every metric in :data:`TOPK_METRICS` and ``K`` in
        ``ks`` (sorted); divide by the user count for means (see :func:`topk_metrics`).
    """
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be 2-D (n_users, Kmax), got shape {hits.shape}")
    n, kmax = hits.shape
    n_rel = np.asarray(n_relevant, dtype=np.int64).ravel()
    if len(n_rel) != n:
        raise ValueError(f"n_relevant has {len(n_rel)} entries but hits has {n} rows")
    ks = check_ks(ks)
    cum_hits = np.zeros((n, kmax + 1), dtype=np.int64)
    np.cumsum(hits, axis=1, out=cum_hits[:, 1:])
    if (cum_hits[:, -1] > n_rel).any():
        raise ValueError("a user has more hits than relevant items")
    # disc[j] = 1 / log2(j + 2) for rank j (0-based); ideal[m] = IDCG with m relevant items.
    disc = 1.0 / np.log2(np.arange(max(ks[-1], kmax)) + 2.0)
    cum_dcg = np.zeros((n, kmax + 1), dtype=np.float64)
    np.cumsum(hits * disc[:kmax], axis=1, out=cum_dcg[:, 1:])
    ideal = np.r_[0.0, np.cumsum(disc)]
    has_rel = n_rel > 0
    # 0-based rank of the first hit (kmax where none) and its reciprocal 1-based rank.
    first = np.where(cum_hits[:, -1] > 0, np.argmax(hits, axis=1) if kmax else 0, kmax)
    recip = 1.0 / (first + 1.0)
    out: dict[str, float] = {}
    for k in ks:
        col = min(k, kmax)
        h = cum_hits[:, col]
        recall = np.divide(h, n_rel, out=np.zeros(n), where=has_rel)
        idcg = ideal[np.minimum(n_rel, k)]
        ndcg = np.divide(cum_dcg[:, col], idcg, out=np.zeros(n), where=has_rel)
        out[f"precision@{k}"] = float(h.sum()) / k
        out[f"recall@{k}"] = float(recall.sum())
        out[f"ndcg@{k}"] = float(ndcg.sum())
        out[f"hit@{k}"] = out[f"hr@{k}"] = float(np.count_nonzero(h))
        out[f"mrr@{k}"] = float(recip[first < col].sum())
    return {f"{m}@{k}": out[f"{m}@{k}"] for m in TOPK_METRICS for k in ks}


def topk_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int]
) -> dict[str, float | int | dict[str, float]]:
    """Top-K metrics averaged over users (definitions in the module docstring).

    Returns ``{"precision@K": mean, ..., "n_users": n, "sums": {"precision@K": sum, ...}}``;
    chunked evaluation adds the ``sums`` of its chunks and divides by the total ``n_users``.

    Raises:
        ValueError: if ``hits`` has no rows.
    """
    sums = topk_sums(hits, n_relevant, ks)
    n = int(np.asarray(hits).shape[0])
    if n == 0:
        raise ValueError("no users to evaluate")
    return {**{key: value / n for key, value in sums.items()}, "n_users": n, "sums": sums}
