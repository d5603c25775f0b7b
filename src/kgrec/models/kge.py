"""Knowledge-graph embeddings (KGE) behind one scoring interface.

Every model scores a triple ``(head, relation, tail)``; **higher is more plausible** (the
translational models return ``-||.||``). The interface, shared by all of them:

* :meth:`KGEModel.score_emb` ``(h_vec, r_id, t_vec) -> (b,)``: from given entity *vectors*
  and the model's own relation parameters. MKR (and any other multi-task model) reuses it
  with its own transformed head/tail vectors.
* :meth:`KGEModel.score` ``(h, r, t)`` on ids.
* :meth:`KGEModel.score_tails` / :meth:`KGEModel.score_heads`: every entity as the missing
  tail / head, ``(b, n_entities)``, for link prediction (vectorised; relation-specific
  projections are applied to all entities once per distinct relation of the block).
* :meth:`KGEModel.loss` ``(pos, neg) -> scalar``: margin ranking (hinge), or logistic.
* :meth:`KGEModel.constrain`: the papers' norm constraints, run after every optimizer step.
* :meth:`KGEModel.tasks`: one ``kge`` task for the generic trainer; negatives are drawn per
  batch inside the loss (``bern`` or ``unif`` corruption of head or tail, vectorised torch).

Models: TransE (Bordes et al., NIPS'13), TransH (Wang et al., AAAI'14), TransR (Lin et al.,
AAAI'15), TransD (Ji et al., ACL'15), Bilinear / RESCAL (Nickel et al., ICML'11) and DistMult
(Yang et al., ICLR'15). Build one with :func:`build_kge`; train and export with
:mod:`kgrec.experiments.kge_run`; evaluate with :func:`kgrec.eval.linkpred.link_prediction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.data.sampling import bernoulli_head_prob
from kgrec.models.base import Task, TrainData

__all__ = [
    "KGE_MODELS",
    "Bilinear",
    "DistMult",
    "KGEConfig",
    "KGEModel",
    "TransD",
    "TransE",
    "TransH",
    "TransR",
    "build_kge",
    "corrupt_batch",
    "kge_config",
    "triple_keys",
]


@dataclass
class KGEConfig:
    """Hyper-parameters shared by the KGE models.

    Attributes:
        dim: entity embedding dimension ``d``.
        rel_dim: relation space dimension ``k`` of TransR / TransD (None: ``dim``); the other
            models ignore it.
        margin: ``gamma`` of the margin ranking loss.
        p_norm: 1 or 2, the norm of the translational distance ``||h + r - t||_p``. L2 by
            default: on the Last.FM KG it ranks far better than L1 (validation MRR 0.76 vs
            0.36 for TransE) and ranks all entities by one matrix product, L1 needs
            ``cdist`` (about 4x slower).
        lr: Adam learning rate.
        batch_size: positive triples per step (each with one corrupted negative).
        sampling: ``bern`` (corrupt the head with probability ``tph / (tph + hpt)`` of the
            relation, Wang et al. 2014) or ``unif`` (head or tail with probability 1/2).
        loss: ``margin`` (``relu(margin - s_pos + s_neg)``, the papers' loss) or
            ``logistic`` (``softplus(-s_pos) + softplus(s_neg)``, common for the bilinear
            family).
        l2_weight: weight of an L2 penalty on the batch's embeddings (mean over triples of
            the squared norms of the head, relation parameters and tail).
        epochs: default run length of :func:`kgrec.experiments.kge_run.train_kge`.
        filter_negatives: redraw corruptions that are true training triples.
    """

    dim: int = 50
    rel_dim: int | None = None
    margin: float = 1.0
    p_norm: int = 2
    lr: float = 0.01
    batch_size: int = 1024
    sampling: str = "bern"
    loss: str = "margin"
    l2_weight: float = 0.0
    epochs: int = 50
    filter_negatives: bool = True

    def __post_init__(self) -> None:
        try:  # values from the command line or JSON: coerce, fail with a clear message
            self.dim = int(self.dim)
            self.rel_dim = None if self.rel_dim in (None, "None", "none") else int(self.rel_dim)
            self.margin, self.lr = float(self.margin), float(self.lr)
            self.p_norm, self.batch_size = int(self.p_norm), int(self.batch_size)
            self.l2_weight, self.epochs = float(self.l2_weight), int(self.epochs)
            self.filter_negatives = bool(self.filter_negatives)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad KGE parameter value: {exc}") from None
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.rel_dim is not None and int(self.rel_dim) < 1:
            raise ValueError(f"rel_dim must be >= 1 or None, got {self.rel_dim}")
        if self.p_norm not in (1, 2):
            raise ValueError(f"p_norm must be 1 or 2, got {self.p_norm}")
        if self.sampling not in ("bern", "unif"):
            raise ValueError(f"sampling must be 'bern' or 'unif', got {self.sampling!r}")
        if self.loss not in ("margin", "logistic"):
            raise ValueError(f"loss must be 'margin' or 'logistic', got {self.loss!r}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError("lr must be > 0, batch_size and epochs >= 1")
        if self.margin < 0 or self.l2_weight < 0:
            raise ValueError("margin and l2_weight must be >= 0")


# --------------------------------------------------------------------------- sampling
def triple_keys(triples: torch.Tensor, n_entities: int, n_relations: int) -> torch.Tensor:
    """One int64 key per triple, ``(h * n_relations + r) * n_entities + t``."""
    return (triples[:, 0] * n_relations + triples[:, 1]) * n_entities + triples[:, 2]


def corrupt_batch(
    triples: torch.Tensor,
    n_entities: int,
    *,
    head_prob: float | torch.Tensor = 0.5,
    generator: torch.Generator | None = None,
    true_keys: torch.Tensor | None = None,
    n_relations: int | None = None,
    max_rounds: int = 10,
) -> torch.Tensor:
    """One corrupted copy of each triple: its head or its tail replaced by a uniform entity.

    The torch twin of :func:`kgrec.data.sampling.corrupt_triples`, cheap enough to run inside
    every training step.

    Args:
        triples: ``(b, 3)`` int64 ``(head, relation, tail)``.
        head_prob: probability of replacing the head; a float (``unif``: 0.5) or one value per
            relation (``bern``, see :func:`kgrec.data.sampling.bernoulli_head_prob`).
        generator: torch random generator.
        true_keys: sorted :func:`triple_keys` of the true triples: corruptions that hit one are
            redrawn (up to ``max_rounds`` times). Needs ``n_relations``.
    """
    out = triples.clone()
    m = out.shape[0]
    if isinstance(head_prob, torch.Tensor) and head_prob.ndim:
        p = head_prob[triples[:, 1]]
    else:
        p = torch.full((m,), float(head_prob))
    col = torch.where(torch.rand(m, generator=generator) < p, 0, 2)
    rows = torch.arange(m)
    check = true_keys is not None and len(true_keys) > 0
    if check and n_relations is None:
        raise ValueError("true_keys needs n_relations")
    for _ in range(max_rounds):
        out[rows, col[rows]] = torch.randint(0, n_entities, (len(rows),), generator=generator)
        if not check:
            break
        k = triple_keys(out[rows], n_entities, n_relations)
        pos = torch.searchsorted(true_keys, k).clamp_max_(len(true_keys) - 1)
        rows = rows[true_keys[pos] == k]
        if len(rows) == 0:
            break
    return out


# --------------------------------------------------------------------------- helpers
def _uniform_(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Bordes et al.'s init: ``U(-6/sqrt(d), 6/sqrt(d))``."""
    bound = 6.0 / math.sqrt(dim)
    return nn.init.uniform_(w, -bound, bound)


