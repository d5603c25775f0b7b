"""KGCN (Wang et al., WWW'19): neighbour sampling and one aggregation round by hand."""

import numpy as np
import torch

from kgrec.models.kg.kgcn import KGCN, KGCNConfig, sample_neighbors


def test_sample_neighbors_draws_from_undirected_triples_and_pads_lonely_entities():
    kg = np.array([[0, 0, 1], [0, 1, 2], [3, 2, 1]])  # entity 4 has no triple
    adj_e, adj_r = sample_neighbors(kg, 5, 50, self_relation=9,
                                    rng=np.random.default_rng(0))
    want = {0: {(1, 0), (2, 1)}, 1: {(0, 0), (3, 2)}, 2: {(0, 1)}, 3: {(1, 2)}, 4: {(4, 9)}}
    for e, pairs in want.items():
        assert set(zip(adj_e[e], adj_r[e], strict=True)) == pairs, e  # all drawn, none else


def test_one_round_of_sum_aggregation_by_hand():
    torch.manual_seed(0)
    m = KGCN(n_users=2, n_items=2, n_entities=3, n_relations=2, item_entity=np.array([0, 1]),
             config=KGCNConfig(dim=3, n_iter=1, n_neighbors=2))
    with torch.no_grad():
        m.biases[0].copy_(torch.tensor([0.1, -0.2, 0.3]))
        m.adj_entity.copy_(torch.tensor([[1, 2], [0, 0], [0, 1]]))
        m.adj_relation.copy_(torch.tensor([[0, 1], [0, 0], [1, 1]]))
    u = m.user_emb[1].detach()
    e = m.entity_emb.detach()
    r = m.relation_emb.detach()
    # item 0 = entity 0, neighbours 1 (relation 0) and 2 (relation 1)
    s = torch.stack([(u * r[0]).mean(), (u * r[1]).mean()])
    w = torch.softmax(s, 0)
    v = torch.tanh((e[0] + w[0] * e[1] + w[1] * e[2]) @ m.weights[0].detach()
                   + m.biases[0].detach())
    got = m.item_vectors_for(torch.tensor([1]), torch.tensor([0]))[0]
    torch.testing.assert_close(got, v)
    torch.testing.assert_close(m.score(torch.tensor([1]), torch.tensor([0])), (u * v).sum()[None])


def test_two_rounds_use_the_two_hop_field():
    torch.manual_seed(1)
    m = KGCN(n_users=1, n_items=1, n_entities=4, n_relations=1, item_entity=np.array([0]),
             config=KGCNConfig(dim=2, n_iter=2, n_neighbors=1))
    with torch.no_grad():
        m.adj_entity.copy_(torch.tensor([[1], [2], [3], [0]]))
        m.adj_relation.zero_()
    base = m.score(torch.tensor([0]), torch.tensor([0]))
    with torch.no_grad():
        m.entity_emb[2] += 1.0  # two hops from item 0's entity
    assert not torch.allclose(base, m.score(torch.tensor([0]), torch.tensor([0])))
    with torch.no_grad():
        m.entity_emb[3] += 1.0  # three hops away: outside the field
    again = m.score(torch.tensor([0]), torch.tensor([0]))
    with torch.no_grad():
        m.entity_emb[3] -= 1.0
    torch.testing.assert_close(again, m.score(torch.tensor([0]), torch.tensor([0])))
