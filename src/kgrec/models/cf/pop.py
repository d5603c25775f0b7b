"""Most-popular baseline: every user gets the same item ranking, by training popularity.

``s(u, i) = log(1 + n_i)`` with ``n_i`` the number of training positives of item ``i``: the
floor of every recommendation table (e.g. the "Pop" rows of Rendle et al., UAI'09, and of
most top-K evaluations since; MKR, Wang et al., WWW'19, compares against stronger baselines
only). No gradient training: the counts are taken in :meth:`Popularity.tasks`, which returns
no task.

CTR logits. ``s`` is a ranking score, not a logit, so ``score`` returns ``a * s + b`` with
``(a, b)`` a 1-D logistic regression (Platt scaling; Platt, 1999) fitted on the labelled
training rows. The regression sees each training row's score *without the row itself*
(``log(1 + n_i - label)``, the leave-one-out count), which is the score a held-out row gets:
the fitted threshold then transfers to the validation and test rows. ``a`` is kept positive so
the logits always rank items by popularity (AUC and top-K do not depend on ``(a, b)``).

Ties: items with equal counts get equal scores (the AUC counts such ties as one half; the
ranking evaluator breaks them at random per query, :mod:`kgrec.eval.ranking`); no offset is
added, because any per-item offset would be an arbitrary ranking, not popularity.

:func:`fit_platt` is the shared 1-D calibration of the interaction-only baselines
(``bpr-mf``, ``item-cf`` use it as well).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kgrec.models.base import Recommender, Task, TrainData

__all__ = ["CalibratedTables", "Popularity", "PopularityConfig", "build", "fit_calibration",
           "fit_platt"]


def fit_calibration(model: torch.nn.Module, rows: np.ndarray) -> float:
    """Fit ``model.calib = (a, b)`` (Platt scaling, :func:`fit_platt`) of
    ``model.raw_score(users, items)`` on labelled ``(user, item, label)`` rows; returns their
    log-loss under the new calibration (0 where there are no rows). Shared by the models that
    rank by a BPR score (BPR-MF, LightGCN, KGAT, KGIN)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    if len(rows) == 0:
        return 0.0
    dev = model.calib.device
    with torch.no_grad():
        x = model.raw_score(torch.from_numpy(rows[:, 0]).to(dev),
                            torch.from_numpy(rows[:, 1]).to(dev))
        a, b = fit_platt(x.double().cpu().numpy(), rows[:, 2] == 1)
        model.calib.copy_(torch.tensor([a, b], dtype=torch.float32))
        y = torch.from_numpy(rows[:, 2] == 1).float().to(dev)
        return float(torch.nn.functional.binary_cross_entropy_with_logits(a * x + b, y))


