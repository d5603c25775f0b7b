"""Losses models share, and ways of combining several in one optimizer step (multi-source
tasks, see :class:`~kgrec.models.base.Task`). They live with the models (not in ``train/``) so
a model never imports the training layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StreamingFrequency", "UncertaintyWeights", "in_batch_logits", "info_nce",
           "weighted_sum"]


def weighted_sum(losses: Mapping[str, torch.Tensor],
                 weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """``sum_k weights[k] * losses[k]`` (missing weights are 1): fixed loss weights, a
    two-tower model's self-supervised term for example."""
    weights = weights or {}
    parts = [loss * weights.get(k, 1.0) for k, loss in losses.items()]
    if not parts:
        raise ValueError("no losses to sum")
    return torch.stack(parts).sum() if len(parts) > 1 else parts[0]


class UncertaintyWeights(nn.Module):
    """Learned task weights from homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018), as
    M2GRL weighs its views: ``sum_k exp(-s_k) * L_k / 2 + s_k / 2`` with ``s_k = log sigma_k^2``
    a trainable scalar per loss (initially 0: weights 1/2).

    Args:
        names: the losses' names (the keys :meth:`forward` receives).
    """

    def __init__(self, names: Iterable[str]):
        super().__init__()
        self.names = list(names)
        self.log_var = nn.Parameter(torch.zeros(len(self.names)))

    def parts(self, losses: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each loss's weighted term ``exp(-s_k) * L_k / 2 + s_k / 2`` by name (their sum is
        :meth:`forward`), for a task that logs its parts."""
        return {name: 0.5 * torch.exp(-self.log_var[k]) * losses[name] + 0.5 * self.log_var[k]
                for k, name in enumerate(self.names) if name in losses}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = losses[self.names[0]].new_zeros(())
        for term in self.parts(losses).values():
            total = total + term
        return total

    def weights(self) -> dict[str, float]:
        """The current weights ``exp(-s_k) / 2`` by name (for logging)."""
        w = (0.5 * torch.exp(-self.log_var.detach())).tolist()
        return dict(zip(self.names, w, strict=True))


def in_batch_logits(user: torch.Tensor, item: torch.Tensor, item_ids: torch.Tensor, *,
                    temperature: float = 1.0, log_q: torch.Tensor | None = None,
                    remove_accidental: bool = True) -> torch.Tensor:
    """Logits ``(n, n)`` of the in-batch softmax: row ``i`` scores user ``i`` against every
    item of the batch, its own positive on the diagonal (Yi et al., "Sampling-Bias-Corrected
    Neural Modeling for Large Corpus Item Recommendations", RecSys'19; Yao et al., CIKM'21).

    Args:
        user, item: ``(n, d)`` vectors of the batch's (user, positive item) pairs.
        item_ids: ``(n,)`` the positive items' ids.
        temperature: logits are ``user @ item.T / temperature``.
        log_q: ``(n,)`` log of each batch item's sampling probability: the **log-Q
            correction** subtracts ``log_q[j]`` from every logit of column ``j`` (positive
            included), so a popular item, often a negative only because it is often in a
            batch, stops being over-punished.
        remove_accidental: set to ``-inf`` the logits of a column whose item is the row's own
            positive (the same item clicked by another pair of the batch), off the diagonal.
    """
    logits = user @ item.T / temperature
    if log_q is not None:
        logits = logits - log_q.to(logits.dtype)[None, :]
    if remove_accidental:
        same = item_ids[:, None] == item_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return logits


def info_nce(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1,
             ids: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE between two views ``(m, d)`` (rows already L2-normalised for cosine): row ``i``
    of ``z1`` must pick row ``i`` of ``z2`` among all rows (Oord et al., 2018; the
    self-supervised loss of Yao et al., CIKM'21, eq. 3). With ``ids``, rows of the same item
    are not negatives of each other."""
    logits = z1 @ z2.T / temperature
    if ids is not None:
        same = ids[:, None] == ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(z1), device=z1.device))


class StreamingFrequency(nn.Module):
    """Streaming estimate of how often an item appears in a batch (Yi et al., RecSys'19,
    Algorithm 2), for catalogues or streams a count table cannot hold.

    Two arrays over ``n_buckets`` hash buckets (item id modulo ``n_buckets``): ``last``, the
    step an item was last seen, and ``gap``, a moving average of the steps between its
    appearances: ``gap <- (1 - alpha) gap + alpha (t - last)``. ``1 / gap`` estimates the
    item's probability of being in a batch; :meth:`log_q` is its log. Unseen buckets keep
    ``initial_gap`` (e.g. ``n_items / batch_size``, what a uniform stream would give). Both
    arrays are buffers, so a checkpoint keeps the estimate.
    """

    def __init__(self, n_buckets: int, *, alpha: float = 0.01, initial_gap: float = 1.0):
        super().__init__()
        if n_buckets < 1 or not 0 < alpha <= 1 or initial_gap <= 0:
            raise ValueError("n_buckets >= 1, 0 < alpha <= 1 and initial_gap > 0 needed")
        self.n_buckets, self.alpha = int(n_buckets), float(alpha)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last", torch.full((self.n_buckets,), -1, dtype=torch.long))
        self.register_buffer("gap", torch.full((self.n_buckets,), float(initial_gap)))

    @torch.no_grad()
    def update(self, ids: torch.Tensor) -> None:
        """Record one batch of item ids (duplicates within a batch count once)."""
        self.step += 1
        t = self.step
        h = torch.unique(ids % self.n_buckets)
        seen = self.last[h] >= 0
        hs = h[seen]
        self.gap[hs] = (1 - self.alpha) * self.gap[hs] + self.alpha * (t - self.last[hs])
        self.last[h] = t

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        """``log(1 / gap)`` of the ids' buckets."""
        return -torch.log(self.gap[ids % self.n_buckets])
