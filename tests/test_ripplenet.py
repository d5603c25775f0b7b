import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.config import load_preset
from kgrec.data.ripple import build_ripple_sets, positive_seeds, sample_positions
from kgrec.data.split import random_split
from kgrec.data.synthetic import make_synthetic
from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.kg.ripplenet import UPDATE_MODES, RippleNet, RippleNetConfig
from kgrec.train.trainer import TrainConfig, Trainer

# Toy graph: entities 0..6, relations 0..2. Entity 2 (an item) and 5, 6 are sinks.
TOY_KG = np.array([[0, 0, 3], [0, 1, 4], [1, 0, 4], [4, 2, 5], [4, 2, 6]])
N_ENT, N_REL = 7, 3


def _toy(n_hop=3, n_memory=2, seed=0, users=(0, 0, 1, 3), entities=(0, 1, 2, 1)):
    # user 0 clicked entities 0 and 1; user 1 only the sink 2; user 2 nothing; user 3 entity 1
    return build_ripple_sets(TOY_KG, np.array(users), np.array(entities), n_users=4,
                             n_entities=N_ENT, n_relations=N_REL, n_hop=n_hop,
                             n_memory=n_memory, seed=seed)


def _triples(rs, user, hop):
    return {tuple(x) for x in np.stack([rs.heads[user, hop], rs.rels[user, hop],
                                        rs.tails[user, hop]], -1).tolist()}


def test_ripple_sets_hold_reachable_triples_of_fixed_size():
    rs = _toy()
    for a in (rs.heads, rs.rels, rs.tails):
        assert a.shape == (4, 3, 2) and a.dtype == np.int64
    kg = {tuple(t) for t in TOY_KG.tolist()}
    # user 0: 3 candidates >= n_memory 2 -> two distinct triples with head 0 or 1
    hop0 = _triples(rs, 0, 0)
    assert len(hop0) == 2 and hop0 <= {(0, 0, 3), (0, 1, 4), (1, 0, 4)}
    for hop in (1, 2):  # heads of hop k are sampled tails of hop k - 1, or a copied sink
        trip = _triples(rs, 0, hop)
        assert trip <= kg
        assert {h for h, _, _ in trip} <= set(rs.tails[0, hop - 1].tolist()) or (
            trip == _triples(rs, 0, hop - 1))
    # user 3: one candidate -> drawn with replacement; hop 1 from tail 4; hop 2 is a sink
    assert _triples(rs, 3, 0) == {(1, 0, 4)}
    assert _triples(rs, 3, 1) <= {(4, 2, 5), (4, 2, 6)}
    np.testing.assert_array_equal(rs.heads[3, 2], rs.heads[3, 1])
    np.testing.assert_array_equal(rs.tails[3, 2], rs.tails[3, 1])
    # users 1 (clicked a sink only) and 2 (no click): the placeholder everywhere
    assert rs.placeholder.tolist() == [False, True, True, False]
    for u in (1, 2):
        assert _triples(rs, u, 0) == _triples(rs, u, 2) == {(N_ENT, N_REL, N_ENT)}


def test_ripple_sets_without_replacement_and_determinism():
    rs = _toy(n_hop=1, n_memory=3)  # user 0: exactly 3 candidates -> each once
    assert sorted(_triples(rs, 0, 0)) == [(0, 0, 3), (0, 1, 4), (1, 0, 4)]
    a, b = _toy(seed=5), _toy(seed=5)
    np.testing.assert_array_equal(a.heads, b.heads)
    np.testing.assert_array_equal(a.tails, b.tails)
    # duplicate seeds contribute their triples twice: (1, 0, 4) then has weight 2/4
    rng_sets = [build_ripple_sets(TOY_KG, np.zeros(3, np.int64), np.array([0, 1, 1]),
                                  n_users=1, n_entities=N_ENT, n_relations=N_REL, n_hop=1,
                                  n_memory=1, seed=s) for s in range(400)]
    share = np.mean([r.heads[0, 0, 0] == 1 for r in rng_sets])
    assert 0.4 < share < 0.6


def test_sample_positions_distinct_and_uniform():
    rng = np.random.default_rng(0)
    pos = sample_positions(np.array([5] * 4000 + [2, 0]), 3, rng)
    big = pos[:4000]
    assert all(len(set(r)) == 3 for r in big.tolist()) and big.min() >= 0 and big.max() <= 4
    freq = np.bincount(big.ravel(), minlength=5) / 4000  # each value in 3/5 of the rows
    np.testing.assert_allclose(freq, 0.6, atol=0.04)
    assert set(pos[4000].tolist()) <= {0, 1} and pos[4001].tolist() == [0, 0, 0]


