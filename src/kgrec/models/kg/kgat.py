"""KGAT: knowledge graph attention network (Wang et al., KDD'19).

Wang, He, Cao, Liu and Chua, "KGAT: Knowledge Graph Attention Network for Recommendation",
KDD 2019 (authors' TensorFlow code: github.com/xiangwang1223/knowledge_graph_attention_network).

The *collaborative knowledge graph* (CKG) has the users and the KG entities as nodes (users
first, then entities; an item is its entity, ``item_entity``) and as edges the training
positives ``(user, interact, item)`` (never validation or test) and the KG triples, each with
its inverse: ``2 * (n_relations + 1)`` relations, numbered as the authors do (0 interact,
``1 + r`` KG relation ``r``, then the inverses in the same order from ``n_relations + 1``).

* Embedding layer: TransR on the CKG with the same node table, ``W_r`` (``dim x kge_dim``)
  per relation and ``f(h, r, t) = ||e_h W_r + e_r - e_t W_r||^2``, trained as its own task
  ``kge`` with the pairwise loss ``softplus(f(h, r, t) - f(h, r, t'))`` (``t'`` uniform over
  all nodes, true triples redrawn) plus ``kge_l2_weight`` times the batch mean of the squared
  norms of the projected head, tails and the relation vector. It alternates with the
  recommendation task ``rec`` (one pass of each per epoch, each its own Adam optimizer, as the
  authors do).
* Knowledge-aware attention: ``pi(h, r, t) = (e_t W_r)^T tanh(e_h W_r + e_r)``, a softmax over
  each head's outgoing edges. As in the authors' code it is no function of the gradient: it
  is recomputed (no grad, once per relation over all its edges) at the start of every epoch
  and before the per-epoch evaluation tables are stored (:meth:`KGAT.update_attention`).
* Propagation, ``L = len(layer_sizes)`` layers with the bi-interaction aggregator
  ``e^(l+1) = LeakyReLU(W1 (e^(l) + e_N) + b1) + LeakyReLU(W2 (e^(l) * e_N) + b2)``,
  ``e_N = sum_t pi(h, r, t) e_t^(l)`` (one sparse product over all nodes), message dropout
  ``mess_dropout`` on each layer's output in training, and the representation is
  ``[e^(0), e^(1)/|e^(1)|, ..., e^(L)/|e^(L)|]`` (layer 0 as it is, the others L2-normalised,
  as in the authors' code). The score is ``user_repr . item_repr``.
* Recommendation loss: BPR, ``softplus(-(s_ui - s_uj))``, one negative per training positive
  and epoch, uniform over ``TrainData.item_candidates`` (all items when None) and never one of
  the user's training positives, plus ``l2_weight`` times the batch mean of the squared norms
  of the user's, positive and negative items' layer-0 embeddings.

Every training step propagates over the whole CKG (vectorised: one sparse product per layer).
The final user and item tables are persistent buffers, refreshed after each epoch (task
``propagate``), so evaluation reads them and a loaded run scores without the graph. Items
whose entity has KG triples but no training positive (cold items) are nodes of the CKG like
any other and get their representation through their KG edges.

CTR logits: as BPR-MF's (:mod:`kgrec.models.cf.bpr_mf`), ``score`` is ``a * s_ui + b`` with
``(a, b)`` a Platt fit on the labelled training rows after each epoch (``calibrate``); AUC
and rankings do not depend on it.

Deliberate differences from the authors' code:

* The attention of the first epoch is computed from the initial embeddings (the authors start
  from a row-normalised adjacency and update it after the first epoch).
* The BPR L2 term is on the layer-0 embeddings, a batch mean of squared norms; the authors'
  ``regs[0] * l2_loss(propagated) / batch_size`` puts it on the propagated representation,
  whose normalised layers add only a constant, so it is the same term up to a factor 2.
* TransR's training triples are one pass over every CKG edge per epoch (shuffled), each with
  one corrupted tail; the authors draw ``|edges| / batch_size_kg`` batches of random heads.
* No node dropout (the authors' code declares it but never applies it); no pre-training from
  BPR-MF (the authors start Last.FM from BPR-MF embeddings, ``--pretrain -1``); higher
  learning rate and fewer epochs than their 1e-4 and 1000 epochs (see the preset).
* ``use_attention = False`` (the paper's "w/o Att" ablation) weighs the neighbours uniformly,
  ``1 / |N_h|``; ``use_kge = False`` drops the TransR task ("w/o KGE").
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.cf.bpr_mf import bpr_rows, sample_bpr_triples
from kgrec.models.cf.pop import CalibratedTables
from kgrec.models.layers import sparse_matmul, to_csr

__all__ = ["KGAT", "KGATConfig", "bi_interaction", "build", "build_ckg", "corrupt_tails",
           "edge_softmax"]

#: negative slope of the LeakyReLU of the aggregator (TensorFlow's ``tf.nn.leaky_relu``)
LEAKY_SLOPE = 0.2


@dataclass
class KGATConfig:
    """Hyper-parameters of KGAT (see the module docstring).

    Attributes:
        dim: embedding size of users and entities (layer 0; the paper's 64).
        kge_dim: TransR relation space size ``k`` (``W_r`` is ``dim x kge_dim``).
        layer_sizes: output size of each propagation layer (the paper's ``[64, 32, 16]``);
            the representation has ``dim + sum(layer_sizes)`` components. A list, or a
            comma-separated string from ``--set layer_sizes=64,32``; empty: no propagation.
        mess_dropout: message dropout rate on each layer's output (training only).
        lr: Adam learning rate of the recommendation task.
        kge_lr: Adam learning rate of the TransR task (None: ``lr``, as the authors).
        l2_weight: weight of the L2 term of the BPR loss (layer-0 embeddings of the batch).
        kge_l2_weight: weight of the L2 term of the TransR loss (projected vectors).
        batch_size: BPR triples per step.
        kge_batch_size: CKG triples per TransR step.
        use_attention: knowledge-aware attention (False: uniform weights ``1 / |N_h|``).
        use_kge: train the TransR task (False: attention from untrained relation vectors).
        calibrate: refit the CTR calibration ``(a, b)`` after every epoch (False: raw
            scores as logits).
    """

    dim: int = 64
    kge_dim: int = 64
    layer_sizes: tuple[int, ...] | list[int] | str = (64, 32, 16)
    mess_dropout: float = 0.1
    lr: float = 1e-3
    kge_lr: float | None = None
    l2_weight: float = 1e-5
    kge_l2_weight: float = 1e-5
    batch_size: int = 1024
    kge_batch_size: int = 2048
    use_attention: bool = True
    use_kge: bool = True
    calibrate: bool = True

    def __post_init__(self) -> None:
        sizes = self.layer_sizes
        try:
            if isinstance(sizes, str):
                sizes = [s for s in sizes.replace(" ", "").strip("[]()").split(",") if s]
            elif isinstance(sizes, int):
                sizes = [sizes]
            self.layer_sizes = tuple(int(s) for s in sizes)
        except (TypeError, ValueError):
            raise ValueError(f"layer_sizes must be a list of layer sizes, got "
                             f"{self.layer_sizes!r}") from None
        if any(s < 1 for s in self.layer_sizes):
            raise ValueError(f"layer sizes must be >= 1, got {self.layer_sizes}")
        for name in ("dim", "kge_dim", "batch_size", "kge_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= float(self.mess_dropout) < 1.0:
            raise ValueError(f"mess_dropout must lie in [0, 1), got {self.mess_dropout}")
        if float(self.lr) <= 0 or (self.kge_lr is not None and float(self.kge_lr) <= 0):
            raise ValueError(f"lr and kge_lr must be > 0, got {self.lr}, {self.kge_lr}")
        if float(self.l2_weight) < 0 or float(self.kge_l2_weight) < 0:
            raise ValueError("l2_weight and kge_l2_weight must be >= 0")
        for name in ("use_attention", "use_kge", "calibrate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")


# ---------------------------------------------------------------------- graph helpers
def build_ckg(users: np.ndarray, items: np.ndarray, kg: np.ndarray, item_entity: np.ndarray,
              n_users: int, n_relations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges ``(heads, relations, tails)`` of the collaborative knowledge graph.

    Nodes: users ``0..n_users-1``, then entity ``e`` as ``n_users + e``. Relations: 0 for
    ``(user, item)`` (the given positive pairs), ``1 + r`` for KG triples of relation ``r``,
    and ``n_relations + 1 + x`` for the inverse of relation ``x``. Repeated edges count once;
    the edges come sorted by ``(head, relation, tail)``."""
    users = np.asarray(users, np.int64).ravel()
    items = np.asarray(items, np.int64).ravel()
    kg = np.asarray(kg, np.int64).reshape(-1, 3)
    ent = np.asarray(item_entity, np.int64)
    h = np.r_[users, n_users + kg[:, 0]]
    r = np.r_[np.zeros(len(users), np.int64), kg[:, 1] + 1]
    t = np.r_[n_users + ent[items], n_users + kg[:, 2]]
    h, r, t = np.r_[h, t], np.r_[r, r + n_relations + 1], np.r_[t, h]
    n_nodes = int(max(h.max(initial=0), t.max(initial=0))) + 1
    n_rel = 2 * (n_relations + 1)
    key = np.unique((h * n_rel + r) * n_nodes + t)
    t = key % n_nodes
    hr = key // n_nodes
    return hr // n_rel, hr % n_rel, t


def edge_softmax(scores: torch.Tensor, heads: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Softmax of edge ``scores`` over the edges of each head (vectorised, max-shifted)."""
    if len(scores) == 0:
        return scores
    top = torch.full((n_nodes,), -torch.inf, dtype=scores.dtype, device=scores.device)
    top = top.scatter_reduce(0, heads, scores, reduce="amax", include_self=True)
    ex = torch.exp(scores - top[heads])
    total = torch.zeros(n_nodes, dtype=scores.dtype, device=scores.device).index_add_(0, heads, ex)
    return ex / total[heads]


def bi_interaction(ego: torch.Tensor, side: torch.Tensor, w_sum: nn.Linear,
                   w_bi: nn.Linear) -> torch.Tensor:
    """The bi-interaction aggregator:
    ``LeakyReLU(W1 (e_h + e_N) + b1) + LeakyReLU(W2 (e_h * e_N) + b2)``."""
    return (F.leaky_relu(w_sum(ego + side), LEAKY_SLOPE)
            + F.leaky_relu(w_bi(ego * side), LEAKY_SLOPE))


def corrupt_tails(edges: np.ndarray, n_nodes: int, true_keys: np.ndarray, n_rel: int,
                  rng: np.random.Generator, rounds: int = 16) -> np.ndarray:
    """One tail per ``(h, r, t)`` row drawn uniformly over the nodes, redrawn (up to
    ``rounds`` times) while ``(h, r, t')`` is a true edge (``true_keys``: sorted
    ``(h * n_rel + r) * n_nodes + t``)."""
    neg = rng.integers(0, n_nodes, len(edges))
    if len(true_keys) == 0:
        return neg
    base = (edges[:, 0] * n_rel + edges[:, 1]) * n_nodes

    def hits(idx: np.ndarray) -> np.ndarray:
        q = base[idx] + neg[idx]
        pos = np.minimum(np.searchsorted(true_keys, q), len(true_keys) - 1)
        return idx[true_keys[pos] == q]

    todo = hits(np.arange(len(edges)))
    for _ in range(rounds):
        if len(todo) == 0:
            break
        neg[todo] = rng.integers(0, n_nodes, len(todo))
        todo = hits(todo)
    return neg


# ---------------------------------------------------------------------- the model
class KGAT(CalibratedTables, Recommender):
    """See the module docstring. Construct with keyword arguments only."""

    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray, config: KGATConfig | None = None):
        super().__init__()
        cfg = config or KGATConfig()
        self.config = cfg
        if n_users < 1 or n_items < 1:
            raise ValueError(f"need n_users, n_items >= 1, got {n_users}, {n_items}")
        item_entity = np.asarray(item_entity, dtype=np.int64).reshape(-1)
        if len(item_entity) != n_items:
            raise ValueError(f"item_entity has {len(item_entity)} entries for {n_items} items")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.n_entities = max(int(n_entities), int(item_entity.max(initial=-1)) + 1, 1)
        self.n_relations = max(int(n_relations), 0)
        self.n_nodes = self.n_users + self.n_entities
        self.n_ckg_relations = 2 * (self.n_relations + 1)
        d, k = int(cfg.dim), int(cfg.kge_dim)
        self.user_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.entity_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_entities, d)))
        self.relation_emb = nn.Parameter(
            nn.init.xavier_uniform_(torch.empty(self.n_ckg_relations, k)))
        self.trans_w = nn.Parameter(
            nn.init.xavier_uniform_(torch.empty(self.n_ckg_relations, d, k)))
        sizes = [d, *cfg.layer_sizes]
        self.w_sum = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.w_bi = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        for lin in [*self.w_sum, *self.w_bi]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.out_dim = sum(sizes)
        self.register_buffer("item_entity", torch.from_numpy(item_entity), persistent=False)
        # what scoring reads (saved with the model): propagated tables and the calibration
        self.register_buffer("final_user", torch.zeros(self.n_users, self.out_dim))
        self.register_buffer("final_item", torch.zeros(self.n_items, self.out_dim))
        self.register_buffer("calib", torch.tensor([1.0, 0.0]))
        # the CKG of the training positives (set by set_graph / tasks(); not saved)
        self.register_buffer("edge_head", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("edge_rel", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("edge_tail", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("attention", torch.zeros(0), persistent=False)
        self.register_buffer("adj", None, persistent=False)
        self.register_buffer("adj_t", None, persistent=False)  # its transpose (backward)
        # the edges in relation order, and each relation's (id, start, end) in that order
        self.register_buffer("rel_order", torch.zeros(0, dtype=torch.long), persistent=False)
        self._rel_groups: list[tuple[int, int, int]] = []
        with torch.no_grad():
            self.refresh()

    # ------------------------------------------------------------------ graph
    def set_graph(self, users: np.ndarray, items: np.ndarray, kg: np.ndarray) -> None:
        """Build the CKG from positive ``(users, items)`` pairs and the KG triples, and its
        attention (or uniform) weights."""
        h, r, t = build_ckg(users, items, kg, self.item_entity.cpu().numpy(), self.n_users,
                            self.n_relations)
        if len(h) and (h.max() >= self.n_nodes or t.max() >= self.n_nodes
                       or r.max() >= self.n_ckg_relations):
            raise ValueError("the KG or the interactions hold ids out of range")
        dev = self.user_emb.device
        self.edge_head = torch.from_numpy(h).to(dev)
        self.edge_rel = torch.from_numpy(r).to(dev)
        self.edge_tail = torch.from_numpy(t).to(dev)
        order = np.argsort(r, kind="stable")
        self.rel_order = torch.from_numpy(order).to(dev)
        starts = np.r_[0, np.flatnonzero(np.diff(r[order])) + 1] if len(r) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(r)]
        self._rel_groups = [(int(r[order[s]]), int(s), int(e))
                            for s, e in zip(starts, ends, strict=True)]
        self.update_attention()

    @torch.no_grad()
    def attention_scores(self) -> torch.Tensor:
        """``pi(h, r, t) = (e_t W_r)^T tanh(e_h W_r + e_r)`` of every CKG edge (one product
        per relation over all its edges)."""
        ego = torch.cat([self.user_emb, self.entity_emb])
        out = torch.zeros(len(self.edge_head), dtype=ego.dtype, device=ego.device)
        for r, start, end in self._rel_groups:
            idx = self.rel_order[start:end]
            w = self.trans_w[r]
            h = ego[self.edge_head[idx]] @ w
            t = ego[self.edge_tail[idx]] @ w
            out[idx] = (t * torch.tanh(h + self.relation_emb[r])).sum(-1)
        return out

    @torch.no_grad()
    def update_attention(self) -> None:
        """Recompute the edge weights (softmax per head of :meth:`attention_scores`, or
        ``1 / |N_h|``) and the sparse propagation matrix."""
        heads = self.edge_head
        if len(heads) == 0:
            self.attention, self.adj, self.adj_t = torch.zeros(0, device=heads.device), None, None
            return
        if self.config.use_attention:
            att = edge_softmax(self.attention_scores(), heads, self.n_nodes)
        else:
            deg = torch.bincount(heads, minlength=self.n_nodes).float()
            att = 1.0 / deg[heads]
        self.attention = att
        adj = torch.sparse_coo_tensor(torch.stack([heads, self.edge_tail]), att,
                                      (self.n_nodes, self.n_nodes),
                                      check_invariants=False).coalesce()
        self.adj, self.adj_t = to_csr(adj), to_csr(adj.t())

    # ------------------------------------------------------------------ propagation
    def layers(self, dropout: bool = False) -> list[torch.Tensor]:
        """``[e^(0), e^(1)/|e^(1)|, ..., e^(L)/|e^(L)|]``, each ``(n_nodes, size)``, users
        then entities (message dropout when ``dropout``)."""
        ego = torch.cat([self.user_emb, self.entity_emb])
        outs = [ego]
        p = float(self.config.mess_dropout)
        for w_sum, w_bi in zip(self.w_sum, self.w_bi, strict=True):
            side = sparse_matmul(self.adj, ego, self.adj_t) if self.adj is not None else \
                torch.zeros_like(ego)
            ego = bi_interaction(ego, side, w_sum, w_bi)
            if dropout and p > 0:
                ego = F.dropout(ego, p, training=True)
            outs.append(F.normalize(ego, p=2, dim=1))
        return outs

    def propagate(self, dropout: bool = False) -> torch.Tensor:
        """``(n_nodes, out_dim)``: the representation of every node, the concatenation of
        :meth:`layers`."""
        return torch.cat(self.layers(dropout), 1)

    @torch.no_grad()
    def refresh(self) -> None:
        """Store the propagated user and item tables (what scoring and export read)."""
        rep = self.propagate(dropout=False)
        self.final_user.copy_(rep[: self.n_users])
        self.final_item.copy_(rep[self.n_users + self.item_entity])

    # ------------------------------------------------------------------ losses
    def bpr_loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR on ``(user, pos item, neg item)`` rows over the propagated CKG, plus L2 on the
        batch's layer-0 embeddings."""
        u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
        ei, ej = self.item_entity[i], self.item_entity[j]
        nodes = torch.cat([u, self.n_users + ei, self.n_users + ej])
        # only the batch's rows of each layer (cheaper than indexing the concatenation)
        rep = torch.cat([x[nodes] for x in self.layers(dropout=self.training)], 1)
        pu, pi, pj = rep.split(len(u))
        x = (pu * (pi - pj)).sum(-1)
        reg = (self.user_emb[u].pow(2).sum(-1) + self.entity_emb[ei].pow(2).sum(-1)
               + self.entity_emb[ej].pow(2).sum(-1))
        return {"bpr": F.softplus(-x).mean(), "l2": float(self.config.l2_weight) * reg.mean()}

    def kge_loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """TransR on ``(h, r, t, t')`` rows of node ids: ``softplus(f(h,r,t) - f(h,r,t'))``
        with ``f = ||e_h W_r + e_r - e_t W_r||^2``, plus L2 on the projected vectors."""
        batch = batch[torch.argsort(batch[:, 1])]  # by relation: one product per relation
        r = batch[:, 1]
        rels, counts = torch.unique_consecutive(r, return_counts=True)
        ego = torch.cat([self.user_emb, self.entity_emb])
        nodes = batch[:, [0, 2, 3]]  # (b, 3): head, tail, corrupted tail
        mats = self.trans_w.unbind(0)
        proj = torch.cat([ego[part] @ mats[rel] for rel, part in
                          zip(rels.tolist(), nodes.split(counts.tolist()), strict=True)])
        ph, pt, pn = proj.unbind(1)  # (b, k) each
        er = self.relation_emb[r]
        pos = (ph + er - pt).pow(2).sum(-1)
        neg = (ph + er - pn).pow(2).sum(-1)
        reg = proj.pow(2).sum((1, 2)) + er.pow(2).sum(-1)
        return {"transr": F.softplus(pos - neg).mean(),
                "l2": float(self.config.kge_l2_weight) * reg.mean()}

    # ------------------------------------------------------------------ training
    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        rows = bpr_rows(data, self.n_users, self.n_items)
        pos, exclude, base_seed = rows.pos, rows.exclude, rows.seed
        self.set_graph(pos[:, 0], pos[:, 1], data.kg)

        def triples(epoch: int) -> np.ndarray:
            rng = np.random.default_rng([base_seed, epoch])
            return sample_bpr_triples(pos, self.n_items, exclude, rng,
                                      candidates=data.item_candidates)

        edges = np.stack([t.cpu().numpy() for t in (self.edge_head, self.edge_rel,
                                                    self.edge_tail)], 1)
        n_rel = self.n_ckg_relations
        keys = np.sort((edges[:, 0] * n_rel + edges[:, 1]) * self.n_nodes + edges[:, 2])

        def kg_rows(epoch: int) -> np.ndarray:
            rng = np.random.default_rng([base_seed, epoch, 1])
            return np.c_[edges, corrupt_tails(edges, self.n_nodes, keys, n_rel, rng)]

        def attention_step(_batch: torch.Tensor) -> torch.Tensor:
            if cfg.use_attention:
                self.update_attention()
            return torch.zeros(())

        def propagate_step(_batch: torch.Tensor) -> torch.Tensor:
            if cfg.use_attention:
                self.update_attention()
            self.refresh()
            if cfg.calibrate:
                return torch.tensor(self.fit_calibration(rows.calib_rows))
            return torch.zeros(())

        def nothing(epoch: int) -> np.ndarray:
            return np.zeros((1, 1), np.int64)

        rec_params = [self.user_emb, self.entity_emb, *self.w_sum.parameters(),
                      *self.w_bi.parameters()]
        out = [Task(name="attention", source=nothing, loss=lambda b: torch.zeros(()),
                    params=[], lr=1.0, batch_size=1, step=attention_step),
               Task(name="rec", source=triples, loss=self.bpr_loss, params=rec_params,
                    lr=float(cfg.lr), batch_size=int(cfg.batch_size))]
        if cfg.use_kge and len(edges):
            out.append(Task(name="kge", source=kg_rows, loss=self.kge_loss,
                            params=[self.user_emb, self.entity_emb, self.relation_emb,
                                    self.trans_w],
                            lr=float(cfg.kge_lr if cfg.kge_lr is not None else cfg.lr),
                            batch_size=int(cfg.kge_batch_size)))
        out.append(Task(name="propagate", source=nothing, loss=lambda b: torch.zeros(()),
                        params=[], lr=1.0, batch_size=1, step=propagate_step))
        return out


def build(ds, cfg: KGATConfig) -> KGAT:
    """KGAT for a :class:`~kgrec.data.Dataset` with a KG (items linked to entities)."""
    return KGAT(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
