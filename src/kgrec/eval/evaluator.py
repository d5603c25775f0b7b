"""Evaluation of a :class:`~kgrec.models.base.Recommender`: CTR on labelled rows, and top-K by
full ranking over all items (MKR's ``topk_eval``, vectorised over blocks of users).

Rows are ``(n, 3)`` int64 arrays ``(user, item, label)``. Metric definitions are in
:mod:`kgrec.eval.metrics`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from kgrec.eval.metrics import TOPK_METRICS, check_ks, ctr_metrics, topk_sums
from kgrec.models.base import Recommender

__all__ = ["DEFAULT_KS", "evaluate_ctr", "evaluate_topk", "predict", "recommend"]

DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``torch.no_grad()`` for the block; restores the previous mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU if it has none)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _as_rows(rows: np.ndarray, min_cols: int, name: str) -> np.ndarray:
    """``rows`` as a 2-D int64 array with at least ``min_cols`` columns."""
    a = np.asarray(rows)
    if a.ndim != 2 or a.shape[1] < min_cols:
        raise ValueError(f"{name} must have shape (n, >={min_cols}), got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _column(rows: np.ndarray, j: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rows[:, j])).to(device)


class _UserItems:
    """Deduplicated ``user -> items`` lists in CSR form (items sorted within a user)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"item ids must lie in [0, {n_items})")
        keys = np.unique(users * n_items + items)
        self.items = keys % n_items
        self.indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=self.indptr[1:])

    def counts(self, users: np.ndarray) -> np.ndarray:
        """Number of items of each user."""
        return self.indptr[users + 1] - self.indptr[users]

    def pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, items)``: every item of ``users[p]`` paired with its position ``p``."""
        starts = self.indptr[users]
        lens = self.indptr[users + 1] - starts
        pos = np.repeat(np.arange(len(users)), lens)
        # Concatenated ranges [starts[p], starts[p] + lens[p]) without a Python loop.
        offsets = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        return pos, self.items[offsets]


def _ranked_blocks(
    model: Recommender,
    users: np.ndarray,
    k: int,
    exclude: _UserItems | None,
    n_items: int,
    max_scores: int,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    """Top-``k`` items of blocks of ``users`` with ``exclude``'s items scored ``-inf``.

    Blocks hold ``max(1, max_scores // n_items)`` users. Yields ``(block, values, indices,
    (rows, cols))``: the slice of ``users``, the ``(b, k)`` top scores and item ids, and the
    masked ``(row in block, item)`` pairs as tensors on the scores' device. Must run inside
    :func:`_inference`.
    """
    device = _device(model)
    block_size = max(1, int(max_scores) // n_items)
    for start in range(0, len(users), block_size):
        block = slice(start, min(start + block_size, len(users)))
        ub = users[block]
        scores = model.score_all(torch.from_numpy(ub).to(device))
        if scores.shape != (len(ub), n_items):
            raise ValueError(
                f"score_all returned shape {tuple(scores.shape)}, expected {(len(ub), n_items)}"
            )
        if exclude is not None:
            pos, items = exclude.pairs(ub)
            masked = (
                torch.from_numpy(pos).to(scores.device),
                torch.from_numpy(items).to(scores.device),
            )
            # Out-of-place: score_all may return a view of model state.
            neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
            scores = scores.index_put(masked, neg_inf)
        else:
            empty = torch.empty(0, dtype=torch.long, device=scores.device)
            masked = (empty, empty)
        values, indices = torch.topk(scores, k, dim=1)
        yield block, values, indices, masked


def predict(model: Recommender, rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Click probabilities ``sigmoid(model.score(user, item))`` of every row, float64 ``(n,)``.

    Runs in eval mode under ``torch.no_grad()`` and restores the model's previous mode.
    """
    rows = _as_rows(rows, 2, "rows")
    device = _device(model)
    out = np.empty(len(rows), dtype=np.float64)
    with _inference(model):
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            logits = model.score(_column(chunk, 0, device), _column(chunk, 1, device))
            out[start : start + len(chunk)] = (
                torch.sigmoid(logits.double()).reshape(-1).cpu().numpy()
            )
    return out


def evaluate_ctr(model: Recommender, rows: np.ndarray, batch_size: int = 65536) -> dict:
    """CTR metrics (``auc``, ``acc``, ``f1``, ``logloss``, ``n``; see
    :func:`~kgrec.eval.metrics.ctr_metrics`) of the model on all labelled rows of a split."""
    rows = _as_rows(rows, 3, "rows")
    return ctr_metrics(rows[:, 2], predict(model, rows, batch_size=batch_size))


def _n_rows_users(*arrays: np.ndarray) -> int:
    """One more than the largest user id in any of the arrays (0 if all are empty)."""
    return 1 + max((int(a.max()) for a in arrays if len(a)), default=-1)


