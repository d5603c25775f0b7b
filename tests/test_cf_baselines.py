"""Interaction-only baselines: popularity, BPR-MF, item-based CF."""

import io
import math

import numpy as np
import pytest
import torch

from kgrec.data.sampling import PairSet
from kgrec.data.split import random_split
from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.cf.bpr_mf import BPRMF, BPRConfig, sample_bpr_triples
from kgrec.models.cf.item_cf import ItemCF, ItemCFConfig, _ratings, item_similarities
from kgrec.models.cf.pop import Popularity, PopularityConfig, fit_platt
from kgrec.train.trainer import TrainConfig, Trainer, seed_everything


def _data(train, n_users, n_items):
    return TrainData(rec_rows=lambda e: train, kg=np.zeros((0, 3), np.int64), n_users=n_users,
                     n_items=n_items, n_entities=n_items, n_relations=1,
                     item_entity=np.arange(n_items), train=train)


def _roundtrip(model, fresh):
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    return fresh


def _all_pairs(model, n_users):
    users = torch.arange(n_users)
    full = model.score_all(users)
    pairs = model.score(users.repeat_interleave(model.n_items),
                        torch.arange(model.n_items).repeat(n_users))
    return full, pairs.view(n_users, model.n_items)


# ---------------------------------------------------------------------------- calibration
def test_fit_platt_solves_the_logistic_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=4000)
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.8 * x - 2.0)))
    a, b = fit_platt(x, y, l2=0.0)
    p = 1 / (1 + np.exp(-(a * x + b)))
    assert abs(np.sum(p - y)) < 1e-6 and abs(np.sum((p - y) * x)) < 1e-6  # first-order optimum
    assert a == pytest.approx(0.8, abs=0.1) and b == pytest.approx(-2.0, abs=0.3)
    a, b = fit_platt(1000 * x + 5, x > 3)  # separable and large: finite, ordered
    assert np.isfinite(b) and a > 0
    assert fit_platt(x, x < 3)[0] == pytest.approx(1e-6)  # never an inverted ranking


# ---------------------------------------------------------------------------- popularity
def test_popularity_counts_order_and_leave_one_out_calibration():
    train = np.array([[0, 2, 1], [1, 2, 1], [2, 2, 1], [0, 1, 1], [1, 1, 1], [2, 0, 1],
                      [0, 0, 0], [1, 3, 0], [2, 3, 0], [2, 1, 0]])
    m = Popularity(n_users=3, n_items=4)
    assert m.tasks(_data(train, 3, 4)) == []
    assert m.counts.tolist() == [1, 2, 3, 0]
    full, pairs = _all_pairs(m, 3)
    assert torch.allclose(full, pairs)
    assert full[0].argsort(descending=True).tolist() == [2, 1, 0, 3]
    loo = np.log1p(np.array([1, 2, 3, 0])[train[:, 1]] - train[:, 2])  # the row left out
    a, b = fit_platt(loo, train[:, 2] == 1)
    assert m.calib.tolist() == pytest.approx([a, b], rel=1e-5)
    assert full[1, 2].item() == pytest.approx(a * math.log(4) + b, rel=1e-5)
    raw = Popularity(n_users=3, n_items=4, config=PopularityConfig(calibrate=False))
    raw.fit(train)
    assert raw.score(torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(math.log(3))
    again = _roundtrip(m, Popularity(n_users=3, n_items=4))
    assert torch.equal(again.score_all(torch.arange(3)), full)


# ---------------------------------------------------------------------------- BPR-MF
def test_bpr_loss_by_hand():
    m = BPRMF(n_users=2, n_items=3, config=BPRConfig(dim=2, l2_weight=0.1))
    with torch.no_grad():
        m.user_emb.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
        m.item_emb.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]))
        m.item_bias.copy_(torch.tensor([0.1, 0.0, -0.2]))
    batch = torch.tensor([[0, 0, 1], [1, 2, 0]])
    # x_uij: user 0: (1 + 0.1) - (2 + 0) = -0.9; user 1: (-1.5 - 0.2) - (0.5 + 0.1) = -2.3
    sp = [math.log1p(math.exp(0.9)), math.log1p(math.exp(2.3))]
    reg = [(5 + 1 + 1 + 0.01 + 0), (1.25 + 2 + 1 + 0.04 + 0.01)]
    expected = (sp[0] + sp[1]) / 2 + 0.1 * (reg[0] + reg[1]) / 2
    assert m.bpr_loss(batch).item() == pytest.approx(expected, rel=1e-6)
    assert m.raw_score(torch.tensor([1]), torch.tensor([2])).item() == pytest.approx(-1.7)