def test_positive_seeds_and_bad_inputs():
    u, e = positive_seeds(np.array([[0, 1, 1], [0, 2, 0], [3, 0, 1]]), np.array([5, 6, 7]))
    assert u.tolist() == [0, 3] and e.tolist() == [6, 5]
    with pytest.raises(ValueError, match="n_memory"):
        _toy(n_memory=0)
    with pytest.raises(ValueError, match="seed entities"):
        _toy(entities=(0, 1, 2, 9))


def _hand_model(mode, using_all_hops=True):
    """d=2, one user whose single hop holds (1, 0, 3) and (2, 1, 4); item 0 = entity 0."""
    cfg = RippleNetConfig(dim=2, n_hop=1, n_memory=2, item_update_mode=mode,
                          using_all_hops=using_all_hops)
    m = RippleNet(n_users=1, n_items=1, n_entities=5, n_relations=2, config=cfg)
    with torch.no_grad():
        m.entity_emb[:5] = torch.tensor([[1.0, 0], [1, 0], [0, 2], [1, 1], [0, -1]])
        m.relation_emb[:2] = torch.tensor([[[1.0, 0], [0, 1]], [[0, 1], [1, 0]]])
        m.transform.copy_(torch.tensor([[2.0, 0], [0, 1]]))
        m.ripple_heads[0, 0] = torch.tensor([1, 2])
        m.ripple_rels[0, 0] = torch.tensor([0, 1])
        m.ripple_tails[0, 0] = torch.tensor([3, 4])
    return m


def test_attention_and_item_update_by_hand():
    # logits v^T R h: [1, 2] -> p = [1, e] / (1 + e); o = p1 (1, 1) + p2 (0, -1)
    p1 = 1 / (1 + math.e)
    expected = {"plus": 0.554823, "replace": 0.285882, "plus_transform": 0.896094,
                "replace_transform": 0.358211}
    for mode in UPDATE_MODES:
        m = _hand_model(mode)
        rh, _, t = m._memories(torch.tensor([0]))
        v = m.entity_emb[:1].unsqueeze(1)
        u, _, probs = m.propagate(v, rh, t)
        torch.testing.assert_close(probs[0], torch.tensor([[[p1, 1 - p1]]]))
        torch.testing.assert_close(u, torch.tensor([[[p1, 2 * p1 - 1]]]))
        score = m.score(torch.tensor([0]), torch.tensor([0]))
        assert score.item() == pytest.approx(expected[mode], abs=1e-5), mode
        assert m.score_all(torch.tensor([0])).shape == (1, 1)


def test_loss_terms_by_hand():
    m = _hand_model("plus_transform")
    parts = m.losses(torch.tensor([[0, 0, 1]]))
    assert parts["bce"].item() == pytest.approx(F.softplus(torch.tensor(-0.896094)).item(),
                                                abs=1e-5)
    # h^T R t: [1,0] I [1,1] = 1 and [0,2] [[0,1],[1,0]] [0,-1] = 0
    assert parts["kge"].item() == pytest.approx(-(1 / (1 + math.exp(-1)) + 0.5) / 2)
    # |h|^2: 1 + 4, |t|^2: 2 + 1, |R|^2: 2 + 2, transform: n_hop * |T|^2 / 2 = 2.5
    assert parts["l2"].item() == pytest.approx(14.5)
    assert _hand_model("plus").losses(torch.tensor([[0, 0, 1]]))["l2"].item() == 12
    cfg = m.config
    total = parts["bce"] + cfg.kge_weight * parts["kge"] + cfg.l2_weight * parts["l2"]
    torch.testing.assert_close(m.rec_loss(torch.tensor([[0, 0, 1]])), total)


def _tiny_model(ds, **kw):
    torch.manual_seed(0)
    cfg = RippleNetConfig(**{"dim": 8, "n_memory": 8, "batch_size": 64, "lr": 0.01,
                             "seed": 0, **kw})
    return build_model("ripplenet", ds, cfg)


def _tiny_data(ds):
    split = random_split(ds.ratings, seed=0)
    data = TrainData(rec_rows=lambda e: split.train, kg=ds.kg, n_users=ds.n_users,
                     n_items=ds.n_items, n_entities=ds.n_entities,
                     n_relations=ds.n_relations, item_entity=ds.item_entity, train=split.train)
    return data, split