def recommend(
    model: Recommender,
    users: Iterable[int],
    k: int,
    *,
    exclude_rows: np.ndarray | None = None,
    n_items: int | None = None,
    max_scores: int = 2**22,
) -> np.ndarray:
    """Top-``k`` item ids ``(len(users), min(k, n_items))`` of each user, best first.

    Items a user has in ``exclude_rows`` (any label; e.g. the training rows) are never
    recommended; where fewer than ``k`` items remain the tail is ``-1``. Users are scored in
    blocks of ``max_scores // n_items`` (``n_items`` defaults to ``model.n_items``).
    """
    n_items = int(model.n_items if n_items is None else n_items)
    users = np.asarray(users if isinstance(users, np.ndarray) else list(users), np.int64).ravel()
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if len(users) and users.min() < 0:
        raise ValueError("user ids must be non-negative")
    kk = min(int(k), n_items)
    exclude = None
    if exclude_rows is not None:
        ex = _as_rows(exclude_rows, 2, "exclude_rows")
        exclude = _UserItems(ex[:, 0], ex[:, 1], _n_rows_users(ex[:, 0], users), n_items)
    out = np.empty((len(users), kk), dtype=np.int64)
    with _inference(model):
        for block, values, indices, _ in _ranked_blocks(
            model, users, kk, exclude, n_items, max_scores
        ):
            if exclude is not None:
                indices = indices.masked_fill(values == float("-inf"), -1)
            out[block] = indices.cpu().numpy()
    return out


def evaluate_topk(
    model: Recommender,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    *,
    n_items: int,
    ks: Iterable[int] = DEFAULT_KS,
    max_scores: int = 2**22,
    users: Iterable[int] | None = None,
) -> dict[str, float | int]:
    """Top-K metrics by full ranking, as MKR's ``topk_eval`` but over all evaluated users.

    For each user, all ``n_items`` items are ranked by ``model.score_all`` except the user's
    training items (every item the user has in ``train_rows``, positive or negative, as MKR).
    Relevant items are the user's test positives (label 1; duplicates counted once).

    A test positive that is also a training item is masked, so it can never be hit, yet it
    still counts in ``n_relevant`` (recall and IDCG denominators): MKR's choice, kept for
    comparable numbers.

    Args:
        train_rows, test_rows: ``(n, 3)`` rows ``(user, item, label)``.
        n_items: number of items (columns of ``score_all``).
        ks: cut-offs; ranking depth is ``Kmax = min(max(ks), n_items)``.
        max_scores: at most this many scores per block (``block_size * n_items``, at least
            one user per block); bounds memory, never ``(n_users, n_items)`` at once.
        users: users to evaluate (default: all with >= 1 test positive). Given users without
            a test positive are dropped, so ``n_users`` may be smaller than ``len(users)``.

    Returns:
        ``{"precision@K", "recall@K", "ndcg@K", "hit@K", "hr@K", "mrr@K"`` means over users
        for each ``K`` (:data:`~kgrec.eval.metrics.TOPK_METRICS`), and ``"n_users"``}.

    Raises:
        ValueError: if no user has a test positive, or on malformed input.
    """
    train = _as_rows(train_rows, 2, "train_rows")
    test = _as_rows(test_rows, 3, "test_rows")
    ks = check_ks(ks)
    n_items = int(n_items)
    pos = test[test[:, 2] == 1]
    given = None if users is None else np.unique(np.asarray(list(users), dtype=np.int64))
    arrays = [train[:, 0], pos[:, 0]] + ([] if given is None else [given])
    if any(len(a) and a.min() < 0 for a in arrays):
        raise ValueError("user ids must be non-negative")
    n_u = _n_rows_users(*arrays)
    train_items = _UserItems(train[:, 0], train[:, 1], n_u, n_items)
    test_items = _UserItems(pos[:, 0], pos[:, 1], n_u, n_items)
    n_relevant = test_items.counts(np.arange(n_u))
    eval_users = np.flatnonzero(n_relevant > 0) if given is None else given[n_relevant[given] > 0]
    if len(eval_users) == 0:
        raise ValueError("no users to evaluate: none has a positive test row")
    kmax = min(ks[-1], n_items)

    totals = dict.fromkeys((f"{m}@{k}" for m in TOPK_METRICS for k in ks), 0.0)
    with _inference(model):
        for block, _, indices, masked in _ranked_blocks(
            model, eval_users, kmax, train_items, n_items, max_scores
        ):
            ub = eval_users[block]
            device = indices.device
            relevant = torch.zeros((len(ub), n_items), dtype=torch.bool, device=device)
            p, it = test_items.pairs(ub)
            relevant[torch.from_numpy(p).to(device), torch.from_numpy(it).to(device)] = True
            relevant[masked] = False  # masked items rank last and must never count as hits
            hits = relevant.gather(1, indices).cpu().numpy()
            for key, value in topk_sums(hits, n_relevant[ub], ks).items():
                totals[key] += value
    n = len(eval_users)
    return {**{key: value / n for key, value in totals.items()}, "n_users": n}
