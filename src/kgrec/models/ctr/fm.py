"""LibFM-style factorization machine on user, item and pre-trained KG features.

Factorization machines: Rendle, "Factorization Machines with libFM", ACM TIST 3(3), 2012.
Setting of the MKR paper's LibFM baseline (Wang et al., WWW'19, Sec. 4.1): the input of a
``(user, item)`` case is the user's one-hot id, the item's one-hot id and the item's KG
feature, the average of the pre-trained TransR embeddings of the item's entity and its
one-hop neighbours (:func:`kgrec.pretrain.neighbour_mean`). For a feature vector
``z`` the FM (degree 2) predicts::

    y(z) = w0 + sum_j w_j z_j + sum_{j<l} <v_j, v_l> z_j z_l

Here ``z`` holds two ones (user, item) and the ``kg_dim`` dense values ``x_i``, so
``y = w0 + w_u + w_i + <w_x, x_i> + pairwise``, the pairwise term computed in O(k n) with
Rendle's identity ``sum_{j<l} <v_j, v_l> z_j z_l = 1/2 sum_f [(sum_j v_jf z_j)^2 -
sum_j v_jf^2 z_j^2]``. For full ranking it decomposes into a user-item matrix product plus
per-item terms (:meth:`FM.score_all`).

Training differs from libFM's SGD/ALS/MCMC solvers: Adam on binary cross-entropy (the CTR
setting of the MKR table) with libFM's per-case L2 (every case regularises the parameters of
the features it contains).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData

__all__ = ["FM", "FMConfig", "build", "item_kg_features", "pairwise_interactions"]

#: standard deviation of the normal initialisation of the factors (libFM's ``init_stdev``
#: is 0.1; a smaller start keeps the initial pairwise terms near zero for any ``kg_dim``).
INIT_STD = 0.01


@dataclass
class FMConfig:
    """Hyper-parameters of the FM.

    Attributes:
        dim: factor dimension ``k`` of the pairwise interactions (libFM's ``-dim 1,1,k``).
        lr: Adam learning rate.
        l2_weight: L2 weight: each training case adds ``l2_weight`` times the squared norm of
            the parameters of its features (user and item bias and factors; ``w_x`` and
            ``V_x`` of the dense KG features), averaged over the batch.
        batch_size: rows per step.
        use_kg: feed the item's KG feature (False: an FM on the user and item ids only, i.e.
            biased MF).
        kg_dim: dimension of the pre-trained TransR entity vectors (the dense features).
        kge_epochs: TransR pre-training epochs (the vectors are cached per graph and setting).
        kge_seed: seed of the TransR pre-training (fixed: one pre-trained artifact is shared by
            the runs of every seed, as a sequential pipeline would).
        standardize: z-score each dense feature column over the items (TransR's neighbour
            means are small, about ``1/sqrt(kg_dim)``; standardising puts them on the scale
            of the one-hot features).
    """

    dim: int = 8
    lr: float = 1e-2
    l2_weight: float = 1e-4
    batch_size: int = 1024
    use_kg: bool = True
    kg_dim: int = 32
    kge_epochs: int = 20
    kge_seed: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        _check_kg_fields(self)
        if int(self.dim) < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if float(self.l2_weight) < 0:
            raise ValueError(f"l2_weight must be >= 0, got {self.l2_weight}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _check_kg_fields(cfg) -> None:
    """Shared checks of the pre-trained KG feature fields (FM and Wide&Deep)."""
    if int(cfg.kg_dim) < 1:
        raise ValueError(f"kg_dim must be >= 1, got {cfg.kg_dim}")
    if int(cfg.kge_epochs) < 1:
        raise ValueError(f"kge_epochs must be >= 1, got {cfg.kge_epochs}")
    if not isinstance(cfg.use_kg, bool):
        raise ValueError(f"use_kg must be true or false, got {cfg.use_kg!r}")


def item_kg_features(ds, cfg, inputs: dict | None) -> np.ndarray:
    """``(n_items, kg_dim)`` item KG features from ``inputs["item_features"]`` (computed
    above the model by :func:`kgrec.pretrain.item_kg_features`, or a loaded checkpoint's);
    ``(n_items, 0)`` when ``cfg.use_kg`` is False."""
    if not cfg.use_kg:
        return np.zeros((ds.n_items, 0), np.float32)
    if not inputs or inputs.get("item_features") is None:
        raise ValueError("this model takes pre-trained item KG features as "
                         "inputs['item_features']: build it with kgrec.pretrain.build_model "
                         "(as `kgrec train` does)")
    return np.asarray(inputs["item_features"], np.float32)


def pairwise_interactions(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``sum_{j<l} <v_j, v_l> z_j z_l`` per case by the sum-square identity.

    Args:
        v: ``(b, n, k)`` factors of each case's ``n`` features (or ``(n, k)`` shared).
        z: ``(b, n)`` feature values.

    Returns:
        ``(b,)``.
    """
    vz = v * z.unsqueeze(-1)
    return 0.5 * (vz.sum(-2).pow(2) - vz.pow(2).sum(-2)).sum(-1)


def feature_buffer(n_items: int, n_dense: int, item_features: np.ndarray | None) -> torch.Tensor:
    """The ``(n_items, n_dense)`` item-feature buffer: zeros until features are given (a
    checkpoint fills it), else a float32 copy of ``item_features`` of exactly that shape."""
    feats = torch.zeros(n_items, n_dense)
    if item_features is None:
        return feats
    x = torch.as_tensor(np.asarray(item_features), dtype=torch.float32)
    if x.shape != feats.shape:
        raise ValueError(f"item_features must have shape {tuple(feats.shape)}, got "
                         f"{tuple(x.shape)}")
    return x.clone()


class FM(Recommender):
    """Degree-2 FM over ``[one-hot user; one-hot item; item KG feature]`` (module docstring).

    The KG features are a persistent buffer ``item_features`` ``(n_items, kg_dim)`` (zeros
    until given), so a checkpoint restores them. Construct with keyword arguments only.
    """

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        item_features: np.ndarray | None = None,
        config: FMConfig | None = None,
    ):
        super().__init__()
        cfg = config or FMConfig()
        self.config = cfg
        self.n_users, self.n_items = int(n_users), int(n_items)
        n_dense = int(cfg.kg_dim) if cfg.use_kg else 0
        k = int(cfg.dim)
        self.register_buffer("item_features",
                             feature_buffer(self.n_items, n_dense, item_features),
                             persistent=True)
        self.bias = nn.Parameter(torch.zeros(()))  # w0
        self.user_w = nn.Parameter(torch.zeros(self.n_users))
        self.item_w = nn.Parameter(torch.zeros(self.n_items))
        self.dense_w = nn.Parameter(torch.zeros(n_dense))
        self.user_v = nn.Parameter(torch.randn(self.n_users, k) * INIT_STD)
        self.item_v = nn.Parameter(torch.randn(self.n_items, k) * INIT_STD)
        self.dense_v = nn.Parameter(torch.randn(n_dense, k) * INIT_STD)

    # ------------------------------------------------------------------ scoring
    def _item_side(self, items: torch.Tensor | None = None):
        """Per item: the linear term ``w_i + <w_x, x_i>``, the factor sum
        ``a_i = v_i + sum_j x_ij v_j`` and the item-only pairwise term
        ``1/2 (||a_i||^2 - ||v_i||^2 - sum_j x_ij^2 ||v_j||^2)``."""
        if items is None:
            w, v, x = self.item_w, self.item_v, self.item_features
        else:
            w, v, x = self.item_w[items], F.embedding(items, self.item_v), self.item_features[items]
        lin = w + x @ self.dense_w
        a = v + x @ self.dense_v
        self_sq = v.pow(2).sum(-1) + x.pow(2) @ self.dense_v.pow(2).sum(-1)
        return lin, a, 0.5 * (a.pow(2).sum(-1) - self_sq)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        lin, a, pair_i = self._item_side(items)
        u = F.embedding(users, self.user_v)
        # pairwise over {user} + item features = <v_u, a_i> + item-only pairs
        return self.bias + self.user_w[users] + lin + pair_i + (u * a).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        lin, a, pair_i = self._item_side()
        item_part = lin + pair_i
        out = torch.addmm(item_part.unsqueeze(0).expand(len(users), -1),
                          F.embedding(users, self.user_v), a.T)
        return out + (self.bias + self.user_w[users]).unsqueeze(1)

    def brute_force_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The FM formula over the explicit feature vector (for tests): O(k n^2) per case."""
        b = len(users)
        x = self.item_features[items]
        z = torch.cat([torch.ones(b, 2), x], 1)
        v = torch.cat([self.user_v[users].unsqueeze(1), self.item_v[items].unsqueeze(1),
                       self.dense_v.unsqueeze(0).expand(b, -1, -1)], 1)
        n = z.shape[1]
        out = self.bias + self.user_w[users] + self.item_w[items] + x @ self.dense_w
        for j in range(n):
            for m in range(j + 1, n):
                out = out + (v[:, j] * v[:, m]).sum(-1) * z[:, j] * z[:, m]
        return out

    # ------------------------------------------------------------------ training
    def l2_penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Batch mean of each case's squared parameter norm (libFM's per-case L2)."""
        per_case = (self.user_w[users].pow(2) + self.item_w[items].pow(2)
                    + F.embedding(users, self.user_v).pow(2).sum(-1)
                    + F.embedding(items, self.item_v).pow(2).sum(-1)).mean()
        return per_case + self.dense_w.pow(2).sum() + self.dense_v.pow(2).sum()

    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BCE on the labelled rows ``(user, item, label)`` + ``l2_weight`` * L2."""
        users, items = batch[:, 0], batch[:, 1]
        loss = F.binary_cross_entropy_with_logits(self.score(users, items), batch[:, 2].float())
        if self.config.l2_weight:
            loss = loss + self.config.l2_weight * self.l2_penalty(users, items)
        return loss

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        return [Task(name="rec", source=data.rec_rows, loss=self.rec_loss,
                     params=list(self.parameters()), lr=float(cfg.lr),
                     batch_size=int(cfg.batch_size))]


def build(ds, cfg: FMConfig, inputs: dict | None = None) -> FM:
    """An FM for a :class:`~kgrec.data.Dataset` and its pre-trained item KG features
    (``inputs``, see :func:`item_kg_features`)."""
    return FM(n_users=ds.n_users, n_items=ds.n_items,
              item_features=item_kg_features(ds, cfg, inputs), config=cfg)

