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
  the item-view (input) vectors of the last ``history`` items; an item's score is the inner
  product with its input + output vector (``candidates="in+out"``, the GloVe-style sum: on
  movie-half it lifts validation recall@50 of item2vec from 0.31 to 0.38 over input
  vectors alone) or its input vector (``"in"``). Users are served from their history, so a
  user unseen in training is served too.
* **Diversity matching** (``diversity=True``, ``-m m2grl-div``; the paper's multi-view
  metric model): a two-layer network maps an item's concatenated view vectors (item,
  category, KG; gradients stopped, so the views train as in plain M2GRL) into a metric
  space, trained with a logistic contrastive loss to place an item near items of *other*
  categories that the same user clicks within ``div_window`` steps, against sampled
  items. Retrieval then runs in the metric space.

Baselines as variants of the same code:

* the item view alone (``views="item"``, ``inter_view=False``, ``-m item2vec``) is item2vec
  / DeepWalk on the item graph (Barkan & Koenigstein, 2016; Perozzi et al., KDD'14), the
  paper's baseline;
* ``side_info="category,kg"`` with the item view alone (``-m eges``) is EGES (Wang et al.,
  KDD'18): the center vector of an item is the average of its id embedding and its side
  information's embeddings, weighted by learned per-item weights ``softmax(a_i)``, so an
  item without clicks is placed by its side information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Task, TrainData, VectorRecommender
from kgrec.models.layers import gather_rows
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
    history, decay: the user vector's last items and recency decay; candidates: ``in+out`` or
    ``in``, the item vectors scored; side_info: EGES's side-information fields of the item
    view (comma-separated subset of ``category,kg``); diversity, div_dim, div_window,
    div_neg: the diversity-matching metric model (its size, the co-click window of its
    pairs, negatives per pair); optimizer: ``adam`` or ``sgd`` (plain SGD, word2vec's
    rate decaying linearly by step to ~0 over ``decay_epochs``; the task weights at
    ``weights_lr``; stable for the item view alone: ``-m item2vec --set optimizer=sgd
    --set lr=51 --set batch_size=1024 --set weighting=equal`` matches gensim's Word2Vec on
    the same walks, while with the small category / KG views it diverges); lr, batch_size:
    the rate and pairs per step (per view)."""

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
    align_batch: int = 256
    align_moves_items: bool = True
    history: int = 20
    decay: float = 0.9
    candidates: str = "in+out"
    side_info: str = ""
    diversity: bool = False
    div_dim: int = 64
    div_window: int = 5
    div_neg: int = 5
    optimizer: str = "adam"
    lr: float = 1e-3
    weights_lr: float = 1e-2
    decay_epochs: int = 5
    batch_size: int = 1024

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
        if self.decay_epochs < 0:
            raise ValueError(f"decay_epochs must be >= 0, got {self.decay_epochs}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.candidates not in ("in", "in+out"):
            raise ValueError(f"candidates must be 'in' or 'in+out', got {self.candidates!r}")
        if any(v not in VIEWS[1:] for v in self.side_names):
            raise ValueError(f"side_info must name a subset of {', '.join(VIEWS[1:])}, got "
                             f"{self.side_info!r}")
        for name in ("div_dim", "div_window", "div_neg", "dim", "walks_per_node",
                     "walk_length", "window", "batch_size", "align_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def view_names(self) -> list[str]:
        return [v.strip() for v in self.views.split(",") if v.strip()]

    @property
    def side_names(self) -> list[str]:
        return [v.strip() for v in self.side_info.split(",") if v.strip()]


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
        self.side = nn.ModuleDict()
        for v in config.side_names:
            if sizes.get(v, 0) > 0:
                self.side[v] = nn.Embedding(int(sizes[v]), d)
                nn.init.uniform_(self.side[v].weight, -0.5 / d, 0.5 / d)
        # EGES's per-item weights of [id, side fields...] (softmax over the present ones)
        self.side_att = nn.Parameter(torch.zeros(self.n_items, 1 + len(self.side))) \
            if len(self.side) else None
        for v in dict.fromkeys([*self.views[1:], *self.side]):
            self.register_buffer(f"lookup_{v}", torch.as_tensor(lookups[v], dtype=torch.long))
        self.metric = None
        if config.diversity:
            k = int(config.div_dim)
            self.metric = nn.Sequential(nn.Linear(d * len(self.views), k), nn.ReLU(),
                                        nn.Linear(k, k))
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
    def _lookup(self, view: str) -> torch.Tensor:
        return getattr(self, f"lookup_{view}")

    def centers(self, items: torch.Tensor) -> torch.Tensor:
        """Input (center) vectors of the item view, ``(*items.shape, dim)``: the id
        embedding, or with side information EGES's weighted average."""
        e = gather_rows(self.inp["item"].weight, items)
        if self.side_att is None:
            return e
        parts, present = [e], [torch.ones_like(items, dtype=torch.bool)]
        for v, table in self.side.items():
            tok = self._lookup(v)[items]
            parts.append(gather_rows(table.weight, tok.clamp(min=0)))
            present.append(tok >= 0)
        a = gather_rows(self.side_att, items).masked_fill(~torch.stack(present, -1),
                                                           float("-inf"))
        return (torch.softmax(a, -1).unsqueeze(-1) * torch.stack(parts, -2)).sum(-2)

    def _view_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The metric model's input: the item's vectors of every view, concatenated (a view
        token the item lacks contributes zeros)."""
        parts = [self.centers(items)]
        for v in self.views[1:]:
            tok = self._lookup(v)[items]
            parts.append(self.inp[v].weight[tok.clamp(min=0)] * (tok >= 0).unsqueeze(-1))
        return torch.cat(parts, -1)

    def _all_items(self) -> torch.Tensor:
        return torch.arange(self.n_items, device=self.inp["item"].weight.device)

    def item_vectors(self) -> torch.Tensor:
        return self.item_vectors_of(self._all_items())

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        if self.metric is not None:
            return self.metric(self._view_vectors(items))
        e = self.centers(items)
        return e + self.out["item"].weight[items] if self.config.candidates == "in+out" else e

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        h = history[:, -self.config.history:]
        mask = h >= 0
        age = torch.arange(h.shape[1] - 1, -1, -1, device=h.device, dtype=torch.float32)
        w = self.config.decay ** age * mask
        hc = h.clamp(min=0)
        e = self.metric(self._view_vectors(hc)) if self.metric is not None else self.centers(hc)
        return (w.unsqueeze(-1) * e).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-9)

    # ------------------------------------------------------------------ training
    # gather_rows + multiply-and-sum: ~4x faster steps on CPU than nn.Embedding + bmm
    def _sgns(self, view: str, batch) -> torch.Tensor:
        c, o, n = batch
        ec = self.centers(c) if view == "item" else gather_rows(self.inp[view].weight, c)
        out = self.out[view].weight
        pos = F.logsigmoid((ec * gather_rows(out, o)).sum(-1))
        neg = F.logsigmoid(-(gather_rows(out, n) * ec.unsqueeze(1)).sum(-1)).sum(-1)
        return -(pos + neg).mean()

    def _align(self, view: str, batch) -> torch.Tensor:
        items, tok, neg = batch
        a, b = self.align[view]
        ei = self.centers(items)
        ei = a(ei if self.config.align_moves_items else ei.detach())
        tab = b(self.inp[view].weight)  # the view's vocabulary is small: map it whole
        pos = F.logsigmoid((ei * gather_rows(tab, tok)).sum(-1))
        en = gather_rows(tab, neg)  # (n, k, d)
        negs = F.logsigmoid(-(en * ei.unsqueeze(1)).sum(-1)).sum(-1)
        return -(pos + negs).mean()

    def _diversity_categories(self) -> np.ndarray:
        if not hasattr(self, "lookup_category"):
            raise ValueError("m2grl diversity needs item categories (a category view): the "
                             "data has no category field")
        return self._lookup("category").cpu().numpy()

    def _metric_loss(self, batch) -> torch.Tensor:
        """Logistic contrastive loss of the diversity metric: an item near the other-category
        items its users click, away from sampled items; view vectors are detached."""
        a, b, neg = batch
        rows = a.numel() + b.numel() + neg.numel()
        if self.n_items <= rows:  # map the whole catalogue once and gather, not every row
            with torch.no_grad():
                v = self._view_vectors(self._all_items())
            f = self.metric(v)
            fa, fb, fn = gather_rows(f, a), gather_rows(f, b), gather_rows(f, neg)
        else:
            with torch.no_grad():
                va, vb, vn = (self._view_vectors(x) for x in (a, b, neg))
            fa, fb, fn = self.metric(va), self.metric(vb), self.metric(vn)
        pos = F.logsigmoid((fa * fb).sum(-1))
        negs = F.logsigmoid(-(fn * fa.unsqueeze(1)).sum(-1)).sum(-1)
        return -(pos + negs).mean()

    def _loss(self, batch: dict) -> dict[str, torch.Tensor]:
        losses = {v: self._sgns(v, batch[v]) for v in self.views if v in batch}
        for v in self.align:
            if f"align:{v}" in batch:
                losses[f"align:{v}"] = self._align(v, batch[f"align:{v}"])
        if self.config.weighting != "equal":
            losses = self.weights.parts(losses)
        if "metric" in batch:  # its own parameters only: outside the task weighting
            losses["metric"] = self._metric_loss(batch["metric"])
        if "rate" in batch:  # word2vec's decaying rate: with plain SGD, a gradient scale
            f = batch["rate"].to(torch.float32).reshape(())  # the trainer makes it (1,)
            losses = {k: f * v + (1 - f) * v.detach() for k, v in losses.items()}
        return losses

    def tasks(self, data: TrainData) -> list[Task]:
        from kgrec.data.graph import (
            NegativeSampler,
            cooccurrence_graph,
            map_tokens,
            skipgram_batches,
        )
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
        div_pairs = None
        if self.metric is not None:
            by_clicks = NegativeSampler(counts, power=1.0)  # the metric's negatives
            div_pairs = _diversity_pairs(indptr, items, self._diversity_categories(),
                                         cfg.div_window)
            if len(div_pairs[0]) == 0:
                raise ValueError("m2grl diversity: no pair of co-clicked items of different "
                                 "categories in the training data (does it have categories?)")

        aligned = {v: np.flatnonzero((counts > 0) & (lookups[v] >= 0)) for v in self.align}
        for v, its in aligned.items():
            if not len(its):
                raise ValueError(f"m2grl: no clicked item has a {v} token to align")

        def stream(view: str, epoch: int, k: int):
            return skipgram_batches(graphs[view], walks_per_node=cfg.walks_per_node,
                                    walk_length=cfg.walk_length, window=cfg.window,
                                    batch_size=cfg.batch_size, n_neg=cfg.n_neg,
                                    seed=seed + 7919 * k + VIEWS.index(view), epoch=epoch)

        # plain SGD decays the rate linearly to ~0 over decay_epochs (word2vec), by step;
        # the steps of an epoch are estimated from the expected skip-gram pairs of the walks
        steps = max(1.0, _expected_pairs(graphs["item"], cfg) / cfg.batch_size)

        def source(epoch: int):
            rng = np.random.default_rng((seed, epoch, 1))
            others = {v: stream(v, epoch, 0) for v in graphs if v != "item"}
            restarts = dict.fromkeys(others, 0)
            for step, batch in enumerate(stream("item", epoch, 0)):
                out = {"item": batch}
                if cfg.optimizer == "sgd" and cfg.decay_epochs > 0:
                    done = (epoch + step / steps) / cfg.decay_epochs
                    out["rate"] = np.array(max(1e-4, 1.0 - done), dtype=np.float32)
                for v in others:  # smaller views cycle through fresh epochs of walks
                    nxt = next(others[v], None)
                    if nxt is None:
                        restarts[v] += 1
                        others[v] = stream(v, epoch, restarts[v])
                        nxt = next(others[v])
                    out[v] = nxt
                for v in self.align:
                    lk = lookups[v]
                    # clicked items with a token in the view, drawn uniformly
                    it = aligned[v][rng.integers(0, len(aligned[v]), cfg.align_batch)]
                    neg = rng.integers(0, self.inp[v].num_embeddings, (len(it), cfg.align_neg))
                    out[f"align:{v}"] = (it, lk[it], neg)
                if div_pairs is not None:
                    k = rng.integers(0, len(div_pairs[0]), cfg.batch_size)
                    neg = by_clicks.sample((cfg.batch_size, cfg.div_neg), rng)
                    out["metric"] = (div_pairs[0][k], div_pairs[1][k], neg)
                yield out

        def stats() -> dict[str, float]:
            return {f"w:{k}": w for k, w in self.weights.weights().items()}

        params: list = list(self.parameters())
        if cfg.optimizer == "sgd":  # the task weights learn at their own rate
            lv = self.weights.log_var
            params = [{"params": [p for p in params if p is not lv]},
                      {"params": [lv], "lr": cfg.weights_lr}]
        return [Task(name="rec", source=source, loss=self._loss, params=params, lr=cfg.lr,
                     batch_size=cfg.batch_size, epoch_stats=stats, optimizer=cfg.optimizer)]


def _expected_pairs(graph, cfg: M2GRLConfig) -> float:
    """Expected skip-gram pairs of one epoch of walks (no dead end; word2vec's dynamic
    window: offset ``d`` is reached from a side with probability ``(w - d + 1) / w``)."""
    starts = int((graph.out_weight() > 0).sum())
    w, n = cfg.window, cfg.walk_length
    per_walk = sum(2 * (n - d) * (w - d + 1) / w for d in range(1, min(w, n - 1) + 1))
    return starts * cfg.walks_per_node * per_walk


def _diversity_pairs(indptr: np.ndarray, items: np.ndarray, category: np.ndarray,
                     window: int) -> tuple[np.ndarray, np.ndarray]:
    """Both orders of every pair of one user's clicks at most ``window`` positions apart whose
    items have different known categories (the diversity metric's positives)."""
    seq = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    cat = category[items]
    a_all, b_all = [], []
    for d in range(1, window + 1):
        ok = (seq[:-d] == seq[d:]) & (cat[:-d] >= 0) & (cat[d:] >= 0) & (cat[:-d] != cat[d:])
        a_all += [items[:-d][ok], items[d:][ok]]
        b_all += [items[d:][ok], items[:-d][ok]]
    return np.concatenate(a_all), np.concatenate(b_all)


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
    names = [*cfg.view_names, *cfg.side_names]
    if any(k.startswith("lookup_") for k in pre) or "inp.item.weight" in pre:
        for v in names[1:]:
            if f"lookup_{v}" in pre:
                lookups[v] = pre[f"lookup_{v}"]
                table = pre.get(f"inp.{v}.weight", pre.get(f"side.{v}.weight"))
                sizes[v] = int(table.shape[0])
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
