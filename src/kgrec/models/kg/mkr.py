"""MKR: Multi-task feature learning for KG-enhanced recommendation (Wang et al., WWW'19).

Two tasks share the item/entity features through cross & compress units:

* **rec** (RS): user vector through an L-layer MLP, item vector through L cross & compress
  units together with its entity vector; prediction by inner product (or an H-layer MLP);
  loss = binary cross-entropy + L2.
* **kge**: the head (an item's entity) through the same cross & compress units, concatenated
  with the relation vector, K = H high layers predict the tail ``t_hat``; score
  ``sigma(t . t_hat)`` with the tail through an L-layer MLP; loss = -score + L2.

The tasks have their own Adam optimizers and learning rates; the KGE task is trained in epochs
where ``epoch % kge_interval == 0`` (as the authors' code does). Faithful details kept from the
authors' TensorFlow code: Glorot-uniform init everywhere, ReLU on every dense layer (the
``t_hat`` layer included, then a sigmoid), L2 = ``sum(x^2)/2`` over the batch's transformed
user/item (RS) or head/tail (KGE) vectors and the weight matrices (not the biases).
One deliberate change: with ``inner_product=False`` the last RS layer is linear (the original
applies ReLU there, which pins every CTR at >= 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.kg import mkr_cpu
from kgrec.models.layers import (
    CrossCompress,
    CrossStitch,
    DCNCross,
    Dense,
    entity_inputs,
    glorot_embedding,
)

__all__ = ["MKR", "MKRConfig", "build"]


@dataclass
class MKRConfig:
    """Hyper-parameters of MKR (names follow the paper; defaults are the authors' movie ones).

    Attributes:
        dim: embedding dimension d.
        L: number of low layers (cross & compress units, user and tail MLP layers).
        H: number of high layers (KGE tail predictor; RS MLP when not using inner product).
        l2_weight: weight of the L2 terms.
        lr_rs, lr_kge: Adam learning rates of the two tasks.
        batch_size: rows per step (both tasks).
        kge_interval: train the KGE task in epochs where ``epoch % kge_interval == 0``;
            0 switches the KG task off (the "MKR without KG" ablation).
        inner_product: RS prediction by inner product (True, as the paper's experiments) or by
            an H-layer MLP over ``[u; v]``.
        analytic_grad: on CPU, train both tasks (inner-product head, the paper's KGE scorer)
            with the hand-written backward passes of :mod:`kgrec.models.kg.mkr_cpu` instead of
            autograd: the same gradients (see the tests) at a third of the per-step overhead,
            which dominates at the authors' small batches.
        kge_scorer: the KGE task's score: ``mkr`` (the paper's deep semantic matching,
            ``sigma(t . t_hat)`` maximised, no negatives) or a translational score from
            :mod:`kgrec.models.kge` (``transe``, ``transh``, ``transr``: the paper's stated
            future work) on the cross & compress head and the MLP tail, trained with a margin
            ranking loss against one uniformly corrupted tail per triple.
        kge_margin: margin of that ranking loss.
        entity_init: a KGE run directory (``kgrec kge train``) whose entity vectors start
            MKR's entity embeddings (sequential use of the KG; ``dim`` must match).
        freeze_entities: keep those pre-trained vectors fixed (else they are fine-tuned).
        init_scale: multiplies the Glorot-uniform initialisation of the user, item and entity
            embeddings (1: the authors' scale, ~0.03 for Last.FM's 15k rows; every logit then
            starts near 0, a saddle that some seeds and sparse runs never leave).
        unit: the sharing unit between item and entity features: ``cc`` (cross & compress),
            ``dcn`` (MKR-DCN: DCN cross layers) or ``stitch`` (MKR-stitch: cross-stitch
            units); the hand-written backward covers ``cc`` only.
    """

    dim: int = 8
    L: int = 1
    H: int = 1
    l2_weight: float = 1e-6
    lr_rs: float = 0.02
    lr_kge: float = 0.01
    batch_size: int = 4096
    kge_interval: int = 3
    inner_product: bool = True
    analytic_grad: bool = True
    kge_scorer: str = "mkr"
    kge_margin: float = 1.0
    init_scale: float = 1.0
    entity_init: str | None = None
    freeze_entities: bool = False
    unit: str = "cc"


UNITS = {"cc": CrossCompress, "dcn": DCNCross, "stitch": CrossStitch}


def _half_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(sum(a^2) + sum(b^2)) / 2`` (``tf.nn.l2_loss``), in two fused dot products."""
    a, b = a.reshape(-1), b.reshape(-1)
    return (torch.dot(a, a) + torch.dot(b, b)) * 0.5


def _weights(module: nn.Module) -> list[nn.Parameter]:
    """Weight matrices (not biases) of Dense layers and cross & compress units."""
    out: list[nn.Parameter] = []
    for m in module.modules():
        if isinstance(m, (Dense, CrossCompress, DCNCross)):
            out.append(m.weight)
    return out


class MKR(Recommender):
    """MKR model (see module docstring). Construct with keyword arguments only."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        item_entity: np.ndarray | None = None,
        config: MKRConfig | None = None,
    ):
        super().__init__()
        cfg = config or MKRConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        d = cfg.dim
        if item_entity is None:
            item_entity = np.arange(n_items)
        item_entity = torch.as_tensor(np.asarray(item_entity), dtype=torch.long)
        self.register_buffer("item_entity", item_entity, persistent=False)
        # entity -> item (or -1): KGE heads must be items to pass the cross & compress units
        entity_item = torch.full((max(n_entities, 1),), -1, dtype=torch.long)
        entity_item[item_entity] = torch.arange(n_items)
        self.register_buffer("entity_item", entity_item, persistent=False)

        # users | items | entities in one table: one lookup (and one gradient) per batch
        # instead of three; each block keeps its own Glorot scale, as separate tables would.
        self.table = nn.Parameter(torch.cat([
            glorot_embedding(n_users, d).data,
            glorot_embedding(n_items, d).data,
            glorot_embedding(max(n_entities, 1), d).data,
        ]) * cfg.init_scale)
        self.item_offset, self.entity_offset = n_users, n_users + n_items
        self.relation_emb = glorot_embedding(max(n_relations, 1), d)
        self.user_mlp = nn.ModuleList(Dense(in_dim=d, out_dim=d) for _ in range(cfg.L))
        self.tail_mlp = nn.ModuleList(Dense(in_dim=d, out_dim=d) for _ in range(cfg.L))
        if cfg.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {cfg.unit!r}")
        self.cc = nn.ModuleList(UNITS[cfg.unit](dim=d) for _ in range(cfg.L))
        if cfg.inner_product:
            self.rs_mlp = nn.ModuleList()
        else:
            self.rs_mlp = nn.ModuleList(
                [Dense(in_dim=2 * d, out_dim=2 * d) for _ in range(cfg.H - 1)]
                + [Dense(in_dim=2 * d, out_dim=1, act=None)]
            )
        self.kge_mlp = nn.ModuleList(
            [Dense(in_dim=2 * d, out_dim=2 * d) for _ in range(cfg.H - 1)]
            + [Dense(in_dim=2 * d, out_dim=d)]
        )
        self.kge_scorer: nn.Module | None = None
        if cfg.kge_scorer != "mkr":
            from kgrec.models.kge import KGEConfig, build_kge

            if cfg.kge_scorer not in ("transe", "transh", "transr"):
                raise ValueError(f"kge_scorer must be mkr, transe, transh or transr, got "
                                 f"{cfg.kge_scorer!r}")
            # only the relation parameters are used: MKR supplies the entity vectors
            self.kge_scorer = build_kge(cfg.kge_scorer, n_entities=1,
                                        n_relations=max(n_relations, 1),
                                        config=KGEConfig(dim=d, margin=cfg.kge_margin))

    def load_entity_vectors(self, rows: torch.Tensor, vectors: torch.Tensor, *,
                            freeze: bool = False) -> None:
        """Copy pre-trained ``vectors`` into entity ``rows``; ``freeze`` keeps them fixed (their
        gradient is zeroed, so Adam never moves them)."""
        rows = torch.as_tensor(rows, dtype=torch.long) + self.entity_offset
        with torch.no_grad():
            self.table[rows] = vectors.to(self.table.dtype)
        if freeze:
            mask = torch.ones(len(self.table), 1, dtype=self.table.dtype)
            mask[rows] = 0.0
            self.register_buffer("grad_mask", mask, persistent=False)
            self.table.register_hook(lambda g: g * self.grad_mask)

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_cpu_views", None)  # parameters may move: rebuild the NumPy views
        return super()._apply(fn, *args, **kwargs)

    # ----------------------------------------------------------------- embeddings
    @property
    def user_emb(self) -> torch.Tensor:
        """Raw user embeddings ``(n_users, d)`` (a view of the shared table)."""
        return self.table[: self.item_offset]

    @property
    def item_emb(self) -> torch.Tensor:
        return self.table[self.item_offset : self.entity_offset]

    @property
    def entity_emb(self) -> torch.Tensor:
        return self.table[self.entity_offset :]

    # ----------------------------------------------------------------- features
    def _mlp_users(self, u: torch.Tensor) -> torch.Tensor:
        for layer in self.user_mlp:
            u = layer(u)
        return u

    def _cross(self, v: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.unit == "cc":
            for unit in self.cc:
                v, e = unit(v, e)
            return v, e
        v0, e0 = v, e
        for unit in self.cc:
            v, e = unit(v, e, v0, e0)
        return v, e

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self._mlp_users(F.embedding(users, self.table))

    def item_entity_vectors(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item and associated-entity vectors after the L cross & compress units."""
        idx = torch.stack([items + self.item_offset, self.item_entity[items] + self.entity_offset])
        v, e = F.embedding(idx, self.table).unbind(0)
        return self._cross(v, e)

    def _predict(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.config.inner_product:
            return (u * v).sum(-1)
        x = torch.cat([u, v], dim=-1)
        for layer in self.rs_mlp:
            x = layer(x)
        return x.squeeze(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        v, _ = self.item_entity_vectors(items)
        return self._predict(self.user_vectors(users), v)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        u = self.user_vectors(users)
        v, _ = self.item_entity_vectors(torch.arange(self.n_items, device=users.device))
        if self.config.inner_product:
            return u @ v.T
        b, n = len(u), len(v)
        return self._predict(
            u.unsqueeze(1).expand(b, n, -1).reshape(b * n, -1), v.repeat(b, 1)
        ).view(b, n)

    # ----------------------------------------------------------------- losses
    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """RS task: BCE on ``(user, item, label)`` rows + L2."""
        users, items, labels = batch[:, 0], batch[:, 1], batch[:, 2].float()
        idx = torch.stack([users, items + self.item_offset,
                           self.item_entity[items] + self.entity_offset])
        u, v, e = F.embedding(idx, self.table).unbind(0)
        u = self._mlp_users(u)
        v, _ = self._cross(v, e)
        logits = self._predict(u, v)
        base = F.binary_cross_entropy_with_logits(logits, labels)
        # the L2 of the weight matrices is applied as Adam weight decay (same gradient)
        return base + self.config.l2_weight * _half_sq(u, v)

    def rec_step(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`rec_loss` and its gradients: on CPU by the hand-written backward of
        :mod:`.mkr_cpu` (the same gradients at a third of autograd's per-step overhead, which
        dominates at the authors' small batches), elsewhere by autograd."""
        return self._step(mkr_cpu.rec_step, self.rec_loss, batch)

    def kge_step(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`kge_loss` (the paper's scorer) and its gradients, as :meth:`rec_step`."""
        return self._step(mkr_cpu.kge_step, self.kge_loss, batch)

    def _step(self, kernel, loss_fn, batch: torch.Tensor) -> torch.Tensor:
        if mkr_cpu.supported(self):
            return kernel(self, batch)
        loss = loss_fn(batch)
        loss.backward()
        return loss.detach()

    def kge_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """KGE task: ``-sigma(t . t_hat)`` on ``(head, relation, tail)`` rows + L2."""
        heads, rels, tails = batch[:, 0], batch[:, 1], batch[:, 2]
        if self.kge_scorer is not None:
            return self._kge_margin_loss(heads, rels, tails)
        idx = torch.stack([self.entity_item[heads] + self.item_offset,
                           heads + self.entity_offset, tails + self.entity_offset])
        v, e, t = F.embedding(idx, self.table).unbind(0)
        _, e = self._cross(v, e)
        for layer in self.tail_mlp:
            t = layer(t)
        x = torch.cat([e, F.embedding(rels, self.relation_emb)], dim=-1)
        for layer in self.kge_mlp:
            x = layer(x)
        t_hat = torch.sigmoid(x)
        score = torch.sigmoid((t * t_hat).sum(-1))
        return -score.mean() + self.config.l2_weight * _half_sq(e, t)

    def _kge_margin_loss(self, heads: torch.Tensor, rels: torch.Tensor,
                         tails: torch.Tensor) -> torch.Tensor:
        """Translational KGE task: ``relu(margin - f(h, r, t) + f(h, r, t'))`` with ``t'`` a
        uniformly drawn entity, ``h`` through the cross & compress units, tails through the
        tail MLP; plus MKR's L2 on the head and tail vectors."""
        neg = torch.randint(0, self.n_entities, tails.shape, device=tails.device)
        idx = torch.stack([self.entity_item[heads] + self.item_offset, heads + self.entity_offset,
                           tails + self.entity_offset, neg + self.entity_offset])
        v, e, t, tn = F.embedding(idx, self.table).unbind(0)
        _, e = self._cross(v, e)
        tt = torch.cat([t, tn])
        for layer in self.tail_mlp:
            tt = layer(tt)
        t, tn = tt.chunk(2)
        f_pos = self.kge_scorer.score_emb(e, rels, t)
        f_neg = self.kge_scorer.score_emb(e, rels, tn)
        loss = torch.relu(self.config.kge_margin - f_pos + f_neg).mean()
        return loss + self.config.l2_weight * _half_sq(e, t)

    # ----------------------------------------------------------------- tasks
    def _groups(self, free: list[nn.Parameter], modules: tuple[nn.Module, ...]) -> list[dict]:
        """Optimizer groups: the L2 on weight matrices (``l2_weight * ||W||^2 / 2`` in the
        paper's loss) is Adam's coupled weight decay, which adds the same gradient."""
        decay = [w for m in modules for w in _weights(m)]
        ids = {id(w) for w in decay}
        rest = free + [p for m in modules for p in m.parameters() if id(p) not in ids]
        return [
            {"params": rest, "weight_decay": 0.0},
            {"params": decay, "weight_decay": self.config.l2_weight},
        ]

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        rec_params = self._groups([self.table], (self.user_mlp, self.cc, self.rs_mlp))
        out = [
            Task(
                name="rec",
                source=data.rec_rows,
                loss=self.rec_loss,
                step=self.rec_step if (cfg.inner_product and cfg.analytic_grad
                                       and cfg.unit == "cc") else None,
                params=rec_params,
                lr=cfg.lr_rs,
                batch_size=cfg.batch_size,
            )
        ]
        if cfg.kge_interval > 0 and len(data.kg):
            kg = np.asarray(data.kg, dtype=np.int64)
            # only triples whose head is an item can pass the cross & compress units
            kg = kg[self.entity_item.cpu().numpy()[kg[:, 0]] >= 0]
            if len(kg):
                if self.kge_scorer is None:
                    kge_params = self._groups(
                        [self.table, self.relation_emb], (self.tail_mlp, self.cc, self.kge_mlp)
                    )
                else:
                    kge_params = self._groups(
                        [self.table, *self.kge_scorer.relation_tables()],
                        (self.tail_mlp, self.cc),
                    )
                out.append(
                    Task(
                        name="kge",
                        source=lambda epoch, kg=kg: kg,
                        loss=self.kge_loss,
                        step=self.kge_step if (cfg.analytic_grad and self.kge_scorer is None
                                               and cfg.unit == "cc") else None,
                        params=kge_params,
                        lr=cfg.lr_kge,
                        batch_size=cfg.batch_size,
                        every=cfg.kge_interval,
                        after_step=None if self.kge_scorer is None
                        else self.kge_scorer.constrain,
                    )
                )
        return out


def build(ds, cfg: MKRConfig, inputs: dict | None = None) -> MKR:
    """MKR for a :class:`~kgrec.data.Dataset` (entity vectors from ``cfg.entity_init``)."""
    model = MKR(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
    if cfg.entity_init:
        rows, vectors = entity_inputs(inputs)
        model.load_entity_vectors(rows, vectors, freeze=cfg.freeze_entities)
    return model
