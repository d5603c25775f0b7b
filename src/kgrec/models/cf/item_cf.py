"""Item-based collaborative filtering (Sarwar et al., "Item-Based Collaborative Filtering
Recommendation Algorithms", WWW'01) on the labelled training rows.

Ratings: label 1 -> ``+1``, label 0 -> ``-1`` (the conversion's sampled or known negatives read
as dislikes; a pair seen twice gets the mean). Similarity is Sarwar's adjusted cosine over the
co-raters ``U_ij`` of the two items, each rating centred on its user's mean ``m_u``::

    sim(i, j) = sum_{u in U_ij} c_ui c_uj / sqrt(sum_{u in U_ij} c_ui^2 * sum_{u in U_ij} c_uj^2)
    c_ui = r_ui - m_u

with these refinements, in this order:

(a) users whose ratings have a standard deviation below ``min_user_std`` (all-positive users:
    nothing to centre) take no part in the similarities; their ratings still are their history
    when they are scored;
(b) shrinkage by support: pairs with fewer than ``min_common`` co-raters get no similarity,
    the others are multiplied by ``n_ij / (n_ij + shrinkage)``;
(c) a penalty for items whose ratings vary wildly: ``sim(i, j)`` is divided by
    ``sqrt((1 + w var_i) (1 + w var_j))`` with ``var_i`` the variance of item ``i``'s ``+-1``
    ratings over all its training raters and ``w = variance_penalty`` (symmetric; since the
    score normalises over the neighbours of ``i``, what remains is a down-weighting of
    controversial neighbours ``j``);
(d) items with fewer than ``min_item_count`` training ratings get no similarity at all;
(e) the diagonal is dropped and each item keeps its ``k`` neighbours of largest ``|sim|``.

Prediction (Sarwar's weighted sum over the neighbours the user rated)::

    s(u, i) = sum_{j in N(i) & H(u)} sim(i, j) r_uj / (sum_{j in N(i) & H(u)} |sim(i, j)| + eps)

with ``H(u)`` all the user's training items. ``s`` lies in ``(-1, 1)`` and is 0 where no
neighbour of ``i`` is in the history; ``eps`` shrinks a score resting on little similarity
mass towards 0. An optional popularity prior ``pop_weight * log(1 + n_i)`` (``n_i`` the item's
training positives; not part of Sarwar's method, off by default) can be added to ``s``.
``score`` returns ``a * s + b`` (with the prior, if any, in ``s``), ``(a, b)`` a 1-D logistic
regression (Platt scaling, :func:`kgrec.models.cf.pop.fit_platt`), so that ``sigmoid``
gives a usable CTR (``a > 0``: AUC and top-K do not depend on it). A training row's own
rating enters the similarities its score rests on (with one co-rater, ``sim(i, j)`` just
replays it), so in-sample scores are far too confident; the calibration is cross-fitted
instead: the model is fitted without a random ``calib_holdout`` share of the training rows,
``(a, b)`` is fitted on the held-out rows' scores, then the model is refitted on all rows.

Everything is fitted in :meth:`ItemCF.tasks` (no gradient training; it returns no task).
Similarities are computed in blocks of items with scipy.sparse products (memory bounded by
``block_mb``, never a dense ``n_items x n_items`` matrix) and kept as a ``(n_items, k)``
neighbour table; the user histories as sorted ``user * n_items + item`` keys. All are
persistent buffers, so a checkpoint restores the fitted model (the history buffers are resized
to the checkpoint's length when loading).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.cf.pop import fit_platt

__all__ = ["ItemCF", "ItemCFConfig", "build", "item_similarities"]


@dataclass
class ItemCFConfig:
    """k: neighbours kept per item (largest ``|sim|``); min_user_std: users whose ``+-1``
    ratings have a (population) standard deviation below this are left out of the
    similarities (0 keeps everyone); variance_penalty: ``w`` of the controversial-item penalty
    (0 switches it off); min_item_count: items with fewer training ratings get no neighbours
    and are nobody's neighbour; min_common: fewest co-raters a similarity needs; shrinkage:
    ``lambda`` of the support shrinkage ``n / (n + lambda)`` (0 switches it off); eps: added
    to the denominator of the prediction (shrinks weakly supported scores towards 0);
    pop_weight: weight of the optional popularity prior ``log(1 + positives of i)`` added to
    ``s`` (0: Sarwar's prediction alone; a tiny value such as 1e-3 only orders the ties);
    calibrate: fit the 1-D logistic calibration (``False``: the score ``s`` itself is the
    logit); calib_holdout: share of the training rows held out to fit it (cross-fitting, see
    the module docstring); block_mb: memory budget, in MiB, of each dense block of item
    similarities while fitting."""

    k: int = 50
    min_user_std: float = 0.1
    variance_penalty: float = 1.0
    min_item_count: int = 2
    min_common: int = 2
    shrinkage: float = 10.0
    eps: float = 1e-3
    pop_weight: float = 0.0
    calibrate: bool = True
    calib_holdout: float = 0.1
    block_mb: float = 32.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.min_user_std < 0:
            raise ValueError(f"min_user_std must be >= 0, got {self.min_user_std}")
        if self.variance_penalty < 0:
            raise ValueError(f"variance_penalty must be >= 0, got {self.variance_penalty}")
        if self.min_item_count < 1:
            raise ValueError(f"min_item_count must be >= 1, got {self.min_item_count}")
        if self.min_common < 1:
            raise ValueError(f"min_common must be >= 1, got {self.min_common}")
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {self.shrinkage}")
        if self.pop_weight < 0:
            raise ValueError(f"pop_weight must be >= 0, got {self.pop_weight}")
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if not 0.0 < self.calib_holdout < 1.0:
            raise ValueError(f"calib_holdout must lie in (0, 1), got {self.calib_holdout}")
        if self.block_mb <= 0:
            raise ValueError(f"block_mb must be positive, got {self.block_mb}")


def _ratings(train: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys ``user * n_items + item`` and their mean ``+-1`` rating."""
    train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
    keys, inv = np.unique(train[:, 0] * n_items + train[:, 1], return_inverse=True)
    r = np.where(train[:, 2] == 1, 1.0, -1.0)
    rating = np.bincount(inv, weights=r, minlength=len(keys)) / np.bincount(
        inv, minlength=len(keys))
    return keys, rating


def item_similarities(
    keys: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    cfg: ItemCFConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The pruned similarity table of the module docstring.

    Args:
        keys: sorted distinct ``user * n_items + item`` keys of the training ratings.
        rating: their ratings (``+-1``, or a mean of such).
        n_users, n_items: vocabulary sizes.
        cfg: the refinements' settings.

    Returns:
        ``(index, value)``, both ``(n_items, k')`` with ``k' = min(k, max(n_items - 1, 1))``:
        row ``i`` holds the neighbours of ``i`` by decreasing ``|sim|``; unused slots have
        value 0 (and index 0).
    """
    users, items = keys // n_items, keys % n_items
    n_u = np.bincount(users, minlength=n_users).astype(np.float64)
    mean_u = np.bincount(users, weights=rating, minlength=n_users) / np.maximum(n_u, 1)
    sq_u = np.bincount(users, weights=rating**2, minlength=n_users) / np.maximum(n_u, 1)
    std_u = np.sqrt(np.maximum(sq_u - mean_u**2, 0.0))
    kept_user = (n_u > 0) & (std_u >= cfg.min_user_std - 1e-12)

    n_i = np.bincount(items, minlength=n_items).astype(np.float64)
    mean_i = np.bincount(items, weights=rating, minlength=n_items) / np.maximum(n_i, 1)
    sq_i = np.bincount(items, weights=rating**2, minlength=n_items) / np.maximum(n_i, 1)
    var_i = np.maximum(sq_i - mean_i**2, 0.0)
    eligible = n_i >= cfg.min_item_count
    damp = 1.0 / np.sqrt(1.0 + cfg.variance_penalty * var_i)

    keep = kept_user[users]
    u, it = users[keep], items[keep]
    c = rating[keep] - mean_u[u]
    shape = (n_users, n_items)
    cmat = sp.csr_matrix((c, (u, it)), shape=shape)
    bmat = sp.csr_matrix((np.ones(len(u)), (u, it)), shape=shape)
    c2mat = sp.csr_matrix((c**2, (u, it)), shape=shape)
    ct, bt, c2t = cmat.T.tocsr(), bmat.T.tocsr(), c2mat.T.tocsr()

    kk = min(cfg.k, max(n_items - 1, 1))
    index = np.zeros((n_items, kk), dtype=np.int64)
    value = np.zeros((n_items, kk), dtype=np.float64)
    block = max(1, int(cfg.block_mb * 2**20 // (8 * n_items)))
    for a in range(0, n_items, block):  # blocks of items (memory), not one item at a time
        b = min(a + block, n_items)
        rows = np.arange(a, b)
        num = (ct[a:b] @ cmat).toarray()
        common = (bt[a:b] @ bmat).toarray()
        den = (c2t[a:b] @ bmat).toarray()  # sum over co-raters of c_ui^2 ...
        den *= (bt[a:b] @ c2mat).toarray()  # ... times that of c_uj^2
        np.sqrt(den, out=den)
        sim = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        del num, den
        sim *= (common >= cfg.min_common) * (common / (common + cfg.shrinkage + 1e-300))
        del common
        sim *= damp[rows, None] * damp[None, :]
        sim[~eligible[rows]] = 0.0
        sim[:, ~eligible] = 0.0
        sim[np.arange(b - a), rows] = 0.0
        mag = np.abs(sim)
        top = np.argpartition(-mag, kk - 1, axis=1)[:, :kk] if kk < n_items else np.argsort(
            -mag, axis=1, kind="stable")[:, :kk]
        order = np.argsort(-np.take_along_axis(mag, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        val = np.take_along_axis(sim, top, 1)
        index[a:b] = np.where(val != 0, top, 0)
        value[a:b] = val
    return index, value


class ItemCF(Recommender):
    """See module docstring. Construct with keyword arguments only."""

    _VARIABLE = ("hist_key", "hist_rating")
    _CHUNK = 2**20  # (pair, neighbour) lookups per chunk of cf_score

    def __init__(self, *, n_users: int, n_items: int, config: ItemCFConfig | None = None):
        super().__init__()
        if n_items < 1 or n_users < 1:
            raise ValueError(f"need n_users, n_items >= 1, got {n_users}, {n_items}")
        cfg = config or ItemCFConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        kk = min(cfg.k, max(n_items - 1, 1))
        self.register_buffer("nbr_index", torch.zeros(n_items, kk, dtype=torch.long),
                             persistent=True)
        self.register_buffer("nbr_value", torch.zeros(n_items, kk), persistent=True)
        # training ratings: sorted keys user * n_items + item, and the +-1 rating of each
        self.register_buffer("hist_key", torch.zeros(0, dtype=torch.long), persistent=True)
        self.register_buffer("hist_rating", torch.zeros(0), persistent=True)
        self.register_buffer("item_prior", torch.zeros(n_items), persistent=True)
        self.register_buffer("calib", torch.tensor([1.0, 0.0]), persistent=True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the histories' length is the number of training ratings: take the checkpoint's
        for name in self._VARIABLE:
            t = state_dict.get(prefix + name)
            mine = getattr(self, name)
            if t is not None and t.shape != mine.shape:
                setattr(self, name, torch.zeros(t.shape, dtype=mine.dtype, device=mine.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ fitting
    def fit(self, train: np.ndarray) -> None:
        """Similarities, histories and calibration from labelled training rows."""
        train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
        if len(train) and (train[:, 1].min() < 0 or train[:, 1].max() >= self.n_items
                           or train[:, 0].min() < 0 or train[:, 0].max() >= self.n_users):
            raise ValueError("training rows hold user or item ids out of range")
        cfg = self.config
        a, b = 1.0, 0.0
        if cfg.calibrate and len(train) >= 2:
            # cross-fitting: scores of held-out rows from a model fitted without them
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
            held = np.random.default_rng(seed).random(len(train)) < cfg.calib_holdout
            if held.any() and not held.all():
                self._fit_tables(train[~held])
                rows = train[held]
                s = self.raw_score(torch.from_numpy(rows[:, 0]), torch.from_numpy(rows[:, 1]))
                a, b = fit_platt(s.double().cpu().numpy(), rows[:, 2] == 1)
        self._fit_tables(train)
        self.calib.copy_(torch.tensor([a, b]))

    def _fit_tables(self, train: np.ndarray) -> None:
        keys, rating = _ratings(train, self.n_items)
        index, value = item_similarities(keys, rating, self.n_users, self.n_items, self.config)
        self.nbr_index.copy_(torch.from_numpy(index))
        self.nbr_value.copy_(torch.from_numpy(value).float())
        self.hist_key = torch.from_numpy(keys).to(self.nbr_index.device)
        self.hist_rating = torch.from_numpy(rating).float().to(self.nbr_index.device)
        counts = np.bincount(train[train[:, 2] == 1, 1], minlength=self.n_items)
        self.item_prior.copy_(torch.from_numpy(np.log1p(counts)).float())

    def tasks(self, data: TrainData) -> list[Task]:
        self.fit(data.train_rows())
        return []

    # ------------------------------------------------------------------ scores
    @torch.no_grad()
    def cf_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``s(u, i)`` of the module docstring for aligned pairs (no calibration)."""
        if len(self.hist_key) == 0:
            return torch.zeros(len(users), device=self.nbr_value.device)
        step = max(1, self._CHUNK // self.nbr_index.shape[1])
        return torch.cat([self._cf_score(users[a:a + step], items[a:a + step])
                          for a in range(0, len(users), step)] or [torch.zeros(0)])

    def _cf_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        nbr, val = self.nbr_index[items], self.nbr_value[items]  # (b, k)
        query = users[:, None] * self.n_items + nbr
        pos = torch.searchsorted(self.hist_key, query).clamp_(max=len(self.hist_key) - 1)
        found = (self.hist_key[pos] == query) & (val != 0)
        r = torch.where(found, self.hist_rating[pos], torch.zeros((), device=val.device))
        num = (val * r).sum(-1)
        den = (val.abs() * found).sum(-1)
        return num / (den + self.config.eps)

    def raw_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``s(u, i) + pop_weight * log(1 + n_i)`` (before calibration)."""
        s = self.cf_score(users, items)
        w = self.config.pop_weight
        return s + w * self.item_prior[items] if w else s

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.calib[0] * self.raw_score(users, items) + self.calib[1]

    def _history_block(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse ``(len(users), n_items)`` ratings and rated-indicator of a block of users."""
        n, dev = self.n_items, self.hist_key.device
        lo = torch.searchsorted(self.hist_key, users * n)
        hi = torch.searchsorted(self.hist_key, (users + 1) * n)
        lens = hi - lo
        row = torch.repeat_interleave(torch.arange(len(users), device=dev), lens)
        start = torch.repeat_interleave(lo - (torch.cumsum(lens, 0) - lens), lens)
        pos = torch.arange(int(lens.sum()), device=dev) + start
        idx = torch.stack([row, self.hist_key[pos] % n])
        shape = (len(users), n)
        ratings = torch.sparse_coo_tensor(idx, self.hist_rating[pos], shape,
                                          check_invariants=True).coalesce()
        rated = torch.sparse_coo_tensor(idx, torch.ones(len(pos), device=dev), shape,
                                        check_invariants=True).coalesce()
        return ratings, rated

    def _similarity_t(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``sim^T`` and ``|sim|^T`` as coalesced sparse ``(n_items, n_items)`` tensors (row
        ``j``: the items that keep ``j`` as a neighbour); cached until the tables change."""
        key = (self.nbr_index.data_ptr(), self.nbr_index._version,
               self.nbr_value.data_ptr(), self.nbr_value._version)
        cache = getattr(self, "_sim_t_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        n, k = self.nbr_index.shape
        item = torch.arange(n, device=self.nbr_index.device).repeat_interleave(k)
        val = self.nbr_value.reshape(-1)
        keep = val != 0
        idx = torch.stack([self.nbr_index.reshape(-1)[keep], item[keep]])
        sim_t = torch.sparse_coo_tensor(idx, val[keep], (n, n), check_invariants=True)
        mag_t = torch.sparse_coo_tensor(idx, val[keep].abs(), (n, n), check_invariants=True)
        out = (sim_t.coalesce(), mag_t.coalesce())
        self._sim_t_cache = (key, out)
        return out

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # sparse x sparse: the cost follows the block's ratings times k, not n_items^2
        ratings, rated = self._history_block(users)
        sim_t, mag_t = self._similarity_t()
        with warnings.catch_warnings():  # torch notes its internal use of beta CSR kernels
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            num = torch.sparse.mm(ratings, sim_t).to_dense()
            den = torch.sparse.mm(rated, mag_t).to_dense()
        s = num / (den + self.config.eps)
        if self.config.pop_weight:
            s = s + self.config.pop_weight * self.item_prior
        return self.calib[0] * s + self.calib[1]


def build(ds, cfg: ItemCFConfig) -> ItemCF:
    """Item-based CF for a :class:`~kgrec.data.Dataset` (interactions only; no KG)."""
    return ItemCF(n_users=ds.n_users, n_items=ds.n_items, config=cfg)
