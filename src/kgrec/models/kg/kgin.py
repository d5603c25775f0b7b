"""KGIN: knowledge graph-based intent network (Wang et al., "Learning Intents behind
Interactions with Knowledge Graph for Recommendation", WWW'21).

Intents. Each of ``n_factors`` intents ``p`` is an attentive mix of the relation embeddings,
``e_p = sum_r softmax_r(w_p)[r] e_r`` (``w`` a free ``(n_factors, n_relations)`` table).

Propagation (``n_layers`` context hops, all nodes at once, vectorised with ``index_add``):

* user side, over the training positives ``N_u`` (items taken as their entities)::

      e_u^(l+1) = (sum_p beta(u, p) e_p) * mean_{i in N_u} e_i^(l),
      beta(u, p) = softmax_p(e_p . e_u^(l))

  (the paper's intent-aware aggregation, with ``e_u^(l)`` the user's input to the hop);
* KG side, relational-path-aware aggregation over the triples::

      e_h^(l+1) = mean_{(h, r, t)} e_r * e_t^(l)

  over both directions of every triple, the reverse edge under a relation of its own
  (``r + n_relations``), as the authors' ``inverse_r``.

Each hop's output goes through message dropout and is L2-normalised; the final
representations are the residual sums ``e^(0) + sum_l e^(l)``. An item is its entity
(``item_entity``); the score is ``e_u . e_i``. Items do not aggregate from users, so an item
never seen in training (a cold item) is represented through its KG neighbourhood (its own
layer-0 vector is trained only through the graph): no index here is built from training
items, and the propagation covers every entity.

Loss per batch of ``(user, pos, neg)`` triples (one negative per positive and epoch, uniform
over the items the user has no training positive for, among ``item_candidates`` when set)::

    BPR + l2_weight * (|u|^2 + |i|^2 + |j|^2) / 2 (mean over the batch, on the propagated
    vectors, as the authors) + sim_regularity * independence(intents)

``independence``: ``distance`` (the paper's default: the sum over intent pairs of their
distance correlation, coordinates as samples), ``cosine`` (squared cosine similarities) or
``mi`` (the paper's mutual-information form, a contrastive loss over the intents' cosine
similarities at ``temperature``).

The propagated user and item tables are persistent buffers: refreshed after every epoch
(task ``propagate``) and, lazily, on the first score after a training step, so evaluation
and a loaded run score without the graph. CTR logits are Platt-calibrated as BPR-MF's
(:mod:`kgrec.models.cf.bpr_mf`, ``calib_holdout`` included); AUC and top-K do not depend on
the calibration.

Deliberate differences from the authors' code (github.com/huangtinglin/
Knowledge_Graph_based_Intent_Network, ``modules/KGIN.py``):

* the intent attention ``beta(u, p)`` uses the intent embeddings ``e_p`` as the paper
  does; the code scores users against a separate free table (``latent_emb``);
* the user update is the paper's ``(sum_p beta e_p) * mean_i e_i``; the code adds the mean
  once more (``user_agg * gate + user_agg``);
* the independence loss is taken over the intent embeddings ``e_p`` as the paper states
  (``independence_on="intents"``); the code applies it to the rows of the attention logits
  ``w`` (``independence_on="weights"``). ``mi`` follows the paper's formula;
* node dropout keeps each KG edge and each user-item edge with probability
  ``1 - node_dropout`` and averages over the kept ones (the code keeps a fixed share of
  the KG edges and rescales the dropped interaction matrix, a factor the per-hop L2
  normalisation removes);
* users, entities and relations have separate tables (the code has one for users and
  entities, so their Xavier bounds differ slightly); Adam on the trainer's mini-batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.cf.bpr_mf import bpr_rows, sample_bpr_triples
from kgrec.models.cf.pop import CalibratedTables

__all__ = ["KGIN", "KGINConfig", "build", "cosine_independence", "distance_correlation",
           "intent_embeddings", "mi_independence", "relational_aggregate", "user_aggregate"]

_INDEPENDENCE = ("distance", "cosine", "mi", "none")


@dataclass
class KGINConfig:
    """Settings of :class:`KGIN` (defaults: the paper's / authors' code).

    Attributes:
        dim: embedding size d.
        n_layers: context hops L (propagation layers).
        n_factors: number of intents P.
        lr: Adam learning rate.
        l2_weight: weight of the L2 term on the batch's propagated vectors.
        sim_regularity: weight of the independence loss among intents.
        independence: ``distance`` (distance correlation), ``cosine``, ``mi`` or ``none``.
        independence_on: ``intents`` (the intent embeddings e_p, the paper) or ``weights``
            (the attention logits over relations, the authors' code).
        temperature: temperature of the ``mi`` independence loss.
        node_dropout: probability of dropping each KG and user-item edge in a training
            step (0: off).
        mess_dropout: dropout on every hop's output in training (0: off).
        inverse_relations: also aggregate along reversed triples, under relations of their
            own (False: only tail -> head messages).
        batch_size: BPR triples per step.
        calibrate: refit the Platt calibration of the CTR logits after every epoch.
        calib_holdout: share of the labelled training rows kept out of training (and out
            of the graph) and used for the calibration alone (0: fit it in-sample on all
            training rows, as BPR-MF's default).
    """

    dim: int = 64
    n_layers: int = 3
    n_factors: int = 4
    lr: float = 1e-4
    l2_weight: float = 1e-5
    sim_regularity: float = 1e-4
    independence: str = "distance"
    independence_on: str = "intents"
    temperature: float = 0.2
    node_dropout: float = 0.5
    mess_dropout: float = 0.1
    inverse_relations: bool = True
    batch_size: int = 1024
    calibrate: bool = True
    calib_holdout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dim", "n_factors", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.l2_weight < 0 or self.sim_regularity < 0:
            raise ValueError("l2_weight and sim_regularity must be >= 0")
        if self.independence not in _INDEPENDENCE:
            raise ValueError(f"independence must be one of {', '.join(_INDEPENDENCE)}, "
                             f"got {self.independence!r}")
        if self.independence_on not in ("intents", "weights"):
            raise ValueError("independence_on must be 'intents' or 'weights', got "
                             f"{self.independence_on!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        for name in ("node_dropout", "mess_dropout", "calib_holdout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")


# ---------------------------------------------------------------------- building blocks
def intent_embeddings(att: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
    """``(P, d)`` intents: ``softmax(att, -1) @ relations`` (``att`` is ``(P, R)``)."""
    return torch.softmax(att, dim=-1) @ relations


def relational_aggregate(entity: torch.Tensor, relation: torch.Tensor, head: torch.Tensor,
                         rel: torch.Tensor, tail: torch.Tensor, *, mean: bool = True
                         ) -> torch.Tensor:
    """``e_h = mean_{(h, r, t)} e_r * e_t`` for every entity (0 for one without an edge);
    ``mean=False``: the sum (the same direction, what an L2 normalisation after it sees)."""
    # index_select, not [] indexing: its backward (index_add_) is much faster on CPU
    msg = entity.index_select(0, tail) * relation.index_select(0, rel)
    out = torch.zeros_like(entity).index_add_(0, head, msg)
    if not mean:
        return out
    deg = torch.bincount(head, minlength=len(entity)).clamp_(min=1)
    return out / deg[:, None].to(out.dtype)


def user_aggregate(user: torch.Tensor, entity: torch.Tensor, intents: torch.Tensor,
                   users: torch.Tensor, ents: torch.Tensor, *, mean: bool = True
                   ) -> torch.Tensor:
    """``e_u = (sum_p softmax_p(e_p . e_u) e_p) * mean_{(u, i)} e_i`` over the edges
    ``(users[k], ents[k])`` (0 for a user without an edge); ``mean=False``: with the sum
    over the user's items (the same direction)."""
    agg = torch.zeros_like(user).index_add_(0, users, entity.index_select(0, ents))
    if mean:
        deg = torch.bincount(users, minlength=len(user)).clamp_(min=1)
        agg = agg / deg[:, None].to(agg.dtype)
    beta = torch.softmax(user @ intents.T, dim=-1)  # (n_users, P)
    return (beta @ intents) * agg


def distance_correlation(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(P, P)`` distance correlations between the rows of ``x`` ``(P, n)``, the ``n``
    coordinates of a row taken as samples (the authors' ``DistanceCorrelation``, with its
    ``eps`` under every square root, for all pairs at once)."""
    n = x.shape[1]
    a = torch.sqrt((x[:, :, None] - x[:, None, :]) ** 2 + eps)  # (P, n, n)
    a = a - a.mean(1, keepdim=True) - a.mean(2, keepdim=True) + a.mean((1, 2), keepdim=True)
    dcov2 = torch.einsum("pij,qij->pq", a, a) / n**2
    dcov = torch.sqrt(dcov2.clamp(min=0) + eps)
    d = dcov.diagonal()
    return dcov / torch.sqrt(d[:, None] * d[None, :] + eps)


def cosine_independence(x: torch.Tensor) -> torch.Tensor:
    """Sum over row pairs ``p < q`` of their squared cosine similarity."""
    xn = F.normalize(x, dim=1)
    c = (xn @ xn.T) ** 2
    return torch.triu(c, diagonal=1).sum()


def mi_independence(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """The paper's MI form: ``sum_p -log softmax_q(cos(x_p, x_q) / temperature)[p]``."""
    xn = F.normalize(x, dim=1)
    logits = xn @ xn.T / temperature
    return -torch.log_softmax(logits, dim=1).diagonal().sum()


# ---------------------------------------------------------------------- the model
class KGIN(CalibratedTables, Recommender):
    """See the module docstring. Construct with keyword arguments only."""

    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray, config: KGINConfig | None = None):
        super().__init__()
        cfg = config or KGINConfig()
        if n_users < 1 or n_items < 1:
            raise ValueError(f"need n_users, n_items >= 1, got {n_users}, {n_items}")
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        self.n_entities = max(n_entities, 1)
        self.n_kg_relations = n_relations
        # reversed triples get relations of their own; at least one row so that intents
        # exist on a dataset without a KG
        n_rel = max(n_relations * (2 if cfg.inverse_relations else 1), 1)
        d = cfg.dim
        xavier = nn.init.xavier_uniform_
        self.user_emb = nn.Parameter(xavier(torch.empty(n_users, d)))
        self.entity_emb = nn.Parameter(xavier(torch.empty(self.n_entities, d)))
        self.relation_emb = nn.Parameter(xavier(torch.empty(n_rel, d)))
        self.intent_att = nn.Parameter(xavier(torch.empty(cfg.n_factors, n_rel)))
        self.register_buffer("item_entity", torch.as_tensor(np.asarray(item_entity),
                                                            dtype=torch.long))
        # what scoring uses (refreshed from the graph; saved with the model)
        self.register_buffer("final_user", torch.zeros(n_users, d))
        self.register_buffer("final_item", torch.zeros(n_items, d))
        self.register_buffer("calib", torch.tensor([1.0, 0.0]))
        # the graphs (set by tasks(); not saved: scoring uses the buffers above)
        self.register_buffer("kg_edges", None, persistent=False)  # (3, m): head, rel, tail
        self.register_buffer("ui_edges", None, persistent=False)  # (2, n): user, entity
        self._stale = True  # final_* lag behind the parameters
        self.register_load_state_dict_post_hook(_loaded)
        self.register_state_dict_pre_hook(_before_saving)

    # ------------------------------------------------------------------ graphs
    def set_graph(self, kg: np.ndarray, positives: np.ndarray) -> None:
        """Store the KG triples (deduplicated, with their reverses) and the user-item edges
        ``(user, item)`` of the training positives (deduplicated) used by propagation."""
        kg = np.unique(np.asarray(kg, dtype=np.int64).reshape(-1, 3), axis=0)
        if self.config.inverse_relations and len(kg):
            rev = np.c_[kg[:, 2], kg[:, 1] + self.n_kg_relations, kg[:, 0]]
            kg = np.r_[kg, rev]
        pos = np.asarray(positives, dtype=np.int64).reshape(-1, 2)
        key = np.unique(pos[:, 0] * self.n_items + pos[:, 1])
        users, items = key // self.n_items, key % self.n_items
        device = self.user_emb.device
        self.kg_edges = torch.from_numpy(np.ascontiguousarray(kg.T)).to(device)
        self.ui_edges = torch.from_numpy(
            np.stack([users, self.item_entity.cpu().numpy()[items]])).to(device)
        self._stale = True

    def intents(self) -> torch.Tensor:
        """``(n_factors, d)`` intent embeddings."""
        return intent_embeddings(self.intent_att, self.relation_emb)

    def propagate(self, dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Final ``(n_users, d)`` user and ``(n_entities, d)`` entity representations
        (residual sums over the hops; with node and message dropout when ``dropout``)."""
        cfg = self.config
        user, ent = self.user_emb, self.entity_emb
        if self.kg_edges is None or self.ui_edges is None or cfg.n_layers == 0:
            return user, ent
        head, rel, tail = self.kg_edges
        users, ents = self.ui_edges
        if dropout and cfg.node_dropout > 0:
            keep = torch.rand(len(head), device=head.device) >= cfg.node_dropout
            head, rel, tail = self.kg_edges[:, keep]
            keep = torch.rand(len(users), device=users.device) >= cfg.node_dropout
            users, ents = self.ui_edges[:, keep]
        intents = self.intents()
        user_sum, ent_sum = user, ent
        # every hop's output is L2-normalised per row, so a positive per-row factor before it
        # changes nothing: the means' 1 / degree and message dropout's 1 / (1 - p) are left
        # out (the same values, up to rounding, for fewer passes over the tables; the
        # dropout mask is drawn as F.dropout draws it, so the random stream is unchanged)
        for _ in range(cfg.n_layers):
            ent_next = relational_aggregate(ent, self.relation_emb, head, rel, tail, mean=False)
            user_next = user_aggregate(user, ent, intents, users, ents, mean=False)
            if dropout and cfg.mess_dropout > 0:
                keep = 1.0 - cfg.mess_dropout
                ent_next = ent_next * torch.empty_like(ent_next).bernoulli_(keep)
                user_next = user_next * torch.empty_like(user_next).bernoulli_(keep)
            ent, user = F.normalize(ent_next, dim=1), F.normalize(user_next, dim=1)
            ent_sum, user_sum = ent_sum + ent, user_sum + user
        return user_sum, ent_sum

    @torch.no_grad()
    def refresh(self) -> None:
        """Store the propagated tables (no dropout): what scoring and export use."""
        user, ent = self.propagate(dropout=False)
        self.final_user.copy_(user)
        self.final_item.copy_(ent[self.item_entity])
        self._stale = False

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._stale:  # trained since the last refresh (or never refreshed)
            self.refresh()
        return self.final_user, self.final_item

    # ------------------------------------------------------------------ training
    def independence_loss(self) -> torch.Tensor:
        """The independence term among intents (before ``sim_regularity``)."""
        cfg = self.config
        x = self.intents() if cfg.independence_on == "intents" else self.intent_att
        if cfg.independence == "none" or len(x) < 2:
            return x.new_zeros(())
        if cfg.independence == "distance":
            return torch.triu(distance_correlation(x), diagonal=1).sum()
        if cfg.independence == "cosine":
            return cosine_independence(x)
        return mi_independence(x, cfg.temperature)

    def bpr_loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR on ``(user, pos item, neg item)`` triples + L2 + independence (parts)."""
        cfg = self.config
        self._stale = True
        u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
        users, ents = self.propagate(dropout=self.training)
        eu = users.index_select(0, u)
        ei = ents.index_select(0, self.item_entity.index_select(0, i))
        ej = ents.index_select(0, self.item_entity.index_select(0, j))
        x_uij = (eu * (ei - ej)).sum(-1)
        reg = ((eu**2).sum() + (ei**2).sum() + (ej**2).sum()) / 2 / max(len(batch), 1)
        return {"bpr": F.softplus(-x_uij).mean(), "l2": cfg.l2_weight * reg,
                "ind": cfg.sim_regularity * self.independence_loss()}

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        rows = bpr_rows(data, self.n_users, self.n_items,
                        holdout=cfg.calib_holdout if cfg.calibrate else 0.0)
        pos, exclude, calib_rows, base_seed = rows.pos, rows.exclude, rows.calib_rows, rows.seed
        self.set_graph(data.kg, pos)

        def triples(epoch: int) -> np.ndarray:
            rng = np.random.default_rng([base_seed, epoch])
            return sample_bpr_triples(pos, self.n_items, exclude, rng,
                                      candidates=data.item_candidates)

        def refresh_step(_batch: torch.Tensor) -> torch.Tensor:
            self.refresh()
            return torch.zeros(())

        def one_row(epoch: int) -> np.ndarray:
            return np.zeros((1, 1), np.int64)

        out = [
            Task(name="rec", source=triples, loss=self.bpr_loss,
                 params=[self.user_emb, self.entity_emb, self.relation_emb, self.intent_att],
                 lr=cfg.lr, batch_size=cfg.batch_size),
            # after each epoch's steps, before the calibration that reads the scores
            Task(name="propagate", source=one_row, loss=lambda batch: torch.zeros(()),
                 params=[], lr=1.0, batch_size=1, step=refresh_step),
        ]
        if cfg.calibrate:
            def calib_step(_batch: torch.Tensor) -> torch.Tensor:
                return torch.tensor(self.fit_calibration(calib_rows))

            out.append(Task(name="calib", source=one_row, loss=lambda batch: torch.zeros(()),
                            params=[], lr=1.0, batch_size=1, step=calib_step))
        return out


def _loaded(module: KGIN, _keys) -> None:
    """Loaded buffers belong to the loaded parameters: nothing to recompute."""
    module._stale = False


def _before_saving(module: KGIN, _prefix: str, _keep_vars: bool) -> None:
    """A saved state holds tables matching its parameters."""
    if module._stale:
        module.refresh()


def build(ds, cfg: KGINConfig) -> KGIN:
    """KGIN for a :class:`~kgrec.data.Dataset` (the KG is read from the training data)."""
    return KGIN(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
