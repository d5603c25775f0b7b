"""LightGCN: simplified graph convolution for collaborative filtering (He et al., "LightGCN:
Simplifying and Powering Graph Convolution Network for Recommendation", SIGIR'20).

Users and items are the nodes of the bipartite graph of the training positives. With
``A_hat = D^-1/2 A D^-1/2`` its symmetrically normalised adjacency and ``E^(0)`` the free
embeddings, ``E^(k+1) = A_hat E^(k)`` (no weights, no non-linearity, no self-loop) and the final
embedding is the mean ``sum_k E^(k) / (K + 1)`` (the paper's ``alpha_k = 1/(K+1)``). The score
is ``e_u . e_i``; training is BPR with one uniform negative per positive and epoch (as
:mod:`kgrec.models.cf.bpr_mf`), L2 on the batch's layer-0 embeddings.

The propagated embeddings are kept in buffers, refreshed after every epoch (task
``propagate``) and saved with the model, so a loaded run scores without the graph. CTR
logits are Platt-calibrated as BPR-MF's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kgrec.models.base import Task, TrainData
from kgrec.models.cf.bpr_mf import BPRMF, BPRConfig
from kgrec.models.cf.pop import CalibratedTables
from kgrec.models.layers import sparse_matmul, to_csr

__all__ = ["LightGCN", "LightGCNConfig", "build", "normalized_adjacency"]


@dataclass
class LightGCNConfig(BPRConfig):
    """BPR-MF's settings plus ``n_layers`` (K, propagation steps; the paper uses 3)."""

    n_layers: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int,
                         n_items: int) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the user-item graph (users first, then items) as a sparse COO
    tensor; repeated pairs count once, isolated nodes get empty rows."""
    n = n_users + n_items
    key = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
    u, i = key // n_items, key % n_items + n_users
    rows, cols = np.r_[u, i], np.r_[i, u]
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    inv = np.zeros(n)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    vals = (inv[rows] * inv[cols]).astype(np.float32)
    return torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])),
                                   torch.from_numpy(vals), (n, n),
                                   check_invariants=False).coalesce()


class LightGCN(CalibratedTables, BPRMF):
    """See the module docstring. Construct with keyword arguments only."""

    def __init__(self, *, n_users: int, n_items: int, config: LightGCNConfig | None = None):
        cfg = config or LightGCNConfig()
        super().__init__(n_users=n_users, n_items=n_items, config=cfg)
        self.item_bias.requires_grad_(False)  # LightGCN has no bias: it stays 0
        self.register_buffer("final_user", self.user_emb.detach().clone())
        self.register_buffer("final_item", self.item_emb.detach().clone())
        # the graph of the training positives (set by tasks(); not saved: scoring uses the
        # propagated buffers above)
        self.register_buffer("adj", None, persistent=False)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item embeddings (mean over the K + 1 layers)."""
        e = torch.cat([self.user_emb, self.item_emb])
        if self.adj is None or self.config.n_layers == 0:
            return self.user_emb, self.item_emb
        total, layer = e, e
        for _ in range(self.config.n_layers):
            layer = sparse_matmul(self.adj, layer)  # A_hat is symmetric
            total = total + layer
        total = total / (self.config.n_layers + 1)
        return total[: self.n_users], total[self.n_users:]

    @torch.no_grad()
    def refresh(self) -> None:
        """Store the propagated embeddings (what scoring and export use)."""
        u, i = self.propagate()
        self.final_user.copy_(u)
        self.final_item.copy_(i)

    # ------------------------------------------------------------------ training
    def bpr_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BPR on the propagated embeddings + L2 on the batch's layer-0 embeddings."""
        u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
        users, items = self.propagate()
        x_uij = (users[u] * (items[i] - items[j])).sum(-1)
        reg = (self.user_emb[u] ** 2).sum(-1) + (self.item_emb[i] ** 2).sum(-1) \
            + (self.item_emb[j] ** 2).sum(-1)
        return F.softplus(-x_uij).mean() + self.config.l2_weight * reg.mean()

    def tasks(self, data: TrainData) -> list[Task]:
        train = data.train_rows()
        pos = train[train[:, 2] == 1]
        self.adj = to_csr(normalized_adjacency(pos[:, 0], pos[:, 1], self.n_users,
                                               self.n_items)).to(self.user_emb.device)
        out = super().tasks(data)
        rec = out[0]
        rec.params = [self.user_emb, self.item_emb]

        def refresh_step(_batch: torch.Tensor) -> torch.Tensor:
            self.refresh()
            return torch.zeros(())

        # after each epoch's BPR steps, before the calibration that reads the scores
        out.insert(1, Task(name="propagate", source=lambda epoch: np.zeros((1, 1), np.int64),
                           loss=lambda batch: torch.zeros(()), params=[], lr=1.0,
                           batch_size=1, step=refresh_step))
        return out


def build(ds, cfg: LightGCNConfig) -> LightGCN:
    """LightGCN for a :class:`~kgrec.data.Dataset` (interactions only; the KG is unused)."""
    return LightGCN(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
