"""LibFM-style FM and Wide&Deep on user, item and pre-trained TransR item features."""

import numpy as np
import pytest
import torch

from kgrec.data.split import random_split
from kgrec.data.synthetic import make_synthetic
from kgrec.models import model_config
from kgrec.models.base import TrainData
from kgrec.models.ctr.fm import FM, FMConfig, pairwise_interactions
from kgrec.models.ctr.wide_deep import WideDeep, WideDeepConfig
from kgrec.pretrain import build_model
from kgrec.train.trainer import TrainConfig, Trainer, seed_everything


def _train_data(ds, rows=None):
    rows = ds.ratings if rows is None else rows
    return TrainData(rec_rows=lambda e: rows, kg=ds.kg, n_users=ds.n_users, n_items=ds.n_items,
                     n_entities=ds.n_entities, n_relations=ds.n_relations,
                     item_entity=ds.item_entity, train=rows)


def _fm(use_kg=True, **kw):
    torch.manual_seed(0)
    cfg = FMConfig(dim=3, kg_dim=4, use_kg=use_kg, **kw)
    feats = torch.randn(5, 4).numpy() if use_kg else None
    m = FM(n_users=4, n_items=5, item_features=feats, config=cfg)
    with torch.no_grad():  # every parameter non-zero, so each term of the formula counts
        for p in m.parameters():
            p.normal_()
    return m


# --------------------------------------------------------------------------- FM
def test_pairwise_interactions_hand_computed():
    v = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 1.0]])
    z = torch.tensor([[1.0, 2.0, -1.0]])
    # <v0,v1> z0 z1 + <v0,v2> z0 z2 + <v1,v2> z1 z2 = 1*2 + 2.5*(-1) + 0.5*(-2) = -1.5
    assert pairwise_interactions(v, z).item() == pytest.approx(-1.5)
    brute = sum((v[j] @ v[m]) * z[0, j] * z[0, m] for j in range(3) for m in range(j + 1, 3))
    assert pairwise_interactions(v, z).item() == pytest.approx(float(brute))


@pytest.mark.parametrize("use_kg", [True, False])
def test_fm_score_matches_brute_force_double_loop(use_kg):
    m = _fm(use_kg)
    users = torch.tensor([0, 1, 3, 2, 0])
    items = torch.tensor([4, 0, 2, 2, 1])
    torch.testing.assert_close(m.score(users, items), m.brute_force_score(users, items))
    # and against the generic sum-square helper over the explicit feature vectors
    x = m.item_features[items]
    z = torch.cat([torch.ones(5, 2), x], 1)
    v = torch.cat([m.user_v[users, None], m.item_v[items, None],
                   m.dense_v.expand(5, -1, -1)], 1)
    lin = m.bias + m.user_w[users] + m.item_w[items] + x @ m.dense_w
    torch.testing.assert_close(m.score(users, items), lin + pairwise_interactions(v, z))


@pytest.mark.parametrize("use_kg", [True, False])
def test_fm_score_all_equals_score(use_kg):
    m = _fm(use_kg)
    users = torch.tensor([3, 0, 1])
    pair = m.score(users.repeat_interleave(5), torch.arange(5).repeat(3)).view(3, 5)
    torch.testing.assert_close(m.score_all(users), pair)


def test_fm_l2_is_per_case():
    m = _fm(l2_weight=0.5)
    batch = torch.tensor([[0, 1, 1], [2, 3, 0]])
    u, i = batch[:, 0], batch[:, 1]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(m.score(u, i), batch[:, 2].float())
    case = (m.user_w[u] ** 2 + m.item_w[i] ** 2 + (m.user_v[u] ** 2).sum(1)
            + (m.item_v[i] ** 2).sum(1)).mean()
    expected = bce + 0.5 * (case + (m.dense_w ** 2).sum() + (m.dense_v ** 2).sum())
    torch.testing.assert_close(m.rec_loss(batch), expected)


