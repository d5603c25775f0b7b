"""Link prediction in the filtered setting (Bordes et al., 2013).

For each evaluated triple ``(h, r, t)`` and side (``tail``: rank ``t`` among all entities as
the answer to ``(h, r, ?)``; ``head``: rank ``h`` for ``(?, r, t)``), every *other* true triple
(``known``) is removed from the candidates, the triple itself is kept. Ties are ranked
realistically: ``rank = 1 + #greater + #equal / 2``, the mean of the optimistic and the
pessimistic rank, so a model that scores everything alike gets the rank of a random guess,
not rank 1.

The filter is vectorised: the known triples are sorted by ``(h, r)`` key (and by ``(r, t)``
for heads), a block of queries finds its slices with ``np.searchsorted`` and the filtered
scores are masked with one ``index_put_``. Queries run in blocks of ``batch_size`` triples, so
memory stays at ``batch_size x n_entities`` scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HITS_AT", "filtered_ranks", "link_prediction", "rank_metrics"]

HITS_AT = (1, 3, 10)


class _Lookup:
    """``key -> values`` over sorted keys (a CSR without the index pointer)."""

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        order = np.lexsort((values, keys))
        self.keys, self.values = keys[order], values[order]

    def pairs(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, value)`` for every value stored under ``q[row]``."""
        lo = np.searchsorted(self.keys, q, side="left")
        hi = np.searchsorted(self.keys, q, side="right")
        cnt = hi - lo
        rows = np.repeat(np.arange(len(q)), cnt)
        offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt) \
            + np.repeat(lo, cnt)
        return rows, self.values[offs]


def filtered_ranks(
    scores: torch.Tensor,
    target: torch.Tensor,
    filter_rows: torch.Tensor | None = None,
    filter_cols: torch.Tensor | None = None,
) -> torch.Tensor:
    """Realistic ranks ``(b,)`` (float64) of ``target[k]`` in row ``k`` of ``scores``.

    Candidates ``(filter_rows[j], filter_cols[j])`` are removed (the target itself never is).
    ``rank = 1 + #greater + #equal / 2`` over the remaining candidates. A NaN score counts as
    ``-inf``. ``scores`` is modified in place.
    """
    b = scores.shape[0]
    s = scores.detach().cpu().numpy()  # counting is faster in numpy; shares memory on CPU
    ar = np.arange(b)
    tgt = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)
    s[np.isnan(s)] = -np.inf
    true = s[ar, tgt].copy()[:, None]
    # removed candidates become NaN: never greater, never equal
    if filter_rows is not None and len(filter_rows):
        s[np.asarray(filter_rows), np.asarray(filter_cols)] = np.nan
    s[ar, tgt] = np.nan
    greater = np.count_nonzero(s > true, axis=1)
    equal = np.count_nonzero(s == true, axis=1)
    return torch.from_numpy(1.0 + greater + equal / 2.0)


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = HITS_AT) -> dict[str, float]:
    """MR, MRR and Hits@k of a vector of ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {"mr": float("nan"), "mrr": float("nan"),
                **{f"hits@{k}": float("nan") for k in ks}}
    return {
        "mr": float(ranks.mean()),
        "mrr": float((1.0 / ranks).mean()),
        **{f"hits@{k}": float((ranks <= k).mean()) for k in ks},
    }


def link_prediction(
    model,
    triples: np.ndarray,
    *,
    known: np.ndarray | None = None,
    batch_size: int | None = None,
    sides: Sequence[str] = ("head", "tail"),
    return_ranks: bool = False,
) -> dict:
    """Filtered link prediction of ``triples`` with a KGE model.

    Args:
        model: a :class:`~kgrec.models.kge.KGEModel` (``score_tails``, ``score_heads``,
            ``n_entities``, ``n_relations``).
        triples: ``(n, 3)`` int64 ``(head, relation, tail)`` to rank.
        known: every true triple (train + valid + test) for the filter; ``triples`` are
            always added to it. None: filter with ``triples`` only.
        batch_size: triples per block (None: as many as fit in ~16M scores, at most 1024).
        sides: ``head`` and/or ``tail``; the metrics average over both.
        return_ranks: also return ``ranks`` (``{side: (n,) float64}``, in input order).

    Returns:
        ``{"mr", "mrr", "hits@1", "hits@3", "hits@10", "n"}`` (``n``: triples evaluated).
    """
    bad = set(sides) - {"head", "tail"}
    if bad or not sides:
        raise ValueError(f"sides must be 'head' and/or 'tail', got {tuple(sides)}")
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    n_e, n_r = int(model.n_entities), int(model.n_relations)
    kn = triples if known is None else np.concatenate(
        [np.asarray(known, dtype=np.int64).reshape(-1, 3), triples])
    if len(triples) and (triples[:, [0, 2]].max() >= n_e or triples[:, 1].max() >= n_r
                         or triples.min() < 0):
        raise ValueError("triples hold ids outside the model's entities / relations")
    if batch_size is None:
        batch_size = max(1, min(1024, (1 << 24) // max(n_e, 1)))
    lookups = {
        "tail": _Lookup(kn[:, 0] * n_r + kn[:, 1], kn[:, 2]),
        "head": _Lookup(kn[:, 2] * n_r + kn[:, 1], kn[:, 0]),
    }
    order = np.argsort(triples[:, 1], kind="stable")  # blocks with few distinct relations
    ranks = {s: np.empty(len(triples), np.float64) for s in sides}
    was_training = model.training
    device = next((p.device for p in getattr(model, "parameters", list)()),
                  torch.device("cpu"))
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(triples), batch_size):
                idx = order[start:start + batch_size]
                blk = triples[idx]
                h, r, t = (torch.from_numpy(np.ascontiguousarray(blk[:, j])).to(device)
                           for j in range(3))
                for side in sides:
                    if side == "tail":
                        scores, target = model.score_tails(h, r), t
                        q = blk[:, 0] * n_r + blk[:, 1]
                    else:
                        scores, target = model.score_heads(r, t), h
                        q = blk[:, 2] * n_r + blk[:, 1]
                    fr, fc = lookups[side].pairs(q)
                    ranks[side][idx] = filtered_ranks(
                        scores, target, torch.from_numpy(fr), torch.from_numpy(fc)).numpy()
    finally:
        model.train(was_training)
    out: dict = rank_metrics(np.concatenate([ranks[s] for s in sides]))
    out["n"] = len(triples)
    if return_ranks:
        out["ranks"] = ranks
    return out
