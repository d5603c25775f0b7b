"""Tests of full ranking over queries (kgrec.eval.ranking) against a per-query Python loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kgrec.data.split import Queries, make_split
from kgrec.eval import evaluate_ranking, recommend_queries
from kgrec.eval.metrics import TOPK_METRICS
from kgrec.models.base import Recommender


class FixedScores(Recommender):
    """``score_all`` returns rows of a fixed score matrix; the history is ignored."""

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.n_users, self.n_items = scores.shape
        self.table = nn.Parameter(torch.from_numpy(scores).float())
        self.dropout = nn.Dropout(0.9)  # would scramble scores if left in training mode

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.table[users])


class HistoryModel(Recommender):
    """A sequential stand-in: records the histories it is given and scores from them only."""

    uses_history = True

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = 0, n_items
        self.w = nn.Parameter(torch.linspace(0.0, 1.0, n_items))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        self.seen.append((users.clone(), history.clone()))
        # item (last + 1) % n_items scores highest, then the fixed order w.
        last = history[:, -1].clamp(min=0)
        scores = self.w.expand(len(users), -1).clone()
        scores[torch.arange(len(users)), (last + 1) % self.n_items] = 10.0
        return scores


class PairScores(Recommender):
    """Scores pairs one by one (the generic ``score_all``, like KGCN); counts the pairs."""

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.n_users, self.n_items = scores.shape
        self.table = nn.Parameter(torch.from_numpy(scores).float())
        self.pairs: list[torch.Tensor] = []

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        self.pairs.append(items.clone())
        return self.table[users, items]


def random_queries(seed: int, n_queries: int = 50, n_items: int = 30) -> Queries:
    rng = np.random.default_rng(seed)
    hl = rng.integers(0, 8, n_queries)
    tl = rng.integers(0, 4, n_queries)  # some queries without a target: skipped
    return Queries(
        users=rng.integers(0, 20, n_queries),
        hist_indptr=np.r_[0, np.cumsum(hl)], hist_items=rng.integers(0, n_items, hl.sum()),
        tgt_indptr=np.r_[0, np.cumsum(tl)], tgt_items=rng.integers(0, n_items, tl.sum()),
    )


def reference(scores: np.ndarray, q: Queries, ks: tuple[int, ...], mask: bool,
              candidates: np.ndarray | None = None) -> dict[str, float]:
    """The definitions, one query at a time (ranking the ``candidates`` items only)."""
    acc = {f"{m}@{k}": 0.0 for m in TOPK_METRICS for k in ks}
    n = 0
    for j in range(len(q)):
        targets = set(q.tgt_items[q.tgt_indptr[j] : q.tgt_indptr[j + 1]].tolist())
        if not targets:
            continue
        n += 1
        hist = set(q.hist_items[q.hist_indptr[j] : q.hist_indptr[j + 1]].tolist()) if mask \
            else set()
        row = scores[q.users[j]]
        ranked = sorted((i for i in range(len(row)) if i not in hist
                         and (candidates is None or candidates[i])), key=lambda i: -row[i])
        for k in ks:
            top = ranked[:k]
            h = [i in targets for i in top]
            first = h.index(True) if any(h) else None
            acc[f"precision@{k}"] += sum(h) / k
            acc[f"recall@{k}"] += sum(h) / len(targets)
            acc[f"ndcg@{k}"] += sum(1 / math.log2(r + 2) for r, x in enumerate(h) if x) / sum(
                1 / math.log2(r + 2) for r in range(min(len(targets), k)))
            acc[f"hit@{k}"] += float(any(h))
            acc[f"hr@{k}"] += float(any(h))
            acc[f"mrr@{k}"] += 0.0 if first is None else 1 / (first + 1)
    return {**{key: v / n for key, v in acc.items()}, "n_queries": n}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mask", [True, False])
def test_matches_reference_for_any_block_size(seed: int, mask: bool) -> None:
    n_items = 30
    scores = np.random.default_rng(100 + seed).standard_normal((20, n_items))
    model = FixedScores(scores)
    q = random_queries(seed, n_items=n_items)
    ks = (1, 5, 10, 50)  # 50 > n_items
    ref = reference(scores.astype(np.float32), q, ks, mask)
    model.train()
    for max_scores in (1, 7 * n_items, 13 * n_items + 3, 2**22):
        got = evaluate_ranking(model, q, n_items=n_items, ks=ks, max_scores=max_scores,
                               mask_history=mask)
        assert got.keys() == ref.keys()
        assert got == pytest.approx(ref, abs=1e-12), max_scores
    assert model.training  # mode restored
    q.mask_history = mask  # the default follows the queries
    assert evaluate_ranking(model, q, n_items=n_items, ks=ks) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_candidates_rank_only_those_items(seed: int) -> None:
    """``Queries.candidates`` (the cold-items protocol's new-item shelf): the ranking is over
    the candidate items only; a non-candidate target is unreachable but still relevant."""
    n_items = 30
    scores = np.random.default_rng(200 + seed).standard_normal((20, n_items))
    cand = np.random.default_rng(seed).random(n_items) < 0.4
    q = random_queries(seed, n_items=n_items).with_candidates(cand)
    ks = (1, 5, 10, 50)
    ref = reference(scores.astype(np.float32), q, ks, True, cand)
    for max_scores in (1, 7 * n_items, 2**22):
        got = evaluate_ranking(FixedScores(scores), q, n_items=n_items, ks=ks,
                               max_scores=max_scores)
        assert got == pytest.approx(ref, abs=1e-12), max_scores
    # subsets and target slices keep the candidates; recommendations stay inside them
    np.testing.assert_array_equal(q.subset(np.arange(5)).candidates, cand)
    np.testing.assert_array_equal(q.with_targets(np.ones(n_items, bool)).candidates, cand)
    top = recommend_queries(FixedScores(scores), q, 50, n_items=n_items)
    assert cand[top[top >= 0]].all() and (top[:, int(cand.sum()):] == -1).all()
    # the random floor counts candidates only: min(K, C) / C per query
    from kgrec.eval.ranking import random_recall
    got = random_recall(q, n_items, (5,))["random_recall@5"]
    rows = [j for j in range(len(q)) if q.tgt_indptr[j + 1] > q.tgt_indptr[j]]
    c = [max(1, int(cand.sum()) - len({int(x) for x in q.hist_items[q.hist_indptr[j]:
                                                                       q.hist_indptr[j + 1]]
                                       if cand[x]})) for j in rows]
    assert got == pytest.approx(np.mean([min(5, x) / x for x in c]))
    # a model that scores by pairs is asked about the candidates only, with the same result
    pm = PairScores(scores)
    assert evaluate_ranking(pm, q, n_items=n_items, ks=ks) == pytest.approx(ref, abs=1e-12)
    asked = torch.cat(pm.pairs).numpy()
    assert cand[asked].all() and set(asked) == set(np.flatnonzero(cand))
    with pytest.raises(ValueError, match="one per item"):
        evaluate_ranking(FixedScores(scores), q.with_candidates(cand[:-1]), n_items=n_items)
    with pytest.raises(ValueError, match="at least one item"):
        q.with_candidates(np.zeros(n_items, bool))


def test_hand_computed_metrics() -> None:
    # Item scores 0 < 1 < ... < 5, so the ranking is 5, 4, 3, 2, 1, 0 minus the history.
    model = FixedScores(np.tile(np.arange(6.0), (2, 1)))
    # Query 0: history [5], targets {3, 0}: ranking 4, 3, 2, 1, 0 -> hits at ranks 2 and 5.
    # Query 1: history [], target {5}: hit at rank 1.
    q = Queries(users=[0, 1], hist_indptr=[0, 1, 1], hist_items=[5],
                tgt_indptr=[0, 2, 3], tgt_items=[3, 0, 5])
    out = evaluate_ranking(model, q, n_items=6, ks=(1, 2, 5))
    i2, i3 = 1 / math.log2(3), 1 / math.log2(6)  # discounts of ranks 2 and 5
    assert out["n_queries"] == 2
    assert out["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert out["recall@1"] == pytest.approx((0 + 1) / 2)
    assert out["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["recall@5"] == pytest.approx((1 + 1) / 2)
    assert out["ndcg@1"] == pytest.approx((0 + 1) / 2)
    assert out["ndcg@2"] == pytest.approx((i2 / (1 + i2) + 1) / 2)
    assert out["ndcg@5"] == pytest.approx(((i2 + i3) / (1 + i2) + 1) / 2)
    assert out["hr@1"] == out["hit@1"] == pytest.approx(0.5)
    assert out["hr@2"] == pytest.approx(1.0)
    assert out["mrr@1"] == pytest.approx((0 + 1) / 2)
    assert out["mrr@5"] == pytest.approx((1 / 2 + 1) / 2)


def test_masked_repeated_target_is_unreachable_but_counts() -> None:
    model = FixedScores(np.tile(np.arange(4.0), (1, 1)))
    # loo where the test item repeats a history item: masked, so a miss at every K.
    q = Queries(users=[0], hist_indptr=[0, 2], hist_items=[3, 1], tgt_indptr=[0, 1],
                tgt_items=[3])
    out = evaluate_ranking(model, q, n_items=4, ks=(1, 4))
    assert out["n_queries"] == 1
    assert all(out[f"{m}@{k}"] == 0.0 for m in TOPK_METRICS for k in (1, 4))
    assert evaluate_ranking(model, q, n_items=4, ks=(1,), mask_history=False)["hr@1"] == 1.0


def test_recommend_queries_excludes_history() -> None:
    n_items = 12
    scores = np.random.default_rng(0).standard_normal((20, n_items))
    model = FixedScores(scores)
    q = random_queries(1, n_queries=30, n_items=n_items)
    recs = recommend_queries(model, q, 100, max_scores=3 * n_items)
    assert recs.shape == (30, n_items)
    for j in range(len(q)):
        hist = set(q.hist_items[q.hist_indptr[j] : q.hist_indptr[j + 1]].tolist())
        valid = recs[j][recs[j] >= 0].tolist()
        assert sorted(valid) == sorted(set(range(n_items)) - hist)
        assert valid == sorted(valid, key=lambda i: -scores[q.users[j], i])
        assert (recs[j][len(valid) :] == -1).all()
    plain = recommend_queries(model, q, 3, exclude_history=False)
    np.testing.assert_array_equal(plain, np.argsort(-scores[q.users], axis=1)[:, :3])
    hq = Queries.from_history(q.users, q.hist_indptr, q.hist_items)
    np.testing.assert_array_equal(recommend_queries(model, hq, 100, max_scores=1), recs)


def test_history_model_gets_right_aligned_padded_histories() -> None:
    # Histories of lengths 3, 0, 5, 1; max_history 4 keeps the 4 most recent items.
    q = Queries(users=[0, 1, 2, 3], hist_indptr=[0, 3, 3, 8, 9],
                hist_items=[1, 2, 3, 4, 5, 6, 7, 8, 9], tgt_indptr=[0, 1, 2, 3, 4],
                tgt_items=[4, 9, 9, 0])
    model = HistoryModel(n_items=10)
    out = evaluate_ranking(model, q, n_items=10, ks=(1,), max_history=4, max_scores=20)
    (u0, h0), (u1, h1) = model.seen  # blocks of 2 queries
    assert u0.tolist() == [0, 1] and u1.tolist() == [2, 3]
    assert h0.dtype == torch.int64
    assert h0.tolist() == [[1, 2, 3], [-1, -1, -1]]
    assert h1.tolist() == [[5, 6, 7, 8], [-1, -1, -1, 9]]
    # The model puts (last + 1) on top: 4 for query 0 (hit), 9 for query 2 (hit), 0 for
    # query 3 (hit); query 1 (no history: last is -1 -> item 1 is on top, target 9: miss).
    assert out["hr@1"] == pytest.approx(3 / 4)
    # Masking uses the full history, not the truncated one: item 4 of query 2 stays masked.
    recs = recommend_queries(model, q, 10, max_history=4)
    assert 4 not in recs[2].tolist() and 9 in recs[2].tolist()


def test_loo_end_to_end_and_errors() -> None:
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 30, 400), rng.integers(0, 25, 400)
    s = make_split("loo", events_user=u, events_item=i, n_users=30, n_items=25)
    model = FixedScores(rng.standard_normal((30, 25)))
    out = evaluate_ranking(model, s.test_queries, n_items=25)
    assert out["n_queries"] == len(s.test_queries)
    assert set(out) == {f"{m}@{k}" for m in TOPK_METRICS for k in (10, 20, 50)} | {"n_queries"}
    with pytest.raises(ValueError, match="no queries"):
        evaluate_ranking(model, Queries.from_history([0], [0, 0], []), n_items=25)
    with pytest.raises(ValueError, match="shape"):
        evaluate_ranking(model, Queries([0], [0, 1], [0], [0, 1], [1]), n_items=24)
    bad = Queries([0], [0, 1], [99], [0, 1], [0])
    with pytest.raises(ValueError, match="hist_items"):
        evaluate_ranking(model, bad, n_items=25)


def test_ties_are_broken_at_random_not_by_item_index() -> None:
    # Every item scores the same; the targets are the 10 lowest ids. Ranked by index, the
    # top 10 would hit every target (recall@10 = 1); a random order of the 200 items hits
    # about 10 / 200 of them. The order is fixed (seed 0): the same figure on every call.
    n_items = 200
    model = FixedScores(np.zeros((10, n_items)))
    q = Queries(users=np.arange(10), hist_indptr=np.zeros(11, np.int64),
                hist_items=np.zeros(0, np.int64), tgt_indptr=np.arange(11),
                tgt_items=np.arange(10))
    out = evaluate_ranking(model, q, n_items=n_items, ks=(10,))
    assert out["recall@10"] < 0.5
    assert evaluate_ranking(model, q, n_items=n_items, ks=(10,)) == out
    # a strict order is untouched by the tie-breaking
    strict = FixedScores(np.tile(-np.arange(n_items, dtype=float), (10, 1)))
    assert evaluate_ranking(strict, q, n_items=n_items, ks=(10,))["recall@10"] == 1.0
