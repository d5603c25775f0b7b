"""Two-tower retrieval: log-Q and accidental hits, InfoNCE, the streaming frequency estimate,
each augmentation, the mutual-information matrix, the tower fields, evaluation slices, and
small end-to-end runs (loo and cold-items)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.data.features import FeatureTable, field_mutual_information, tower_features
from kgrec.data.split import Queries
from kgrec.eval.ranking import item_slices, random_recall
from kgrec.models.losses import StreamingFrequency, in_batch_logits, info_nce
from kgrec.models.sequential.base import next_item_rows
from kgrec.models.towers.augment import augment_views, mi_groups


# ---------------------------------------------------------------------- losses
def test_logq_shifts_every_logit_by_exactly_minus_log_p():
    g = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    ids = torch.arange(5)
    p = torch.tensor([0.5, 0.1, 0.2, 0.15, 0.05])
    plain = in_batch_logits(u, v, ids, temperature=0.1)
    corrected = in_batch_logits(u, v, ids, temperature=0.1, log_q=p.log())
    torch.testing.assert_close(corrected - plain, (-p.log())[None, :].expand(5, 5))
    torch.testing.assert_close(plain, u @ v.T / 0.1)


def test_accidental_hits_are_removed_but_the_positive_kept():
    u, v = torch.eye(4), torch.eye(4)
    ids = torch.tensor([7, 3, 7, 1])  # rows 0 and 2 clicked the same item
    logits = in_batch_logits(u, v, ids, remove_accidental=True)
    assert logits[0, 2] == float("-inf") and logits[2, 0] == float("-inf")
    assert torch.isfinite(logits.diagonal()).all()
    assert torch.isfinite(logits[1]).all() and torch.isfinite(logits[3]).all()
    kept = in_batch_logits(u, v, ids, remove_accidental=False)
    assert torch.isfinite(kept).all()


def test_info_nce_against_hand_computed_value():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    # row 0: logits (2, 1.2); row 1: logits (0, 1.6); targets on the diagonal
    expect = 0.5 * ((math.log(math.exp(2) + math.exp(1.2)) - 2)
                    + (math.log(1 + math.exp(1.6)) - 1.6))
    assert info_nce(z1, z2, temperature=t).item() == pytest.approx(expect, rel=1e-6)
    # the same item twice: not a negative of itself
    same = info_nce(z1, z2, temperature=t, ids=torch.tensor([4, 4]))
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_streaming_frequency_recovers_batch_probabilities():
    rng = np.random.default_rng(0)
    q = np.array([0.5, 0.2, 0.05, 0.01])
    est = StreamingFrequency(4, alpha=0.02, initial_gap=10.0)
    for _ in range(20000):
        est.update(torch.from_numpy(np.flatnonzero(rng.random(4) < q)))
    p = torch.exp(est.log_q(torch.arange(4))).numpy()
    np.testing.assert_allclose(p, q, rtol=0.35)
    assert (np.diff(p) < 0).all()
    # hashing: ids share buckets modulo n_buckets
    assert est.log_q(torch.tensor([5])) == est.log_q(torch.tensor([1]))


# ---------------------------------------------------------------------- augmentations
def test_mask_and_complement_views():
    g = torch.Generator().manual_seed(1)
    f1, f2, d1, d2 = augment_views("mask", 200, 6, generator=g)
    assert d1 is None and d2 is None
    assert (f1.sum(1) == 3).all() and (f2.sum(1) == 3).all()
    assert (f1 != f2).any()  # independent halves
    assert (f1 & f2).any()   # ... which may overlap
    c1, c2, _, _ = augment_views("complement", 200, 5, generator=g)
    assert (c1.sum(1) == 2).all() and torch.equal(c2, ~c1)
    n1, n2, _, _ = augment_views("none", 3, 4)
    assert not n1.any() and not n2.any()


def test_dropout_drops_values_of_multi_valued_fields_only():
    g = torch.Generator().manual_seed(2)
    multi = torch.tensor([False, True, True, False, True])
    f1, f2, d1, d2 = augment_views("dropout", 4000, 3, multi_columns=multi, rate=0.5,
                                   generator=g)
    assert not f1.any() and not f2.any()
    assert not d1[:, ~multi].any() and not d2[:, ~multi].any()
    assert d1[:, multi].float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert (d1 != d2).any()


def test_mi_groups_and_correlated_masking():
    mi = np.array([[1.0, 0.9, 0.1, 0.2],
                   [0.9, 1.0, 0.3, 0.0],
                   [0.1, 0.3, 1.0, 0.8],
                   [0.2, 0.0, 0.8, 1.0]])
    groups = mi_groups(mi)  # k // 2 = 2 fields: the seed and its most correlated
    expect = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(groups, expect)
    np.testing.assert_array_equal(mi_groups(mi, 3)[0], [True, True, False, True])
    g = torch.Generator().manual_seed(3)
    f1, f2, _, _ = augment_views("mi", 100, 4, groups=torch.from_numpy(groups), generator=g)
    assert torch.equal(f2, ~f1)
    rows = {tuple(r) for r in f1.int().tolist()}
    assert rows == {(1, 1, 0, 0), (0, 0, 1, 1)}


def test_mutual_information_against_hand_computed_values():
    t = FeatureTable(4)
    t.add("a", [0, 1, 2, 3], ["x", "x", "y", "y"], multi=False)
    t.add("b", [0, 1, 2, 3], ["p", "p", "q", "q"], multi=False)
    t.add("c", [0, 1, 2, 3], ["p", "q", "p", "q"], multi=False)
    mi = field_mutual_information(t)
    ln2 = math.log(2)
    np.testing.assert_allclose(mi, [[ln2, ln2, 0], [ln2, ln2, 0], [0, 0, ln2]], atol=1e-12)
    # a multi-valued field spreads the row's mass: item 0 (x; p, q), item 1 (y; q)
    m = FeatureTable(2).add("a", [0, 1], ["x", "y"], multi=False).add(
        "b", [0, 0, 1], ["p", "q", "q"])
    expect = 0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)
    assert field_mutual_information(m)[0, 1] == pytest.approx(expect, rel=1e-12)
    # a row without a value takes a "missing" value: (x, -), (y, p) are fully dependent
    e = FeatureTable(2).add("a", [0, 1], ["x", "y"], multi=False).add("b", [1], ["p"])
    assert field_mutual_information(e)[0, 1] == pytest.approx(ln2)


# ---------------------------------------------------------------------- fields
def test_stacked_fields_layout():
    t = FeatureTable(3).add("g", [0, 0, 2], ["a", "b", "a"]).add("y", [1], ["1990"],
                                                                  multi=False)
    values, cols, sizes = t.stacked()
    np.testing.assert_array_equal(cols, [0, 0, 1])
    np.testing.assert_array_equal(sizes, [2, 1])
    np.testing.assert_array_equal(values, [[0, 1, -1], [-1, -1, 2], [0, -1, -1]])
    v2, c2, _ = t.stacked(max_values=1)
    np.testing.assert_array_equal(c2, [0, 1])
    np.testing.assert_array_equal(v2[:, 0], [0, -1, 0])


def test_tower_features_read_the_kg_and_drop_rare_fields(tiny_dataset):
    items, users = tower_features(tiny_dataset)
    assert items.fields[0] == "item_id" and users.fields == ("user_id",)
    kg_fields = [f for f in items.fields if f.startswith("kg:")]
    assert kg_fields and len(kg_fields) <= tiny_dataset.n_relations
    no_kg, _ = tower_features(tiny_dataset, kg=False)
    assert no_kg.fields == ("item_id", "genre")  # the synthetic data's own field
    strict, _ = tower_features(tiny_dataset, min_coverage=1.01)
    assert strict.fields == ("item_id",)


def test_next_item_rows_with_first_events():
    indptr, items = np.array([0, 3, 4]), np.array([5, 6, 7, 8])
    rows = next_item_rows(indptr, items, 2, first=True)
    np.testing.assert_array_equal(rows, [[-1, -1, 5], [-1, 5, 6], [5, 6, 7], [-1, -1, 8]])
    np.testing.assert_array_equal(next_item_rows(indptr, items, 2), rows[1:3])


# ---------------------------------------------------------------------- slices
def test_item_slices_and_random_recall():
    train_items = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # 10 clicked items
    s = item_slices(train_items, 12)
    np.testing.assert_array_equal(np.flatnonzero(~s["tail"]), [0, 1])  # 20% of 10 items
    np.testing.assert_array_equal(np.flatnonzero(s["cold"]), [10, 11])
    q = Queries(np.array([0, 1, 2]), np.array([0, 2, 2, 2]), np.array([3, 4]),
                np.array([0, 1, 3, 3]), np.array([10, 0, 11]))
    # query 0 ranks 12 - 2 items, query 1 all 12; query 2 has no target
    assert random_recall(q, 12, [5])["random_recall@5"] == pytest.approx((5 / 10 + 5 / 12) / 2)
    cold = q.with_targets(s["cold"])
    np.testing.assert_array_equal(cold.tgt_indptr, [0, 1, 2, 2])
    np.testing.assert_array_equal(cold.tgt_items, [10, 11])
    np.testing.assert_array_equal(cold.hist_items, q.hist_items)


# ---------------------------------------------------------------------- end to end
def _run(tmp_path, tiny_dataset, monkeypatch, protocol, **params):
    import kgrec.data.catalog as catalog
    from kgrec.experiments.run import RunConfig, train

    monkeypatch.setattr(catalog, "load_dataset", lambda name, seed=0, **kw: tiny_dataset)
    return train(RunConfig(dataset="tiny", model="two-tower", protocol=protocol, epochs=8,
                           params={"batch_size": 64, "lr": 5e-3, **params},
                           out=str(tmp_path / protocol), progress=False, plot=False))


@pytest.fixture
def tiny_dataset():
    from kgrec.data.synthetic import make_synthetic

    return make_synthetic(seed=0, n_users=120, n_items=100, n_topics=4, n_creators=10,
                          clicks_mean=12)


def test_two_tower_loo_beats_random_and_scores_consistently(tmp_path, tiny_dataset,
                                                            monkeypatch):
    res = _run(tmp_path, tiny_dataset, monkeypatch, "loo", ssl="mi")
    m, model = res.metrics, res.model.eval()
    assert m["test"]["recall@20"] > 2 * 20 / 100
    tail = m["test_slices"]["tail"]
    assert tail["n_queries"] > 0 and "random_recall@50" in tail
    users = torch.tensor([0, 5, 9])
    hist = model.user_history[users]
    with torch.no_grad():
        scores = model.score_queries(users, hist)
        ann = model.user_vectors(users, hist) @ model.item_vectors().T
        torch.testing.assert_close(scores, ann)
        u = model.user_embed(users, hist)
        assert torch.allclose(u.norm(dim=1), torch.ones(3), atol=1e-5)
    assert model.mi_groups.any()  # the MI groups were computed for ssl=mi


def test_two_tower_places_cold_items_from_their_features(tmp_path, tiny_dataset, monkeypatch):
    res = _run(tmp_path, tiny_dataset, monkeypatch, "cold-items", logq_estimate="stream")
    cold = res.metrics["test_slices"]["cold"]
    assert cold["n_queries"] > 0
    # ranked among the 10 new items (random: recall@10 = 1) and among all 100 items
    assert cold["recall@10"] == pytest.approx(cold["random_recall@10"])
    assert cold["recall@20"] == pytest.approx(1.0)  # all 10 fit in the top 20
    everything = res.metrics["test_slices"]["all_items"]
    assert everything["recall@20"] > 1.5 * everything["random_recall@20"]
    model = res.model
    counts = np.bincount(res.model.user_history[res.model.user_history >= 0].numpy(),
                         minlength=model.n_items)
    # items never clicked in training have no id value: only content places them
    ids = model.item_values[:, 0].numpy()
    assert (ids[counts > 0] >= 0).all()
    assert model.freq.step.item() > 0


def test_novel_category_targets_by_hand():
    import numpy as np

    from kgrec.data.split import Queries
    from kgrec.eval.ranking import novel_category_targets

    cat = np.array([0, 0, 1, 2, -1, 1])
    # query 0: history 0, 2, 1 (categories 0, 1, 0), targets 3 (cat 2), 2 (cat 1), 4 (none)
    # query 1: history 3 (cat 2), targets 2 (cat 1), 3 (cat 2), 5 (cat 1)
    q = Queries(np.array([0, 1]), np.array([0, 3, 4]), np.array([0, 2, 1, 3]),
                np.array([0, 3, 6]), np.array([3, 2, 4, 2, 3, 5]))
    r = novel_category_targets(q, cat, last=2)
    assert r.tgt_indptr.tolist() == [0, 1, 3] and r.tgt_items.tolist() == [3, 2, 5]
    r = novel_category_targets(q, cat, last=1)  # only item 1 (cat 0) counts for query 0
    assert r.tgt_indptr.tolist() == [0, 2, 4] and r.tgt_items.tolist() == [3, 2, 2, 5]
    with pytest.raises(ValueError, match="one entry per target"):
        q.select_targets(np.ones(2, bool))
