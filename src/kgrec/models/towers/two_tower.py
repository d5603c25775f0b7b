"""Two-tower retrieval with in-batch softmax, log-Q correction and self-supervised item-tower
learning (Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM'21; Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations", RecSys'19).

* **Towers.** Each tower embeds its categorical fields (one shared table, a field's vector is
  the mean of its values' embeddings), concatenates them and maps them through an MLP to an
  L2-normalised vector. Item fields: ``item_id`` plus the dataset's item fields (genres, year,
  title tokens, Amazon attributes) and one field per KG relation (the tails of the item
  entity's triples: director, actor, genre ...), see
  :func:`kgrec.data.features.tower_features`. User fields: ``user_id``, demographics where
  the data has them, and the mean of the embeddings of the user's last ``history`` items
  (the ``item_id`` rows of the item tower's table). Score: ``cos(u, v) / temperature``.
* **Main loss.** In-batch softmax over the batch's (user, clicked item) pairs: every other
  pair's item is a negative. **Log-Q**: ``log p_j`` (the item's share of the clicks, or the
  streaming estimate of :class:`~kgrec.models.losses.StreamingFrequency` with
  ``logq_estimate="stream"``) is subtracted from every logit of item ``j``; accidental hits
  (the row's own item as another pair's positive) are removed.
* **Self-supervised loss** (item tower only): ``ssl_batch_size`` items drawn uniformly from
  the catalogue, two augmented views each (:mod:`kgrec.models.towers.augment`: ``mask``,
  ``complement``, ``dropout``, ``mi``), InfoNCE between the views. Loss = main + ``alpha`` x
  self-supervised, one optimizer step.
* **Cold items.** An item without a training click has no trained id: its ``item_id`` field is
  left empty, so only its content places it (the self-supervised task, which masks fields
  including the id, is what teaches the tower to work from part of its fields).

Training pairs are every training event, the user's ``history`` items before it as the
history (none for a user's first event), so the user tower never sees the target among its
inputs. At query time the history is the query's (``score_queries``), or the user's last
training items (``score``, ``score_all``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Task, TrainData, VectorRecommender
from kgrec.models.losses import StreamingFrequency, in_batch_logits, info_nce
from kgrec.models.towers.augment import AUGMENTATIONS, augment_views, mi_groups

__all__ = ["FieldTower", "TwoTower", "TwoTowerConfig", "build"]


@dataclass
class TwoTowerConfig:
    """dim: output vectors; field_dim: per-field embeddings; hidden: the towers' hidden layer
    (0: linear); temperature: of the main softmax; logq: log-Q correction; logq_estimate:
    ``count`` (exact click shares) or ``stream`` (Yi et al.'s streaming estimate, over
    ``logq_buckets`` hash buckets, 0: one per item, with moving-average rate ``logq_alpha``);
    remove_accidental: mask accidental hits; ssl: augmentation of the self-supervised task
    (``none`` switches it off); alpha: its weight; ssl_batch_size: items per step drawn
    uniformly; ssl_temperature: of its InfoNCE; drop_rate: value dropout's probability; kg:
    add the KG relation fields; history: items of history in the user tower (0: none);
    max_values: values kept per multi-valued field; min_coverage: drop fields fewer items
    hold; min_value_items: drop item values (a KG tail, a title word) fewer items hold; lr,
    l2_weight, batch_size: Adam, its weight decay, pairs per step (the in-batch negatives)."""

    dim: int = 64
    field_dim: int = 32
    hidden: int = 256
    temperature: float = 0.05
    logq: bool = True
    logq_estimate: str = "count"
    logq_buckets: int = 0
    logq_alpha: float = 0.01
    remove_accidental: bool = True
    ssl: str = "complement"
    alpha: float = 0.1
    ssl_batch_size: int = 512
    ssl_temperature: float = 0.1
    drop_rate: float = 0.5
    kg: bool = True
    history: int = 20
    max_values: int = 16
    min_coverage: float = 0.01
    min_value_items: int = 1
    lr: float = 1e-3
    l2_weight: float = 0.0
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.ssl not in AUGMENTATIONS:
            raise ValueError(f"ssl must be one of {', '.join(AUGMENTATIONS)}, got {self.ssl!r}")
        if self.logq_estimate not in ("count", "stream"):
            raise ValueError(f"logq_estimate must be 'count' or 'stream', got "
                             f"{self.logq_estimate!r}")
        if self.alpha < 0 or self.temperature <= 0 or self.ssl_temperature <= 0:
            raise ValueError("alpha must be >= 0 and the temperatures > 0")
        if not 0 <= self.drop_rate < 1 or not 0 <= self.min_coverage <= 1:
            raise ValueError("drop_rate must be in [0, 1) and min_coverage in [0, 1]")
        if self.hidden < 0 or self.history < 0 or self.logq_buckets < 0:
            raise ValueError("hidden, history and logq_buckets must be >= 0")
        if self.min_value_items < 1:
            raise ValueError(f"min_value_items must be >= 1, got {self.min_value_items}")
        if not 0 < self.logq_alpha <= 1:
            raise ValueError(f"logq_alpha must be in (0, 1], got {self.logq_alpha}")


class FieldTower(nn.Module):
    """Embedded categorical fields -> MLP -> L2-normalised vector.

    ``values`` ``(b, T)`` hold global value ids (``-1``: padding) whose column ``t`` belongs
    to field ``column_field[t]``; a field's vector is the mean of its values' embeddings
    (zero when it has none, or when it is masked).
    """

    def __init__(self, *, n_values: int, column_field: torch.Tensor, n_fields: int,
                 field_dim: int, hidden: int, dim: int, extra: int = 0):
        super().__init__()
        self.n_fields = int(n_fields)
        self.emb = nn.Embedding(int(n_values) + 1, field_dim, padding_idx=0)
        nn.init.normal_(self.emb.weight, std=0.1)
        with torch.no_grad():
            self.emb.weight[0].zero_()
        self.register_buffer("column_field", column_field.long())
        # first column of each field (a field's columns are contiguous)
        self.register_buffer("field_start", torch.searchsorted(
            self.column_field, torch.arange(self.n_fields)), persistent=False)
        d_in = self.n_fields * field_dim + extra
        self.mlp = (nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))
                    if hidden else nn.Linear(d_in, dim))

    def fields(self, values: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """``(b, k, field_dim)`` per-field mean embeddings (``drop``: values left out): one
        ``embedding_bag`` whose bags are the (row, field) spans of columns."""
        ids = values + 1
        if drop is not None:
            ids = ids.masked_fill(drop, 0)
        b, width = ids.shape
        offsets = (torch.arange(b, device=ids.device)[:, None] * width
                   + self.field_start[None, :]).reshape(-1)
        out = F.embedding_bag(ids.reshape(-1), self.emb.weight, offsets, mode="mean",
                              padding_idx=0)
        return out.view(b, self.n_fields, -1)

    def forward(self, values: torch.Tensor, *, field_mask: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, extra: torch.Tensor | None = None
                ) -> torch.Tensor:
        f = self.fields(values, drop)
        if field_mask is not None:
            f = f * (~field_mask).unsqueeze(-1).to(f.dtype)
        x = f.flatten(1)
        if extra is not None:
            x = torch.cat([x, extra], dim=1)
        return F.normalize(self.mlp(x), dim=-1)


class TwoTower(VectorRecommender):
    """The two-tower model (see the module docstring). Keyword-only constructor; the field
    arrays come from :func:`build` (or a checkpoint)."""

    def __init__(self, *, n_users: int, n_items: int, config: TwoTowerConfig,
                 item_values: np.ndarray, item_columns: np.ndarray, item_multi: np.ndarray,
                 n_item_values: int, user_values: np.ndarray, user_columns: np.ndarray,
                 n_user_values: int, mi_groups: np.ndarray,
                 item_fields: list[str] | None = None, user_fields: list[str] | None = None):
        super().__init__()
        self.n_users, self.n_items, self.config = int(n_users), int(n_items), config
        cfg = config
        k_item = int(item_columns.max()) + 1
        k_user = int(user_columns.max()) + 1
        self.item_fields = item_fields or [f"field{k}" for k in range(k_item)]
        self.user_fields = user_fields or [f"field{k}" for k in range(k_user)]
        self.register_buffer("item_values", torch.as_tensor(item_values, dtype=torch.long))
        self.register_buffer("user_values", torch.as_tensor(user_values, dtype=torch.long))
        self.register_buffer("item_multi", torch.as_tensor(item_multi, dtype=torch.bool))
        self.register_buffer("mi_groups", torch.as_tensor(mi_groups, dtype=torch.bool))
        self.register_buffer("n_values", torch.tensor([n_item_values, n_user_values]))
        cols = torch.as_tensor(item_columns, dtype=torch.long)
        self.item_tower = FieldTower(n_values=n_item_values, column_field=cols,
                                     n_fields=k_item, field_dim=cfg.field_dim,
                                     hidden=cfg.hidden, dim=cfg.dim)
        self.user_tower = FieldTower(
            n_values=n_user_values, column_field=torch.as_tensor(user_columns, dtype=torch.long),
            n_fields=k_user, field_dim=cfg.field_dim, hidden=cfg.hidden, dim=cfg.dim,
            extra=cfg.field_dim if cfg.history else 0)
        # log p of each item's share of the training clicks (log-Q, exact counts)
        self.register_buffer("log_p", torch.zeros(self.n_items))
        self.register_buffer("user_history",
                             torch.full((self.n_users, max(1, cfg.history)), -1,
                                        dtype=torch.long))
        self.freq = StreamingFrequency(cfg.logq_buckets or self.n_items, alpha=cfg.logq_alpha,
                                       initial_gap=max(1.0, self.n_items / cfg.batch_size))

    # ------------------------------------------------------------------ towers
    def item_embed(self, items: torch.Tensor, *, field_mask: torch.Tensor | None = None,
                   drop: torch.Tensor | None = None) -> torch.Tensor:
        """``(b, dim)`` unit vectors of ``items``."""
        return self.item_tower(self.item_values[items], field_mask=field_mask, drop=drop)

    def history_mean(self, history: torch.Tensor) -> torch.Tensor:
        """Mean ``item_id`` embedding of ``-1``-padded histories ``(b, L)`` (zero if empty).
        The id is column 0 of the item values (``item_id`` is the first field); an item without
        a trained id (cold) contributes nothing."""
        ids = torch.where(history >= 0, self.item_values[history.clamp(min=0), 0] + 1, 0)
        e = self.item_tower.emb(ids)
        n = (ids > 0).sum(1, keepdim=True).clamp(min=1)
        return e.sum(1) / n

    def user_embed(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """``(b, dim)`` unit vectors of users with their histories (oldest first, right
        aligned, ``-1`` padded; the last ``history`` items are used)."""
        extra = None
        if self.config.history:
            extra = self.history_mean(history[:, -self.config.history:])
        return self.user_tower(self.user_values[users], extra=extra)

    # ------------------------------------------------------------------ scoring
    def item_vectors(self) -> torch.Tensor:
        out = [self.item_embed(torch.arange(s, min(s + 8192, self.n_items),
                                            device=self.item_values.device))
               for s in range(0, self.n_items, 8192)]
        return torch.cat(out)

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.user_embed(users, history) / self.config.temperature

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_embed(items)

    # ------------------------------------------------------------------ training
    def _loss(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        users, history, target = rows[:, 0], rows[:, 1:-1], rows[:, -1]
        u = self.user_embed(users, history)
        v = self.item_embed(target)
        log_q = None
        if cfg.logq:
            if cfg.logq_estimate == "stream":
                if self.training:
                    self.freq.update(target)
                log_q = self.freq.log_q(target)
            else:
                log_q = self.log_p[target]
        logits = in_batch_logits(u, v, target, temperature=cfg.temperature, log_q=log_q,
                                 remove_accidental=cfg.remove_accidental)
        out = {"main": F.cross_entropy(logits, torch.arange(len(rows), device=rows.device))}
        if cfg.ssl != "none" and cfg.alpha > 0:
            out["ssl"] = cfg.alpha * self.ssl_loss(rows.device)
        return out

    def ssl_loss(self, device: torch.device | str) -> torch.Tensor:
        """InfoNCE between two augmented views of ``ssl_batch_size`` items drawn uniformly."""
        cfg = self.config
        m = int(cfg.ssl_batch_size)
        ids = torch.randint(0, self.n_items, (m,), generator=self._rng)
        k = int(self.item_tower.n_fields)
        multi = torch.from_numpy(self._multi_columns)
        f1, f2, d1, d2 = augment_views(cfg.ssl, m, k, multi_columns=multi,
                                       groups=self.mi_groups.cpu(), rate=cfg.drop_rate,
                                       generator=self._rng)
        ids = ids.to(device)

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        z1 = self.item_embed(ids, field_mask=move(f1), drop=move(d1))
        z2 = self.item_embed(ids, field_mask=move(f2), drop=move(d2))
        return info_nce(z1, z2, temperature=cfg.ssl_temperature, ids=ids)

    def tasks(self, data: TrainData) -> list[Task]:
        from kgrec.models.sequential.base import next_item_rows, remember_histories

        cfg = self.config
        indptr, items = remember_histories(self, data)
        width = max(1, cfg.history)
        hist = next_item_rows(indptr, items, width, first=True)
        users = np.repeat(np.arange(self.n_users), np.diff(indptr))
        rows = np.concatenate([users[:, None], hist], axis=1)
        if len(rows) == 0:
            raise ValueError("two-tower: no training clicks")
        counts = np.bincount(items, minlength=self.n_items)
        with torch.no_grad():
            self.log_p.copy_(torch.from_numpy(np.log(np.maximum(counts, 1) / len(items))))
            cold = torch.from_numpy(counts == 0).to(self.item_values.device)
            self.item_values[:, 0] = torch.where(cold, -1, self.item_values[:, 0])
        # value columns of multi-valued fields (value dropout), on the CPU like the generator
        self._multi_columns = (self.item_multi.cpu()[self.item_tower.column_field.cpu()]
                               .numpy())
        self._rng = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        decay = [p for n, p in self.named_parameters() if not n.endswith("bias")]
        rest = [p for n, p in self.named_parameters() if n.endswith("bias")]
        return [Task(name="rec", source=lambda epoch: rows, loss=self._loss,
                     params=[{"params": decay, "weight_decay": cfg.l2_weight},
                             {"params": rest, "weight_decay": 0.0}],
                     lr=cfg.lr, batch_size=cfg.batch_size, rng=self._rng)]


def build(ds, cfg: TwoTowerConfig, inputs: dict[str, np.ndarray] | None = None) -> TwoTower:
    """The model for dataset ``ds``; a loaded run passes its checkpoint's buffers as
    ``inputs`` (the field arrays), so no raw data is read."""
    pre = inputs or {}
    if "item_values" in pre:
        n_item_values, n_user_values = (int(x) for x in pre["n_values"])
        return TwoTower(
            n_users=ds.n_users, n_items=ds.n_items, config=cfg,
            item_values=pre["item_values"], item_columns=pre["item_tower.column_field"],
            item_multi=pre["item_multi"], n_item_values=n_item_values,
            user_values=pre["user_values"], user_columns=pre["user_tower.column_field"],
            n_user_values=n_user_values, mi_groups=pre["mi_groups"])
    from kgrec.data.features import field_mutual_information, tower_features

    items, users = tower_features(ds, kg=cfg.kg, min_coverage=cfg.min_coverage,
                                  min_value_items=cfg.min_value_items)
    item_values, item_columns, item_sizes = items.stacked(cfg.max_values)
    user_values, user_columns, user_sizes = users.stacked(cfg.max_values)
    k = len(items)
    groups = (mi_groups(field_mutual_information(items)) if cfg.ssl == "mi"
              else np.zeros((k, k), dtype=bool))
    return TwoTower(
        n_users=ds.n_users, n_items=ds.n_items, config=cfg, item_values=item_values,
        item_columns=item_columns,
        item_multi=np.asarray([items.field(f).multi for f in items.fields]),
        n_item_values=int(item_sizes.sum()), user_values=user_values,
        user_columns=user_columns, n_user_values=int(user_sizes.sum()), mi_groups=groups,
        item_fields=list(items.fields), user_fields=list(users.fields))
