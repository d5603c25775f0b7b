"""KGIN (Wang et al., WWW'21): intents, both aggregations, the independence losses and the
propagation by hand; caching, negatives, training and round-trips."""

import io
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.data.split import random_split
from kgrec.data.synthetic import make_synthetic
from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.kg.kgin import (
    KGIN,
    KGINConfig,
    cosine_independence,
    distance_correlation,
    intent_embeddings,
    mi_independence,
    relational_aggregate,
    user_aggregate,
)
from kgrec.train.trainer import TrainConfig, Trainer, seed_everything

# a tiny world: 3 users, 4 items (entities 0-3), entities 4-6 attributes, 2 relations
KG = np.array([[0, 0, 4], [1, 0, 4], [2, 1, 5], [3, 1, 5], [3, 0, 6], [0, 1, 5]])
TRAIN = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 2, 1], [2, 0, 1], [2, 3, 0]])


def _data(train, n_users, n_items, kg, n_entities, n_relations, candidates=None):
    return TrainData(rec_rows=lambda e: train, kg=kg, n_users=n_users, n_items=n_items,
                     n_entities=n_entities, n_relations=n_relations,
                     item_entity=np.arange(n_items), train=train, item_candidates=candidates)


def _tiny(**kw):
    torch.manual_seed(0)
    cfg = KGINConfig(**{"dim": 5, "n_layers": 1, "n_factors": 3, **kw})
    m = KGIN(n_users=3, n_items=4, n_entities=7, n_relations=2, item_entity=np.arange(4),
             config=cfg)
    m.tasks(_data(TRAIN, 3, 4, KG, 7, 2))
    return m


def test_intents_are_softmax_mixes_of_relations():
    att = torch.tensor([[0.0, 0.0], [float(np.log(3.0)), 0.0]])
    rel = torch.tensor([[1.0, 0.0, 2.0], [0.0, 4.0, -2.0]])
    want = torch.tensor([[0.5, 2.0, 0.0], [0.75, 1.0, 1.0]])
    torch.testing.assert_close(intent_embeddings(att, rel), want)


def test_relational_aggregation_equals_a_loop():
    g = torch.Generator().manual_seed(1)
    ent, rel = torch.randn(6, 4, generator=g), torch.randn(3, 4, generator=g)
    triples = [(0, 0, 1), (0, 2, 3), (0, 1, 1), (2, 1, 0), (4, 0, 5)]  # entities 1, 3, 5: none
    h, r, t = (torch.tensor(c) for c in zip(*triples, strict=True))
    got = relational_aggregate(ent, rel, h, r, t)
    want = torch.zeros(6, 4)
    for e in range(6):
        msgs = [rel[rr] * ent[tt] for hh, rr, tt in triples if hh == e]
        if msgs:
            want[e] = torch.stack(msgs).mean(0)
    torch.testing.assert_close(got, want)


def test_user_aggregation_with_intents_by_hand():
    g = torch.Generator().manual_seed(2)
    user, ent, intents = (torch.randn(n, 3, generator=g) for n in (3, 5, 2))
    users, ents = torch.tensor([0, 0, 2, 0]), torch.tensor([1, 4, 4, 2])  # user 1: no item
    got = user_aggregate(user, ent, intents, users, ents)
    for u, items in {0: [1, 4, 2], 2: [4]}.items():
        s = torch.stack([intents[p] @ user[u] for p in range(2)])
        beta = torch.exp(s) / torch.exp(s).sum()
        # the paper's (1 / |N_u|) sum_p sum_i beta(u, p) e_p * e_i
        want = sum(beta[p] * intents[p] * ent[i] for p in range(2) for i in items) / len(items)
        torch.testing.assert_close(got[u], want)
    torch.testing.assert_close(got[1], torch.zeros(3))


def _dcor_reference(x, y):
    """Textbook sample distance correlation (numpy, no epsilon)."""
    a, b = np.abs(x[:, None] - x[None]), np.abs(y[:, None] - y[None])
    a = a - a.mean(0) - a.mean(1)[:, None] + a.mean()
    b = b - b.mean(0) - b.mean(1)[:, None] + b.mean()
    return np.sqrt((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean()))


