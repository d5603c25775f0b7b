"""M2GRL: multi-view graph representation learning with uncertainty-weighted tasks (Wang et al.,
"M2GRL: A Multi-task Multi-view Graph Representation Learning Framework for Web-scale
Recommender Systems", KDD'20).

* **Views.** The users' time-ordered training clicks are read in several vocabularies: the
  **item** view (the items), the **category** view (each item's category:
  :func:`kgrec.data.features.item_categories`, MovieLens genres, Amazon attributes) and a
  **KG** view (each item's tail entity for one relation of the knowledge graph, e.g. the
  director; the analogue of the paper's shop view). Each view's sequences give a weighted
  co-occurrence graph (:func:`kgrec.data.graph.cooccurrence_graph`: consecutive behaviour,
  repeats of one category collapsed).
* **Intra-view tasks.** Weighted random walks on each graph and skip-gram with negative
  sampling over windows of the walks (:func:`kgrec.data.graph.skipgram_batches`, streamed:
  an epoch is never materialised). Each view has its own input and output tables.
* **Inter-view tasks.** An item's vector and its category's (its KG tail's) vector are mapped
  into a relation space by learned matrices and the aligned pair is scored against sampled
  negative categories (tails) with a logistic loss.
* **Weighting.** All tasks in one optimizer step, weighed by learned homoscedastic
  uncertainty (:class:`~kgrec.models.losses.UncertaintyWeights`, Kendall et al., CVPR'18;
  ``weighting="uncertainty"``) or equally (``"equal"``); the weights are logged every epoch
  (``rec/w:<task>`` in the run's history).
* **Retrieval.** The user vector is the recency-weighted mean (``decay`` per step back) of
  the item-view vectors of the last ``history`` items; an item's score is the inner product
  with its item-view vector. Users are served from their history, so a user unseen in
  training is served too.

The item view alone (``views="item"``, ``inter_view=False``) is item2vec / DeepWalk on the
item graph (Barkan & Koenigstein, 2016; Perozzi et al., KDD'14): the baseline of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Task, TrainData, VectorRecommender
from kgrec.models.losses import UncertaintyWeights

__all__ = ["M2GRL", "M2GRLConfig", "build"]

VIEWS = ("item", "category", "kg")


@dataclass
class M2GRLConfig:
    """dim: embedding size; views: comma-separated subset of ``item,category,kg`` (``item``
    first); kg_relation: the KG relation of the KG view (empty: the relation that most items
    have, among those with fewer distinct tails than half the items); inter_view: the
    alignment tasks; weighting: ``uncertainty`` or ``equal``; walks_per_node, walk_length,
    window, n_neg: DeepWalk / skip-gram settings; align_neg: negatives per aligned pair;
    history, decay: the user vector's last items and recency decay; lr, batch_size: Adam and
    pairs per step (per view)."""

    dim: int = 64
    views: str = "item,category,kg"
    kg_relation: str = ""
    inter_view: bool = True
    weighting: str = "uncertainty"
    walks_per_node: int = 10
    walk_length: int = 20
    window: int = 3
    n_neg: int = 5
    align_neg: int = 5
    history: int = 20
    decay: float = 0.9
    lr: float = 5e-3
    batch_size: int = 4096

    def __post_init__(self) -> None:
        names = self.view_names
        if not names or names[0] != "item" or any(v not in VIEWS for v in names) or \
                len(set(names)) != len(names):
            raise ValueError(f"views must start with 'item' and name each of {', '.join(VIEWS)} "
                             f"at most once, got {self.views!r}")
        if self.weighting not in ("uncertainty", "equal"):
            raise ValueError(f"weighting must be 'uncertainty' or 'equal', got "
                             f"{self.weighting!r}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")

    @property
    def view_names(self) -> list[str]:
        return [v.strip() for v in self.views.split(",") if v.strip()]


class M2GRL(VectorRecommender):
    """See the module docstring. Keyword-only constructor; ``lookups`` maps each non-item view
    to ``(n_items,)`` token ids (``-1``: none) and ``sizes`` gives every view's vocabulary."""

    uses_history = True

    def __init__(self, *, n_users: int, n_items: int, config: M2GRLConfig,
                 lookups: dict[str, np.ndarray], sizes: dict[str, int]):
        super().__init__()
        self.n_users, self.n_items, self.config = int(n_users), int(n_items), config
        d = int(config.dim)
        self.views = [v for v in config.view_names if v == "item" or sizes.get(v, 0) > 1]
        self.inp = nn.ModuleDict()
        self.out = nn.ModuleDict()
        for v in self.views:
            n = self.n_items if v == "item" else int(sizes[v])
            self.inp[v] = nn.Embedding(n, d)
            self.out[v] = nn.Embedding(n, d)
            nn.init.uniform_(self.inp[v].weight, -0.5 / d, 0.5 / d)
            nn.init.zeros_(self.out[v].weight)
        for v in self.views[1:]:
            self.register_buffer(f"lookup_{v}", torch.as_tensor(lookups[v], dtype=torch.long))
        self.align = nn.ModuleDict()
        if config.inter_view:
            for v in self.views[1:]:
                self.align[v] = nn.ModuleList([nn.Linear(d, d, bias=False),
                                               nn.Linear(d, d, bias=False)])
        self.task_names = [*self.views, *(f"align:{v}" for v in self.align)]
        self.weights = UncertaintyWeights(self.task_names)
        if config.weighting == "equal":
            self.weights.log_var.requires_grad_(False)
        self.register_buffer("user_history", torch.full((self.n_users, config.history), -1,
                                                        dtype=torch.long))

    # ------------------------------------------------------------------ scoring
    def item_vectors(self) -> torch.Tensor:
        return self.inp["item"].weight

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        h = history[:, -self.config.history:]
        mask = h >= 0
        age = torch.arange(h.shape[1] - 1, -1, -1, device=h.device, dtype=torch.float32)
        w = self.config.decay ** age * mask
        e = self.inp["item"](h.clamp(min=0))
        return (w.unsqueeze(-1) * e).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-9)

    # ------------------------------------------------------------------ training
    def _sgns(self, view: str, batch) -> torch.Tensor:
        c, o, n = batch
        ec = self.inp[view](c)
        pos = F.logsigmoid((ec * self.out[view](o)).sum(-1))
        neg = F.logsigmoid(-(self.out[view](n) @ ec.unsqueeze(-1)).squeeze(-1)).sum(-1)
        return -(pos + neg).mean()

    def _align(self, view: str, batch) -> torch.Tensor:
        items, tok, neg = batch
        a, b = self.align[view]
        ei = a(self.inp["item"](items))
        pos = F.logsigmoid((ei * b(self.inp[view](tok))).sum(-1))
        en = b(self.inp[view](neg))  # (n, k, d)
        negs = F.logsigmoid(-(en @ ei.unsqueeze(-1)).squeeze(-1)).sum(-1)
        return -(pos + negs).mean()

    def _loss(self, batch: dict) -> dict[str, torch.Tensor]:
        losses = {v: self._sgns(v, batch[v]) for v in self.views if v in batch}
        for v in self.align:
            if f"align:{v}" in batch:
                losses[f"align:{v}"] = self._align(v, batch[f"align:{v}"])
        if self.config.weighting == "equal":
            return losses
        return self.weights.parts(losses)

    def tasks(self, data: TrainData) -> list[Task]:
        from kgrec.data.graph import cooccurrence_graph, map_tokens, skipgram_batches
        from kgrec.models.sequential.base import remember_histories

        cfg = self.config
        indptr, items = remember_histories(self, data)
        graphs = {"item": cooccurrence_graph(indptr, items, self.n_items)}
        lookups = {v: getattr(self, f"lookup_{v}").cpu().numpy() for v in self.views[1:]}
        for v in self.views[1:]:
            graphs[v] = cooccurrence_graph(indptr, map_tokens(items, lookups[v]),
                                           self.inp[v].num_embeddings, dedupe_consecutive=True)
        graphs = {v: g for v, g in graphs.items() if g.nnz > 0}
        if "item" not in graphs:
            raise ValueError("m2grl: the item graph has no edge (every user has one click?)")
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        counts = np.bincount(items, minlength=self.n_items)

        def stream(view: str, epoch: int, k: int):
            return skipgram_batches(graphs[view], walks_per_node=cfg.walks_per_node,
                                    walk_length=cfg.walk_length, window=cfg.window,
                                    batch_size=cfg.batch_size, n_neg=cfg.n_neg,
                                    seed=seed + 7919 * k + VIEWS.index(view), epoch=epoch)

        def source(epoch: int):
            rng = np.random.default_rng((seed, epoch, 1))
            others = {v: stream(v, epoch, 0) for v in graphs if v != "item"}
            restarts = dict.fromkeys(others, 0)
            for batch in stream("item", epoch, 0):
                out = {"item": batch}
                for v in others:  # smaller views cycle through fresh epochs of walks
                    nxt = next(others[v], None)
                    if nxt is None:
                        restarts[v] += 1
                        others[v] = stream(v, epoch, restarts[v])
                        nxt = next(others[v])
                    out[v] = nxt
                for v in self.align:
                    lk = lookups[v]
                    # clicked items (by popularity), with a token in the view
                    it = rng.choice(self.n_items, size=cfg.batch_size,
                                    p=counts / counts.sum())
                    it = it[lk[it] >= 0]
                    if len(it):
                        neg = rng.integers(0, self.inp[v].num_embeddings,
                                           (len(it), cfg.align_neg))
                        out[f"align:{v}"] = (it, lk[it], neg)
                yield out

        def stats() -> dict[str, float]:
            return {f"w:{k}": w for k, w in self.weights.weights().items()}

        return [Task(name="rec", source=source, loss=self._loss,
                     params=list(self.parameters()), lr=cfg.lr, batch_size=cfg.batch_size,
                     epoch_stats=stats)]


