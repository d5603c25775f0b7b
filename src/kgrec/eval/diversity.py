"""Accuracy and diversity of multi-interest retrieval, as ComiRec evaluates its controllable
aggregation (Cen et al., KDD'20, Table 4): each interest retrieves its top ``N`` from an index,
the candidates are aggregated greedily with a diversity weight ``lambda``
(:func:`kgrec.retrieval.index.greedy_diverse`), and the ``N`` chosen items are scored by
``recall@N``, ``ndcg@N``, ``hr@N`` and ``diversity@N`` (the share of item pairs from
different categories, :func:`kgrec.retrieval.index.category_diversity`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch

from kgrec.eval.evaluator import _device, _inference
from kgrec.eval.metrics import topk_sums
from kgrec.eval.ranking import _member
from kgrec.models.base import Recommender

if TYPE_CHECKING:
    from kgrec.data.split import Queries

__all__ = ["evaluate_diversity"]


def evaluate_diversity(
    model: Recommender,
    queries: Queries,
    categories: np.ndarray,
    *,
    lambdas: Iterable[float] = (0.0, 0.05, 0.1, 0.2),
    n: int = 50,
    index: str = "exact",
    block: int = 2048,
    max_history: int = 200,
) -> dict[str, dict[str, float]]:
    """``{str(lambda): {"recall@N", "ndcg@N", "hr@N", "diversity@N"}}`` over the queries with
    targets (duplicate targets count once; history items are removed from the candidates
    where ``queries.mask_history``).

    Args:
        model: with ``user_vectors`` (one vector or ``K`` interests) and ``item_vectors``.
        categories: ``(n_items,)`` category id of each item (``-1``: none), e.g. from
            :func:`kgrec.data.features.item_categories`.
        n: items recommended per query (``N``); each interest retrieves ``N`` candidates.
        index: ``exact`` or a faiss kind (``flat``, ``ivf``, ``hnsw``).
    """
    from kgrec.retrieval.index import (
        build_index,
        category_diversity,
        greedy_diverse,
        merge_results,
    )

    lambdas = [float(x) for x in lambdas]
    device = _device(model)
    tpos, titems = queries.target_pairs()
    n_items = len(categories)
    keys = np.unique(tpos * n_items + titems)
    n_rel = np.bincount(keys // n_items, minlength=len(queries))
    rows = np.flatnonzero(n_rel > 0)
    sums = {lam: {"recall": 0.0, "ndcg": 0.0, "hr": 0.0, "diversity": 0.0} for lam in lambdas}
    with _inference(model):
        idx = build_index(model.item_vectors(), index)
        for s in range(0, len(rows), block):
            br = rows[s:s + block]
            users = torch.from_numpy(queries.users[br]).to(device)
            hist = torch.from_numpy(queries.history(br, max_history)).to(device)
            v = model.user_vectors(users, hist).cpu().numpy()
            k = v.shape[1] if v.ndim == 3 else 1
            vv = v.reshape(len(br) * k, -1)
            cs, ci = idx.search(vv, n)
            cs, ci = merge_results(cs.reshape(len(br), k * n), ci.reshape(len(br), k * n), k * n)
            if queries.mask_history:
                hp, hi = queries.history_pairs(br)
                hkeys = np.unique(hp * n_items + hi)
                ci = np.where(_member(np.arange(len(br))[:, None] * n_items + ci, hkeys), -1, ci)
            for lam in lambdas:
                chosen = greedy_diverse(cs, ci, categories, n, lam)
                hits = _member(br[:, None] * n_items + chosen, keys) & (chosen >= 0)
                part = topk_sums(hits, n_rel[br], [n])
                acc = sums[lam]
                acc["recall"] += part[f"recall@{n}"]
                acc["ndcg"] += part[f"ndcg@{n}"]
                acc["hr"] += part[f"hr@{n}"]
                acc["diversity"] += category_diversity(chosen, categories) * len(br)
    m = len(rows)
    return {str(lam): {f"{name}@{n}": val / m for name, val in d.items()}
            for lam, d in sums.items()}