def test_distance_correlation_matches_the_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 16))
    x[1] = 2.0 * x[0] + 1.0  # affine: dCor 1
    x[2] = x[0] ** 2  # dependent but uncorrelated-ish
    got = distance_correlation(torch.tensor(x)).numpy()
    for p, q in itertools.product(range(4), repeat=2):
        assert got[p, q] == pytest.approx(_dcor_reference(x[p], x[q]), abs=2e-3), (p, q)
    assert got[0, 1] == pytest.approx(1.0, abs=1e-3) and got[0, 3] < 0.7


def test_independence_loss_variants_by_hand():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    c = 1 / np.sqrt(2)
    assert float(cosine_independence(x)) == pytest.approx(c**2 + 0.0 + c**2)
    cos = np.array([[1, c, 0], [c, 1, c], [0, c, 1]])
    want = -sum(np.log(np.exp(cos[p, p] / 0.5) / np.exp(cos[p] / 0.5).sum()) for p in range(3))
    assert float(mi_independence(x, 0.5)) == pytest.approx(want, rel=1e-6)
    m = _tiny(n_factors=3, independence="distance")
    e = m.intents().detach()
    pairs = [distance_correlation(e[[p, q]])[0, 1] for p, q in [(0, 1), (0, 2), (1, 2)]]
    torch.testing.assert_close(m.independence_loss().detach(), torch.stack(pairs).sum())
    m.config.independence_on = "weights"  # the authors' code: the attention logits
    w = m.intent_att.detach()
    torch.testing.assert_close(m.independence_loss().detach(),
                               torch.triu(distance_correlation(w), diagonal=1).sum())
    m.config.independence = "none"
    assert float(m.independence_loss()) == 0.0


def test_one_hop_propagation_by_hand_and_cold_items():
    m = _tiny()
    u0, e0 = m.user_emb.detach(), m.entity_emb.detach()
    r = m.relation_emb.detach()  # rows 0-1: relations, 2-3: their reverses
    p = m.intents().detach()
    users, ents = m.propagate()
    # entity 3 (item 3: no positive, a cold item) <- (3, 1, 5), (3, 0, 6)
    want3 = e0[3] + F.normalize(((r[1] * e0[5] + r[0] * e0[6]) / 2)[None])[0]
    torch.testing.assert_close(ents[3].detach(), want3)
    # entity 5 <- reverses of (2, 1, 5), (3, 1, 5), (0, 1, 5)
    want5 = e0[5] + F.normalize((r[3] * (e0[2] + e0[3] + e0[0]) / 3)[None])[0]
    torch.testing.assert_close(ents[5].detach(), want5)
    # user 1: items 1, 2 (the label-0 row of user 2 is no edge)
    beta = torch.softmax(p @ u0[1], 0)
    want_u1 = u0[1] + F.normalize(((beta @ p) * (e0[1] + e0[2]) / 2)[None])[0]
    torch.testing.assert_close(users[1].detach(), want_u1)
    assert m.ui_edges.shape[1] == 5
    # the cold item scores through its KG part: moving an attribute entity moves its score
    m.refresh()
    before = m.score_all(torch.arange(3))[:, 3].clone()
    with torch.no_grad():
        m.entity_emb[6] += 1.0
    m._stale = True
    assert not torch.allclose(before, m.score_all(torch.arange(3))[:, 3])


def test_propagation_with_dropout_equals_the_means_and_f_dropout_reference():
    """propagate() skips the per-row factors the hop's L2 normalisation removes (1 / degree,
    dropout's 1 / (1 - p)) and draws dropout's mask as F.dropout does: the same values, and
    the same random stream, as the plain formula (node dropout off, message dropout on)."""
    m = _tiny(n_layers=2, node_dropout=0.0, mess_dropout=0.4)
    head, rel, tail = m.kg_edges
    users, ents = m.ui_edges
    intents = m.intents()
    torch.manual_seed(7)
    got_u, got_e = m.propagate(dropout=True)
    torch.manual_seed(7)
    user, ent = m.user_emb, m.entity_emb
    sum_u, sum_e = user, ent
    for _ in range(2):
        e_next = F.dropout(relational_aggregate(ent, m.relation_emb, head, rel, tail), 0.4)
        u_next = F.dropout(user_aggregate(user, ent, intents, users, ents), 0.4)
        ent, user = F.normalize(e_next, dim=1), F.normalize(u_next, dim=1)
        sum_u, sum_e = sum_u + user, sum_e + ent
    torch.testing.assert_close(got_u, sum_u)
    torch.testing.assert_close(got_e, sum_e)