def test_fm_forward_backward_and_buffer_restored(tiny_dataset):
    ds = tiny_dataset
    seed_everything(0)
    cfg = model_config("fm", {"dim": 4, "kg_dim": 4, "kge_epochs": 2})
    m = build_model("fm", ds, cfg)
    feats = m.item_features.clone()
    assert feats.shape == (ds.n_items, 4) and feats.abs().sum() > 0
    # standardised columns
    torch.testing.assert_close(feats.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    (task,) = m.tasks(_train_data(ds))
    loss = task.loss(torch.from_numpy(ds.ratings[:64]))
    assert torch.isfinite(loss)
    loss.backward()
    for p in (m.user_v, m.item_v, m.dense_v, m.dense_w, m.user_w, m.item_w, m.bias):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # a checkpoint restores the pre-trained features into a model built without them
    state = m.state_dict()
    assert "item_features" in state
    fresh = FM(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
    assert fresh.item_features.abs().sum() == 0
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.item_features, feats)
    users = torch.arange(5)
    torch.testing.assert_close(fresh.score_all(users), m.score_all(users))


def test_fm_config_errors():
    with pytest.raises(ValueError, match="dim"):
        FMConfig(dim=0)
    with pytest.raises(ValueError, match="kg_dim"):
        FMConfig(kg_dim=0)
    with pytest.raises(ValueError, match="lr"):
        FMConfig(lr=0)
    with pytest.raises(ValueError, match="item_features"):
        FM(n_users=2, n_items=3, item_features=np.zeros((3, 5)), config=FMConfig(kg_dim=4))


# --------------------------------------------------------------------------- Wide&Deep
def _wd(**kw):
    torch.manual_seed(0)
    cfg = WideDeepConfig(**{"dim": 3, "kg_dim": 4, "hidden": [5, 4], "chunk": 7, **kw})
    feats = torch.randn(6, 4).numpy() if cfg.use_kg else None
    m = WideDeep(n_users=4, n_items=6, item_features=feats, config=cfg)
    with torch.no_grad():
        for p in (m.user_w, m.item_w, m.dense_w, m.cross_w, m.bias):
            p.normal_()
    return m


@pytest.mark.parametrize("kw", [{}, {"cross": True, "dropout": 0.5}, {"hidden": []},
                                {"use_kg": False}])
def test_wide_deep_shapes_and_score_all_equals_score(kw):
    m = _wd(**kw)
    m.eval()
    users = torch.tensor([3, 0, 1])
    s = m.score(users.repeat_interleave(6), torch.arange(6).repeat(3))
    assert s.shape == (18,)
    all_ = m.score_all(users)  # chunk=7 values: several item chunks
    assert all_.shape == (3, 6)
    torch.testing.assert_close(all_, s.view(3, 6))


def test_wide_deep_score_is_wide_plus_deep():
    m = _wd(cross=True)
    u, i = torch.tensor([1, 2]), torch.tensor([0, 5])
    x = m.item_features[i]
    wide = m.bias + m.user_w[u] + m.item_w[i] + x @ m.dense_w + (m.cross_w[u] * x).sum(1)
    h = torch.cat([m.user_emb[u], m.item_emb[i], x], 1)
    for layer in m.layers:
        h = torch.relu(h @ layer.weight + layer.bias)
    deep = (h @ m.out.weight + m.out.bias).squeeze(1)
    torch.testing.assert_close(m.score(u, i), wide + deep)


def test_wide_deep_forward_backward_and_buffer(tiny_dataset):
    ds = tiny_dataset
    seed_everything(0)
    cfg = model_config("wide-deep", {"dim": 4, "kg_dim": 4, "kge_epochs": 2,
                                     "hidden": "8,4", "cross": True})
    assert cfg.hidden == (8, 4)
    m = build_model("wide-deep", ds, cfg)
    (task,) = m.tasks(_train_data(ds))
    loss = task.loss(torch.from_numpy(ds.ratings[:64]))
    assert torch.isfinite(loss)
    loss.backward()
    for p in (m.user_emb, m.item_emb, m.layers[0].weight, m.out.weight, m.user_w, m.item_w,
              m.dense_w, m.cross_w):
        assert p.grad is not None and p.grad.abs().sum() > 0
    fresh = WideDeep(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(fresh.item_features, m.item_features)


def test_wide_deep_config_errors():
    with pytest.raises(ValueError, match="hidden"):
        WideDeepConfig(hidden="10,x")
    with pytest.raises(ValueError, match="hidden"):
        WideDeepConfig(hidden=[0])
    with pytest.raises(ValueError, match="dropout"):
        WideDeepConfig(dropout=1.0)


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", ["fm", "wide-deep"])
def test_short_fit_learns_synthetic(name):
    ds = make_synthetic(seed=1, n_users=150, n_items=200, n_topics=4, n_creators=12,
                        clicks_mean=15)
    split = random_split(ds.ratings, seed=0)
    seed_everything(0)
    params = {"kg_dim": 8, "kge_epochs": 5, "batch_size": 128, "lr": 1e-2}
    if name == "wide-deep":
        params.update(dim=8, hidden=[16])
    m = build_model(name, ds, model_config(name, params))
    fit = Trainer(TrainConfig(epochs=6, seed=0, progress=False, threads=1)).fit(
        m, _train_data(ds, split.train), split.valid, split.test)
    assert fit.test["auc"] > 0.6, fit.test
