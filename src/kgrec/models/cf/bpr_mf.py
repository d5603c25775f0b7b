"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking (Rendle et al.,
"BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI'09).

``x_ui = p_u . q_i + b_i``. Each epoch pairs every training positive ``(u, i)`` with an item
``j`` drawn uniformly among the items ``u`` has no training positive for (fresh draws each
epoch, vectorised rejection sampling; a training row labelled 0 may be drawn, it is a known
non-positive), and minimises::

    mean_batch[-log sigmoid(x_ui - x_uj)]
        + l2_weight * mean_batch[|p_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2]

Deviation from the paper: Adam on mini-batches of shuffled triples in place of LearnBPR's
bootstrap SGD over single triples (same objective; the trainer's optimizer).

CTR logits. BPR scores are only defined up to a monotone map (the loss sees differences), so
``score`` returns ``a * x_ui + b`` with ``(a, b)`` a 1-D logistic regression (Platt scaling,
:func:`kgrec.models.cf.pop.fit_platt`) on the labelled training rows, refitted after every
epoch by a second task ``calib`` that trains nothing by gradient. The fit sees in-sample scores
(the rows BPR trained on score higher than held-out positives), so its threshold leans
slightly high; AUC and top-K do not depend on ``(a, b)`` (``a`` is kept positive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.data.sampling import PairSet
from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.cf.pop import fit_calibration

__all__ = ["BPRMF", "BPRConfig", "BPRRows", "bpr_rows", "build", "sample_bpr_triples"]


@dataclass
class BPRConfig:
    """dim: embedding size; lr: Adam learning rate; l2_weight: weight of the squared norms of
    the batch's user, positive and negative item vectors and item biases (see the module
    docstring); batch_size: triples per step; init_std: standard deviation of the normal
    initialisation of the embeddings (biases start at 0); calibrate: refit the CTR calibration
    ``(a, b)`` after every epoch (``False``: raw ``x_ui`` as logits); calib_holdout: share of
    the training rows kept out of BPR training and used for the calibration alone (0: fit it
    on all training rows, in-sample; see the module docstring)."""

    dim: int = 64
    lr: float = 5e-3
    l2_weight: float = 1e-4
    batch_size: int = 1024
    init_std: float = 0.1
    calibrate: bool = True
    calib_holdout: float = 0.0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.l2_weight < 0:
            raise ValueError(f"l2_weight must be >= 0, got {self.l2_weight}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.calib_holdout < 1.0:
            raise ValueError(f"calib_holdout must lie in [0, 1), got {self.calib_holdout}")
        if self.init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std}")


@dataclass
class BPRRows:
    """What a BPR-trained model draws its triples from (see :func:`bpr_rows`).

    Attributes:
        pos: ``(n, 2)`` the positives ``(user, item)`` trained on.
        exclude: every training positive (held-out ones included) and the caller's
            ``TrainData.exclude``: never drawn as negatives.
        calib_rows: the labelled rows the CTR calibration is fitted on.
        seed: the run's seed (from torch's generator) for the per-epoch negatives.
    """

    pos: np.ndarray
    exclude: PairSet
    calib_rows: np.ndarray
    seed: int


def bpr_rows(data: TrainData, n_users: int, n_items: int, *, holdout: float = 0.0) -> BPRRows:
    """The labelled training rows of ``data`` checked against the vocabulary and split for BPR
    training: with ``holdout > 0`` a seeded share of the rows is kept out of training and
    calibrates the CTR logits instead (otherwise every row does both)."""
    train = data.train_rows()
    if len(train) and (train[:, :2].min() < 0 or train[:, 0].max() >= n_users
                       or train[:, 1].max() >= n_items):
        raise ValueError("training rows hold user or item ids out of range")
    # torch's generator is seeded by the run: the negatives follow the run's seed
    seed = int(torch.randint(0, 2**31 - 1, (1,)))
    pu, pi = train[train[:, 2] == 1, 0], train[train[:, 2] == 1, 1]
    # the training positives, and the pairs the caller rules out (under the CTR protocol the
    # held-out rows, whatever their label: drawing a test negative would train on its label)
    exclude = PairSet(pu, pi, n_items) if data.exclude is None else data.exclude.union(pu, pi)
    calib_rows = train
    if holdout > 0:
        held = np.random.default_rng([seed, 2**31]).random(len(train)) < holdout
        calib_rows, train = train[held], train[~held]
    return BPRRows(pos=train[train[:, 2] == 1][:, :2], exclude=exclude,
                   calib_rows=calib_rows, seed=seed)


def sample_bpr_triples(
    pos: np.ndarray,
    n_items: int,
    exclude: PairSet,
    rng: np.random.Generator,
    *,
    max_rounds: int = 32,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """``(user, pos item, neg item)`` triples: one uniform negative for each positive pair
    (among ``candidates``, a boolean mask over the items, when given).

    The negative ``j`` of ``(u, i)`` is uniform over the items with ``(u, j)`` not in
    ``exclude`` (drawn with replacement across a user's positives). Draws hitting ``exclude``
    are redrawn, all at once, for up to ``max_rounds`` rounds; pairs still without a negative
    after that (users who have almost every item) draw one exactly, from random keys over the
    item row; pairs whose user has every item are dropped.

    Args:
        pos: ``(n, 2)`` positive ``(user, item)`` pairs.
        n_items: item vocabulary size.
        exclude: pairs never drawn as negatives (the training positives).
        rng: numpy generator.

    Returns:
        ``(m, 3)`` int64 triples, ``m <= n``, in the order of ``pos``.
    """
    pos = np.asarray(pos, dtype=np.int64).reshape(-1, 2)
    pool = None if candidates is None else np.flatnonzero(np.asarray(candidates, dtype=bool))

    def draw(n: int) -> np.ndarray:
        return rng.integers(0, n_items, size=n) if pool is None else \
            pool[rng.integers(0, max(len(pool), 1), size=n)]

    if pool is not None and len(pool) == 0:
        return np.zeros((0, 3), np.int64)
    neg = draw(len(pos))
    todo = np.flatnonzero(exclude.contains(pos[:, 0], neg))
    for _ in range(max_rounds):
        if len(todo) == 0:
            break
        neg[todo] = draw(len(todo))
        todo = todo[exclude.contains(pos[todo, 0], neg[todo])]
    keep = np.ones(len(pos), dtype=bool)
    # exact fallback for the few left (users with almost every item): uniform over each
    # user's allowed items via random keys, in blocks of rows that bound the memory
    for block in np.array_split(todo, len(todo) * n_items // 4_000_000 + 1):
        if len(block) == 0:
            continue
        rows = np.repeat(pos[block, 0], n_items)
        cols = np.tile(np.arange(n_items), len(block))
        keys = rng.random((len(block), n_items))
        keys[exclude.contains(rows, cols).reshape(len(block), n_items)] = np.inf
        if pool is not None:
            keys[:, ~np.asarray(candidates, dtype=bool)] = np.inf
        best = keys.argmin(axis=1)
        neg[block] = best
        keep[block] = np.isfinite(keys[np.arange(len(block)), best])
    return np.c_[pos[keep], neg[keep]]


class BPRMF(Recommender):
    """See module docstring. Construct with keyword arguments only."""

    def __init__(self, *, n_users: int, n_items: int, config: BPRConfig | None = None):
        super().__init__()
        cfg = config or BPRConfig()
        if n_items < 1 or n_users < 1:
            raise ValueError(f"need n_users, n_items >= 1, got {n_users}, {n_items}")
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        self.user_emb = nn.Parameter(torch.randn(n_users, cfg.dim) * cfg.init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, cfg.dim) * cfg.init_std)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("calib", torch.tensor([1.0, 0.0]), persistent=True)

    # ------------------------------------------------------------------ scores
    def raw_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``x_ui = p_u . q_i + b_i`` (the ranking score BPR trains)."""
        return (self.user_emb[users] * self.item_emb[items]).sum(-1) + self.item_bias[items]

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.calib[0] * self.raw_score(users, items) + self.calib[1]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raw = self.user_emb[users] @ self.item_emb.T + self.item_bias
        return self.calib[0] * raw + self.calib[1]

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """``[p_u, 1]``: with :meth:`item_vectors` the inner product is the ranking score."""
        p = self.user_emb[users]
        return torch.cat([p, torch.ones(len(p), 1, dtype=p.dtype, device=p.device)], 1)

    def item_vectors(self) -> torch.Tensor:
        """``[q_i, b_i]`` (see :meth:`user_vectors`), for export and ANN search."""
        return torch.cat([self.item_emb, self.item_bias[:, None]], 1)

    # ------------------------------------------------------------------ training
    def bpr_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BPR loss of ``(b, 3)`` triples ``(user, pos item, neg item)`` (module docstring)."""
        u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
        pu, qi, qj = self.user_emb[u], self.item_emb[i], self.item_emb[j]
        bi, bj = self.item_bias[i], self.item_bias[j]
        x_uij = (pu * (qi - qj)).sum(-1) + bi - bj
        reg = (pu**2).sum(-1) + (qi**2).sum(-1) + (qj**2).sum(-1) + bi**2 + bj**2
        return F.softplus(-x_uij).mean() + self.config.l2_weight * reg.mean()

    def fit_calibration(self, rows: np.ndarray) -> float:
        """Fit ``calib = (a, b)`` on labelled ``(user, item, label)`` rows; their log-loss
        (:func:`kgrec.models.cf.pop.fit_calibration`)."""
        return fit_calibration(self, rows)

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        rows = bpr_rows(data, self.n_users, self.n_items,
                        holdout=cfg.calib_holdout if cfg.calibrate else 0.0)
        pos, exclude, calib_rows, base_seed = rows.pos, rows.exclude, rows.calib_rows, rows.seed

        def triples(epoch: int) -> np.ndarray:
            rng = np.random.default_rng([base_seed, epoch])
            return sample_bpr_triples(pos, self.n_items, exclude, rng,
                                      candidates=data.item_candidates)

        out = [
            Task(name="rec", source=triples, loss=self.bpr_loss,
                 params=[self.user_emb, self.item_emb, self.item_bias], lr=cfg.lr,
                 batch_size=cfg.batch_size)
        ]
        if cfg.calibrate:
            def calib_step(_batch: torch.Tensor) -> torch.Tensor:
                return torch.tensor(self.fit_calibration(calib_rows))

            out.append(Task(name="calib", source=lambda epoch: np.zeros((1, 1), np.int64),
                            loss=lambda batch: torch.zeros(()), params=[], lr=1.0,
                            batch_size=1, step=calib_step))
        return out


def build(ds, cfg: BPRConfig) -> BPRMF:
    """BPR-MF for a :class:`~kgrec.data.Dataset` (interactions only; the KG is unused)."""
    return BPRMF(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