@pytest.mark.parametrize("mode", UPDATE_MODES)
def test_modes_score_all_matches_score_with_placeholder_users(tiny_dataset, mode):
    ds = tiny_dataset
    _, split = _tiny_data(ds)
    for all_hops in (True, False):
        m = _tiny_model(ds, item_update_mode=mode, using_all_hops=all_hops)
        train = split.train.copy()
        train[train[:, 0] == 3, 2] = 0  # user 3 has no click: a placeholder user
        m.set_ripple_sets(ds.kg, train, seed=0)
        assert (m.ripple_heads[3] == ds.n_entities).all()
        users = torch.tensor([0, 3, 7])
        with torch.no_grad():
            full = m.score_all(users)
            pair = m.score(users.repeat_interleave(ds.n_items),
                           torch.arange(ds.n_items).repeat(3)).view(3, -1)
        assert full.shape == (3, ds.n_items) and torch.isfinite(full).all()
        torch.testing.assert_close(full, pair, atol=1e-5, rtol=1e-5)


def test_forward_backward_and_checkpoint_restores_ripple_sets(tiny_dataset):
    ds = tiny_dataset
    data, split = _tiny_data(ds)
    m = _tiny_model(ds)
    (task,) = m.tasks(data)
    assert m.ripple_heads.shape == (ds.n_users, 2, 8) and m.ripple_heads.abs().sum() > 0
    loss = task.loss(torch.from_numpy(split.train[:64]))
    assert torch.isfinite(loss)
    loss.backward()
    for p in (m.entity_emb, m.relation_emb, m.transform):
        assert p.grad is not None and p.grad.abs().sum() > 0
    state = m.state_dict()
    assert {"ripple_heads", "ripple_rels", "ripple_tails"} <= set(state)
    fresh = _tiny_model(ds)
    fresh.load_state_dict(state)
    users = torch.arange(5)
    with torch.no_grad():
        torch.testing.assert_close(fresh.score_all(users), m.score_all(users))
    # the transform is no parameter of the task in modes that do not use it
    plain = _tiny_model(ds, item_update_mode="plus")
    assert all(p is not plain.transform for p in plain.tasks(data)[0].params)


def test_short_fit_beats_chance():
    # tiny_dataset's 190 test rows leave AUC too noisy; a slightly larger synthetic set
    ds = make_synthetic(seed=0, n_users=200, n_items=80, n_topics=4, n_creators=10,
                        clicks_mean=12)
    data, split = _tiny_data(ds)
    res = Trainer(TrainConfig(epochs=4, progress=False, seed=0, threads=1)).fit(
        _tiny_model(ds, batch_size=128), data, split.valid, split.test)
    assert res.test["auc"] > 0.7  # 0.78 when written


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="item_update_mode"):
        RippleNetConfig(item_update_mode="nonlinear")
    with pytest.raises(ValueError, match="n_memory"):
        RippleNetConfig(n_memory=0)
    with pytest.raises(ValueError, match="l2_weight"):
        RippleNetConfig(l2_weight=-1.0)
    for name in ("music", "book", "movie-half", "synthetic"):
        params = load_preset("ripplenet", name)
        assert int(params.pop("epochs")) >= 1
        assert isinstance(model_config("ripplenet", params), RippleNetConfig)
    book = load_preset("ripplenet", "book")
    assert (book["dim"], book["lr"], book["l2_weight"]) == (4, 1e-3, 1e-5)
    movie = load_preset("ripplenet", "movie-half")
    assert (movie["dim"], movie["lr"], movie["l2_weight"]) == (16, 0.02, 1e-7)


def test_item_bias_adds_to_both_scorers_and_trains(tiny_dataset):
    ds = tiny_dataset
    data, split = _tiny_data(ds)
    m = _tiny_model(ds, item_bias=True)
    (task,) = m.tasks(data)
    assert any(p is m.item_bias for p in task.params)
    plain = _tiny_model(ds)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != "item_bias"})
    with torch.no_grad():
        m.item_bias.copy_(torch.arange(ds.n_items, dtype=torch.float32) / 10)
    users = torch.tensor([0, 1, 2])
    with torch.no_grad():
        full, base = m.score_all(users), plain.score_all(users)
        pair = m.score(users.repeat_interleave(ds.n_items),
                       torch.arange(ds.n_items).repeat(3)).view(3, -1)
    torch.testing.assert_close(full, base + m.item_bias, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, pair, atol=1e-5, rtol=1e-5)
    # the L2 term holds the squared biases of the batch's items
    batch = torch.from_numpy(split.train[:32])
    extra = m.losses(batch)["l2"] - plain.losses(batch)["l2"]
    assert extra.item() == pytest.approx((m.item_bias[batch[:, 1]] ** 2).sum().item(), rel=1e-4)
    task.loss(batch).backward()
    assert m.item_bias.grad[batch[:, 1]].abs().sum() > 0
