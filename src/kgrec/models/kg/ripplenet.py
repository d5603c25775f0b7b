"""RippleNet: propagating user preferences over ripple sets in the KG.

Wang et al., "RippleNet: Propagating User Preferences on the Knowledge Graph for Recommender
Systems", CIKM'18; this follows the authors' TensorFlow code (hwwang55/RippleNet,
``src/model.py``).

Each user has fixed-size ripple sets (:mod:`kgrec.data.ripple`): ``n_hop`` hops of
``n_memory`` triples ``(h_i, r_i, t_i)`` reached from the items the user clicked in the
training split. An item starts as its entity embedding ``v``; hop ``k``::

    p_i = softmax_i(v^T R_i h_i)        (R_i: the d x d matrix of relation r_i)
    o^k = sum_i p_i t_i
    v  <- update(v, o^k)                 replace: o | plus: v + o
                                         replace_transform: o T | plus_transform: (v + o) T

(``T`` one d x d matrix shared by the hops, no bias). The user vector is ``sum_k o^k``
(``using_all_hops``, the code's default) or the last hop's ``o``; the logit is
``u . v`` with ``v`` the item vector *after* the last hop's update, as in the authors' code.

Loss (one Adam optimizer over everything, as the code)::

    BCE + kge_weight * sum_k -mean_i sigmoid(h_i^T R_i t_i)
        + l2_weight * (sum over the batch's used h, t, R of their squares
                       + n_hop * ||T||^2 / 2 in the transform modes)

The KGE term is the code's version of the paper's ``lambda2/2 ||I_r - E^T R E||^2``. The L2
sums (not averages) over the batch, as the code's ``reduce_mean(reduce_sum(.))`` does. The
code adds ``tf.nn.l2_loss(T)`` per hop only for modes named "replace nonlinear" / "plus
nonlinear", which never occur (dead code); here the term is applied in the two transform
modes, as evidently intended (it is tiny: ``l2_weight * n_hop * ||T||^2 / 2``).

Users without a ripple set (no click in the training split: the authors drop their rows from
every split) point at one extra "no history" entity and relation (the placeholder triple of
:mod:`kgrec.data.ripple`), so they get a learned, item-dependent cold-user preference instead
of a crash. The KGE term skips placeholder slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.data.ripple import build_ripple_sets, positive_seeds
from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.layers import glorot_embedding

__all__ = ["UPDATE_MODES", "RippleNet", "RippleNetConfig", "build"]

UPDATE_MODES = ("replace", "plus", "replace_transform", "plus_transform")


def _gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` through ``index_select`` (its backward, an ``index_add``, is several
    times faster on CPU than advanced indexing's)."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


@dataclass
class RippleNetConfig:
    """RippleNet hyper-parameters (defaults: the authors' MovieLens-1M settings).

    Attributes:
        dim: size of entity embeddings (relations are ``dim x dim`` matrices).
        n_hop: number of hops of the ripple sets (>= 1).
        n_memory: triples per hop and user (>= 1).
        item_update_mode: how the item vector changes after each hop: ``replace``,
            ``plus``, ``replace_transform`` or ``plus_transform``.
        using_all_hops: user vector = sum of all hops' outputs (True) or the last hop's.
        kge_weight: weight of the KGE term (``-mean sigmoid(h^T R t)`` per hop).
        l2_weight: weight of the L2 term on the batch's used h, t, R (and the transform).
        lr: Adam learning rate.
        batch_size: training rows per step.
        item_bias: add a learned per-item bias to the logit (not in the paper; off by
            default). Without it RippleNet has no way to express popularity, which is most of
            what a 10% training split can teach (see ``benchmarks/results/ripplenet_stalls.md``).
        seed: seeds the ripple-set sampling; None draws it from torch's global generator
            (which a run seeds with its ``--seed``).
    """

    dim: int = 16
    n_hop: int = 2
    n_memory: int = 32
    item_update_mode: str = "plus_transform"
    using_all_hops: bool = True
    kge_weight: float = 0.01
    l2_weight: float = 1e-7
    lr: float = 0.02
    batch_size: int = 1024
    item_bias: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("dim", "n_hop", "n_memory", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.item_update_mode not in UPDATE_MODES:
            raise ValueError(f"item_update_mode must be one of {', '.join(UPDATE_MODES)}, got "
                             f"{self.item_update_mode!r}")
        for name in ("kge_weight", "l2_weight"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


class RippleNet(Recommender):
    """RippleNet (see module docstring). Construct with keyword arguments only.

    The ripple sets live in the persistent buffers ``ripple_heads``, ``ripple_rels`` and
    ``ripple_tails`` (``(n_users, n_hop, n_memory)``), filled by :meth:`set_ripple_sets`
    (which :meth:`tasks` calls with the training split), so a checkpoint restores them.
    """

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        item_entity: np.ndarray | None = None,
        config: RippleNetConfig | None = None,
    ):
        super().__init__()
        cfg = config or RippleNetConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        d, n_rel = cfg.dim, max(n_relations, 1)
        # one extra entity and relation: the placeholder of users without a ripple set
        self.entity_emb = glorot_embedding(n_entities + 1, d)
        rel = torch.empty(n_relations + 1, d, d)
        bound = math.sqrt(6.0 / (2 * d * n_rel))  # TF's Glorot over a [n_rel, d, d] variable
        nn.init.uniform_(rel, -bound, bound)
        self.relation_emb = nn.Parameter(rel)
        t = torch.empty(d, d)
        nn.init.xavier_uniform_(t)
        self.transform = nn.Parameter(t)
        item_entity = np.arange(n_items) if item_entity is None else np.asarray(item_entity)
        if item_entity.shape != (n_items,):
            raise ValueError(f"item_entity must have shape ({n_items},), got {item_entity.shape}")
        self.register_buffer("item_entity", torch.as_tensor(item_entity, dtype=torch.long),
                             persistent=False)
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if cfg.item_bias else None
        shape = (n_users, cfg.n_hop, cfg.n_memory)
        for name in ("ripple_heads", "ripple_rels", "ripple_tails"):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.long), persistent=True)

    # ---- ripple sets -------------------------------------------------------------------

    def set_ripple_sets(self, kg: np.ndarray, train: np.ndarray, *, seed: int) -> None:
        """Build the ripple sets from ``kg`` and the positives of ``train`` into the buffers."""
        cfg = self.config
        users, entities = positive_seeds(train, self.item_entity.cpu().numpy())
        rs = build_ripple_sets(kg, users, entities, n_users=self.n_users,
                               n_entities=self.n_entities, n_relations=self.n_relations,
                               n_hop=cfg.n_hop, n_memory=cfg.n_memory, seed=seed)
        for name, arr in (("ripple_heads", rs.heads), ("ripple_rels", rs.rels),
                          ("ripple_tails", rs.tails)):
            getattr(self, name).copy_(torch.from_numpy(arr))

    # ---- forward -----------------------------------------------------------------------

    def _memories(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``R h``, ``h^T R`` and the tail embeddings of the users' memories, each
        ``(H, b, M, d)`` (hop first, so a hop is a cheap view).

        ``R h`` and ``h^T R`` are computed once per distinct ``(h, r)`` pair of the batch (a
        few thousand at most) instead of once per memory slot.
        """
        heads = self.ripple_heads[users].transpose(0, 1)
        rels = self.ripple_rels[users].transpose(0, 1)
        key = heads * (self.n_relations + 1) + rels
        uniq, inv = torch.unique(key, return_inverse=True)
        uh, ur = uniq // (self.n_relations + 1), uniq % (self.n_relations + 1)
        r_mat, h_vec = _gather(self.relation_emb, ur), _gather(self.entity_emb, uh)
        rh = _gather(torch.einsum("nij,nj->ni", r_mat, h_vec), inv)
        hr = _gather(torch.einsum("nij,ni->nj", r_mat, h_vec), inv)
        t = _gather(self.entity_emb, self.ripple_tails[users].transpose(0, 1))
        return rh, hr, t

    def _update(self, v: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        mode = self.config.item_update_mode
        if mode == "replace":
            return o
        if mode == "plus":
            return v + o
        if mode == "replace_transform":
            return o @ self.transform
        return (v + o) @ self.transform  # plus_transform

    def propagate(
        self, v: torch.Tensor, rh: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Preference propagation.

        Args:
            v: item vectors ``(..., C, d)``.
            rh: ``R h`` of the memories ``(H, ..., M, d)``.
            t: tail embeddings ``(H, ..., M, d)``.

        Leading dimensions broadcast, ``C`` items per user (1 for aligned pairs).

        Returns:
            ``(user vector, final item vector, [attention p per hop])``, the vectors
            ``(..., C, d)`` and each ``p`` ``(..., C, M)``.
        """
        outs, probs = [], []
        for rh_k, t_k in zip(rh.unbind(0), t.unbind(0), strict=True):
            p = torch.softmax(v @ rh_k.transpose(-1, -2), dim=-1)  # (..., C, M)
            o = p @ t_k  # (..., C, d)
            v = self._update(v, o)
            outs.append(o)
            probs.append(p)
        user = torch.stack(outs).sum(0) if self.config.using_all_hops else outs[-1]
        return user, v, probs

    def _forward(
        self, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(b,)`` with the memories' ``h^T R`` and ``t`` (for the KGE term)."""
        rh, hr, t = self._memories(users)
        v = _gather(self.entity_emb, self.item_entity[items]).unsqueeze(1)  # (b, 1, d)
        u, v, _ = self.propagate(v, rh, t)
        logits = (u * v).sum(-1).squeeze(1)
        if self.item_bias is not None:
            logits = logits + self.item_bias[items]
        return logits, hr, t

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        chunk = 8192
        if len(users) <= chunk:
            return self._forward(users, items)[0]
        return torch.cat([self._forward(users[i : i + chunk], items[i : i + chunk])[0]
                          for i in range(0, len(users), chunk)])

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Logits ``(len(users), n_items)``: the memories' ``R h`` once per user, items in
        chunks (from hop 1 on the item vector depends on the user as well)."""
        cfg = self.config
        rh, _, t = self._memories(users)
        v_all = self.entity_emb[self.item_entity].unsqueeze(0)  # (1, n_items, d)
        chunk = max(1, 2**22 // (max(len(users), 1) * max(cfg.n_memory, cfg.dim)))
        out = []
        for start in range(0, self.n_items, chunk):
            u, v, _ = self.propagate(v_all[:, start : start + chunk], rh, t)
            out.append((u * v).sum(-1))
        logits = torch.cat(out, dim=1)
        return logits if self.item_bias is None else logits + self.item_bias

    # ---- training ----------------------------------------------------------------------

    def losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three terms of the loss for a batch of ``(user, item, label)`` rows."""
        cfg = self.config
        users = batch[:, 0]
        logits, hr, t = self._forward(users, batch[:, 1])
        bce = F.binary_cross_entropy_with_logits(logits, batch[:, 2].to(logits.dtype))
        heads, rels = self.ripple_heads[users], self.ripple_rels[users]
        real = (heads != self.n_entities).to(logits.dtype).transpose(0, 1)  # (H, b, M)
        sig = torch.sigmoid((hr * t).sum(-1)) * real
        kge = -(sig.sum((1, 2)) / real.sum((1, 2)).clamp_min(1.0)).sum()
        # squares of the used h, t, R: per-row squared norms, gathered (same sum, cheaper)
        ent_sq = (self.entity_emb**2).sum(1)
        rel_sq = (self.relation_emb**2).sum((1, 2))
        tails = self.ripple_tails[users]
        l2 = (_gather(ent_sq, heads).sum() + _gather(ent_sq, tails).sum()
              + _gather(rel_sq, rels).sum())
        if cfg.item_update_mode.endswith("_transform"):
            l2 = l2 + cfg.n_hop * (self.transform**2).sum() / 2
        if self.item_bias is not None:
            l2 = l2 + (self.item_bias[batch[:, 1]] ** 2).sum()
        return {"bce": bce, "kge": kge, "l2": l2}

    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        parts = self.losses(batch)
        cfg = self.config
        return parts["bce"] + cfg.kge_weight * parts["kge"] + cfg.l2_weight * parts["l2"]

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        seed = cfg.seed if cfg.seed is not None else int(torch.randint(2**31 - 1, ()).item())
        self.set_ripple_sets(data.kg, data.train_rows(), seed=seed)
        params = [self.entity_emb, self.relation_emb]
        if cfg.item_update_mode.endswith("_transform"):
            params.append(self.transform)
        if self.item_bias is not None:
            params.append(self.item_bias)
        return [Task(name="rec", source=data.rec_rows, loss=self.rec_loss, params=params,
                     lr=cfg.lr, batch_size=cfg.batch_size)]


def build(ds, cfg: RippleNetConfig) -> RippleNet:
    """RippleNet for a :class:`~kgrec.data.Dataset` (ripple sets are built in ``tasks``)."""
    return RippleNet(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                     n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
