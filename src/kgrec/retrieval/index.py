"""Inner-product search over item vectors: exact (torch, for checks) or faiss (flat, IVF, HNSW),
multi-interest retrieval with ComiRec's merge, and its greedy diversity-aware aggregation.

* :func:`build_index` ``(item_vectors, kind)`` -> an index with ``search(queries, n)``
  returning ``(scores, ids)`` ``(b, n)``, best first (``-inf`` / ``-1`` where fewer items).
* :func:`multi_interest_search`: each of a user's ``K`` interest vectors retrieves its top
  ``n``; the ``K n`` results are merged by score, de-duplicated (an item keeps its best score)
  and cut to ``n`` (Cen et al., KDD'20, section 4.3). On an exact index this equals the top
  ``n`` of ``max_k <v_k, e_i>``, what full-ranking evaluation scores.
* :func:`greedy_diverse`: ComiRec's controllable aggregation, ``argmax_i f(u, i) + lambda *
  sum_{j in S} [CATE(i) != CATE(j)]`` added one item at a time over the merged candidates.

faiss is imported only when a faiss index is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ExactIndex", "FaissIndex", "build_index", "category_diversity", "greedy_diverse",
           "multi_interest_search"]


def _np32(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class ExactIndex:
    """Exact maximum inner product search in torch (blocks of queries, never a full
    ``(queries, items)`` matrix beyond ``max_scores``)."""

    kind = "exact"

    def __init__(self, vectors: Any, *, max_scores: int = 2**24):
        self.vectors = torch.from_numpy(_np32(vectors))
        self.max_scores = int(max_scores)

    @property
    def n(self) -> int:
        return len(self.vectors)

    def search(self, queries: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(_np32(queries))
        k = min(int(n), self.n)
        block = max(1, self.max_scores // max(self.n, 1))
        scores = np.full((len(q), int(n)), -np.inf, dtype=np.float32)
        ids = np.full((len(q), int(n)), -1, dtype=np.int64)
        for s in range(0, len(q), block):
            v, i = torch.topk(q[s:s + block] @ self.vectors.T, k, dim=1)
            scores[s:s + block, :k], ids[s:s + block, :k] = v.numpy(), i.numpy()
        return scores, ids


class FaissIndex:
    """A faiss inner-product index: ``flat`` (exact), ``ivf`` (``IndexIVFFlat``, ``nlist``
    cells, ``nprobe`` searched) or ``hnsw`` (``IndexHNSWFlat``, ``M`` links, ``ef_search``).

    Args:
        vectors: ``(n, d)`` item vectors.
        kind: ``flat``, ``ivf`` or ``hnsw``.
        nlist: IVF cells (default ``~4 sqrt(n)``); trained on the vectors (seeded).
        nprobe: IVF cells searched per query.
        m: HNSW links per node; ef_search: HNSW search breadth.
    """

    def __init__(self, vectors: Any, kind: str = "flat", *, nlist: int | None = None,
                 nprobe: int = 16, m: int = 32, ef_search: int = 128, seed: int = 0):
        import faiss

        x = _np32(vectors)
        d = x.shape[1]
        self.kind = kind
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "ivf":
            nlist = nlist or max(1, int(4 * np.sqrt(len(x))))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, min(nlist, len(x)),
                                       faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(x)
            index.nprobe = nprobe
            self._quantizer = quantizer  # faiss does not own it from Python
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = ef_search
        else:
            raise ValueError(f"unknown faiss index kind {kind!r}: flat, ivf or hnsw")
        index.add(x)
        self.index = index

    @property
    def n(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(_np32(queries), int(n))
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)


def build_index(vectors: Any, kind: str = "exact", **kw: Any) -> ExactIndex | FaissIndex:
    """``exact`` (torch), or a faiss index ``flat`` / ``ivf`` / ``hnsw`` (see
    :class:`FaissIndex`)."""
    if kind == "exact":
        return ExactIndex(vectors, **kw)
    return FaissIndex(vectors, kind, **kw)


def merge_results(scores: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, m)`` candidate lists (ids ``-1`` = none) merged: de-duplicated keeping each
    item's best score, sorted by score (ties: smaller id), cut to ``n``."""
    b, m = ids.shape
    out_s = np.full((b, n), -np.inf, dtype=np.float32)
    out_i = np.full((b, n), -1, dtype=np.int64)
    if m == 0:
        return out_s, out_i
    # per row: sort by (id, -score) to keep each id's best, then by (-score, id)
    row = np.repeat(np.arange(b), m)
    s, i = scores.reshape(-1), ids.reshape(-1)
    keep = i >= 0
    row, s, i = row[keep], s[keep], i[keep]
    o = np.lexsort((-s, i, row))
    row, s, i = row[o], s[o], i[o]
    first = np.r_[True, (row[1:] != row[:-1]) | (i[1:] != i[:-1])]
    row, s, i = row[first], s[first], i[first]
    o = np.lexsort((i, -s, row))
    row, s, i = row[o], s[o], i[o]
    start = np.searchsorted(row, np.arange(b))
    rank = np.arange(len(row)) - start[row]
    sel = rank < n
    out_s[row[sel], rank[sel]] = s[sel]
    out_i[row[sel], rank[sel]] = i[sel]
    return out_s, out_i