def test_bpr_negatives_are_never_training_positives():
    rng = np.random.default_rng(0)
    n_items = 12
    users = np.repeat(np.arange(5), [11, 6, 3, 1, 8])  # user 0 has all but one item
    items = np.concatenate([rng.permutation(n_items)[:c] for c in [11, 6, 3, 1, 8]])
    pos = np.c_[users, items]
    exclude = PairSet(users, items, n_items)
    trip = sample_bpr_triples(pos, n_items, exclude, np.random.default_rng(1))
    assert len(trip) == len(pos)
    assert not exclude.contains(trip[:, 0], trip[:, 2]).any()
    assert np.array_equal(trip[:, :2], pos)
    only = set(range(n_items)) - set(items[users == 0])
    assert set(trip[trip[:, 0] == 0, 2]) == only
    # through the model's task: labelled rows, fresh draws per epoch, positives only
    train = np.c_[pos, np.ones(len(pos), np.int64)]
    train = np.r_[train, [[3, (items[users == 3][0] + 1) % n_items, 0]]]
    torch.manual_seed(0)
    m = BPRMF(n_users=5, n_items=n_items, config=BPRConfig(dim=4))
    rec, calib = m.tasks(_data(train, 5, n_items))
    e0, e1 = rec.source(0), rec.source(1)
    assert len(e0) == len(pos) and not exclude.contains(e0[:, 0], e0[:, 2]).any()
    assert not np.array_equal(e0[:, 2], e1[:, 2]) and np.array_equal(e0, rec.source(0))
    assert calib.name == "calib" and calib.params == []


def test_bpr_grads_calibration_fit_and_roundtrip(tiny_dataset):
    ds = tiny_dataset
    split = random_split(ds.ratings, seed=0)
    seed_everything(0)
    m = build_model("bpr-mf", ds, model_config("bpr-mf", {"dim": 16, "l2_weight": 1e-2,
                                                           "lr": 1e-2, "batch_size": 128}))
    rec = m.tasks(_data(split.train, ds.n_users, ds.n_items))[0]
    loss = rec.loss(torch.from_numpy(rec.source(0)[:64]))
    loss.backward()
    assert torch.isfinite(loss)
    assert m.user_emb.grad.abs().sum() > 0 and m.item_bias.grad.abs().sum() > 0
    m.zero_grad(set_to_none=True)
    fit = Trainer(TrainConfig(epochs=12, progress=False, threads=1)).fit(
        m, _data(split.train, ds.n_users, ds.n_items), split.valid, split.test)
    assert fit.test["auc"] > 0.6, fit.test
    assert set(fit.history[0].losses) == {"rec", "calib"}
    a, b = m.calib.tolist()
    assert a > 0 and (a, b) != (1.0, 0.0)
    full, pairs = _all_pairs(m, ds.n_users)
    assert torch.allclose(full, pairs, atol=1e-5)
    fresh = BPRMF(n_users=ds.n_users, n_items=ds.n_items, config=m.config)
    assert torch.equal(_roundtrip(m, fresh).score_all(torch.arange(5)), full[:5])


# ---------------------------------------------------------------------------- item-CF
def _brute_similarity(r: np.ndarray, cfg: ItemCFConfig) -> np.ndarray:
    """Dense, loop-by-pair reference of the refined adjusted cosine (r: 0 = unrated)."""
    n_users, n_items = r.shape
    rated = r != 0
    sim = np.zeros((n_items, n_items))
    var = np.array([r[rated[:, i], i].var() if rated[:, i].any() else 0.0
                    for i in range(n_items)])
    kept = [u for u in range(n_users)
            if rated[u].any() and r[u, rated[u]].std() >= cfg.min_user_std]
    for i in range(n_items):
        for j in range(n_items):
            if i == j or min(rated[:, i].sum(), rated[:, j].sum()) < cfg.min_item_count:
                continue
            co = [u for u in kept if rated[u, i] and rated[u, j]]
            if len(co) < cfg.min_common:
                continue
            ci = np.array([r[u, i] - r[u, rated[u]].mean() for u in co])
            cj = np.array([r[u, j] - r[u, rated[u]].mean() for u in co])
            den = math.sqrt((ci**2).sum() * (cj**2).sum())
            if den == 0:
                continue
            s = (ci * cj).sum() / den * len(co) / (len(co) + cfg.shrinkage)
            sim[i, j] = s / math.sqrt((1 + cfg.variance_penalty * var[i])
                                      * (1 + cfg.variance_penalty * var[j]))
    return sim


