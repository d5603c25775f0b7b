"""KG-MF: matrix factorisation whose item vector adds the mean of the item's KG neighbours.

``v_i = q_i + mean_{(i, r, t) in KG} (e_t + r_r)``; score ``u . v_i + b_i``; BCE loss. With
``kg_bias`` the item bias gains a KG part too, ``b_i + mean_{(i, r, t) in KG} c_t`` with one
learned scalar ``c_t`` per entity: how much the items linked to ``t`` are clicked overall (an
actor's, a genre's, an award's draw), which is what places a new item among other new ones.
``kg_pool="relation"`` takes the means per relation first and then the mean over the item's
relations, so that a relation with many tails (a film's dozens of actors) weighs as much as
one with a single tail (its director), not dozens of times more.

A deliberately small, transparent KG-aware reference in the spirit of CKE's item
representation (collaborative offset + structural embedding; Zhang et al., KDD'16): items that
share KG neighbours share parameters, so sparse items borrow signal from their neighbours.
Cold start (``id_dropout``, DropoutNet, Volkovs et al., NeurIPS'17): each training row drops
its item's own ``q_i`` and ``b_i`` with probability ``id_dropout``, so the KG term learns to
stand alone; an item never trained on is scored from its KG term alone (its ``q_i``, ``b_i``
are untrained noise). With ``use_kg=False`` it is plain MF, its KG-blind twin — the pair
used to check that the synthetic dataset's planted KG structure is learnable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.layers import entity_inputs, glorot_embedding, id_keep_mask, trained_items

__all__ = ["KGMF", "KGMFConfig", "build"]


@dataclass
class KGMFConfig:
    """dim: embedding size; lr: Adam learning rate; l2_weight: L2 as Adam weight decay on
    the embeddings; batch_size: rows per step; use_kg: add the KG-neighbour term;
    id_dropout: probability of dropping an item's own vector and bias per training row (cold
    start, see the module docstring; 0: off); entity_init: a KGE run directory whose entity
    vectors start the entity table (sequential use of the KG, ``dim`` must match);
    freeze_entities: keep the whole entity table fixed; kg_bias: add the KG part of the item
    bias (see the module docstring); kg_pool: ``triple`` (the mean over the item's triples)
    or ``relation`` (the mean over its relations of the per-relation means)."""

    dim: int = 16
    lr: float = 1e-2
    l2_weight: float = 1e-4
    batch_size: int = 1024
    use_kg: bool = True
    entity_init: str | None = None
    freeze_entities: bool = False
    id_dropout: float = 0.0
    kg_bias: bool = False
    kg_pool: str = "triple"

    def __post_init__(self) -> None:
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.kg_pool not in ("triple", "relation"):
            raise ValueError(f"kg_pool must be 'triple' or 'relation', got {self.kg_pool!r}")


class KGMF(Recommender):
    """See module docstring. Construct with keyword arguments only."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        kg: np.ndarray,
        item_entity: np.ndarray | None = None,
        config: KGMFConfig | None = None,
    ):
        super().__init__()
        cfg = config or KGMFConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        d = cfg.dim
        self.user_emb = glorot_embedding(n_users, d)
        self.item_emb = glorot_embedding(n_items, d)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("item_seen", torch.ones(n_items, dtype=torch.bool))
        self.entity_emb = glorot_embedding(max(n_entities, 1), d)
        if cfg.kg_bias:
            self.entity_bias = nn.Parameter(torch.zeros(max(n_entities, 1)))
        self.relation_emb = glorot_embedding(max(n_relations, 1), d)
        # (item, triple) incidence, row-normalised: mean over the item's outgoing triples, or
        # (kg_pool="relation") 1 / (triples of that relation x relations) of the item
        item_entity = np.arange(n_items) if item_entity is None else np.asarray(item_entity)
        entity_item = np.full(max(n_entities, 1), -1, dtype=np.int64)
        entity_item[item_entity] = np.arange(n_items)
        kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
        kg = kg[entity_item[kg[:, 0]] >= 0] if len(kg) else kg
        rows = entity_item[kg[:, 0]]
        deg = np.bincount(rows, minlength=n_items).astype(np.float32)
        vals = 1.0 / np.maximum(deg[rows], 1.0)
        if cfg.kg_pool == "relation" and len(kg):
            # first: one triple per (item, relation) pair; pair: each triple's pair
            _, first, pair, per_pair = np.unique(rows * max(n_relations, 1) + kg[:, 1],
                                                 return_index=True, return_inverse=True,
                                                 return_counts=True)
            n_rel = np.bincount(rows[first], minlength=n_items).astype(np.float32)
            vals = 1.0 / (per_pair[pair] * n_rel[rows]).astype(np.float32)
        self.register_buffer(
            "adj",
            torch.sparse_coo_tensor(
                torch.as_tensor(np.stack([rows, np.arange(len(kg))])),
                torch.as_tensor(vals, dtype=torch.float32),
                size=(n_items, max(len(kg), 1)),
                check_invariants=True,
            ).coalesce(),
            persistent=False,
        )
        self.register_buffer("kg_rel", torch.as_tensor(kg[:, 1]), persistent=False)
        self.register_buffer("kg_tail", torch.as_tensor(kg[:, 2]), persistent=False)

    def _kg_part(self) -> torch.Tensor | None:
        """``(n_items, d)``, or ``(n_items, d + 1)`` with ``kg_bias`` (last column: the mean
        ``c_t``): the mean of each item's ``e_t + r_r`` by one sparse product (None without a
        KG)."""
        if not self.config.use_kg or len(self.kg_tail) == 0:
            return None
        neigh = self.entity_emb[self.kg_tail] + self.relation_emb[self.kg_rel]
        if self.config.kg_bias:
            neigh = torch.cat([neigh, self.entity_bias[self.kg_tail, None]], 1)
        return torch.sparse.mm(self.adj, neigh)

    def _vectors_and_bias(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``v_i`` and ``b_i`` of ``items``; the own parts dropped as :func:`id_keep_mask`
        says (one draw per row for both)."""
        keep = id_keep_mask(items, self.item_seen, self.config.id_dropout, self.training)
        v = self.item_emb[items] * keep
        b = self.item_bias[items] * keep[..., 0]
        kg_part = self._kg_part()
        if kg_part is not None:
            kg_part = kg_part[items]
            v = v + kg_part[:, : v.shape[1]]
            if self.config.kg_bias:
                b = b + kg_part[:, -1]
        return v, b

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            items = torch.arange(self.n_items, device=self.item_emb.device)
        return self._vectors_and_bias(items)[0]

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        v, b = self._vectors_and_bias(items)
        return (self.user_emb[users] * v).sum(-1) + b

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        v, b = self._vectors_and_bias(torch.arange(self.n_items, device=self.item_emb.device))
        return self.user_emb[users] @ v.T + b

    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.score(batch[:, 0], batch[:, 1])
        return F.binary_cross_entropy_with_logits(logits, batch[:, 2].float())

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        self.item_seen.copy_(torch.from_numpy(trained_items(data.train, self.n_items)))
        return [
            Task(
                name="rec",
                source=data.rec_rows,
                loss=self.rec_loss,
                params=[{"params": [p for p in self.parameters() if p.requires_grad],
                         "weight_decay": cfg.l2_weight}],
                lr=cfg.lr,
                batch_size=cfg.batch_size,
            )
        ]


def build(ds, cfg: KGMFConfig, inputs: dict | None = None) -> KGMF:
    """KG-MF (or plain MF) for a :class:`~kgrec.data.Dataset`."""
    model = KGMF(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                 n_relations=ds.n_relations, kg=ds.kg, item_entity=ds.item_entity, config=cfg)
    if cfg.entity_init:
        rows, vectors = entity_inputs(inputs)
        with torch.no_grad():
            model.entity_emb[rows] = vectors
        model.entity_emb.requires_grad_(not cfg.freeze_entities)
    return model