def test_score_queries_equal_score_and_the_cache_follows_training():
    m = _tiny(n_layers=2)
    users = torch.arange(3)
    full = m.score_queries(users, torch.full((3, 2), -1))
    pairs = m.score(users.repeat_interleave(4), torch.arange(4).repeat(3)).view(3, 4)
    torch.testing.assert_close(full, pairs)
    torch.testing.assert_close(full, m.score_all(users))
    # a training step invalidates the cached tables; the next score recomputes them
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    parts = m.bpr_loss(torch.tensor([[0, 0, 2], [1, 2, 3]]))
    sum(parts.values()).backward()
    assert m.entity_emb.grad.abs().sum() > 0 and m.intent_att.grad.abs().sum() > 0
    opt.step()
    m.eval()
    again = m.score_all(users)
    assert not torch.allclose(again, full)
    u, e = m.propagate()
    torch.testing.assert_close(again, m.calib[0] * (u[users] @ e[:4].T) + m.calib[1])


def test_negatives_honour_item_candidates():
    torch.manual_seed(0)
    m = KGIN(n_users=3, n_items=4, n_entities=7, n_relations=2, item_entity=np.arange(4),
             config=KGINConfig(dim=4))
    cand = np.array([True, True, True, False])  # item 3 is held out (cold)
    rec, prop, calib = m.tasks(_data(TRAIN, 3, 4, KG, 7, 2, cand))
    assert (prop.name, calib.name) == ("propagate", "calib")
    for epoch in range(5):
        trip = rec.source(epoch)
        assert len(trip) == 5 and not (trip[:, 2] == 3).any()
        pos = {(u, i) for u, i, y in TRAIN if y == 1}
        assert not any((u, j) in pos for u, _, j in trip)


def test_trains_on_synthetic_beats_random_and_round_trips():
    ds = make_synthetic(seed=0, n_users=150, n_items=200, n_topics=4, n_creators=20,
                        clicks_mean=15)
    split = random_split(ds.ratings, seed=0)
    seed_everything(0)
    m = build_model("kgin", ds, model_config("kgin", {"dim": 16, "lr": 1e-2,
                                                      "batch_size": 256, "n_layers": 2}))
    data = TrainData(rec_rows=lambda e: split.train, kg=ds.kg, n_users=ds.n_users,
                     n_items=ds.n_items, n_entities=ds.n_entities,
                     n_relations=ds.n_relations, item_entity=ds.item_entity,
                     train=split.train)
    fit = Trainer(TrainConfig(epochs=8, progress=False, threads=1)).fit(
        m, data, split.valid, split.test)
    assert fit.test["auc"] > 0.65, fit.test
    assert {"rec", "rec/bpr", "rec/l2", "rec/ind", "propagate", "calib"} <= \
        set(fit.history[0].losses)
    assert fit.history[-1].losses["rec/bpr"] < fit.history[0].losses["rec/bpr"]
    m.eval()
    users = torch.arange(ds.n_users)
    full = m.score_all(users)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = build_model("kgin", ds, m.config)  # no graph: scores from the saved tables
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.kg_edges is None
    torch.testing.assert_close(fresh.score_all(users), full)
    assert "kg_edges" not in m.state_dict()


@pytest.mark.parametrize("bad", [{"dim": 0}, {"n_factors": 0}, {"n_layers": -1}, {"lr": 0.0},
                                 {"independence": "hsic"}, {"independence_on": "users"},
                                 {"node_dropout": 1.0}, {"mess_dropout": -0.1},
                                 {"sim_regularity": -1.0}, {"temperature": 0.0}])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        KGINConfig(**bad)


def test_calibration_holdout_stays_out_of_the_graph():
    torch.manual_seed(0)
    train = np.c_[np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3), np.ones(12, np.int64)]
    train[[1, 6, 11], 2] = 0
    m = KGIN(n_users=3, n_items=4, n_entities=7, n_relations=2, item_entity=np.arange(4),
             config=KGINConfig(dim=4, calib_holdout=0.5))
    rec, _, calib = m.tasks(_data(train, 3, 4, KG, 7, 2))
    n_edges = m.ui_edges.shape[1]
    assert 0 < n_edges < 9 and len(rec.source(0)) == n_edges
    calib.step(None)
    assert float(m.calib[0]) > 0
