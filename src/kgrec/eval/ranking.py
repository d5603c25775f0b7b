"""Full ranking of :class:`~kgrec.data.split.Queries`: the evaluation of the ranking protocols
(``loo``, ``user-split``, ``cold-items``; see :mod:`kgrec.data.split`).

Each query ``(user, history)`` is scored over all items by ``model.score_queries`` (id models
look the user up, sequential models encode the history), the history items are masked to
``-inf`` when the queries ask for it, and the top-K are compared with the query's targets.
Equal scores are ordered at random, not by item index: query ``j`` breaks ties by the fixed
permutation ``j mod P`` of a set of ``P`` (up to 64) random permutations of the items
(seed 0), so a model with no information on some items (popularity on never-seen items, an id
model on cold items) ranks them at random for each query, not in the dataset's id order
(which often follows popularity or release date and would pass for skill), and the figures
do not depend on the block size.
Queries are scored in blocks of ``max_scores // n_items``: never a ``(n_queries, n_items)``
matrix at once. Metric definitions are in :mod:`kgrec.eval.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from kgrec.eval.evaluator import _device, _inference
from kgrec.eval.metrics import TOPK_METRICS, check_ks, topk_sums
from kgrec.models.base import Recommender

if TYPE_CHECKING:
    from kgrec.data.split import Queries

__all__ = ["evaluate_ranking", "evaluate_slices", "item_slices", "novel_category_targets",
           "random_recall", "recommend_queries"]


def _ranked_query_blocks(
    model: Recommender,
    queries: Queries,
    rows: np.ndarray,
    k: int,
    n_items: int,
    *,
    mask: bool,
    max_scores: int,
    max_history: int,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray]]:
    """Top-``k`` of blocks of ``queries[rows]``; yields ``(block_rows, values, indices,
    masked)`` with ``masked`` the sorted keys ``row_in_block * n_items + item`` of the items
    scored ``-inf``. Must run inside :func:`~kgrec.eval.evaluator._inference`."""
    device = _device(model)
    block_size = max(1, int(max_scores) // n_items)
    cand = None  # Queries.candidates' ids: only these are scored, the others are -inf
    if queries.candidates is not None:
        if len(queries.candidates) != n_items:
            raise ValueError(f"queries.candidates has {len(queries.candidates)} entries, "
                             f"expected one per item ({n_items})")
        cand = torch.from_numpy(np.flatnonzero(queries.candidates)).to(device)
    # ties: by one of P fixed random orders of the items per query (module docstring)
    gen = torch.Generator().manual_seed(0)
    n_orders = max(1, min(64, 2**22 // max(n_items, 1)))
    orders = torch.stack([torch.randperm(n_items, generator=gen)
                          for _ in range(n_orders)]).to(device)
    for start in range(0, len(rows), block_size):
        br = rows[start : start + block_size]
        users = torch.from_numpy(queries.users[br]).to(device)
        history = torch.from_numpy(queries.history(br, max_history)).to(device)
        if cand is None:
            scores = model.score_queries(users, history)
            if scores.shape != (len(br), n_items):
                raise ValueError(f"score_queries returned shape {tuple(scores.shape)}, "
                                 f"expected {(len(br), n_items)}")
        else:  # Recommender.score_candidates; the items outside rank last, never returned
            part = model.score_candidates(users, history, cand)
            if part.shape != (len(br), len(cand)):
                raise ValueError(f"score_candidates returned shape {tuple(part.shape)}, "
                                 f"expected {(len(br), len(cand))}")
            scores = torch.full((len(br), n_items), float("-inf"), dtype=part.dtype,
                                device=part.device)
            scores[:, cand] = part
        masked = np.zeros(0, dtype=np.int64)
        if mask:
            pos, items = queries.history_pairs(br)
            masked = np.unique(pos * n_items + items)
            # Out of place: score_queries may return a view of model state.
            neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
            scores = scores.index_put((torch.from_numpy(pos).to(scores.device),
                                       torch.from_numpy(items).to(scores.device)), neg_inf)
        order = orders[torch.from_numpy(br % n_orders).to(device)]  # (b, n_items)
        values, at = torch.topk(scores.gather(1, order), k, dim=1)
        yield br, values, order.gather(1, at), masked


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``keys`` (any shape) found in the sorted 1-D ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def _check(queries: Queries, n_items: int, max_history: int) -> None:
    if max_history < 1:
        raise ValueError(f"max_history must be positive, got {max_history}")
    for name in ("hist_items", "tgt_items"):
        a = getattr(queries, name)
        if len(a) and (a.min() < 0 or a.max() >= n_items):
            raise ValueError(f"queries.{name} must lie in [0, {n_items})")
    if len(queries) and queries.users.min() < 0:
        raise ValueError("query user ids must be non-negative")


def evaluate_ranking(
    model: Recommender,
    queries: Queries,
    *,
    n_items: int,
    ks: Iterable[int] = (10, 20, 50),
    max_scores: int = 2**22,
    max_history: int = 200,
    mask_history: bool | None = None,
) -> dict[str, float | int]:
    """Top-K metrics of ``model`` on ``queries`` by full ranking over all ``n_items`` items
    (or over ``queries.candidates`` where set: the others rank last and never hit).

    Args:
        model: scored by ``score_queries(users, history)`` on its own device, in eval mode
            under ``torch.no_grad()`` (the previous mode is restored).
        queries: the queries (users, CSR histories and targets); queries without a target are
            skipped. Duplicate targets count once.
        n_items: number of items (columns of the scores).
        ks: cut-offs; the ranking depth is ``min(max(ks), n_items)``.
        max_scores: at most this many scores per block (at least one query per block).
        max_history: the most recent items of each history given to the model. The mask
            always covers the *whole* history.
        mask_history: mask the history items (default: ``queries.mask_history``). A target
            that is masked is unreachable but still counts in recall / NDCG denominators.

    Returns:
        ``{"precision@K", "recall@K", "ndcg@K", "hit@K", "hr@K", "mrr@K"`` means over queries
        for each ``K``, and ``"n_queries"``}.

    Raises:
        ValueError: if no query has a target, or on malformed input.
    """
    ks = check_ks(ks)
    n_items = int(n_items)
    _check(queries, n_items, max_history)
    mask = queries.mask_history if mask_history is None else bool(mask_history)
    tpos, titems = queries.target_pairs()
    keys = np.unique(tpos * n_items + titems)  # deduplicated (query, target)
    t_query, t_item = keys // n_items, keys % n_items
    t_indptr = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum(np.bincount(t_query, minlength=len(queries)), out=t_indptr[1:])
    n_relevant = np.diff(t_indptr)
    rows = np.flatnonzero(n_relevant > 0)
    if len(rows) == 0:
        raise ValueError("no queries to evaluate: none has a target")
    kmax = min(ks[-1], n_items)

    totals = dict.fromkeys((f"{m}@{k}" for m in TOPK_METRICS for k in ks), 0.0)
    with _inference(model):
        for br, _, indices, masked in _ranked_query_blocks(
            model, queries, rows, kmax, n_items, mask=mask, max_scores=max_scores,
            max_history=max_history,
        ):
            # keys row_in_block * n_items + item of the ranked items and of the block's
            # targets (sorted: t_indptr is over sorted (query, item) keys).
            ranked = np.arange(len(br))[:, None] * n_items + indices.cpu().numpy()
            lo, hi = t_indptr[br[0]], t_indptr[br[-1] + 1]
            q_in_block = np.searchsorted(br, t_query[lo:hi])
            in_block = (q_in_block < len(br)) & (br[np.minimum(q_in_block, len(br) - 1)]
                                                 == t_query[lo:hi])
            tkeys = q_in_block[in_block] * n_items + t_item[lo:hi][in_block]
            # masked items rank last and never count as hits
            hits = _member(ranked, tkeys) & ~_member(ranked, masked)
            if queries.candidates is not None:  # non-candidates rank last, never hit
                hits &= queries.candidates[indices.cpu().numpy()]
            for key, value in topk_sums(hits, n_relevant[br], ks).items():
                totals[key] += value
    n = len(rows)
    return {**{key: value / n for key, value in totals.items()}, "n_queries": n}


def recommend_queries(
    model: Recommender,
    queries: Queries,
    k: int,
    *,
    n_items: int | None = None,
    exclude_history: bool | None = None,
    max_scores: int = 2**22,
    max_history: int = 200,
) -> np.ndarray:
    """Top-``k`` item ids ``(len(queries), min(k, n_items))`` of each query, best first.

    Works for id and history-based models alike (``score_queries``). With
    ``exclude_history`` (default: ``queries.mask_history``) a query's history items are never
    recommended, and where fewer than ``k`` items remain the tail is ``-1``. Targets are
    ignored: build queries with :meth:`~kgrec.data.split.Queries.from_history`.
    """
    n_items = int(model.n_items if n_items is None else n_items)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    _check(queries, n_items, max_history)
    mask = queries.mask_history if exclude_history is None else bool(exclude_history)
    kk = min(int(k), n_items)
    out = np.empty((len(queries), kk), dtype=np.int64)
    with _inference(model):
        for br, values, indices, _ in _ranked_query_blocks(
            model, queries, np.arange(len(queries)), kk, n_items, mask=mask,
            max_scores=max_scores, max_history=max_history,
        ):
            if mask or queries.candidates is not None:
                indices = indices.masked_fill(values == float("-inf"), -1)
            out[br] = indices.cpu().numpy()
    return out


def item_slices(train_items: np.ndarray, n_items: int, *, head_share: float = 0.2
                ) -> dict[str, np.ndarray]:
    """Item masks ``(n_items,)`` of the evaluation slices, from the items of the training
    clicks: ``tail``, every item outside the ``head_share`` most clicked of the items with a
    training click (ties broken by item id; items without a click are tail), and ``cold``,
    the items without any training click (Yao et al., CIKM'21, report both)."""
    counts = np.bincount(np.asarray(train_items, np.int64), minlength=n_items)
    n_head = round(head_share * int((counts > 0).sum()))
    head = np.zeros(n_items, dtype=bool)
    head[np.argsort(-counts, kind="stable")[:n_head]] = True
    return {"tail": ~head, "cold": counts == 0}


def novel_category_targets(queries: Queries, item_category: np.ndarray, *,
                           last: int = 10) -> Queries:
    """The queries with only the targets whose category does not occur among the categories
    of the query's ``last`` history items (and is known): the held-out items of M2GRL's
    diversity matching (Wang et al., KDD'20). Recall on them is *diversity recall*.
    ``item_category``: ``(n_items,)`` one category id per item, ``-1`` unknown
    (:func:`kgrec.data.features.item_categories`). Vectorised: one membership test."""
    cat = np.asarray(item_category, dtype=np.int64)
    if int(last) < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    n_cat = int(cat.max()) + 2 if len(cat) else 1
    hpos, hitems = queries.history_pairs()
    # each query's last `last` history items (all queries: position k of hist_items)
    from_end = queries.hist_indptr[hpos + 1] - 1 - np.arange(len(hpos))
    recent = from_end < int(last)
    seen = np.unique(hpos[recent] * n_cat + cat[hitems[recent]] + 1)
    tpos, titems = queries.target_pairs()
    tcat = cat[titems]
    keep = (tcat >= 0) & ~_member(tpos * n_cat + tcat + 1, seen)
    return queries.select_targets(keep)


def random_recall(queries: Queries, n_items: int, ks: Iterable[int]) -> dict[str, float]:
    """Expected ``recall@K`` of a uniformly random ranking, per query ``min(K, C) / C`` with
    ``C`` the items it ranks (all items or the queries' candidates, less its masked
    history), averaged over the queries
    that have a target: the floor a cold-start model must clear."""
    n_t = np.diff(queries.tgt_indptr)
    rows = np.flatnonzero(n_t > 0)
    cand = (np.ones(n_items, dtype=bool) if queries.candidates is None
            else queries.candidates)
    c = np.full(len(rows), float(cand.sum()))
    if queries.mask_history and len(rows):
        pos, items = queries.history_pairs(rows)
        keys = np.unique(pos * n_items + items)
        keys = keys[cand[keys % n_items]]
        c -= np.bincount(keys // n_items, minlength=len(rows))
    c = np.maximum(c, 1.0)
    return {f"random_recall@{k}": float(np.mean(np.minimum(k, c) / c)) if len(rows) else 0.0
            for k in check_ks(ks)}


def evaluate_slices(model: Recommender, queries: Queries, slices: dict[str, np.ndarray | Queries],
                    *, n_items: int, ks: Iterable[int] = (10, 20, 50), **kw
                    ) -> dict[str, dict]:
    """:func:`evaluate_ranking` of each slice (targets restricted to the slice's items, or
    the slice's own queries, e.g. :func:`novel_category_targets`; the ranking still over all
    items), plus :func:`random_recall` on it; a slice without targets gives
    ``{"n_queries": 0}``."""
    out: dict[str, dict] = {}
    for name, keep in slices.items():
        q = keep if not isinstance(keep, np.ndarray) else queries.with_targets(keep)
        if len(q.tgt_items) == 0:
            out[name] = {"n_queries": 0}
            continue
        out[name] = {**evaluate_ranking(model, q, n_items=n_items, ks=ks, **kw),
                     **random_recall(q, n_items, ks)}
    return out