def _kg_lookup(ds, relation: str) -> tuple[np.ndarray, int, str]:
    """Each item's first tail for ``relation`` (auto-picked where empty), and the size."""
    from kgrec.data.features import kg_item_features

    table = kg_item_features(ds)
    if not len(table):
        return np.full(ds.n_items, -1, np.int64), 0, ""
    if not relation:
        best = None
        for name in table.fields:
            f = table.field(name)
            cover = int((f.lengths() > 0).sum())
            if 1 < len(f.vocab) < ds.n_items / 2 and (best is None or cover > best[0]):
                best = (cover, name)
        if best is None:
            return np.full(ds.n_items, -1, np.int64), 0, ""
        relation = best[1]
    f = table.field(relation)
    first = np.full(ds.n_items, -1, np.int64)
    has = f.lengths() > 0
    first[has] = f.values[f.indptr[:-1][has]]
    return first, len(f.vocab), relation


def build(ds, cfg: M2GRLConfig, inputs: dict[str, np.ndarray] | None = None) -> M2GRL:
    """The model for dataset ``ds``; a loaded run passes its checkpoint's buffers."""
    pre = inputs or {}
    lookups: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    names = cfg.view_names
    if any(k.startswith("lookup_") for k in pre) or "inp.item.weight" in pre:
        for v in names[1:]:
            if f"lookup_{v}" in pre:
                lookups[v] = pre[f"lookup_{v}"]
                sizes[v] = int(pre[f"inp.{v}.weight"].shape[0])
        return M2GRL(n_users=ds.n_users, n_items=ds.n_items, config=cfg, lookups=lookups,
                     sizes=sizes)
    if "category" in names and getattr(ds, "item_features", None) is not None:
        from kgrec.data.features import CATEGORY_FIELDS, item_categories

        if any(f in ds.item_features for f in CATEGORY_FIELDS):
            codes, labels = item_categories(ds.item_features)
            lookups["category"], sizes["category"] = codes, len(labels)
    if "kg" in names and len(ds.kg):
        lookups["kg"], sizes["kg"], _ = _kg_lookup(ds, cfg.kg_relation)
    return M2GRL(n_users=ds.n_users, n_items=ds.n_items, config=cfg, lookups=lookups,
                 sizes=sizes)
