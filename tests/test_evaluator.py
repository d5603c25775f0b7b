"""Tests of the evaluator with a tiny dot-product recommender and a per-user Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kgrec.eval import evaluate_ctr, evaluate_topk, predict, recommend
from kgrec.eval.metrics import TOPK_METRICS, ctr_metrics
from kgrec.models.base import Recommender


class DotModel(Recommender):
    """Fixed user / item embeddings; logit = dot product (``score_all`` by matmul)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n_users, self.n_items = n_users, n_items
        self.user = nn.Parameter(torch.randn(n_users, dim, generator=g))
        self.item = nn.Parameter(torch.randn(n_items, dim, generator=g))
        self.dropout = nn.Dropout(0.5)  # only active in training mode

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.dropout(self.user[users]) * self.item[items]).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.user[users]) @ self.item.T


class DotModelGeneric(DotModel):
    """Same model through the base class's generic ``score_all``."""

    score_all = Recommender.score_all


def make_data(
    n_users: int, n_items: int, seed: int, density: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Random labelled train / test rows with overlap between train and test items."""
    rng = np.random.default_rng(seed)
    n = int(n_users * n_items * density)
    rows = np.stack(
        [rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, 2, n)], 1
    ).astype(np.int64)
    cut = int(0.7 * n)
    return rows[:cut], rows[cut:]


def reference_topk(
    model: Recommender, train: np.ndarray, test: np.ndarray, n_items: int, ks: tuple[int, ...]
) -> dict[str, float]:
    """MKR's ``topk_eval`` loop, per user, plus NDCG, hit ratio and MRR."""
    train_record: dict[int, set[int]] = {}
    for u, i, _ in train.tolist():
        train_record.setdefault(u, set()).add(i)
    test_record: dict[int, set[int]] = {}
    for u, i, y in test.tolist():
        if y == 1:
            test_record.setdefault(u, set()).add(i)
    with torch.no_grad():
        all_scores = (model.user @ model.item.T).numpy()
    acc = {f"{m}@{k}": 0.0 for m in TOPK_METRICS for k in ks}
    users = sorted(test_record)
    for u in users:
        candidates = sorted(set(range(n_items)) - train_record.get(u, set()))
        ranked = sorted(candidates, key=lambda i: -all_scores[u, i])
        rel = test_record[u]
        for k in ks:
            top = ranked[:k]
            h = len(set(top) & rel)
            dcg = sum(1 / math.log2(j + 2) for j, i in enumerate(top) if i in rel)
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
            acc[f"precision@{k}"] += h / k
            acc[f"recall@{k}"] += h / len(rel)
            acc[f"ndcg@{k}"] += dcg / idcg
            acc[f"hit@{k}"] += float(h > 0)
            acc[f"hr@{k}"] += float(h > 0)
            first = next((j for j, i in enumerate(top) if i in rel), None)
            acc[f"mrr@{k}"] += 0.0 if first is None else 1 / (first + 1)
    return {**{key: v / len(users) for key, v in acc.items()}, "n_users": len(users)}


def test_predict_and_ctr_restore_mode() -> None:
    model = DotModel(20, 30)
    _, test = make_data(20, 30, seed=1)
    model.train()
    probs = predict(model, test, batch_size=7)
    assert model.training  # mode restored
    with torch.no_grad():
        expected = torch.sigmoid((model.user[test[:, 0]] * model.item[test[:, 1]]).sum(-1))
    np.testing.assert_allclose(probs, expected.double().numpy(), rtol=1e-6)  # no dropout
    model.eval()
    out = evaluate_ctr(model, test, batch_size=11)
    assert not model.training
    assert out == pytest.approx(ctr_metrics(test[:, 2], probs))


@pytest.mark.parametrize("model_cls", [DotModel, DotModelGeneric])
def test_topk_matches_reference_and_chunking(model_cls: type[DotModel]) -> None:
    n_users, n_items = 40, 60
    model = model_cls(n_users, n_items, seed=3)
    train, test = make_data(n_users, n_items, seed=4)
    ks = (1, 2, 5, 10, 20, 50, 100)  # 100 > n_items: ranking depth min(100, 60)
    ref = reference_topk(model, train, test, n_items, ks)
    model.train()
    one_block = evaluate_topk(model, train, test, n_items=n_items, ks=ks)
    assert model.training
    assert one_block["n_users"] == ref["n_users"]
    for key, value in ref.items():
        assert one_block[key] == pytest.approx(value, abs=1e-12), key
    for max_scores in (1, 3 * n_items, 7 * n_items + 5):  # blocks of 1, 3 and 7 users
        chunked = evaluate_topk(model, train, test, n_items=n_items, ks=ks, max_scores=max_scores)
        assert chunked == pytest.approx(one_block, abs=1e-12)


def test_training_items_never_recommended_nor_hit() -> None:
    n_users, n_items = 15, 25
    model = DotModel(n_users, n_items, seed=5)
    train, _ = make_data(n_users, n_items, seed=6, density=0.5)
    recs = recommend(model, np.arange(n_users), n_items, exclude_rows=train, max_scores=2 * n_items)
    for u in range(n_users):
        seen = set(train[train[:, 0] == u, 1].tolist())
        valid = recs[u][recs[u] >= 0].tolist()
        assert not seen & set(valid)
        assert sorted(valid) == sorted(set(range(n_items)) - seen)  # the rest, each once
        assert (recs[u][len(valid) :] == -1).all()
    # Test positives that are all training items: masked, so nothing can be hit, but they
    # still count as relevant (MKR's choice).
    test = train.copy()
    test[:, 2] = 1
    out = evaluate_topk(model, train, test, n_items=n_items, ks=(1, 5, 100))
    assert out["n_users"] == len(np.unique(train[:, 0]))
    assert all(out[f"{m}@{k}"] == 0.0 for m in TOPK_METRICS for k in (1, 5, 100))


def test_topk_masked_overlap_counts_in_n_relevant() -> None:
    # One user, 4 items with scores item 3 > 2 > 1 > 0. Train: item 3. Test positives: 3 and 1.
    # Ranking without item 3: [2, 1, 0] -> hits [0, 1, 0], n_relevant 2 (item 3 counts).
    # P@2 = 1/2, R@2 = 1/2, NDCG@2 = (1/log2 3) / (1 + 1/log2 3).
    model = DotModel(1, 4, dim=1)
    with torch.no_grad():
        model.user.fill_(1.0)
        model.item.copy_(torch.arange(4.0).view(4, 1))
    train = np.array([[0, 3, 0]])
    test = np.array([[0, 3, 1], [0, 1, 1], [0, 0, 0]])
    out = evaluate_topk(model, train, test, n_items=4, ks=(2,))
    inv_log3 = 1 / math.log2(3)
    assert out["precision@2"] == pytest.approx(0.5)
    assert out["recall@2"] == pytest.approx(0.5)
    assert out["ndcg@2"] == pytest.approx(inv_log3 / (1 + inv_log3))
    assert out["hit@2"] == 1.0


def test_topk_user_subset() -> None:
    n_users, n_items = 30, 20
    model = DotModel(n_users, n_items, seed=7)
    train, test = make_data(n_users, n_items, seed=8)
    with_pos = np.unique(test[test[:, 2] == 1, 0])
    subset = with_pos[::2]
    no_pos = np.setdiff1d(np.arange(n_users), with_pos)
    sub_test = test[np.isin(test[:, 0], subset)]
    expected = evaluate_topk(model, train, sub_test, n_items=n_items, ks=(1, 10))
    # Users without test positives in the given subset are dropped.
    got = evaluate_topk(
        model, train, test, n_items=n_items, ks=(1, 10), users=np.r_[subset, no_pos]
    )
    assert got["n_users"] == len(subset)
    assert got == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="no users"):
        evaluate_topk(model, train, test[test[:, 2] == 0], n_items=n_items)
