"""How much an approximate index costs: recall of ANN search against exact search, and
queries per second, on a run's test queries (the user vectors of a retrieval model queried
against its item vectors, as served).

For each index kind the top ``n`` items of every query are retrieved and compared with the
exact top ``n`` of the same inner products (``overlap@n``: the share of the exact top ``n``
the index returns, the usual "ANN recall"), and with the query's targets (``recall@n``, with
no history masking on either side so both are measured alike). ``qps`` is queries per second
of the search alone (batched, faiss's OpenMP threads), ``build_seconds`` the index build.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch

from kgrec.eval.evaluator import _device, _inference
from kgrec.models.base import Recommender

if TYPE_CHECKING:
    from kgrec.data.split import Queries

__all__ = ["evaluate_ann"]


def _target_recall(ids: np.ndarray, queries: Queries, rows: np.ndarray, n_items: int) -> float:
    from kgrec.eval.ranking import _member

    tpos, titems = queries.target_pairs(rows)
    keys = np.unique(tpos * n_items + titems)
    n_rel = np.bincount(keys // n_items, minlength=len(rows))
    ranked = np.arange(len(rows))[:, None] * n_items + np.where(ids >= 0, ids, 0)
    hits = _member(ranked, keys) & (ids >= 0)
    return float(np.mean(hits.sum(1) / np.maximum(n_rel, 1)))


def _overlap(ids: np.ndarray, ref: np.ndarray, n_items: int) -> float:
    """Mean share of each row's reference ids (``-1``: none) found among its ``ids``."""
    from kgrec.eval.ranking import _member

    rows = np.arange(len(ids))[:, None] * n_items
    found = _member(rows + ids, np.sort((rows + ref)[ref >= 0])) & (ids >= 0)
    return float(np.mean(found.sum(1) / np.maximum((ref >= 0).sum(1), 1)))


def evaluate_ann(model: Recommender, queries: Queries, *,
                 kinds: Iterable[str] = ("flat", "ivf", "hnsw"), n: int = 50,
                 max_history: int = 200, block: int = 4096, **index_kw
                 ) -> dict[str, dict[str, float]]:
    """``{kind: {"overlap@n", "recall@n", "qps", "build_seconds"}}`` plus ``exact`` (torch
    exact search, the reference) for ``model`` (single-vector ``user_vectors`` /
    ``item_vectors``) on the queries that have a target. ``index_kw`` go to the faiss
    indexes (``nprobe``, ``ef_search`` ...)."""
    from kgrec.retrieval.index import build_index

    n_items = int(model.n_items)
    rows = np.flatnonzero(np.diff(queries.tgt_indptr) > 0)
    if len(rows) == 0:
        raise ValueError("no queries with a target")
    device = _device(model)
    with _inference(model):
        items = model.item_vectors().float().cpu().numpy()
        users = []
        for s in range(0, len(rows), block):
            br = rows[s:s + block]
            u = model.user_vectors(torch.from_numpy(queries.users[br]).to(device),
                                   torch.from_numpy(queries.history(br, max_history)).to(device))
            if u.dim() != 2:
                raise ValueError("evaluate_ann takes single-vector models (multi-interest "
                                 "retrieval: kgrec evaluate --lambdas)")
            users.append(u.float().cpu().numpy())
    users = np.concatenate(users)
    out: dict[str, dict[str, float]] = {}
    ref = None
    for kind in ("exact", *kinds):
        t0 = time.perf_counter()
        index = build_index(items, kind, **({} if kind in ("exact", "flat") else index_kw))
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ids = index.search(users, n)
        seconds = time.perf_counter() - t0
        if ref is None:
            ref = ids
        overlap = _overlap(ids, ref, n_items)
        out[kind] = {f"overlap@{n}": float(overlap),
                     f"recall@{n}": _target_recall(ids, queries, rows, n_items),
                     "qps": len(users) / max(seconds, 1e-9), "build_seconds": built,
                     "n_queries": len(users), "n_items": n_items}
    return out
