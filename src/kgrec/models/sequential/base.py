"""What every sequential-recall model shares: item embeddings, training examples cut from the
users' chronological sequences, a softmax over items, scoring from a history.

A model encodes a history (item ids, oldest first, right-aligned, left-padded with ``-1``)
into one user vector ``(b, d)`` or ``K`` interest vectors ``(b, K, d)``; an item's score is the
inner product with its embedding (the largest over interests for multi-interest models, which
is exactly what ComiRec's "each interest retrieves its top-N, merge by score" ranks). Users
are never looked up by id: a user unseen in training is served from its history alone.

Training examples, from :attr:`~kgrec.models.base.TrainData.sequences` (or, where a protocol
has none, each user's training positives in row order):

* ``seq2seq`` (GRU4Rec, SASRec): one row per user, the last ``max_len + 1`` items; every
  position predicts the next item (Kang & McAuley, ICDM'18; Hidasi et al., ICLR'16).
* ``next`` (YouTubeDNN, MIND, ComiRec): one row per training event after a user's first,
  ``(the max_len items before it, the item)`` (Covington et al., RecSys'16; Cen et al.,
  KDD'20, who sample one such position per user and step).

The loss is the cross-entropy of the target against all items (``loss="full"``), or a sampled
softmax over ``n_neg`` uniformly drawn items shared by the batch, accidental hits removed
(``loss="sampled"``, for catalogues too large for a full softmax; with uniform sampling the
log-Q correction is a constant and drops out).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData

__all__ = ["SequentialConfig", "SequentialRecommender", "bucketed_batches", "dynamic_routing",
           "hard_readout", "label_aware_attention", "last_windows", "next_item_rows",
           "remember_histories", "sequences_from", "squash"]


@dataclass
class SequentialConfig:
    """dim: embedding size; max_len: items of history the encoder sees; lr: Adam learning
    rate; l2_weight: L2 as Adam weight decay; batch_size: rows per step; dropout: dropout rate;
    loss: ``full`` softmax or ``sampled``; n_neg: shared negatives of the sampled softmax."""

    dim: int = 64
    max_len: int = 50
    lr: float = 1e-3
    l2_weight: float = 0.0
    batch_size: int = 256
    dropout: float = 0.2
    loss: str = "full"
    n_neg: int = 1000

    def __post_init__(self) -> None:
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"loss must be 'full' or 'sampled', got {self.loss!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sequences_from(data: TrainData) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, items)`` CSR of each user's training items, oldest first: the protocol's
    sequences, or the positives of the training rows in their order."""
    if data.sequences is not None:
        indptr, items = data.sequences
        return np.asarray(indptr, np.int64), np.asarray(items, np.int64)
    rows = data.train_rows()
    pos = rows[rows[:, 2] == 1]
    order = np.argsort(pos[:, 0], kind="stable")
    counts = np.bincount(pos[:, 0], minlength=data.n_users)
    indptr = np.zeros(data.n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, pos[order, 1].astype(np.int64)


def remember_histories(model: Recommender, data: TrainData
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The training sequences (:func:`sequences_from`), after checking they cover the model's
    users and copying each user's last items into ``model.user_history`` (its width)."""
    indptr, items = sequences_from(data)
    if len(indptr) - 1 != model.n_users:
        raise ValueError(f"sequences cover {len(indptr) - 1} users, the model {model.n_users}")
    width = model.user_history.shape[1]
    with torch.no_grad():
        model.user_history.copy_(torch.from_numpy(last_windows(indptr, items, width)))
    return indptr, items


def last_windows(indptr: np.ndarray, items: np.ndarray, width: int,
                 users: np.ndarray | None = None) -> np.ndarray:
    """``(len(users), width)`` the last ``width`` items of each user's sequence, right-aligned,
    left-padded with ``-1`` (all users by default)."""
    users = np.arange(len(indptr) - 1) if users is None else np.asarray(users, np.int64)
    ends = indptr[users + 1]
    lens = np.minimum(ends - indptr[users], width)
    out = np.full((len(users), width), -1, np.int64)
    row = np.repeat(np.arange(len(users)), lens)
    j = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    out[row, width - lens[row] + j] = items[ends[row] - lens[row] + j]
    return out


def next_item_rows(indptr: np.ndarray, items: np.ndarray, max_len: int, *,
                   first: bool = False) -> np.ndarray:
    """``(n, max_len + 1)`` rows ``(history..., target)``: every event but each user's first
    (with ``first``: every event, in ``items`` order; a first event's history is empty), with
    the ``max_len`` items before it (same user only), left-padded with ``-1``."""
    n_users = len(indptr) - 1
    user = np.repeat(np.arange(n_users), np.diff(indptr))
    start = indptr[user]
    idx = np.arange(len(items))
    if not first:
        idx = np.flatnonzero(idx > start)  # events with something before them
    offs = idx[:, None] - max_len + np.arange(max_len)[None, :]
    valid = offs >= start[idx][:, None]
    hist = np.where(valid, items[np.maximum(offs, 0)], -1)
    return np.concatenate([hist, items[idx][:, None]], axis=1).astype(np.int64)


def bucketed_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int, *,
                     chunk: int = 64) -> Iterator[torch.Tensor]:
    """Batches of ``rows`` in random order where each batch holds rows of similar length.

    The rows are shuffled (torch's global generator, so a seeded run and a resumed one see the
    same order), cut into chunks of ``chunk`` batches, sorted by length within a chunk and cut
    into batches, which are yielded in random order. Every row once per epoch; a batch is then
    only as wide as its longest history (:meth:`SequentialRecommender.embed` crops the rest),
    which on Amazon data (mean history ~9, window 50) makes attention and recurrence several
    times cheaper.
    """
    perm = torch.randperm(len(rows)).numpy()
    step = batch_size * chunk
    for start in range(0, len(perm), step):
        idx = perm[start:start + step]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        for j in torch.randperm(len(batches)).tolist():
            yield torch.from_numpy(rows[batches[j]])


class SequentialRecommender(Recommender):
    """Base of the history encoders. Subclasses implement :meth:`encode` (and, for
    ``seq2seq`` training, :meth:`encode_positions`; for multi-interest models,
    :meth:`train_vectors`).

    Item ``i`` is row ``i + 1`` of :attr:`item_emb` (row 0 is the padding of ``-1``).
    ``user_history`` (a buffer) holds each training user's last ``max_len`` items, for
    scoring by user id (``score``, ``score_all``: the CTR protocol, ``recommend``).
    """

    uses_history = True
    #: training examples: ``seq2seq`` or ``next`` (see the module docstring)
    objective = "next"
    multi_interest = False

    def __init__(self, *, n_users: int, n_items: int, config: SequentialConfig):
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.config = config
        d = int(config.dim)
        self.item_emb = nn.Embedding(self.n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=d ** -0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.register_buffer("user_history",
                             torch.full((self.n_users, int(config.max_len)), -1, dtype=torch.long))
        # the items negatives may come from (None: all; the cold-items protocol keeps its
        # held-out items out of training, as negatives too)
        self.register_buffer("neg_pool", None, persistent=False)

    # ------------------------------------------------------------------ encoders
    def embed(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings (b, w, d), mask (b, w) bool)`` of a ``-1``-padded history: its last
        ``max_len`` columns, less the columns that are padding in every row."""
        history = history[:, -int(self.config.max_len):]
        # crop the columns that are padding in every row: histories are right-aligned, so a
        # column's distance from the end (what position parameters index, ``[-w:]``) is kept,
        # and padding is masked everywhere, so the result is exactly the full width's
        w = max(1, int((history >= 0).sum(1).max())) if history.numel() else 1
        history = history[:, -w:]
        mask = history >= 0
        return self.item_emb(history + 1), mask

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """User vector ``(b, d)`` or interests ``(b, K, d)`` of histories ``(b, L)``."""
        raise NotImplementedError

    def encode_positions(self, history: torch.Tensor) -> torch.Tensor:
        """``(b, L, d)`` the state after each position (``seq2seq`` models)."""
        raise NotImplementedError

    def train_vectors(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The ``(b, d)`` vector trained against ``target`` (multi-interest models pick or mix
        their interests by the target: label-aware attention)."""
        return self.encode(history)

    # ------------------------------------------------------------------ scoring
    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight[1:]

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.encode(history)

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        v = self.encode(history)
        scores = v @ self.item_vectors().T
        return scores.amax(dim=1) if v.dim() == 3 else scores

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_queries(users, self.user_history[users])

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        uniq, inv = torch.unique(users, return_inverse=True)
        v = self.encode(self.user_history[uniq])[inv]  # (n, d) or (n, K, d)
        e = self.item_vectors()[items]
        s = (v * (e.unsqueeze(1) if v.dim() == 3 else e)).sum(-1)
        return s.amax(dim=1) if v.dim() == 3 else s

    # ------------------------------------------------------------------ training
    def logits_loss(self, vectors: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy of ``targets (n,)`` given ``vectors (n, d)``."""
        table = self.item_vectors()
        cfg = self.config
        pool = self.neg_pool
        if cfg.loss == "full" or cfg.n_neg >= self.n_items:
            logits = vectors @ table.T
            if pool is not None:  # only the candidates compete with the target
                keep = torch.zeros(self.n_items, dtype=torch.bool, device=logits.device)
                keep[pool] = True
                keep[targets] = True
                logits = logits.masked_fill(~keep[None, :], float("-inf"))
            return F.cross_entropy(logits, targets)
        neg = (torch.randint(0, self.n_items, (int(cfg.n_neg),), device=vectors.device)
               if pool is None else
               pool[torch.randint(0, len(pool), (int(cfg.n_neg),), device=vectors.device)])
        pos_logit = (vectors * table[targets]).sum(-1, keepdim=True)
        neg_logit = vectors @ table[neg].T
        neg_logit = neg_logit.masked_fill(neg[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        if self.objective == "seq2seq":
            inputs, targets = rows[:, :-1], rows[:, 1:]
            w = max(1, int((inputs >= 0).sum(1).max()))
            inputs, targets = inputs[:, -w:], targets[:, -w:]
            states = self.encode_positions(inputs)
            keep = (targets >= 0) & (inputs >= 0)
            return self.logits_loss(states[keep], targets[keep])
        history, target = rows[:, :-1], rows[:, -1]
        return self.logits_loss(self.train_vectors(history, target), target)

    def tasks(self, data: TrainData) -> list[Task]:
        cfg = self.config
        if data.item_candidates is not None:
            self.neg_pool = torch.from_numpy(
                np.flatnonzero(data.item_candidates)).to(self.user_history.device)
        indptr, items = remember_histories(self, data)
        if self.objective == "seq2seq":
            rows = last_windows(indptr, items, cfg.max_len + 1)
            rows = rows[(rows >= 0).sum(1) >= 2]  # at least one (input, next) pair
        else:
            rows = next_item_rows(indptr, items, cfg.max_len)
        if len(rows) == 0:
            raise ValueError("no training sequences with two or more items")
        decay = [p for n, p in self.named_parameters() if not n.endswith("bias")
                 and "norm" not in n]
        rest = [p for n, p in self.named_parameters() if n.endswith("bias") or "norm" in n]
        groups = [{"params": decay, "weight_decay": cfg.l2_weight}]
        if rest:
            groups.append({"params": rest, "weight_decay": 0.0})
        lengths = (rows[:, :-1] >= 0).sum(1)
        return [Task(name="rec", source=lambda epoch: bucketed_batches(rows, lengths,
                                                                      cfg.batch_size),
                     loss=self._loss, params=groups, lr=cfg.lr, batch_size=cfg.batch_size)]


def squash(z: torch.Tensor, dim: int = -1, eps: float = 1e-9) -> torch.Tensor:
    """Capsule squashing ``|z|^2 / (1 + |z|^2) * z / |z|`` (Sabour et al., NIPS'17)."""
    n2 = (z * z).sum(dim, keepdim=True)
    return n2 / (1.0 + n2) * z / torch.sqrt(n2 + eps)


def hard_readout(interests: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
    """The interest ``(b, d)`` with the largest inner product with the target (ComiRec's
    training readout; label-aware attention with ``p -> inf``)."""
    att = (interests * target_emb.unsqueeze(1)).sum(-1)  # (b, K)
    return interests[torch.arange(len(interests), device=interests.device), att.argmax(1)]


def label_aware_attention(interests: torch.Tensor, target_emb: torch.Tensor,
                          p: float, active: torch.Tensor | None = None) -> torch.Tensor:
    """MIND's label-aware attention: ``sum_k softmax_k(pow(v_k . e, p)) v_k`` (Li et al.,
    CIKM'19, eq. 8); the power keeps the sign (``sign(x) |x|^p``) so an even ``p`` never
    favours an interest that points away from the target. ``p = inf`` is the hard readout.
    ``active`` ``(b, K)``: attend over these interests only."""
    if p == float("inf"):
        return hard_readout(interests, target_emb)
    att = (interests * target_emb.unsqueeze(1)).sum(-1)
    att = torch.sign(att) * att.abs().pow(p)
    if active is not None:
        att = att.masked_fill(~active, float("-inf"))
    w = torch.softmax(att, dim=1)
    return (w.unsqueeze(-1) * interests).sum(1)


def dynamic_routing(hat: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor,
                    iterations: int = 3, active: torch.Tensor | None = None) -> torch.Tensor:
    """Behaviour-to-interest dynamic routing (MIND, Li et al. CIKM'19, Algorithm 1; ComiRec-DR,
    Cen et al. KDD'20, eq. 3-5).

    Args:
        hat: ``(b, K, L, d)`` each behaviour's prediction of each interest (MIND: one shared
            bilinear map; ComiRec-DR: one map per (position, interest)).
        mask: ``(b, L)`` real behaviours (padding never routes).
        logits: ``(b, K, L)`` initial routing logits (MIND: random; ComiRec-DR: zeros).
        iterations: routing iterations (3 in both papers).
        active: ``(b, K)`` bool, the interests a user has (MIND's dynamic number); behaviours
            route among the active ones only, inactive capsules stay zero. None: all.

    Returns:
        ``(b, K, d)`` squashed interest capsules. The logits are updated with a detached
        ``hat`` except in the last iteration, as both reference codes do, so gradients flow
        through the final routing only.
    """
    w_mask = mask.unsqueeze(1).to(hat.dtype)  # (b, 1, L)
    if active is not None:
        w_mask = w_mask * active.unsqueeze(-1).to(hat.dtype)
        logits = logits.masked_fill(~active.unsqueeze(-1), float("-inf"))
    interests = hat.new_zeros(hat.shape[0], hat.shape[1], hat.shape[3])
    for it in range(iterations):
        last = it == iterations - 1
        h = hat if last else hat.detach()
        w = torch.softmax(logits, dim=1) * w_mask  # over interests, per behaviour
        interests = squash((w.unsqueeze(-1) * h).sum(2))  # (b, K, d)
        if not last:
            logits = logits + (h * interests.unsqueeze(2)).sum(-1)
    return interests