class CalibratedTables:
    """Scoring of the graph models that store propagated ``(user, item)`` tables (LightGCN,
    KGAT, KGIN): ``raw_score = user . item`` (what BPR trains), the CTR logit
    ``calib[0] * raw_score + calib[1]``, and the tables as retrieval vectors. A model mixes it
    in before :class:`~kgrec.models.base.Recommender`, holds ``calib`` and either the buffers
    ``final_user`` / ``final_item`` or its own :meth:`_tables`."""

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.final_user, self.final_item

    def raw_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u, i = self._tables()
        return (u[users] * i[items]).sum(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.calib[0] * self.raw_score(users, items) + self.calib[1]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self._tables()
        return self.calib[0] * (u[users] @ i.T) + self.calib[1]

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self._tables()[0][users]

    def item_vectors(self) -> torch.Tensor:
        return self._tables()[1]

    def fit_calibration(self, rows: np.ndarray) -> float:
        """Fit ``calib = (a, b)`` on labelled ``(user, item, label)`` rows; their log-loss
        (:func:`fit_calibration`)."""
        return fit_calibration(self, rows)


def fit_platt(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1e-6,
    iters: int = 50,
    min_scale: float = 1e-6,
) -> tuple[float, float]:
    """Fit ``P(y = 1 | x) = sigmoid(a * x + b)`` by Newton's method (a 2-parameter logistic
    regression, Platt scaling).

    Args:
        x: ``(n,)`` scores.
        y: ``(n,)`` labels in ``{0, 1}``.
        l2: ridge on the slope of the standardised score (times the number of rows); keeps
            the fit finite where the classes are separable.
        iters: at most this many Newton steps (it converges in a handful).
        min_scale: ``a`` is clipped to at least this, so the calibrated logits keep the order of
            ``x`` (an inverted ranking is never a calibration).

    Returns:
        ``(a, b)``; ``(1, 0)`` where ``x`` is empty.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) == 0:
        return 1.0, 0.0
    # Newton on the standardised score, from the constant model, with step halving: the
    # penalised log-loss is convex, so this converges from any data (raw Newton from an
    # arbitrary start overshoots where the scores are large).
    mu, sd = float(x.mean()), float(x.std())
    sd = sd if sd > 0 else 1.0
    feats = np.c_[(x - mu) / sd, np.ones_like(x)]
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    w = np.array([0.0, np.log(rate / (1 - rate))])
    ridge = l2 * len(x) * np.diag([1.0, 0.0])

    def objective(w: np.ndarray) -> float:
        z = feats @ w
        return float(np.logaddexp(0.0, z).sum() - y @ z + 0.5 * w @ ridge @ w)

    value = objective(w)
    for _ in range(iters):
        z = feats @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # a sigmoid that never overflows
        grad = feats.T @ (p - y) + ridge @ w
        hess = (feats * (p * (1.0 - p))[:, None]).T @ feats + ridge + 1e-9 * len(x) * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            cand = w - t * step
            new_value = objective(cand)
            if new_value <= value + 1e-12 * abs(value):
                break
            t *= 0.5
        else:
            break
        w, done = cand, value - new_value < 1e-10 * max(abs(value), 1.0)
        value = new_value
        if done:
            break
    a = float(w[0]) / sd
    b = float(w[1]) - a * mu
    return max(a, min_scale), b


@dataclass
class PopularityConfig:
    """calibrate: map ``log(1 + count)`` to a CTR logit with a 1-D logistic regression
    fitted on the training rows (leave-one-out counts; see the module docstring); ``False``
    returns ``log(1 + count)`` itself, whose sigmoid is above one half for every item (the
    accuracy then is the share of positive rows)."""

    calibrate: bool = True


class Popularity(Recommender):
    """See module docstring. Construct with keyword arguments only."""

    user_free = True

    def __init__(self, *, n_users: int, n_items: int, config: PopularityConfig | None = None):
        super().__init__()
        if n_items < 1 or n_users < 0:
            raise ValueError(f"need n_items >= 1 and n_users >= 0, got {n_items}, {n_users}")
        self.config = config or PopularityConfig()
        self.n_users, self.n_items = n_users, n_items
        self.register_buffer("counts", torch.zeros(n_items), persistent=True)
        self.register_buffer("calib", torch.tensor([1.0, 0.0]), persistent=True)

    def fit(self, train: np.ndarray) -> None:
        """Count the training positives of each item and fit the calibration."""
        train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
        if len(train) and (train[:, 1].min() < 0 or train[:, 1].max() >= self.n_items):
            raise ValueError(f"item ids must lie in [0, {self.n_items})")
        pos = train[train[:, 2] == 1]
        counts = np.bincount(pos[:, 1], minlength=self.n_items).astype(np.float64)
        a, b = 1.0, 0.0
        if self.config.calibrate:
            loo = np.log1p(np.maximum(counts[train[:, 1]] - (train[:, 2] == 1), 0.0))
            a, b = fit_platt(loo, train[:, 2] == 1)
        with torch.no_grad():
            self.counts.copy_(torch.as_tensor(counts, dtype=torch.float32))
            self.calib.copy_(torch.tensor([a, b], dtype=torch.float32))

    def tasks(self, data: TrainData) -> list[Task]:
        self.fit(data.train_rows())
        return []

    def popularity(self) -> torch.Tensor:
        """``log(1 + n_i)`` of every item, ``(n_items,)``."""
        return torch.log1p(self.counts)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.calib[0] * self.popularity()[items] + self.calib[1]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        row = self.calib[0] * self.popularity() + self.calib[1]
        return row.expand(len(users), self.n_items)


def build(ds, cfg: PopularityConfig) -> Popularity:
    """The popularity baseline for a :class:`~kgrec.data.Dataset`."""
    return Popularity(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