def _dense_from_table(index, value, n_items):
    out = np.zeros((n_items, n_items))
    np.add.at(out, (np.repeat(np.arange(n_items), index.shape[1]), index.ravel()),
              value.ravel())
    return out


@pytest.mark.parametrize("cfg", [
    ItemCFConfig(k=100, min_user_std=0.5, variance_penalty=2.0, min_item_count=3,
                 min_common=2, shrinkage=3.0, block_mb=0.0001),
    ItemCFConfig(k=100, min_user_std=0.0, variance_penalty=0.0, min_item_count=1,
                 min_common=1, shrinkage=0.0),
])
def test_item_similarities_match_brute_force(cfg):
    rng = np.random.default_rng(3)
    n_users, n_items = 14, 9
    mask = rng.random((n_users, n_items)) < 0.5
    r = np.where(mask, rng.choice([-1.0, 1.0], size=mask.shape, p=[0.4, 0.6]), 0.0)
    r[0, mask[0]] = 1.0  # a constant user: dropped from the similarities when min_user_std > 0
    u, i = np.nonzero(r)
    train = np.c_[u, i, (r[u, i] > 0).astype(np.int64)]
    keys, rating = _ratings(train, n_items)
    index, value = item_similarities(keys, rating, n_users, n_items, cfg)
    assert index.shape == (n_items, n_items - 1)
    expected = _brute_similarity(r, cfg)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(_dense_from_table(index, value, n_items), expected, atol=1e-12)
    # top-k keeps the k largest |sim| of each row, in decreasing order
    small = ItemCFConfig(**{**cfg.__dict__, "k": 3})
    index3, value3 = item_similarities(keys, rating, n_users, n_items, small)
    assert index3.shape == (n_items, 3)
    np.testing.assert_allclose(np.abs(value3), -np.sort(-np.abs(expected), axis=1)[:, :3],
                               atol=1e-12)
    np.testing.assert_allclose(value3, np.take_along_axis(expected, index3, 1), atol=1e-12)


def test_item_cf_toy_case_by_hand():
    # u0: (+1, +1, -1), u1: (+1, -1, .), u2: (-1, -1, +1), u3: (+1, +1, .) constant
    train = np.array([[0, 0, 1], [0, 1, 1], [0, 2, 0], [1, 0, 1], [1, 1, 0],
                      [2, 0, 0], [2, 1, 0], [2, 2, 1], [3, 0, 1], [3, 1, 1]])
    cfg = ItemCFConfig(k=5, min_user_std=0.1, variance_penalty=1.0, min_item_count=1,
                       min_common=1, shrinkage=1.0, eps=1e-3, calibrate=False)
    m = ItemCF(n_users=4, n_items=3, config=cfg)
    assert m.tasks(_data(train, 4, 3)) == []
    # centred (u3 left out): u0 (2/3, 2/3, -4/3), u1 (1, -1), u2 (-2/3, -2/3, 4/3)
    # sim01 = (4/9 - 1 + 4/9) / (17/9) = -1/17, 3 co-raters -> * 3/4,
    # item variances over all four raters: var0 = 1 - (1/2)^2 = 3/4, var1 = var2 = 1
    s01 = -1 / 17 * 3 / 4 / math.sqrt(7 / 4 * 2)
    # sim02 = sim12 = -1 (u0, u2 co-rate), 2 co-raters -> * 2/3
    s02 = -1 * 2 / 3 / math.sqrt(7 / 4 * 2)
    s12 = -1 * 2 / 3 / 2
    sim = _dense_from_table(m.nbr_index.numpy(), m.nbr_value.double().numpy(), 3)
    np.testing.assert_allclose(sim, [[0, s01, s02], [s01, 0, s12], [s02, s12, 0]], rtol=1e-6)
    score = m.score(torch.tensor([1, 3, 1]), torch.tensor([0, 2, 2])).double().numpy()
    by_hand = [s01 * -1 / (abs(s01) + 1e-3),  # u1 on item 0: neighbour 1 rated -1
               (s02 + s12) / (abs(s02) + abs(s12) + 1e-3),  # u3 (constant) has a history
               (s02 * 1 + s12 * -1) / (abs(s02) + abs(s12) + 1e-3)]
    np.testing.assert_allclose(score, by_hand, rtol=1e-5)
    full, pairs = _all_pairs(m, 4)
    assert torch.allclose(full, pairs, atol=1e-6)


