"""MIND (Li et al., "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall",
CIKM'19): behaviour-to-interest dynamic routing with one shared bilinear map ``S`` and random
initial routing logits (3 iterations, squash), a ReLU layer on each interest capsule, and
label-aware attention during training: the target item mixes the ``K`` interests with weights
``softmax(pow(v_k . e, p))``. At inference each interest retrieves on its own (the score of an
item is its best interest's).

The routing logits' random initialisation is drawn once (a buffer of ``K x max_len`` normal
values, seeded by the run) rather than at every call, so a user's interests are a function of
the history. The number of interests is ``n_interests``, or with ``dynamic_interests`` the
paper's ``K'_u = max(1, min(K, floor(log2 |I_u|)))`` for a history of ``|I_u|`` items:
behaviours then route among ``K'_u`` capsules, label-aware attention reads those, and the
inactive slots repeat the first interest so that every consumer of ``(b, K, d)`` interests
(best-interest scoring, ANN merge, diversity) sees only the user's own."""

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
    label-aware attention (``inf``: the hard readout); ``dynamic_interests``: the paper's
    per-user number of interests (module doc); ``max_len`` 20 as ComiRec's Amazon setting."""

    max_len: int = 20
    n_interests: int = 4
    routing_iters: int = 3
    pow_p: float = 2.0
    dynamic_interests: bool = False


class MIND(SequentialRecommender):
    """Keyword-only constructor."""

    multi_interest = True

    def __init__(self, *, n_users: int, n_items: int, config: MINDConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d, K = int(config.dim), int(config.n_interests)
        self.bilinear = nn.Linear(d, d, bias=False)
        self.register_buffer("routing_init", torch.randn(K, int(config.max_len)))
        self.interest_layer = nn.Sequential(nn.Linear(d, d), nn.ReLU())

    def active_interests(self, mask: torch.Tensor) -> torch.Tensor | None:
        """``(b, K)`` bool: ``k < K'_u`` (module doc), or None without dynamic interests."""
        if not self.config.dynamic_interests:
            return None
        K = int(self.config.n_interests)
        n = mask.sum(1).clamp(min=1).to(torch.float32)
        k_u = torch.floor(torch.log2(n)).clamp(1, K).to(torch.long)
        return torch.arange(K, device=mask.device).unsqueeze(0) < k_u.unsqueeze(1)

    def _interests(self, history: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        e, m = self.embed(history)
        K = int(self.config.n_interests)
        hat = self.bilinear(e).unsqueeze(1).expand(-1, K, -1, -1)  # (b, K, L, d)
        logits = self.routing_init[:, -e.shape[1]:].unsqueeze(0).expand(e.shape[0], -1, -1)
        active = self.active_interests(m)
        caps = self.interest_layer(dynamic_routing(hat, m, logits,
                                                   int(self.config.routing_iters), active))
        if active is not None:  # inactive slots repeat the first interest
            caps = torch.where(active.unsqueeze(-1), caps, caps[:, :1])
        return caps, active

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        return self._interests(history)[0]

    def train_vectors(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        caps, active = self._interests(history)
        return label_aware_attention(caps, self.item_emb(target + 1), float(self.config.pow_p),
                                     active)


def build(ds, cfg: MINDConfig) -> MIND:
    return MIND(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
