"""Losses models share, and ways of combining several in one optimizer step (multi-source
tasks, see :class:`~kgrec.models.base.Task`). They live with the models (not in ``train/``) so
a model never imports the training layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = ["UncertaintyWeights", "weighted_sum"]


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

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = losses[self.names[0]].new_zeros(())
        for k, name in enumerate(self.names):
            if name in losses:
                s = self.log_var[k]
                total = total + 0.5 * torch.exp(-s) * losses[name] + 0.5 * s
        return total

    def weights(self) -> dict[str, float]:
        """The current weights ``exp(-s_k) / 2`` by name (for logging)."""
        w = (0.5 * torch.exp(-self.log_var.detach())).tolist()
        return dict(zip(self.names, w, strict=True))
