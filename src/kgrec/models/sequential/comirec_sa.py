"""ComiRec-SA (Cen et al., "Controllable Multi-Interest Framework for Recommendation", KDD'20):
self-attention with ``K`` heads, ``A = softmax(W2 tanh(W1 H^T))`` over the history (``H``: item
embeddings plus learned positions), the interests ``V = A E`` (weights over the plain item
embeddings, as the authors' code); trained with the hard readout. Inference: each interest
retrieves; greedy aggregation as :mod:`kgrec.models.sequential.comirec_dr`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kgrec.models.sequential.base import SequentialConfig, SequentialRecommender, hard_readout

__all__ = ["ComiRecSA", "ComiRecSAConfig", "build"]


@dataclass
class ComiRecSAConfig(SequentialConfig):
    """``n_interests``: K (attention heads); ``max_len`` 20 as the paper's Amazon setting."""

    max_len: int = 20
    n_interests: int = 4


class ComiRecSA(SequentialRecommender):
    """Keyword-only constructor."""

    multi_interest = True

    def __init__(self, *, n_users: int, n_items: int, config: ComiRecSAConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d, K, L = int(config.dim), int(config.n_interests), int(config.max_len)
        self.pos_emb = nn.Parameter(torch.randn(L, d) * d ** -0.5)
        self.w1 = nn.Linear(d, 4 * d, bias=False)
        self.w2 = nn.Linear(4 * d, K, bias=False)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        e, m = self.embed(history)
        h = e + self.pos_emb[-e.shape[1]:].unsqueeze(0)
        att = self.w2(torch.tanh(self.w1(h)))  # (b, L, K)
        empty = ~m.any(1, keepdim=True)  # an empty history attends uniformly (to zeros)
        att = att.masked_fill((~m & ~empty).unsqueeze(-1), float("-inf"))
        w = torch.softmax(att, dim=1)  # over the history
        return torch.einsum("blk,bld->bkd", w, e)

    def train_vectors(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return hard_readout(self.encode(history), self.item_emb(target + 1))


def build(ds, cfg: ComiRecSAConfig) -> ComiRecSA:
    return ComiRecSA(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