def test_item_cf_end_to_end_scores_and_roundtrip(tiny_dataset):
    ds = tiny_dataset
    split = random_split(ds.ratings, seed=0)
    seed_everything(0)
    m = build_model("item-cf", ds, model_config("item-cf", {"k": 20}))
    assert m.config.k == 20
    fit = Trainer(TrainConfig(epochs=1, progress=False, threads=1)).fit(
        m, _data(split.train, ds.n_users, ds.n_items), split.valid, split.test)
    assert fit.test["auc"] > 0.58, fit.test
    assert m.calib[0] > 0 and len(m.hist_key) == len(np.unique(split.train[:, :2], axis=0))
    full, pairs = _all_pairs(m, ds.n_users)
    assert torch.allclose(full, pairs, atol=1e-5)
    fresh = ItemCF(n_users=ds.n_users, n_items=ds.n_items, config=m.config)
    assert len(fresh.hist_key) == 0
    assert fresh.score_all(torch.arange(3)).abs().sum() == 0  # unfitted (and caches sim^T)
    assert torch.equal(_roundtrip(m, fresh).score_all(torch.arange(ds.n_users)), full)
    prior = ItemCF(n_users=ds.n_users, n_items=ds.n_items,
                   config=ItemCFConfig(k=20, pop_weight=0.5))
    prior.fit(split.train)
    full, pairs = _all_pairs(prior, ds.n_users)
    assert torch.allclose(full, pairs, atol=1e-5)


def test_pop_end_to_end_beats_chance(tiny_dataset):
    ds = tiny_dataset
    split = random_split(ds.ratings, seed=0)
    m = build_model("pop", ds, model_config("pop", {}))
    fit = Trainer(TrainConfig(epochs=1, progress=False, threads=1)).fit(
        m, _data(split.train, ds.n_users, ds.n_items), split.valid, split.test)
    assert fit.test["auc"] > 0.6 and fit.test["acc"] > 0.55, fit.test


@pytest.mark.parametrize("bad", [{"k": 0}, {"eps": 0.0}, {"min_common": 0},
                                 {"calib_holdout": 1.0}, {"shrinkage": -1.0}])
def test_item_cf_rejects_bad_config(bad):
    with pytest.raises(ValueError):
        ItemCFConfig(**bad)


@pytest.mark.parametrize("bad", [{"dim": 0}, {"lr": 0.0}, {"l2_weight": -1.0},
                                 {"calib_holdout": -0.1}])
def test_bpr_rejects_bad_config(bad):
    with pytest.raises(ValueError):
        BPRConfig(**bad)


def test_item_cf_run_directory_restores_the_fitted_model(tmp_path):
    """``kgrec evaluate`` rebuilds an unfitted model and loads the checkpoint into it."""
    from kgrec.experiments.run import RunConfig, evaluate_run, train

    res = train(RunConfig(model="item-cf", out=str(tmp_path / "icf"), progress=False,
                          topk=False, params={"k": 20}))
    again = evaluate_run(res.run_dir, topk=False)
    assert again["test"]["auc"] == pytest.approx(res.metrics["test"]["auc"], abs=1e-12)
    assert again["test"]["acc"] == pytest.approx(res.metrics["test"]["acc"], abs=1e-12)


def test_bpr_negatives_only_from_candidates():
    """Under the cold-items protocol BPR's negatives come from warm items only, still never
    a training positive; the exact fallback (a user with almost every candidate) too."""
    from kgrec.data.sampling import PairSet
    from kgrec.models.cf.bpr_mf import sample_bpr_triples

    n_items = 20
    cand = np.arange(n_items) < 6
    pos = np.array([[0, 0], [0, 1], [1, 2], [2, 0], [2, 1], [2, 2], [2, 3], [2, 4]])
    excl = PairSet(pos[:, 0], pos[:, 1], n_items)
    t = sample_bpr_triples(pos, n_items, excl, np.random.default_rng(0), candidates=cand)
    assert len(t) == len(pos) and cand[t[:, 2]].all()
    assert not excl.contains(t[:, 0], t[:, 2]).any()
    assert set(t[t[:, 0] == 2, 2]) == {5}  # user 2's only warm non-positive
