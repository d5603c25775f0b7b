"""Tests of the pure metric functions against scikit-learn and hand / reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from kgrec.eval.metrics import TOPK_METRICS, auc, ctr_metrics, topk_metrics, topk_sums


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    labels = rng.integers(0, 2, n)
    scores = rng.integers(0, 7, n) + 0.3 * labels  # few distinct values: many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    continuous = rng.random(n)
    assert auc(labels, continuous) == pytest.approx(roc_auc_score(labels, continuous), abs=1e-12)
    # All scores tied: 0.5.
    assert auc(labels, np.zeros(n)) == pytest.approx(0.5)


def test_auc_perfect_inverse_and_bool_labels() -> None:
    labels = np.array([False, False, True, True])
    assert auc(labels, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc(labels, [0.4, 0.3, 0.2, 0.1]) == 0.0


def test_auc_single_class_raises() -> None:
    with pytest.raises(ValueError, match="only one class"):
        auc(np.ones(5, dtype=np.int64), np.arange(5.0))
    with pytest.raises(ValueError, match="0/1"):
        auc(np.array([0, 2]), np.array([0.1, 0.2]))


@pytest.mark.parametrize("seed", range(3))
def test_ctr_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    labels = rng.integers(0, 2, n)
    probs = np.clip(rng.random(n) * 0.8 + 0.2 * labels, 0.01, 0.99)
    probs[:50] = 0.5  # exactly at the threshold: predicted positive (MKR's >= 0.5)
    out = ctr_metrics(labels, probs)
    pred = (probs >= 0.5).astype(int)
    assert out["n"] == n
    assert out["auc"] == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
    assert out["acc"] == pytest.approx(accuracy_score(labels, pred), abs=1e-12)
    assert out["f1"] == pytest.approx(f1_score(labels, pred), abs=1e-12)
    assert out["logloss"] == pytest.approx(log_loss(labels, probs), abs=1e-12)


def test_ctr_metrics_threshold_and_clipping() -> None:
    labels = np.array([0, 1, 1, 0])
    probs = np.array([0.0, 1.0, 0.0, 1.0])  # two confidently wrong: logloss clipped, finite
    out = ctr_metrics(labels, probs, threshold=0.5)
    assert out["acc"] == 0.5
    assert out["f1"] == pytest.approx(f1_score(labels, probs >= 0.5))
    assert out["logloss"] == pytest.approx(-math.log(1e-7) / 2, rel=1e-6)
    # No predicted positive: F1 = 0 (as sklearn's zero_division default).
    assert ctr_metrics(labels, np.full(4, 0.1))["f1"] == 0.0


def test_topk_hand_example() -> None:
    # User 0: ranking [rel, non, rel], n_relevant 3.
    #   P@1 = 1/1, P@2 = 1/2, P@3 = 2/3; R@1 = 1/3, R@2 = 1/3, R@3 = 2/3
    #   DCG@2 = 1/log2(2) = 1;             IDCG@2 = 1 + 1/log2(3)  -> NDCG@2 = 1 / (1 + 1/log2 3)
    #   DCG@3 = 1 + 1/log2(4) = 1.5;       IDCG@3 = 1 + 1/log2(3) + 1/2
    # User 1: ranking [non, non, rel], n_relevant 1.
    #   P@1 = P@2 = 0, P@3 = 1/3; R@3 = 1; NDCG@3 = (1/log2 4) / 1 = 0.5; hit@2 = 0, hit@3 = 1
    hits = np.array([[True, False, True], [False, False, True]])
    n_rel = np.array([3, 1])
    out = topk_metrics(hits, n_rel, ks=(1, 2, 3, 5))
    inv_log3 = 1 / math.log2(3)
    assert out["n_users"] == 2
    assert out["precision@1"] == pytest.approx((1 + 0) / 2)
    assert out["precision@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert out["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    # K = 5 > 3 ranked items: missing ranks are misses, precision still divides by 5.
    assert out["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert out["recall@2"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["ndcg@1"] == pytest.approx((1 + 0) / 2)
    assert out["ndcg@2"] == pytest.approx((1 / (1 + inv_log3) + 0) / 2)
    assert out["ndcg@3"] == pytest.approx((1.5 / (1 + inv_log3 + 0.5) + 0.5) / 2)
    # IDCG@5 of user 0 uses min(3, 5) = 3 ideal hits: same as IDCG@3.
    assert out["ndcg@5"] == pytest.approx(out["ndcg@3"])
    assert out["hit@1"] == 0.5 and out["hit@2"] == 0.5 and out["hit@3"] == 1.0
    assert out["sums"]["precision@3"] == pytest.approx(1.0)
    # hr = hit; MRR: user 0's first hit at rank 1, user 1's at rank 3.
    assert all(out[f"hr@{k}"] == out[f"hit@{k}"] for k in (1, 2, 3, 5))
    assert out["mrr@1"] == pytest.approx((1 + 0) / 2)
    assert out["mrr@2"] == pytest.approx((1 + 0) / 2)
    assert out["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert out["mrr@5"] == pytest.approx(out["mrr@3"])


def test_ndcg_idcg_uses_min_of_targets_and_k() -> None:
    # One hit at rank 1 out of 5 targets: NDCG@3 = 1 / (1 + 1/log2 3 + 1/2), not 1 (ComiRec's
    # IDCG over the number of hits would give 1). With 1 target, IDCG@3 = 1.
    hits = np.array([[True, False, False]])
    ideal3 = 1 + 1 / math.log2(3) + 0.5
    assert topk_metrics(hits, np.array([5]), ks=(3,))["ndcg@3"] == pytest.approx(1 / ideal3)
    assert topk_metrics(hits, np.array([1]), ks=(3,))["ndcg@3"] == pytest.approx(1.0)
    # No hit: MRR 0; empty ranking (Kmax = 0) is all misses.
    assert topk_metrics(np.zeros((1, 3), bool), np.array([2]), ks=(3,))["mrr@3"] == 0.0
    assert topk_metrics(np.zeros((2, 0), bool), np.array([1, 1]), ks=(1,))["mrr@1"] == 0.0


def reference_topk(hits: np.ndarray, n_rel: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Straightforward per-user loop of the definitions."""
    acc = {f"{m}@{k}": 0.0 for m in TOPK_METRICS for k in ks}
    for row, nr in zip(hits, n_rel, strict=False):
        for k in ks:
            top = row[:k]
            h = int(top.sum())
            dcg = sum(1 / math.log2(j + 2) for j in range(len(top)) if top[j])
            idcg = sum(1 / math.log2(j + 2) for j in range(min(nr, k)))
            acc[f"precision@{k}"] += h / k
            acc[f"recall@{k}"] += h / nr
            acc[f"ndcg@{k}"] += dcg / idcg
            acc[f"hit@{k}"] += float(h > 0)
            acc[f"hr@{k}"] += float(h > 0)
            first = next((j for j in range(len(top)) if top[j]), None)
            acc[f"mrr@{k}"] += 0.0 if first is None else 1 / (first + 1)
    return {key: v / len(hits) for key, v in acc.items()}


