"""MIND (Li et al., "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall",
CIKM'19): behaviour-to-interest dynamic routing with one shared bilinear map ``S`` and random
initial routing logits (3 iterations, squash), a ReLU layer on each interest capsule, and
label-aware attention during training: the target item mixes the ``K`` interests with weights
``softmax(pow(v_k . e, p))``. At inference each interest retrieves on its own (the score of an
item is its best interest's).

The routing logits' random initialisation is drawn once (a buffer of ``K x max_len`` normal
values, seeded by the run) rather than at every call, so a user's interests are a function of
the history; the number of interests is fixed to ``n_interests`` (the paper's dynamic
``K'_u = max(1, min(K, log2 |I_u|))`` is not used)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kgrec.models.sequential.base import (
    SequentialConfig,
    SequentialRecommender,
    dynamic_routing,
    label_aware_attention,
)

__all__ = ["MIND", "MINDConfig", "build"]


@dataclass
class MINDConfig(SequentialConfig):
    """``n_interests``: K; ``routing_iters``: routing iterations; ``pow_p``: the power of the
    label-aware attention (``inf``: the hard readout); ``max_len`` 20 as ComiRec's Amazon
    setting."""

    max_len: int = 20
    n_interests: int = 4
    routing_iters: int = 3
    pow_p: float = 2.0


class MIND(SequentialRecommender):
    """Keyword-only constructor."""

    multi_interest = True

    def __init__(self, *, n_users: int, n_items: int, config: MINDConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d, K = int(config.dim), int(config.n_interests)
        self.bilinear = nn.Linear(d, d, bias=False)
        self.register_buffer("routing_init", torch.randn(K, int(config.max_len)))
        self.interest_layer = nn.Sequential(nn.Linear(d, d), nn.ReLU())

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        e, m = self.embed(history)
        K = int(self.config.n_interests)
        hat = self.bilinear(e).unsqueeze(1).expand(-1, K, -1, -1)  # (b, K, L, d)
        logits = self.routing_init[:, -e.shape[1]:].unsqueeze(0).expand(e.shape[0], -1, -1)
        caps = dynamic_routing(hat, m, logits, int(self.config.routing_iters))
        return self.interest_layer(caps)

    def train_vectors(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return label_aware_attention(self.encode(history), self.item_emb(target + 1),
                                     float(self.config.pow_p))


def build(ds, cfg: MINDConfig) -> MIND:
    return MIND(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