def _rows(table: torch.Tensor, idx: torch.Tensor | int) -> torch.Tensor:
    """``table[idx]``; through ``F.embedding`` for index tensors, whose backward (a sorted
    segment sum) is much faster on CPU than that of advanced indexing."""
    if isinstance(idx, int) or idx.ndim == 0:
        return table[idx]
    if table.ndim == 2:
        return F.embedding(idx, table)
    flat = F.embedding(idx, table.reshape(table.shape[0], -1))
    return flat.view(*idx.shape, *table.shape[1:])


@torch.no_grad()
def _renorm_(w: torch.Tensor, max_norm: float = 1.0) -> None:
    """Scale the rows of ``w`` whose L2 norm exceeds ``max_norm`` back onto the sphere."""
    norms = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    w.mul_(torch.clamp(max_norm / norms.clamp_min(1e-12), max=1.0))


@torch.no_grad()
def _normalize_(w: torch.Tensor) -> None:
    """Scale every row of ``w`` to unit L2 norm."""
    w.copy_(F.normalize(w, p=2, dim=-1))


# --------------------------------------------------------------------------- base
class KGEModel(nn.Module):
    """Base class: an entity table ``ent`` ``(n_entities, dim)`` and the shared machinery.

    Subclasses define :meth:`score_emb` (or :meth:`score`), :meth:`score_tails`,
    :meth:`score_heads`, :meth:`constrain` and :meth:`relation_tables`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: KGEConfig fields that differ from the dataclass defaults for this model (the presets
    #: :func:`kge_config` and ``kgrec kge train`` start from).
    preset: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__()
        if n_entities < 1 or n_relations < 1:
            raise ValueError(f"need at least one entity and one relation, got {n_entities}, "
                             f"{n_relations}")
        self.config = config if config is not None else kge_config(self.name)
        self.n_entities = int(n_entities)
        self.n_relations = int(n_relations)
        self.dim = int(self.config.dim)
        self.ent = nn.Parameter(torch.empty(self.n_entities, self.dim))

    # ------------------------------------------------------------------ scoring
    def score_emb(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Plausibility ``(b,)`` of ``(h[k], r[k], t[k])`` from entity vectors ``(b, dim)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Plausibility ``(b,)`` of the triples given by entity and relation ids."""
        return self.score_emb(_rows(self.ent, h), r, _rows(self.ent, t))

    def score_tails(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``(b, n_entities)``: the score of ``(h[k], r[k], e)`` for every entity ``e``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def score_heads(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``(b, n_entities)``: the score of ``(e, r[k], t[k])`` for every entity ``e``."""
        raise NotImplementedError  # pragma: no cover - abstract

    # ------------------------------------------------------------------ training
    def relation_tables(self) -> list[torch.Tensor]:
        """Relation parameters, each with ``n_relations`` rows (for L2 and export)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def entity_tables(self) -> list[torch.Tensor]:
        """Entity parameters, each with ``n_entities`` rows."""
        return [self.ent]

    def regularizer(self, triples: torch.Tensor) -> torch.Tensor:
        """Mean over ``triples`` of the squared L2 norms of their head, tail and relation
        parameters."""
        h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
        total = torch.zeros((), dtype=self.ent.dtype)
        for tab in self.entity_tables():
            total = total + _rows(tab, h).pow(2).sum() + _rows(tab, t).pow(2).sum()
        for tab in self.relation_tables():
            total = total + _rows(tab, r).pow(2).sum()
        return total / max(len(triples), 1)

    def loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Loss of aligned positive and negative triples ``(b, 3)``.

        ``margin``: ``mean(relu(margin - s_pos + s_neg))`` (Bordes et al. 2013 and the other
        papers); ``logistic``: ``(mean(softplus(-s_pos)) + mean(softplus(s_neg))) / 2``.
        Plus ``l2_weight *`` :meth:`regularizer` over both.
        """
        both = torch.cat([pos, neg])
        s = self.score(both[:, 0], both[:, 1], both[:, 2])
        s_pos, s_neg = s[: len(pos)], s[len(pos):]
        cfg = self.config
        if cfg.loss == "margin":
            out = F.relu(cfg.margin - s_pos + s_neg).mean()
        else:
            out = 0.5 * (F.softplus(-s_pos).mean() + F.softplus(s_neg).mean())
        if cfg.l2_weight:
            out = out + cfg.l2_weight * self.regularizer(both)
        return out

    def constrain(self) -> None:
        """Apply the model's norm constraints (called after every optimizer step)."""

    def tasks(self, data: TrainData) -> list[Task]:
        """One ``kge`` task over ``data.kg``; each batch draws its own corrupted negatives."""
        cfg = self.config
        kg = np.ascontiguousarray(np.asarray(data.kg, dtype=np.int64).reshape(-1, 3))
        if cfg.sampling == "bern":
            head_prob: float | torch.Tensor = torch.as_tensor(
                bernoulli_head_prob(kg, self.n_relations), dtype=torch.float32)
        else:
            head_prob = 0.5
        true_keys = None
        if cfg.filter_negatives and len(kg):
            true_keys = torch.unique(
                triple_keys(torch.from_numpy(kg), self.n_entities, self.n_relations))
        # a private stream, seeded from torch's global generator (seed_everything)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))

        def kge_loss(batch: torch.Tensor) -> torch.Tensor:
            neg = corrupt_batch(batch, self.n_entities, head_prob=head_prob, generator=gen,
                                true_keys=true_keys, n_relations=self.n_relations)
            return self.loss(batch, neg)

        return [
            Task(
                name="kge",
                source=lambda epoch: kg,
                loss=kge_loss,
                params=list(self.parameters()),
                lr=cfg.lr,
                batch_size=cfg.batch_size,
                after_step=self.constrain,
                extras={"head_prob": head_prob},
            )
        ]

    # ------------------------------------------------------------------ export
    def embeddings(self) -> dict[str, np.ndarray]:
        """Arrays to export: ``entity_embeddings``, ``relation_embeddings`` and extras."""
        return {
            "entity_embeddings": self.ent.detach().cpu().numpy().copy(),
            "relation_embeddings": self.relation_tables()[0].detach().cpu().numpy().copy(),
        }

    def extra_repr(self) -> str:
        return f"n_entities={self.n_entities}, n_relations={self.n_relations}, dim={self.dim}"


# --------------------------------------------------------------------------- translational
class _Translational(KGEModel):
    """``score = -|| P_r(h) + r - P_r(t) ||_p`` with a relation-specific projection ``P_r``.

    Subclasses give the projection of vectors (:meth:`_project`), of ids
    (:meth:`_project_ids`, default: look the vectors up), and of every entity for one relation
    (:meth:`_project_all`); link prediction then needs one ``cdist`` per distinct relation.
    """

    relation_independent: ClassVar[bool] = False

    def _project(self, e: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def _project_ids(self, ids: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self._project(_rows(self.ent, ids), r)

    def _project_all(self, r: int) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def _translation(self, r: torch.Tensor) -> torch.Tensor:
        return _rows(self.rel, r)

    def _dist(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x, ord=self.config.p_norm, dim=-1)

    def score_emb(self, h, r, t):
        return -self._dist(self._project(h, r) + self._translation(r) - self._project(t, r))

    def score(self, h, r, t):
        return -self._dist(
            self._project_ids(h, r) + self._translation(r) - self._project_ids(t, r))

    def _against_all(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``-||q[k] - P_{r[k]}(e)||_p`` for every entity ``e``: ``(b, n_entities)``."""
        if self.relation_independent:
            return self._neg_dist(q, self.ent)
        out = q.new_empty(len(q), self.n_entities)
        for rel in torch.unique(r).tolist():
            idx = torch.nonzero(r == rel).squeeze(1)
            out[idx] = self._neg_dist(q[idx], self._project_all(rel))
        return out

    def _neg_dist(self, q: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """``-||q[i] - cand[j]||_p`` ``(len(q), len(cand))``; L2 through one matrix product
        (``||q||^2 + ||c||^2 - 2 q.c``), L1 with ``cdist``."""
        if self.config.p_norm == 1:
            return -torch.cdist(q, cand, p=1.0)
        sq = torch.addmm((cand * cand).sum(1), q, cand.T, alpha=-2.0)
        if torch.is_grad_enabled() and (q.requires_grad or cand.requires_grad):
            return -(sq + (q * q).sum(1, keepdim=True)).clamp_min(0.0).sqrt()
        return sq.add_((q * q).sum(1, keepdim=True)).clamp_min_(0.0).sqrt_().neg_()

    def score_tails(self, h, r):
        return self._against_all(self._project_ids(h, r) + self._translation(r), r)

    def score_heads(self, r, t):
        # P(e) + r - P(t) = P(e) - (P(t) - r)
        return self._against_all(self._project_ids(t, r) - self._translation(r), r)


class TransE(_Translational):
    """TransE (Bordes et al., "Translating Embeddings for Modeling Multi-relational Data",
    NIPS 2013): ``score = -||h + r - t||_p``.

    Init ``U(-6/sqrt(d), 6/sqrt(d))``, relations normalised once at init. Constraint (the
    paper's): every entity vector has unit L2 norm, enforced after each step.
    """

    name = "transe"
    description = "TransE, h + r = t (Bordes et al., NIPS'13)"
    relation_independent = True

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.dim))
        _uniform_(self.ent.data, self.dim)
        _uniform_(self.rel.data, self.dim)
        _normalize_(self.rel.data)
        self.constrain()

    def _project(self, e, r):
        return e

    def _project_all(self, r):
        return self.ent

    def relation_tables(self):
        return [self.rel]

    @torch.no_grad()
    def constrain(self) -> None:
        """Entities on the unit sphere, ``||e||_2 = 1``."""
        _normalize_(self.ent.data)


class TransH(_Translational):
    """TransH (Wang et al., "Knowledge Graph Embedding by Translating on Hyperplanes",
    AAAI 2014): each relation is a hyperplane with unit normal ``w_r`` and a translation
    ``d_r`` in it; ``h_perp = h - (w_r . h) w_r`` and ``score = -||h_perp + d_r - t_perp||_p``.

    Constraints (after each step): ``||w_r|| = 1`` (renormalised; the forward pass also uses
    the normalised ``w_r``), ``||e|| <= 1`` for entities, and the paper's soft orthogonality
    ``|w_r . d_r| / ||d_r|| <= eps`` enforced exactly (``d_r`` projected onto the hyperplane).
    """

    name = "transh"
    description = "TransH, translation on relation hyperplanes (Wang et al., AAAI'14)"

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.dim))  # d_r
        self.normal = nn.Parameter(torch.empty(self.n_relations, self.dim))  # w_r
        for w in (self.ent, self.rel, self.normal):
            _uniform_(w.data, self.dim)
        self.constrain()

    def _w(self, r) -> torch.Tensor:
        return F.normalize(_rows(self.normal, r), p=2, dim=-1)

    def _project(self, e, r):
        w = self._w(r)
        return e - (e * w).sum(-1, keepdim=True) * w

    def _project_all(self, r):
        w = self._w(r)
        return torch.addr(self.ent, self.ent @ w, w, alpha=-1.0)

    def relation_tables(self):
        return [self.rel, self.normal]

    @torch.no_grad()
    def constrain(self) -> None:
        """``||w_r|| = 1``, ``w_r . d_r = 0``, ``||e|| <= 1``."""
        _normalize_(self.normal.data)
        w = self.normal.data
        self.rel.data.sub_((self.rel.data * w).sum(-1, keepdim=True) * w)
        _renorm_(self.ent.data)

    def embeddings(self):
        out = super().embeddings()
        out["relation_normals"] = self.normal.detach().cpu().numpy().copy()
        return out


class TransR(_Translational):
    """TransR (Lin et al., "Learning Entity and Relation Embeddings for Knowledge Graph
    Completion", AAAI 2015): entities in R^d, relations in R^k with a mapping ``M_r`` (d x k);
    ``h_r = h M_r`` and ``score = -||h_r + r - t_r||_p``.

    Implementation choices, both needed for TransR to train with Adam in a few dozen epochs
    (with the plain parametrisation and the constraint as a clamp it stalls at a tenth of
    TransE's validation MRR on Last.FM):

    * ``M_r = I + matrix_step * D_r`` with ``D_r`` the parameter, starting at 0: ``M_r``
      starts at the identity (the paper starts from TransE, whose mapping is the identity)
      and its entries move ``matrix_step`` times slower than the vectors. Adam moves every
      coordinate by about ``lr`` per step whatever its gradient, which otherwise turns the
      ``d * k`` entries of every ``M_r`` into noise within a few epochs.
    * The paper's constraint ``||h M_r|| <= 1`` is applied in its equality form in the forward
      pass: projected vectors are normalised to unit length, ``h_r = h M_r / ||h M_r||``.
      (Enforcing ``<= 1`` by scaling ``M_r`` to spectral norm 1 collapses the matrices.)

    After each step: ``||e|| <= 1`` and ``||r|| <= 1`` (renormalised).
    """

    name = "transr"
    description = "TransR, relation-specific spaces h M_r (Lin et al., AAAI'15)"
    #: ``M_r = I + matrix_step * D_r``: the matrices' step size relative to the vectors'.
    matrix_step: ClassVar[float] = 0.1

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel_dim = int(self.config.rel_dim or self.dim)
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.rel_dim))
        self.proj = nn.Parameter(torch.zeros(self.n_relations, self.dim, self.rel_dim))  # D_r
        _uniform_(self.ent.data, self.dim)
        _uniform_(self.rel.data, self.rel_dim)
        self.constrain()

    def matrices(self) -> torch.Tensor:
        """The mappings ``M_r`` ``(n_relations, d, k)``."""
        eye = torch.eye(self.dim, self.rel_dim, dtype=self.proj.dtype)
        return eye + self.matrix_step * self.proj

    def _identity(self, e: torch.Tensor) -> torch.Tensor:
        """``e I^{d x k}``: the first k components, zero-padded when k > d."""
        k, d = self.rel_dim, self.dim
        return e if k == d else (e[..., :k] if k < d else F.pad(e, (0, k - d)))

    def _project(self, e, r):
        x = self._identity(e) + self.matrix_step * torch.bmm(
            e.unsqueeze(1), _rows(self.proj, r)).squeeze(1)
        return F.normalize(x, p=2, dim=-1)

    def _project_all(self, r):
        x = self._identity(self.ent) + self.matrix_step * (self.ent @ _rows(self.proj, r))
        return F.normalize(x, p=2, dim=-1)

    def relation_tables(self):
        return [self.rel, self.proj]

    @torch.no_grad()
    def constrain(self) -> None:
        """``||e|| <= 1``, ``||r|| <= 1`` (``||h M_r|| = 1`` holds by construction)."""
        _renorm_(self.ent.data)
        _renorm_(self.rel.data)

    def embeddings(self):
        out = super().embeddings()
        out["relation_matrices"] = self.matrices().detach().cpu().numpy().copy()
        return out


class TransD(_Translational):
    """TransD (Ji et al., "Knowledge Graph Embedding via Dynamic Mapping Matrix", ACL 2015):
    every entity and relation has a second, projection vector (``e_p``, ``r_p``); the mapping
    ``M_re = r_p e_p^T + I`` (k x d) gives ``e_perp = r_p (e_p . e) + I e`` and
    ``score = -||h_perp + r - t_perp||_p``.

    The projection needs the entities' projection vectors, so TransD scores ids only:
    :meth:`score_emb` raises ``NotImplementedError``. Constraints (after each step):
    ``||e||, ||e_p||, ||r||, ||r_p|| <= 1``; the paper's soft ``||h_perp|| <= 1`` is not
    enforced (it is bounded by 2 through the other four).
    """

    name = "transd"
    description = "TransD, dynamic mapping r_p e_p^T + I (Ji et al., ACL'15)"

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel_dim = int(self.config.rel_dim or self.dim)
        self.ent_p = nn.Parameter(torch.empty(self.n_entities, self.dim))
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.rel_dim))
        self.rel_p = nn.Parameter(torch.empty(self.n_relations, self.rel_dim))
        for w, d in ((self.ent, self.dim), (self.ent_p, self.dim), (self.rel, self.rel_dim),
                     (self.rel_p, self.rel_dim)):
            _uniform_(w.data, d)
        self.constrain()

    def _resize(self, e: torch.Tensor) -> torch.Tensor:
        """``I^{k x d} e``: the first k components, zero-padded when k > d."""
        k, d = self.rel_dim, self.dim
        if k == d:
            return e
        if k < d:
            return e[..., :k]
        return F.pad(e, (0, k - d))

    def score_emb(self, h, r, t):
        raise NotImplementedError(
            "TransD projects with the entities' own projection vectors: score ids with "
            "score(h, r, t)")

    def _project(self, e, r):  # pragma: no cover - see score_emb
        raise NotImplementedError("TransD projects entity ids, not vectors")

    def _project_ids(self, ids, r):
        e, ep = _rows(self.ent, ids), _rows(self.ent_p, ids)
        return (ep * e).sum(-1, keepdim=True) * _rows(self.rel_p, r) + self._resize(e)

    def _project_all(self, r):
        s = (self.ent_p * self.ent).sum(-1, keepdim=True)
        return s * _rows(self.rel_p, r) + self._resize(self.ent)

    def entity_tables(self):
        return [self.ent, self.ent_p]

    def relation_tables(self):
        return [self.rel, self.rel_p]

    @torch.no_grad()
    def constrain(self) -> None:
        """``||e||, ||e_p||, ||r||, ||r_p|| <= 1``."""
        for w in (self.ent, self.ent_p, self.rel, self.rel_p):
            _renorm_(w.data)

    def embeddings(self):
        out = super().embeddings()
        out["entity_projections"] = self.ent_p.detach().cpu().numpy().copy()
        out["relation_projections"] = self.rel_p.detach().cpu().numpy().copy()
        return out


# --------------------------------------------------------------------------- bilinear
class Bilinear(KGEModel):
    """Bilinear / RESCAL (Nickel et al., "A Three-Way Model for Collective Learning on
    Multi-Relational Data", ICML 2011): a full matrix ``W_r`` (d x d) per relation,
    ``score = h^T W_r t``; trained here by SGD on ranked negatives as in Yang et al. (2015),
    whose "Bilinear" model it is.

    RESCAL itself has no norm constraint (it regularises with L2: ``l2_weight``). As in Yang et
    al.'s experiments, entity vectors are renormalised to unit length after each step, which
    keeps the scores bounded under the margin loss.
    """

    name = "bilinear"
    description = "Bilinear / RESCAL, h^T W_r t (Nickel et al., ICML'11)"

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.dim, self.dim))
        nn.init.xavier_uniform_(self.ent.data)
        bound = math.sqrt(3.0 / self.dim)  # Glorot-uniform bound of each d x d matrix
        nn.init.uniform_(self.rel.data, -bound, bound)
        self.constrain()

    def score_emb(self, h, r, t):
        return (torch.bmm(h.unsqueeze(1), _rows(self.rel, r)).squeeze(1) * t).sum(-1)

    def score_tails(self, h, r):
        q = torch.bmm(_rows(self.ent, h).unsqueeze(1), _rows(self.rel, r)).squeeze(1)
        return q @ self.ent.T

    def score_heads(self, r, t):
        q = torch.bmm(_rows(self.rel, r), _rows(self.ent, t).unsqueeze(2)).squeeze(2)
        return q @ self.ent.T

    def relation_tables(self):
        return [self.rel]

    @torch.no_grad()
    def constrain(self) -> None:
        """Entity vectors of unit length."""
        _normalize_(self.ent.data)

    def embeddings(self):
        w = self.rel.detach().cpu().numpy().copy()
        return {
            "entity_embeddings": self.ent.detach().cpu().numpy().copy(),
            "relation_embeddings": w.reshape(self.n_relations, -1),
            "relation_matrices": w,
        }


class DistMult(KGEModel):
    """DistMult (Yang et al., "Embedding Entities and Relations for Learning and Inference in
    Knowledge Bases", ICLR 2015): the bilinear model with a diagonal ``W_r = diag(r)``,
    ``score = sum_i h_i r_i t_i``. Entity vectors renormalised to unit length after each
    step, as in the paper's experiments.
    """

    name = "distmult"
    description = "DistMult, diagonal bilinear <h, r, t> (Yang et al., ICLR'15)"

    def __init__(self, *, n_entities: int, n_relations: int, config: KGEConfig | None = None):
        super().__init__(n_entities=n_entities, n_relations=n_relations, config=config)
        self.rel = nn.Parameter(torch.empty(self.n_relations, self.dim))
        nn.init.xavier_uniform_(self.ent.data)
        nn.init.xavier_uniform_(self.rel.data)
        self.constrain()

    def score_emb(self, h, r, t):
        return (h * _rows(self.rel, r) * t).sum(-1)

    def score_tails(self, h, r):
        return (_rows(self.ent, h) * _rows(self.rel, r)) @ self.ent.T

    def score_heads(self, r, t):
        return (_rows(self.rel, r) * _rows(self.ent, t)) @ self.ent.T

    def relation_tables(self):
        return [self.rel]

    @torch.no_grad()
    def constrain(self) -> None:
        """Entity vectors of unit length."""
        _normalize_(self.ent.data)


# --------------------------------------------------------------------------- registry
KGE_MODELS: dict[str, type[KGEModel]] = {
    "transe": TransE,
    "transh": TransH,
    "transr": TransR,
    "transd": TransD,
    "bilinear": Bilinear,
    "distmult": DistMult,
}


def _model_class(name: str) -> type[KGEModel]:
    if name not in KGE_MODELS:
        raise KeyError(f"unknown KGE model {name!r}; known: {', '.join(KGE_MODELS)}")
    return KGE_MODELS[name]


def kge_config(name: str, params: dict[str, Any] | None = None) -> KGEConfig:
    """The config of model ``name``: dataclass defaults, then the model's preset, then
    ``params``. Unknown keys raise ``ValueError`` naming the valid ones."""
    from kgrec.config.coerce import build_config

    cls = _model_class(name)
    return build_config(KGEConfig, {**cls.preset, **dict(params or {})},
                        owner=f"KGE model {name!r}")


def build_kge(
    name: str, *, n_entities: int, n_relations: int, config: KGEConfig | None = None
) -> KGEModel:
    """Instantiate KGE model ``name`` (``config`` None: :func:`kge_config` ``(name)``)."""
    cls = _model_class(name)
    return cls(n_entities=n_entities, n_relations=n_relations,
               config=config if config is not None else kge_config(name))
