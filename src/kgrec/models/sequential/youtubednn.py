"""YouTubeDNN's candidate generator (Covington, Adams & Sargin, "Deep Neural Networks for
YouTube Recommendations", RecSys'16): the mean of the history's item embeddings through an
MLP is the user vector; trained as extreme multi-class classification of the next item (full
or sampled softmax). The single-interest baseline of ComiRec's tables."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kgrec.models.sequential.base import SequentialConfig, SequentialRecommender

__all__ = ["YouTubeDNN", "YouTubeDNNConfig", "build"]


@dataclass
class YouTubeDNNConfig(SequentialConfig):
    """See :class:`~kgrec.models.sequential.base.SequentialConfig`; ``max_len`` 20 as
    ComiRec's Amazon setting."""

    max_len: int = 20


class YouTubeDNN(SequentialRecommender):
    """Masked mean pooling + two-layer MLP. Keyword-only constructor."""

    def __init__(self, *, n_users: int, n_items: int, config: YouTubeDNNConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d = int(config.dim)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Dropout(config.dropout),
                                 nn.Linear(2 * d, d))

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        e, m = self.embed(history)
        mean = (e * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        return self.mlp(mean)


def build(ds, cfg: YouTubeDNNConfig) -> YouTubeDNN:
    return YouTubeDNN(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