@pytest.mark.parametrize("seed", range(3))
def test_topk_matches_reference_and_chunks_add_up(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, kmax = 300, 20
    hits = rng.random((n, kmax)) < 0.15
    n_rel = hits.sum(1) + rng.integers(0, 6, n)
    n_rel[n_rel == 0] = 1
    ks = (1, 3, 10, 20, 50)
    out = topk_metrics(hits, n_rel, ks)
    ref = reference_topk(hits, n_rel, ks)
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    # Chunked sums divided by the total user count give the same means.
    parts = [topk_sums(hits[i : i + 70], n_rel[i : i + 70], ks) for i in range(0, n, 70)]
    for key, value in ref.items():
        assert sum(p[key] for p in parts) / n == pytest.approx(value, abs=1e-12), key


def test_topk_input_checks() -> None:
    with pytest.raises(ValueError, match="more hits"):
        topk_sums(np.array([[True, True]]), np.array([1]), ks=(2,))
    with pytest.raises(ValueError, match="ks"):
        topk_sums(np.zeros((1, 2), bool), np.array([1]), ks=(0,))
    with pytest.raises(ValueError, match="no users"):
        topk_metrics(np.zeros((0, 2), bool), np.zeros(0), ks=(1,))
    # n_relevant == 0: recall and NDCG are 0 by convention.
    out = topk_metrics(np.zeros((1, 2), bool), np.array([0]), ks=(2,))
    assert out["recall@2"] == 0.0 and out["ndcg@2"] == 0.0
