"""LightGCN (He et al., SIGIR'20): the normalised adjacency and the layer mean by hand."""

import math

import numpy as np
import torch

from kgrec.models.cf.lightgcn import LightGCN, LightGCNConfig, normalized_adjacency


def test_normalized_adjacency_by_hand():
    # users 0, 1; items 0, 1 (nodes 2, 3); edges u0-i0, u0-i1, u1-i1 (u0-i1 repeated)
    a = normalized_adjacency(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 1]), 2, 2).to_dense()
    deg = {0: 2, 1: 1, 2: 1, 3: 2}
    want = torch.zeros(4, 4)
    for u, i in [(0, 2), (0, 3), (1, 3)]:
        want[u, i] = want[i, u] = 1 / math.sqrt(deg[u] * deg[i])
    torch.testing.assert_close(a, want)


def test_propagation_is_the_mean_of_the_layers():
    torch.manual_seed(0)
    m = LightGCN(n_users=3, n_items=4, config=LightGCNConfig(dim=5, n_layers=2))
    users, items = np.array([0, 0, 1, 2, 2]), np.array([0, 3, 1, 1, 2])
    m.adj = normalized_adjacency(users, items, 3, 4)
    a = m.adj.to_dense()
    e0 = torch.cat([m.user_emb, m.item_emb]).detach()
    e1 = a @ e0
    e2 = a @ e1
    want = (e0 + e1 + e2) / 3
    u, i = m.propagate()
    torch.testing.assert_close(torch.cat([u, i]).detach(), want, rtol=1e-5, atol=1e-6)
    m.refresh()
    got = m.raw_score(torch.tensor([0, 2]), torch.tensor([3, 1]))
    torch.testing.assert_close(got, (want[[0, 2]] * want[[3 + 3, 3 + 1]]).sum(-1))
    # the loss back-propagates into the layer-0 embeddings through the graph
    loss = m.bpr_loss(torch.tensor([[0, 0, 2], [2, 1, 0]]))
    loss.backward()
    assert m.user_emb.grad is not None and m.item_emb.grad[3].abs().sum() > 0  # via user 0
    assert not m.item_bias.requires_grad


def test_zero_layers_is_bpr_mf_without_bias():
    torch.manual_seed(1)
    m = LightGCN(n_users=3, n_items=4, config=LightGCNConfig(dim=4, n_layers=0))
    m.refresh()
    u = torch.tensor([0, 1, 2])
    torch.testing.assert_close(m.score_all(u), m.user_emb[u].detach() @ m.item_emb.detach().T)
