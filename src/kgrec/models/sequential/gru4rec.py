"""GRU4Rec (Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with
Recurrent Neural Networks", ICLR'16; tuned as in Hidasi & Czapp, "The Effect of Third Party
Implementations on Reproducibility", RecSys'23): a GRU over the history, its hidden state after
each item scores the next item by inner product with the item embeddings; trained with
cross-entropy over all items at every position (the loss Hidasi & Czapp recommend), or a
sampled softmax. Session-parallel mini-batches are not used: each user's sequence is one row
(the same gradient up to the order of the updates)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kgrec.models.sequential.base import SequentialConfig, SequentialRecommender

__all__ = ["GRU4Rec", "GRU4RecConfig", "build"]


@dataclass
class GRU4RecConfig(SequentialConfig):
    """``layers``: stacked GRU layers; the rest as
    :class:`~kgrec.models.sequential.base.SequentialConfig`."""

    layers: int = 1
    dropout: float = 0.25


def _shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row ``r`` of ``x (b, L, d)`` moved ``shift[r]`` positions left (positive) or right
    (negative), vacated positions filled from the clamped end (masked by the caller)."""
    L = x.shape[1]
    idx = (torch.arange(L, device=x.device)[None, :] + shift[:, None]).clamp(0, L - 1)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class GRU4Rec(SequentialRecommender):
    """Embedding dropout, GRU, a linear map back to the item space. Keyword-only."""

    objective = "seq2seq"

    def __init__(self, *, n_users: int, n_items: int, config: GRU4RecConfig):
        super().__init__(n_users=n_users, n_items=n_items, config=config)
        d = int(config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(d, d, num_layers=int(config.layers), batch_first=True)
        self.out = nn.Linear(d, d)

    def encode_positions(self, history: torch.Tensor) -> torch.Tensor:
        e, m = self.embed(history)
        lens = m.sum(1)
        pad = e.shape[1] - lens
        # left-align the right-aligned histories, run only over real items, align back
        left = _shift(self.drop(e), pad)
        packed = pack_padded_sequence(left, lens.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=e.shape[1])
        states = self.out(_shift(out, -pad))
        return states * m.unsqueeze(-1)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        return self.encode_positions(history)[:, -1]


def build(ds, cfg: GRU4RecConfig) -> GRU4Rec:
    return GRU4Rec(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