def multi_interest_search(index: ExactIndex | FaissIndex, interests: Any, n: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """ComiRec's retrieval: ``interests`` ``(b, K, d)`` (or ``(b, d)``: one interest) each
    retrieve their top ``n``; merged by score, de-duplicated, cut to ``n``."""
    v = _np32(interests)
    if v.ndim == 2:
        return index.search(v, n)
    b, k, d = v.shape
    s, i = index.search(v.reshape(b * k, d), n)
    return merge_results(s.reshape(b, k * n), i.reshape(b, k * n), n)


def greedy_diverse(scores: np.ndarray, ids: np.ndarray, categories: np.ndarray, n: int,
                   lam: float) -> np.ndarray:
    """ComiRec's greedy aggregation (Cen et al., KDD'20, Algorithm 2) over candidate lists.

    From the ``(b, m)`` candidates (``ids`` ``-1`` = none) it adds, ``n`` times, the candidate
    maximising ``score + lam * #{j in S: CATE(j) != CATE(i)}``. ``lam = 0`` keeps the score
    order. Vectorised over the batch (a loop over the ``n`` picks only). Items without a
    category (``-1``) differ from every category but each other.

    Returns:
        ``(b, n)`` chosen item ids in order of choice (``-1`` where candidates ran out).
    """
    b, m = ids.shape
    cats = np.where(ids >= 0, categories[np.maximum(ids, 0)], -2)
    base = np.where(ids >= 0, scores.astype(np.float64), -np.inf)
    taken = np.zeros((b, m), dtype=bool)
    diff = np.zeros((b, m))  # selected items whose category differs from the candidate's
    out = np.full((b, n), -1, dtype=np.int64)
    rows = np.arange(b)
    for t in range(min(n, m)):
        gain = np.where(taken, -np.inf, base + lam * diff)
        j = gain.argmax(1)
        ok = np.isfinite(gain[rows, j])
        out[ok, t] = ids[rows[ok], j[ok]]
        taken[rows[ok], j[ok]] = True
        picked = cats[rows, j][:, None]
        diff += ok[:, None] & (cats != picked)
    return out


def category_diversity(ids: np.ndarray, categories: np.ndarray) -> float:
    """ComiRec's Diversity@N: the share of pairs of a user's ``N`` recommended items with
    different categories, averaged over users (rows; ``-1`` entries are skipped)."""
    ids = np.asarray(ids)
    if ids.shape[1] < 2:
        return 0.0
    c = np.where(ids >= 0, categories[np.maximum(ids, 0)], -2)
    valid = ids >= 0
    pair = valid[:, :, None] & valid[:, None, :]
    differ = (c[:, :, None] != c[:, None, :]) & pair
    n_pairs = pair.sum((1, 2)) - valid.sum(1)  # ordered pairs without the diagonal
    per_user = np.where(n_pairs > 0, differ.sum((1, 2)) / np.maximum(n_pairs, 1), 0.0)
    return float(per_user.mean())
