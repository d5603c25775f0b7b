"""CKE: collaborative knowledge base embedding (Zhang et al., KDD'16), structural part.

Zhang, Yuan, Lian, Xie and Ma, "Collaborative Knowledge Base Embedding for Recommender
Systems", KDD 2016. The item's latent vector is its collaborative offset plus the structural
embedding of its KG entity, ``v_i = q_i + e_{entity(i)}``, where ``e`` is the entity table of
a TransR model (Lin et al., AAAI'15; :class:`kgrec.models.kge.TransR`) trained *jointly* with
the recommender: every optimizer step minimises::

    rec_loss(batch) + kge_weight * TransR margin loss(sampled KG triples, corruptions)

on a rec batch and a batch of KG triples drawn uniformly in the same step (each with one
``bern``-corrupted negative, filtered against the true triples; vectorised torch). The score
is ``u . v_i`` plus an optional item bias. As in the MKR paper (Wang et al., WWW'19), the
textual and visual knowledge of CKE is not used (no such data), so this is "CF + structural
knowledge".

Deviations: the MKR table is a CTR task, so the default rec loss is binary cross-entropy on
the labelled rows; the original's pairwise ranking loss is ``rec_loss = "bpr"`` (each
positive row against a uniformly drawn item). The original TransR part is a Bayesian
pairwise loss (``-ln sigma(s_pos - s_neg)``) with Gaussian priors; here it is TransR's margin
loss with its norm constraints, after each step, and kgrec's TransR parametrisation
(``M_r = I + 0.1 D_r``, projected vectors normalised). Adam replaces SGD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.data.sampling import bernoulli_head_prob
from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.kge import KGEConfig, build_kge, corrupt_batch, triple_keys
from kgrec.models.layers import glorot_embedding

__all__ = ["CKE", "CKEConfig", "build"]


@dataclass
class CKEConfig:
    """Hyper-parameters of CKE.

    Attributes:
        dim: dimension of users, items' collaborative offsets and TransR entities.
        rel_dim: TransR relation space dimension (None: ``dim``).
        lr: Adam learning rate (one optimizer for the joint loss).
        l2_weight: weight of the L2 term: batch mean of the squared norms of each case's user
            vector, item offset and item bias (entities are kept in the unit ball by TransR's
            constraint instead).
        batch_size: rec rows per step.
        kge_weight: weight of the TransR loss in the joint objective (0: plain MF with a
            fixed random entity offset per item).
        kge_batch_size: KG triples sampled per step.
        margin: TransR's margin ``gamma``.
        rec_loss: ``bce`` (binary cross-entropy on the labelled rows; the CTR setting) or
            ``bpr`` (the original's pairwise ranking loss on the positive rows, each against
            a uniformly drawn item).
        item_bias: add a per-item bias to the score.
    """

    dim: int = 32
    rel_dim: int | None = None
    lr: float = 1e-2
    l2_weight: float = 1e-4
    batch_size: int = 1024
    kge_weight: float = 1.0
    kge_batch_size: int = 1024
    margin: float = 1.0
    rec_loss: str = "bce"
    item_bias: bool = True

    def __post_init__(self) -> None:
        if self.rel_dim in ("None", "none", ""):
            self.rel_dim = None
        if int(self.dim) < 1 or (self.rel_dim is not None and int(self.rel_dim) < 1):
            raise ValueError(f"dim and rel_dim must be >= 1, got {self.dim}, {self.rel_dim}")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if float(self.l2_weight) < 0 or float(self.kge_weight) < 0 or float(self.margin) < 0:
            raise ValueError("l2_weight, kge_weight and margin must be >= 0")
        if int(self.batch_size) < 1 or int(self.kge_batch_size) < 1:
            raise ValueError("batch_size and kge_batch_size must be >= 1")
        if self.rec_loss not in ("bce", "bpr"):
            raise ValueError(f"rec_loss must be 'bce' or 'bpr', got {self.rec_loss!r}")
        if not isinstance(self.item_bias, bool):
            raise ValueError(f"item_bias must be true or false, got {self.item_bias!r}")


class CKE(Recommender):
    """CKE's CF + structural knowledge model (module docstring). The TransR model is the
    submodule ``kge``; its entity table ``kge.ent`` is the structural item embedding.
    Construct with keyword arguments only."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        kg: np.ndarray,
        item_entity: np.ndarray | None = None,
        config: CKEConfig | None = None,
    ):
        super().__init__()
        cfg = config or CKEConfig()
        self.config = cfg
        self.n_users, self.n_items = int(n_users), int(n_items)
        d = int(cfg.dim)
        self.kge = build_kge("transr", n_entities=max(int(n_entities), 1),
                             n_relations=max(int(n_relations), 1),
                             config=KGEConfig(dim=d, rel_dim=cfg.rel_dim,
                                              margin=float(cfg.margin), p_norm=2,
                                              lr=float(cfg.lr), sampling="bern"))
        self.user_emb = glorot_embedding(self.n_users, d)
        self.item_emb = glorot_embedding(self.n_items, d)
        self.bias = nn.Parameter(torch.zeros(self.n_items if cfg.item_bias else 0))
        item_entity = np.arange(n_items) if item_entity is None else np.asarray(item_entity)
        self.register_buffer("item_entity", torch.as_tensor(item_entity, dtype=torch.long),
                             persistent=False)
        kg = np.ascontiguousarray(np.asarray(kg, dtype=np.int64).reshape(-1, 3))
        self.register_buffer("kg", torch.from_numpy(kg), persistent=False)
        n_rel = self.kge.n_relations
        self.register_buffer("head_prob", torch.as_tensor(
            bernoulli_head_prob(kg, n_rel) if len(kg) else np.full(n_rel, 0.5),
            dtype=torch.float32), persistent=False)
        self.register_buffer("true_keys", torch.unique(
            triple_keys(self.kg, self.kge.n_entities, n_rel)), persistent=False)

    # ------------------------------------------------------------------ scoring
    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``q_i + e_{entity(i)}`` for ``items`` (None: all items)."""
        if items is None:
            return self.item_emb + self.kge.ent[self.item_entity]
        return F.embedding(items, self.item_emb) + F.embedding(self.item_entity[items],
                                                               self.kge.ent)

    def _bias(self, items: torch.Tensor | None) -> torch.Tensor | float:
        if not self.config.item_bias:
            return 0.0
        return self.bias if items is None else self.bias[items]

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = F.embedding(users, self.user_emb)
        return (u * self.item_vectors(items)).sum(-1) + self._bias(items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return F.embedding(users, self.user_emb) @ self.item_vectors().T + self._bias(None)

    # ------------------------------------------------------------------ training
    def l2_penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Batch mean of the squared norms of each case's user vector, item offset, bias."""
        per_case = (F.embedding(users, self.user_emb).pow(2).sum(-1)
                    + F.embedding(items, self.item_emb).pow(2).sum(-1))
        if self.config.item_bias:
            per_case = per_case + self.bias[items].pow(2)
        return per_case.mean()

    def rec_loss(self, batch: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """BCE on the rows ``(user, item, label)``, or BPR on their positives against
        uniform items (drawn with ``generator``); plus ``l2_weight`` * L2."""
        cfg = self.config
        users, items = batch[:, 0], batch[:, 1]
        if cfg.rec_loss == "bce":
            loss = F.binary_cross_entropy_with_logits(self.score(users, items),
                                                      batch[:, 2].float())
        else:
            pos = batch[:, 2] > 0
            users, items = users[pos], items[pos]
            if len(users) == 0:
                return self.user_emb.sum() * 0.0
            neg = torch.randint(0, self.n_items, (len(users),), generator=generator)
            loss = -F.logsigmoid(self.score(users, items) - self.score(users, neg)).mean()
            items = torch.cat([items, neg])
            users = users.repeat(2)
        if cfg.l2_weight:
            loss = loss + cfg.l2_weight * self.l2_penalty(users, items)
        return loss

    def sample_triples(self, n: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` KG triples drawn uniformly (with replacement) and one corruption of each
        (head or tail by the relation's ``bern`` probability; true triples redrawn)."""
        pos = self.kg[torch.randint(0, len(self.kg), (n,), generator=generator)]
        neg = corrupt_batch(pos, self.kge.n_entities, head_prob=self.head_prob,
                            generator=generator, true_keys=self.true_keys,
                            n_relations=self.kge.n_relations)
        return pos, neg

    def kge_loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """TransR's margin loss on aligned true and corrupted triples."""
        return self.kge.loss(pos, neg)

    def joint_losses(self, batch: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                     generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rec_loss, kge_loss)`` of one step; the objective is
        ``rec + kge_weight * kge``."""
        return self.rec_loss(batch, generator), self.kge_loss(pos, neg)

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        # a private stream, seeded from torch's global generator (seed_everything)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        use_kg = float(cfg.kge_weight) > 0 and len(self.kg) > 0

        def loss(batch: torch.Tensor) -> torch.Tensor:
            if not use_kg:
                return self.rec_loss(batch, gen)
            pos, neg = self.sample_triples(int(cfg.kge_batch_size), gen)
            rec, kge = self.joint_losses(batch, pos, neg, gen)
            return rec + float(cfg.kge_weight) * kge

        params = [p for p in self.parameters() if p.requires_grad]
        return [Task(name="rec", source=data.rec_rows, loss=loss, params=params,
                     lr=float(cfg.lr), batch_size=int(cfg.batch_size),
                     after_step=self.kge.constrain if use_kg else None)]


def build(ds, cfg: CKEConfig) -> CKE:
    """CKE for a :class:`~kgrec.data.Dataset`."""
    return CKE(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
               n_relations=ds.n_relations, kg=ds.kg, item_entity=ds.item_entity, config=cfg)
