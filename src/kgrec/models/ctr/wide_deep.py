"""Wide&Deep on user, item and pre-trained KG features.

Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016: the logit is the sum
of a *wide* generalised linear model (memorisation) and a *deep* MLP over dense embeddings
(generalisation), trained jointly. As the MKR paper's baseline (Wang et al., WWW'19,
Sec. 4.1) the input is the same as its LibFM's: user id, item id and the item's KG feature,
the mean pre-trained TransR vector of the item's entity and its one-hop neighbours
(:func:`kgrec.models.ctr.fm.item_kg_features`).

* wide: ``w0 + w_u + w_i + <w_x, x_i>`` (linear on the one-hot ids and the dense feature);
  with ``cross=True`` also ``<c_u, x_i>``, the cross product of the user id with the item's
  KG feature (a per-user weight vector over the feature; the user x item id cross would only
  memorise training pairs, useless for unseen test pairs).
* deep: MLP over ``[e_u; e_i; x_i]`` (``hidden`` ReLU layers, optional dropout, a linear
  output unit).

Training: Adam on binary cross-entropy for both parts (the original trains the wide part with
FTRL), L2 on the batch's embeddings and wide weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.ctr.fm import _check_kg_fields, feature_buffer, item_kg_features
from kgrec.models.layers import Dense, glorot_embedding

__all__ = ["WideDeep", "WideDeepConfig", "build"]


@dataclass
class WideDeepConfig:
    """Hyper-parameters of Wide&Deep.

    Attributes:
        dim: user and item embedding dimension of the deep part.
        hidden: sizes of the deep part's ReLU layers, e.g. ``[100, 50]`` (a string
            ``"100,50"`` from the command line is accepted).
        dropout: dropout rate on the deep part's hidden layers (training only).
        cross: add the wide cross product of the user id and the item's KG feature.
        lr: Adam learning rate.
        l2_weight: weight of the L2 term: batch mean of the squared norms of each case's user
            and item embeddings and wide weights.
        batch_size: rows per step.
        use_kg: feed the item's KG feature to both parts (False: ids only).
        kg_dim: dimension of the pre-trained TransR entity vectors.
        kge_epochs: TransR pre-training epochs (cached per graph and setting).
        kge_seed: seed of the TransR pre-training (one shared artifact for every run seed).
        standardize: z-score each KG feature column over the items.
        chunk: upper bound on ``users x items x first hidden layer`` values that
            :meth:`WideDeep.score_all` materialises at once (memory of full ranking).
    """

    dim: int = 32
    hidden: tuple[int, ...] | list[int] | str = (100, 50)
    dropout: float = 0.0
    cross: bool = False
    lr: float = 1e-3
    l2_weight: float = 1e-4
    batch_size: int = 1024
    use_kg: bool = True
    kg_dim: int = 32
    kge_epochs: int = 20
    kge_seed: int = 0
    standardize: bool = True
    chunk: int = 2**24

    def __post_init__(self) -> None:
        hidden = self.hidden
        try:
            if isinstance(hidden, str):
                hidden = [h for h in hidden.replace(" ", "").split(",") if h]
            elif isinstance(hidden, int):
                hidden = [hidden]
            self.hidden = tuple(int(h) for h in hidden)
        except (TypeError, ValueError):
            raise ValueError(f"hidden must be a list of layer sizes, got {self.hidden!r}") from None
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden layer sizes must be >= 1, got {self.hidden}")
        _check_kg_fields(self)
        if int(self.dim) < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if float(self.l2_weight) < 0:
            raise ValueError(f"l2_weight must be >= 0, got {self.l2_weight}")
        if int(self.batch_size) < 1 or int(self.chunk) < 1:
            raise ValueError("batch_size and chunk must be >= 1")
        if not isinstance(self.cross, bool):
            raise ValueError(f"cross must be true or false, got {self.cross!r}")


class WideDeep(Recommender):
    """Wide&Deep (module docstring). The KG features are the persistent buffer
    ``item_features`` ``(n_items, kg_dim)``. Construct with keyword arguments only."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        item_features: np.ndarray | None = None,
        config: WideDeepConfig | None = None,
    ):
        super().__init__()
        cfg = config or WideDeepConfig()
        self.config = cfg
        self.n_users, self.n_items = int(n_users), int(n_items)
        n_dense = int(cfg.kg_dim) if cfg.use_kg else 0
        d = int(cfg.dim)
        self.register_buffer("item_features",
                             feature_buffer(self.n_items, n_dense, item_features),
                             persistent=True)
        # wide part
        self.bias = nn.Parameter(torch.zeros(()))
        self.user_w = nn.Parameter(torch.zeros(self.n_users))
        self.item_w = nn.Parameter(torch.zeros(self.n_items))
        self.dense_w = nn.Parameter(torch.zeros(n_dense))
        self.cross_w = nn.Parameter(torch.zeros(self.n_users, n_dense if cfg.cross else 0))
        # deep part
        self.user_emb = glorot_embedding(self.n_users, d)
        self.item_emb = glorot_embedding(self.n_items, d)
        sizes = [2 * d + n_dense, *cfg.hidden]
        self.layers = nn.ModuleList(Dense(in_dim=a, out_dim=b) for a, b in pairwise(sizes))
        self.out = Dense(in_dim=sizes[-1], out_dim=1, act=None)
        self.dropout = nn.Dropout(float(cfg.dropout))

    # ------------------------------------------------------------------ scoring
    def _wide_item(self, items: torch.Tensor | None) -> torch.Tensor:
        if items is None:
            return self.item_w + self.item_features @ self.dense_w
        return self.item_w[items] + self.item_features[items] @ self.dense_w

    def _deep_tail(self, h: torch.Tensor) -> torch.Tensor:
        """Everything after the first layer's pre-activation ``h``."""
        h = self.dropout(torch.relu(h))
        for layer in self.layers[1:]:
            h = self.dropout(layer(h))
        return self.out(h).squeeze(-1)

    def _first_layer_parts(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer's pre-activation for ``users`` x all items, split into a user part
        ``(b, width)`` and an item part ``(n_items, width)`` (``W = [W_u; W_i; W_x]``, so
        ``[e_u; e_i; x_i] W + b = e_u W_u + (e_i W_i + x_i W_x + b)``)."""
        d = int(self.config.dim)
        first = self.layers[0] if len(self.layers) else self.out
        w, b = first.weight, first.bias
        user_part = F.embedding(users, self.user_emb) @ w[:d]
        item_part = torch.addmm(b, self.item_emb, w[d:2 * d]) + self.item_features @ w[2 * d:]
        return user_part, item_part

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        wide = self.bias + self.user_w[users] + self._wide_item(items)
        if self.config.cross:
            wide = wide + (self.cross_w[users] * self.item_features[items]).sum(-1)
        x = torch.cat([F.embedding(users, self.user_emb), F.embedding(items, self.item_emb),
                       self.item_features[items]], 1)
        if not len(self.layers):
            return wide + self.out(x).squeeze(-1)
        first = self.layers[0]
        return wide + self._deep_tail(torch.addmm(first.bias, x, first.weight))

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """All items for a block of users; the deep part in chunks of items so that at most
        ``config.chunk`` first-layer values exist at once."""
        wide = (self.bias + self.user_w[users]).unsqueeze(1) + self._wide_item(None)
        if self.config.cross:
            wide = wide + self.cross_w[users] @ self.item_features.T
        user_part, item_part = self._first_layer_parts(users)
        if not len(self.layers):  # no hidden layer: the deep part is linear
            return wide + user_part + item_part.squeeze(-1)
        width = user_part.shape[1]
        step = max(1, int(self.config.chunk) // max(len(users) * width, 1))
        out = torch.empty(len(users), self.n_items, dtype=wide.dtype, device=wide.device)
        for start in range(0, self.n_items, step):
            sl = slice(start, min(start + step, self.n_items))
            h = user_part.unsqueeze(1) + item_part[sl].unsqueeze(0)  # (b, chunk, width)
            out[:, sl] = self._deep_tail(h.reshape(-1, width)).view(len(users), -1)
        return out + wide

    # ------------------------------------------------------------------ training
    def l2_penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Batch mean of the squared norms of each case's embeddings and wide weights."""
        per_case = (F.embedding(users, self.user_emb).pow(2).sum(-1)
                    + F.embedding(items, self.item_emb).pow(2).sum(-1)
                    + self.user_w[users].pow(2) + self.item_w[items].pow(2))
        if self.config.cross:
            per_case = per_case + self.cross_w[users].pow(2).sum(-1)
        return per_case.mean()

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


def build(ds, cfg: WideDeepConfig, inputs: dict | None = None) -> WideDeep:
    """Wide&Deep for a :class:`~kgrec.data.Dataset` and its pre-trained item KG features
    (``inputs``, see :func:`kgrec.models.ctr.fm.item_kg_features`)."""
    return WideDeep(n_users=ds.n_users, n_items=ds.n_items,
                    item_features=item_kg_features(ds, cfg, inputs), config=cfg)
