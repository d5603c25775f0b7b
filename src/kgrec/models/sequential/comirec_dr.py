"""ComiRec-DR (Cen et al., "Controllable Multi-Interest Framework for Recommendation", KDD'20):
dynamic routing with one map ``W_{kl}`` per (interest, history position) and routing logits
initialised to zero (the paper's eq. 3-5 and its ``bilinear_type=2``), no layer after the
capsules; trained with the hard readout (the interest closest to the target). Inference: each
interest retrieves; with ``lambda > 0`` the greedy aggregation of
:func:`kgrec.retrieval.index.greedy_diverse` trades accuracy for category diversity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kgrec.models.sequential.base import (
    SequentialConfig,
    SequentialRecommender,
    dynamic_routing,
    hard_readout,
)

__all__ = ["ComiRecDR", "ComiRecDRConfig", "build"]


@dataclass
class ComiRecDRConfig(SequentialConfig):
    """``n_interests``: K; ``routing_iters``: routing iterations; ``max_len`` 20 as the
    paper's Amazon setting."""

    max_len: int = 20
    n_interests: int = 4
    routing_iters: int = 3


class ComiRecDR(SequentialRecommender):
    """Keyword-only constructor."""

    multi_interest = True

    def __init__(self, *, n_users: int, n_items: int, config: ComiRecDRConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d, K, L = int(config.dim), int(config.n_interests), int(config.max_len)
        # W[l, k]: (d, d) map of the item at window position l (counted back from the most
        # recent item, which is l = max_len - 1) to interest k
        self.maps = nn.Parameter(torch.randn(L, K, d, d) * d ** -0.5)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        e, m = self.embed(history)
        hat = torch.einsum("lkij,blj->bkli", self.maps[-e.shape[1]:], e)  # (b, K, w, d)
        logits = hat.new_zeros(hat.shape[:3])
        return dynamic_routing(hat, m, logits, int(self.config.routing_iters))

    def train_vectors(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return hard_readout(self.encode(history), self.item_emb(target + 1))


def build(ds, cfg: ComiRecDRConfig) -> ComiRecDR:
    return ComiRecDR(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
