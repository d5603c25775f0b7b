"""KGAT (Wang et al., KDD'19): the CKG, the attention, the aggregator and one layer by hand,
TransR's grouped projections, negatives, and a short training run."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.models.base import TrainData
from kgrec.models.kg.kgat import (
    KGAT,
    KGATConfig,
    bi_interaction,
    build_ckg,
    corrupt_tails,
    edge_softmax,
)

# 2 users, 3 items (entities 1, 0, 3), 5 entities, 2 KG relations
KG = np.array([[0, 0, 2], [1, 0, 2], [2, 1, 4], [3, 1, 4], [0, 1, 4]])
ITEM_ENTITY = np.array([1, 0, 3])


def tiny_model(**kw) -> KGAT:
    torch.manual_seed(0)
    cfg = KGATConfig(**{"dim": 4, "kge_dim": 3, "layer_sizes": (4, 2), **kw})
    return KGAT(n_users=2, n_items=3, n_entities=5, n_relations=2, item_entity=ITEM_ENTITY,
                config=cfg)


def train_data(train: np.ndarray, candidates: np.ndarray | None = None) -> TrainData:
    return TrainData(rec_rows=lambda e: train, kg=KG, n_users=2, n_items=3, n_entities=5,
                     n_relations=2, item_entity=ITEM_ENTITY, train=train,
                     item_candidates=candidates)


def test_ckg_has_training_positives_kg_triples_and_their_inverses():
    h, r, t = build_ckg(np.array([0, 1, 0]), np.array([0, 1, 0]), np.array([[0, 0, 2]]),
                        np.array([1, 0]), n_users=2, n_relations=1)
    # nodes: users 0, 1; entity e is 2 + e. relations: 0 interact, 1 KG 0, 2 and 3 inverses
    want = {(0, 0, 3), (1, 0, 2), (2, 1, 4), (3, 2, 0), (2, 2, 1), (4, 3, 2)}
    got = list(zip(h.tolist(), r.tolist(), t.tolist(), strict=True))
    assert set(got) == want and len(got) == len(want)  # the repeated pair counts once


def test_graph_uses_only_labelled_positives_of_the_training_rows():
    m = tiny_model()
    train = np.array([[0, 0, 1], [0, 2, 0], [1, 1, 1]])  # (0, 2) is a negative row
    m.tasks(train_data(train))
    inter = m.edge_rel == 0
    pairs = set(zip(m.edge_head[inter].tolist(), m.edge_tail[inter].tolist(), strict=True))
    assert pairs == {(0, 2 + 1), (1, 2 + 0)}
    assert m.n_ckg_relations == 2 * (2 + 1)


def test_edge_softmax_sums_to_one_per_head():
    heads = torch.tensor([0, 0, 2, 2, 2, 3])
    s = torch.tensor([1.0, 2.0, -1.0, 0.0, 50.0, 3.0])
    a = edge_softmax(s, heads, 5)
    torch.testing.assert_close(torch.zeros(5).index_add_(0, heads, a)[[0, 2, 3]],
                               torch.ones(3))
    torch.testing.assert_close(a[:2], torch.softmax(s[:2], 0))
    torch.testing.assert_close(a[2:5], torch.softmax(s[2:5], 0))


def test_attention_is_the_papers_softmax_over_each_heads_edges():
    m = tiny_model()
    m.set_graph(np.array([0, 0, 1]), np.array([0, 2, 1]), KG)
    ego = torch.cat([m.user_emb, m.entity_emb]).detach()
    w, er = m.trans_w.detach(), m.relation_emb.detach()
    h, r, t = m.edge_head.tolist(), m.edge_rel.tolist(), m.edge_tail.tolist()
    pi = [float((ego[t[k]] @ w[r[k]]) @ torch.tanh(ego[h[k]] @ w[r[k]] + er[r[k]]))
          for k in range(len(h))]
    want = []
    for k in range(len(h)):
        z = sum(math.exp(pi[j]) for j in range(len(h)) if h[j] == h[k])
        want.append(math.exp(pi[k]) / z)
    torch.testing.assert_close(m.attention, torch.tensor(want), rtol=1e-5, atol=1e-6)
    sums = torch.zeros(m.n_nodes).index_add_(0, m.edge_head, m.attention)
    torch.testing.assert_close(sums[m.edge_head.unique()], torch.ones(len(set(h))))


def test_uniform_weights_without_attention():
    m = tiny_model(use_attention=False)
    m.set_graph(np.array([0, 0, 1]), np.array([0, 2, 1]), KG)
    deg = torch.bincount(m.edge_head, minlength=m.n_nodes).float()
    torch.testing.assert_close(m.attention, 1.0 / deg[m.edge_head])


def test_bi_interaction_is_the_formula():
    torch.manual_seed(3)
    ego, side = torch.randn(4, 3), torch.randn(4, 3)
    w1, w2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    got = bi_interaction(ego, side, w1, w2)

    def lrelu(x):
        return torch.where(x > 0, x, 0.2 * x)

    want = (lrelu((ego + side) @ w1.weight.T + w1.bias)
            + lrelu((ego * side) @ w2.weight.T + w2.bias))
    torch.testing.assert_close(got, want)


def test_propagation_by_hand_and_scores_from_the_stored_tables():
    m = tiny_model()
    m.set_graph(np.array([0, 0, 1]), np.array([0, 2, 1]), KG)
    a = torch.zeros(m.n_nodes, m.n_nodes)
    a[m.edge_head, m.edge_tail] = m.attention
    e0 = torch.cat([m.user_emb, m.entity_emb]).detach()
    with torch.no_grad():
        e1 = bi_interaction(e0, a @ e0, m.w_sum[0], m.w_bi[0])
        e2 = bi_interaction(e1, a @ e1, m.w_sum[1], m.w_bi[1])
        want = torch.cat([e0, F.normalize(e1, dim=1), F.normalize(e2, dim=1)], 1)
        torch.testing.assert_close(m.propagate(), want, rtol=1e-5, atol=1e-6)
        m.refresh()
        item_rows = want[2 + torch.from_numpy(ITEM_ENTITY)]
        torch.testing.assert_close(m.final_item, item_rows)
        raw = want[:2] @ item_rows.T
        m.calib.copy_(torch.tensor([2.0, -1.0]))
        torch.testing.assert_close(m.score_all(torch.tensor([0, 1])), 2 * raw - 1)
        got = m.score(torch.tensor([1, 0]), torch.tensor([2, 1]))
        torch.testing.assert_close(got, 2 * raw[[1, 0], [2, 1]] - 1)
        hist = torch.full((2, 3), -1)
        torch.testing.assert_close(m.score_queries(torch.tensor([0, 1]), hist),
                                   m.score_all(torch.tensor([0, 1])))


def test_cold_item_is_represented_through_its_kg_edges():
    m = tiny_model()
    # item 2 (entity 3) has no training positive; its triple (3, 1, 4) links it to entity 4
    m.set_graph(np.array([0, 1]), np.array([0, 1]), KG)
    assert not ((m.edge_rel == 0) & (m.edge_tail == 2 + 3)).any()
    rep = m.propagate()
    grad = torch.autograd.grad(rep[2 + 3, 4:].sum(), m.entity_emb)[0]
    assert grad[4].abs().sum() > 0  # the KG neighbour shapes the cold item's layers
    tasks = m.tasks(train_data(np.array([[0, 0, 1], [1, 0, 0], [1, 1, 1], [0, 1, 0]])))
    tasks[-1].step(None)  # "propagate": stores the tables scoring reads
    with torch.no_grad():
        torch.testing.assert_close(m.final_item[2], m.propagate()[2 + 3])


def test_transr_loss_groups_by_relation_correctly():
    m = tiny_model()
    batch = torch.tensor([[0, 0, 3, 5], [2, 1, 4, 6], [3, 3, 0, 1], [4, 1, 6, 2], [6, 4, 4, 0]])
    got = m.kge_loss(batch)
    ego = torch.cat([m.user_emb, m.entity_emb]).detach()
    w, er = m.trans_w.detach(), m.relation_emb.detach()
    losses, regs = [], []
    for h, r, t, tn in batch.tolist():
        ph, pt, pn = ego[h] @ w[r], ego[t] @ w[r], ego[tn] @ w[r]
        f_pos = ((ph + er[r] - pt) ** 2).sum()
        f_neg = ((ph + er[r] - pn) ** 2).sum()
        losses.append(F.softplus(f_pos - f_neg))
        regs.append((ph ** 2).sum() + (pt ** 2).sum() + (pn ** 2).sum() + (er[r] ** 2).sum())
    torch.testing.assert_close(got["transr"].detach(), torch.stack(losses).mean())
    torch.testing.assert_close(got["l2"].detach(), 1e-5 * torch.stack(regs).mean())
    sum(got.values()).backward()
    assert m.trans_w.grad[[0, 1, 3, 4]].abs().sum() > 0 and m.trans_w.grad[2].abs().sum() == 0


def test_corrupted_tails_are_never_true_edges():
    m = tiny_model()
    m.set_graph(np.array([0, 0, 1]), np.array([0, 2, 1]), KG)
    edges = np.stack([m.edge_head.numpy(), m.edge_rel.numpy(), m.edge_tail.numpy()], 1)
    n_rel = m.n_ckg_relations
    keys = np.sort((edges[:, 0] * n_rel + edges[:, 1]) * m.n_nodes + edges[:, 2])
    rows = np.repeat(edges, 50, axis=0)
    neg = corrupt_tails(rows, m.n_nodes, keys, n_rel, np.random.default_rng(0))
    q = (rows[:, 0] * n_rel + rows[:, 1]) * m.n_nodes + neg
    assert not np.isin(q, keys).any() and neg.min() >= 0 and neg.max() < m.n_nodes


def test_negatives_honour_item_candidates_and_skip_positives():
    m = tiny_model()
    train = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 0]] * 20)
    tasks = {t.name: t for t in m.tasks(train_data(train, np.array([True, True, False])))}
    assert list(tasks) == ["attention", "rec", "kge", "propagate"]
    rows = tasks["rec"].source(0)
    assert len(rows) == 40 and set(rows[:, 2].tolist()) <= {0, 1}
    assert not (rows[:, 1] == rows[:, 2]).any()
    kg_rows = tasks["kge"].source(3)
    assert kg_rows.shape == (len(m.edge_head), 4)


def test_config_checks_and_layer_sizes_from_text():
    assert KGATConfig(layer_sizes="64, 32").layer_sizes == (64, 32)
    assert KGATConfig(layer_sizes=[16]).layer_sizes == (16,)
    assert KGATConfig(layer_sizes="").layer_sizes == ()
    for bad in ({"layer_sizes": "64,x"}, {"layer_sizes": [0]}, {"mess_dropout": 1.0},
                {"lr": 0}, {"kge_lr": -1.0}, {"l2_weight": -1}, {"dim": 0},
                {"use_attention": "yes"}):
        with pytest.raises(ValueError):
            KGATConfig(**bad)


def test_trains_beats_random_and_round_trips(tiny_dataset, monkeypatch, tmp_path):
    import kgrec.data.catalog as catalog
    from kgrec.experiments.run import RunConfig, train

    monkeypatch.setattr(catalog, "load_dataset", lambda name, seed=0, **kw: tiny_dataset)
    res = train(RunConfig(dataset="tiny", model="kgat", epochs=12, out=str(tmp_path / "r"),
                          params={"dim": 16, "kge_dim": 16, "layer_sizes": [16, 8],
                                  "lr": 1e-2, "batch_size": 128, "kge_batch_size": 256},
                          progress=False, plot=False, topk=False))
    assert res.metrics["test"]["auc"] > 0.6, res.metrics["test"]
    model = res.model.eval()
    users = torch.arange(tiny_dataset.n_users)
    with torch.no_grad():
        full = model.score_all(users)
        hist = torch.full((len(users), 4), -1)
        torch.testing.assert_close(model.score_queries(users, hist), full)
        n = tiny_dataset.n_items
        pairs = model.score(users.repeat_interleave(n), torch.arange(n).repeat(len(users)))
        torch.testing.assert_close(pairs.view(len(users), n), full, rtol=1e-5, atol=1e-5)
    twin = KGAT(n_users=tiny_dataset.n_users, n_items=n,
                n_entities=tiny_dataset.n_entities, n_relations=tiny_dataset.n_relations,
                item_entity=tiny_dataset.item_entity, config=model.config)
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(twin.eval().score_all(users), full)
