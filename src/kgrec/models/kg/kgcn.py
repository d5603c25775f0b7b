"""KGCN: knowledge graph convolutional networks for recommendation (Wang et al., WWW'19).

An item is represented by its entity's receptive field in the KG: every entity has a fixed
set of ``n_neighbors`` sampled neighbours (with replacement; the graph is taken undirected,
as the authors' code does). For user ``u`` a neighbour ``e`` reached over relation ``r``
weighs ``softmax_e(mean(u * r))``; ``n_iter`` (H) rounds aggregate, from the outermost hop
inwards, ``act(W (v + sum_e w_e e) + b)`` (the paper's *sum* aggregator; ReLU, tanh in the
last round). The score is ``u . v_item``; the loss is BCE on the CTR rows plus
``l2_weight`` times the squared norms of every embedding table and aggregator weight
(``tf.nn.l2_loss``), which here is Adam's coupled weight decay (the same gradient).

Cold start (``id_dropout``, DropoutNet, Volkovs et al., NeurIPS'17): in training each row
drops its item's own entity vector (hop 0) with probability ``id_dropout``, so that the
aggregation learns to place an item from its neighbours alone; an item never trained on is
placed from its neighbours alone (its own vector is untrained noise).

An entity without any triple (an unlinked item) keeps itself as its neighbours over an
extra "self" relation. The sampled neighbour tables are buffers saved with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.layers import id_keep_mask, trained_items

__all__ = ["KGCN", "KGCNConfig", "build", "sample_neighbors"]


@dataclass
class KGCNConfig:
    """dim: embedding size d; n_iter: H, receptive-field depth; n_neighbors: K, sampled
    neighbours per entity; lr: Adam learning rate; l2_weight: weight of the L2 term (see the
    module docstring); batch_size: CTR rows per step; id_dropout: probability of dropping an
    item's own vector per training row (cold start, see the module docstring; 0: off)."""

    dim: int = 16
    n_iter: int = 1
    n_neighbors: int = 8
    lr: float = 5e-4
    l2_weight: float = 1e-4
    batch_size: int = 128
    id_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        for name in ("dim", "n_iter", "n_neighbors", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.l2_weight < 0:
            raise ValueError("lr must be positive and l2_weight >= 0")


def sample_neighbors(kg: np.ndarray, n_entities: int, k: int, self_relation: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(adj_entity, adj_relation)``, each ``(n_entities, k)``: ``k`` neighbours per entity
    drawn uniformly with replacement from its undirected triples (vectorised over all
    entities); an entity with none has itself over ``self_relation``."""
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    src = np.r_[kg[:, 0], kg[:, 2]]
    dst = np.r_[kg[:, 2], kg[:, 0]]
    rel = np.r_[kg[:, 1], kg[:, 1]]
    order = np.argsort(src, kind="stable")
    src, dst, rel = src[order], dst[order], rel[order]
    deg = np.bincount(src, minlength=n_entities)
    start = np.r_[0, np.cumsum(deg)[:-1]]
    pick = (rng.random((n_entities, k)) * np.maximum(deg, 1)[:, None]).astype(np.int64)
    idx = np.minimum(start[:, None] + pick, max(len(src) - 1, 0))
    lonely = deg == 0
    adj_e = dst[idx] if len(src) else np.zeros((n_entities, k), np.int64)
    adj_r = rel[idx] if len(src) else np.zeros((n_entities, k), np.int64)
    adj_e[lonely] = np.arange(n_entities)[lonely, None]
    adj_r[lonely] = self_relation
    return adj_e, adj_r


class KGCN(Recommender):
    """See the module docstring. Construct with keyword arguments only."""

    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray, config: KGCNConfig | None = None):
        super().__init__()
        cfg = config or KGCNConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        self.n_entities = max(n_entities, 1)
        d, k = cfg.dim, cfg.n_neighbors
        self.user_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.entity_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_entities, d)))
        # one extra relation: "itself", for entities without a triple
        self.relation_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_relations + 1,
                                                                             d)))
        self.self_relation = n_relations
        self.weights = nn.ParameterList(
            nn.Parameter(nn.init.xavier_uniform_(torch.empty(d, d))) for _ in range(cfg.n_iter))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(d)) for _ in range(cfg.n_iter))
        self.register_buffer("item_entity", torch.as_tensor(np.asarray(item_entity),
                                                            dtype=torch.long))
        self.register_buffer("item_seen", torch.ones(n_items, dtype=torch.bool))
        self.register_buffer("adj_entity", torch.zeros(self.n_entities, k, dtype=torch.long))
        self.register_buffer("adj_relation",
                             torch.full((self.n_entities, k), n_relations, dtype=torch.long))

    def _receptive_field(self, entities: torch.Tensor) -> tuple[list, list]:
        """Entities per hop ``(b, K^h)`` and the relations leading to hops 1..H."""
        ents, rels = [entities[:, None]], []
        b = len(entities)
        for _ in range(self.config.n_iter):
            ents.append(self.adj_entity[ents[-1]].reshape(b, -1))
            rels.append(self.adj_relation[ents[-2]].reshape(b, -1))
        return ents, rels

    def item_vectors_for(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``(b, d)``: item ``items[k]`` as user ``users[k]`` sees it after H rounds."""
        cfg = self.config
        u = self.user_emb[users]
        b, d, k = len(users), cfg.dim, cfg.n_neighbors
        ents, rels = self._receptive_field(self.item_entity[items])
        vecs = [self.entity_emb[e] for e in ents]  # (b, K^h, d)
        vecs[0] = vecs[0] * id_keep_mask(items, self.item_seen, cfg.id_dropout,
                                         self.training).unsqueeze(1)
        rvecs = [self.relation_emb[r] for r in rels]
        for i in range(cfg.n_iter):
            act = torch.tanh if i == cfg.n_iter - 1 else torch.relu
            nxt = []
            for hop in range(cfg.n_iter - i):
                nbr = vecs[hop + 1].view(b, -1, k, d)
                rel = rvecs[hop].view(b, -1, k, d)
                w = torch.softmax((u[:, None, None, :] * rel).mean(-1), dim=-1)
                agg = (w.unsqueeze(-1) * nbr).sum(-2)
                nxt.append(act((vecs[hop] + agg) @ self.weights[i] + self.biases[i]))
            vecs = nxt
        return vecs[0].view(b, d)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        chunk = 16384
        out = []
        for s in range(0, len(users), chunk):
            u, i = users[s:s + chunk], items[s:s + chunk]
            out.append((self.user_emb[u] * self.item_vectors_for(u, i)).sum(-1))
        return torch.cat(out) if out else torch.zeros(0)

    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BCE on ``(user, item, label)`` rows (the L2 is the optimizer's weight decay)."""
        return F.binary_cross_entropy_with_logits(self.score(batch[:, 0], batch[:, 1]),
                                                  batch[:, 2].float())

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))  # the run's seed
        adj_e, adj_r = sample_neighbors(data.kg, self.n_entities, cfg.n_neighbors,
                                        self.self_relation, rng)
        self.adj_entity.copy_(torch.from_numpy(adj_e))
        self.adj_relation.copy_(torch.from_numpy(adj_r))
        self.item_seen.copy_(torch.from_numpy(trained_items(data.train, self.n_items)))
        return [Task(name="rec", source=data.rec_rows, loss=self.rec_loss,
                     params=[{"params": list(self.parameters()),
                              "weight_decay": cfg.l2_weight}],
                     lr=cfg.lr, batch_size=cfg.batch_size)]


def build(ds, cfg: KGCNConfig) -> KGCN:
    """KGCN for a :class:`~kgrec.data.Dataset` with a KG (items linked to entities)."""
    return KGCN(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
