"""The model contract: the one seam every model honours.

A model is an ``nn.Module`` that declares its *tasks*. Each task turns a batch of rows into a
scalar loss, has its own parameters, optimizer learning rate and schedule (``every``: train the
task in epochs where ``epoch % every == 0``, MKR's ``kge_interval``). The trainer knows nothing
model-specific: it asks for the tasks, batches their sources and steps their optimizers.

A recommender also scores ``(user, item)`` pairs (logits) and, for ranking, all items for a
block of users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

# what a task may ask the trainer for (kgrec.train.optim builds them)
OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")

__all__ = ["Recommender", "Task", "TrainData", "VectorRecommender"]


@dataclass
class TrainData:
    """What a model may train on (built by the caller from a :class:`~kgrec.data.Dataset`).

    Attributes:
        rec_rows: ``epoch -> (n, 3)`` int64 training rows ``(user, item, label)``; fixed rows
            by default, or positives with freshly resampled negatives each epoch.
        kg: ``(m, 3)`` int64 triples ``(head, relation, tail)``.
        n_users, n_items, n_entities, n_relations: vocabulary sizes.
        item_entity: ``(n_items,)`` entity index of each item.
        train: ``(n, 3)`` the labelled training split ``(user, item, label)`` (None where a
            caller has none): what models derive user histories, counts and co-occurrences
            from (ripple sets, item-CF similarities, popularity). Models keep such derived
            state in persistent buffers, so a checkpoint restores it.
        sequences: ``(indptr, items)`` CSR over users: each user's training items in time
            order (``items[indptr[u]:indptr[u + 1]]``, oldest first); None where unknown.
        item_features: ``field -> (indptr, values)`` CSR over items of categorical feature
            ids (multi-valued fields hold several ids per item); None where there are none.
        inputs: arrays computed above the model (pre-trained entity vectors ...), by name.
        item_candidates: ``(n_items,)`` bool, the items a model may draw as negatives (None:
            all); the cold-items protocol leaves its held-out items out.
        exclude: a :class:`~kgrec.data.sampling.PairSet` of ``(user, item)`` pairs a model
            must never draw as a fresh negative, besides its training positives (None: only
            those). The CTR protocol gives every labelled pair of every split, whatever its
            label, and the known low ratings: a validation or test row is then never trained
            on, as under fixed negatives, and its exclusion says nothing of its label.
    """

    rec_rows: Callable[[int], np.ndarray]
    kg: np.ndarray
    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    item_entity: np.ndarray
    train: np.ndarray | None = None
    sequences: tuple[np.ndarray, np.ndarray] | None = None
    item_features: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    item_candidates: np.ndarray | None = None
    exclude: Any = None  # PairSet | None (kgrec.data.sampling)

    def train_rows(self) -> np.ndarray:
        """:attr:`train`, or a clear error for models that need it."""
        if self.train is None:
            raise ValueError("this model needs TrainData.train (the labelled training split)")
        return np.asarray(self.train, dtype=np.int64)


@dataclass
class Task:
    """One trainable objective of a model.

    Sources, batches, losses. ``source(epoch)`` returns one of

    * an ``(n, k)`` int64 array of rows (the usual case): the trainer shuffles the rows and
      cuts them into batches of ``batch_size``; a batch is a ``LongTensor (b, k)``.
    * a dict ``{name: (n_name, k_name) array}`` of several row sources trained *together*, summed
      in one optimizer step (views of M2GRL with learned uncertainty weights, a two-tower
      model's main and self-supervised losses): each source is shuffled on its own; the first
      one sets the steps, ``ceil(n_first / batch_size)``, and every other source is cut into the
      same number of near-equal parts, so each source is seen once per epoch; a batch is the
      dict ``{name: LongTensor}`` and the loss weights and sums its parts::

          Task("views", source=lambda e: {"ii": item_pairs, "aa": attr_pairs},
               loss=lambda b: self.weights({"ii": self.sg(b["ii"]), "aa": self.sg(b["aa"])}),
               params=[*self.parameters()], lr=1e-3, batch_size=1024)

      (:class:`kgrec.models.losses.UncertaintyWeights` is such a ``weights``).
    * any other iterable (a generator, typically): ready batches, streamed, never
      materialised (10^7 random-walk skip-gram pairs ...). A batch may be a tensor, an array
      or a tuple/list/dict of them; the trainer moves it to the device (arrays become
      tensors) and neither shuffles nor cuts it (``batch_size`` is then informative only).

    ``loss(batch)`` returns a scalar, or a dict of named scalar parts that the trainer sums
    (and logs as ``<task>/<part>`` besides ``<task>``).

    Resuming and reproducibility: a source should be a function of the epoch (seeded by it,
    like the resampled negatives of :func:`kgrec.data.sampling.training_rows`) or draw from
    torch's / numpy's global generators or from :attr:`rng`, whose states checkpoints keep.

    Several processes (``torchrun``): every rank builds the same tasks. Array sources: each
    global batch (the one-process batch, from the same permutation on all ranks) is split
    into disjoint per-rank shards and the gradients averaged, so a step is the one-process
    step. Streamed sources: every rank iterates the same stream and takes every
    ``world_size``-th batch (rank ``r``: batches ``r, r + W, ...``), unless
    :attr:`sharded` says the stream already yields this rank's share; an epoch ends for all
    ranks when the first rank's share runs out.

    Attributes:
        name: ``rec``, ``kge`` ...
        source: ``epoch -> rows | {name: rows} | iterable of batches`` (see above).
        loss: ``batch -> scalar`` (or ``{part: scalar}``) loss for one batch.
        params: parameters this task's optimizer updates, or groups
            ``{"params": [...], "weight_decay": w}`` (coupled L2).
        lr: (base) learning rate of the task's optimizer.
        batch_size: rows per step (array sources).
        every: run the task in epochs where ``epoch % every == 0``.
        step: optional ``batch -> scalar`` that computes the same loss *and* writes the
            parameters' ``.grad`` itself (a hand-written backward); the trainer then skips
            autograd for this task (gradients are still averaged across processes).
        after_step: optional callable run after every optimizer step of this task (the
            norm constraints of translational KG embeddings, for example).
        extras: anything else a model wants to hand its callers.
        optimizer: ``adam`` (default), ``adagrad`` or ``sgd``.
        optimizer_kwargs: extra constructor arguments (``betas``, ``momentum`` ...).
        rng: a private ``torch.Generator`` or ``numpy.random.Generator`` the task samples
            from (negatives ...); checkpoints keep its state so a resumed run is exact.
        sharded: a streamed source already yields only this process's share of the batches
            (it reads :func:`kgrec.train.distributed.rank` / ``world_size``).
        epoch_stats: optional ``() -> {name: float}`` read after each epoch of the task and
            logged beside its losses as ``<task>/<name>`` (learned task weights ...).
    """

    name: str
    source: Callable[[int], np.ndarray | Mapping[str, np.ndarray] | Iterable[Any]]
    loss: Callable[[Any], torch.Tensor | Mapping[str, torch.Tensor]]
    params: list[nn.Parameter] | list[dict[str, Any]]
    lr: float
    batch_size: int
    every: int = 1
    step: Callable[[Any], torch.Tensor | Mapping[str, torch.Tensor]] | None = None
    after_step: Callable[[], None] | None = None
    extras: dict = field(default_factory=dict)
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    rng: torch.Generator | np.random.Generator | None = None
    sharded: bool = False
    epoch_stats: Callable[[], Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"task {self.name!r}: unknown optimizer {self.optimizer!r} "
                             f"({', '.join(OPTIMIZERS)})")
        if self.every < 1 or self.batch_size < 1:
            raise ValueError(f"task {self.name!r}: every and batch_size must be >= 1")


class Recommender(nn.Module):
    """Base class of recommenders: tasks for training, logits for scoring."""

    n_users: int
    n_items: int

    def tasks(self, data: TrainData) -> list[Task]:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for aligned ``(users[k], items[k])`` pairs; ``sigmoid`` gives the CTR."""
        raise NotImplementedError  # pragma: no cover - abstract

    #: True for models that encode a query's item history (sequential recall) rather than
    #: look a user id up; they override :meth:`score_queries`.
    uses_history: bool = False
    #: True for models whose scores do not depend on the user (popularity): like history
    #: encoders, they can serve users unseen in training (the ``user-split`` protocol).
    user_free: bool = False

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Logits ``(len(users), n_items)`` for every item. Override when it can be faster."""
        b = len(users)
        items = torch.arange(self.n_items, device=users.device)
        u = users.repeat_interleave(self.n_items)
        return self.score(u, items.repeat(b)).view(b, self.n_items)

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Logits ``(b, n_items)`` for ``b`` queries: user ids ``(b,)`` and their item
        histories ``(b, L)`` int64, oldest first, right-aligned and left-padded with ``-1``.
        Id-based models ignore the history (:meth:`score_all`); sequential models ignore
        the ids (a user unseen in training is served from the history alone)."""
        return self.score_all(users)

    def score_candidates(self, users: torch.Tensor, history: torch.Tensor,
                         items: torch.Tensor) -> torch.Tensor:
        """Logits ``(b, len(items))`` of the queries (as :meth:`score_queries`) for the given
        items only, e.g. the new items of the ``cold-items`` protocol. A model that scores by
        pairs (the generic :meth:`score_all`, e.g. KGCN, whose item vector depends on the
        user) scores just these pairs; any other picks the columns of :meth:`score_queries`."""
        cls = type(self)
        if cls.score_queries is Recommender.score_queries \
                and cls.score_all is Recommender.score_all:
            b, c = len(users), len(items)
            return self.score(users.repeat_interleave(c), items.repeat(b)).view(b, c)
        return self.score_queries(users, history)[:, items]

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Query vectors ``(b, d)`` (or ``(b, n_interests, d)``) whose inner product with
        :meth:`item_vectors` gives the scores, for ANN search. Optional."""
        raise NotImplementedError(f"{type(self).__name__} has no user vectors for ANN search")

    def item_vectors(self) -> torch.Tensor:
        """Item vectors ``(n_items, d)`` for an ANN index. Optional (see :meth:`user_vectors`)."""
        raise NotImplementedError(f"{type(self).__name__} has no item vectors for ANN search")


class VectorRecommender(Recommender):
    """A recommender whose score is the inner product of :meth:`user_vectors` (from the user
    and the history) and :meth:`item_vectors`. Users looked up by id (``score``,
    ``score_all``: the CTR protocol, ``recommend``) are given their last training items, kept
    in the ``user_history`` buffer the subclass registers and fills
    (:func:`kgrec.models.sequential.base.remember_histories`)."""

    user_history: torch.Tensor

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        """Vectors of some items (default: rows of :meth:`item_vectors`)."""
        return self.item_vectors()[items]

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users, history) @ self.item_vectors().T

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_queries(users, self.user_history[users])

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = self.user_vectors(users, self.user_history[users])
        return (u * self.item_vectors_of(items)).sum(-1)
