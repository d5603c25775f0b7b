"""A lean Adam for small models: the same update as ``torch.optim.Adam`` (coupled L2 weight
decay, bias correction, parameters without a gradient skipped), with the per-step Python work
cut to one fused kernel call per parameter group. MKR's steps are tiny (batch 32-4096, d 4-8),
so ``torch.optim``'s bookkeeping would otherwise cost as much as the model itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["LeanAdam", "make_adam"]


class LeanAdam:
    """Adam (Kingma & Ba, 2015) over parameter groups ``{"params": [...], "weight_decay": w}``."""

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.groups = []
        for g in params:
            ps = list(g["params"])
            self.groups.append(
                {
                    "params": ps,
                    "weight_decay": float(g.get("weight_decay", 0.0)),
                    "m": [torch.zeros_like(p) for p in ps],
                    "v": [torch.zeros_like(p) for p in ps],
                    "step": [torch.zeros((), dtype=torch.float32) for _ in ps],
                }
            )

    @torch.no_grad()
    def step(self) -> None:
        for g in self.groups:
            idx = [i for i, p in enumerate(g["params"]) if p.grad is not None]
            if not idx:
                continue
            params = [g["params"][i] for i in idx]
            steps = [g["step"][i] for i in idx]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params,
                [p.grad for p in params],
                [g["m"][i] for i in idx],
                [g["v"][i] for i in idx],
                [],
                steps,
                amsgrad=False,
                lr=self.lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=g["weight_decay"],
                eps=self.eps,
                maximize=False,
            )


def make_adam(params: list, *, lr: float):
    """:class:`LeanAdam` where this torch build has the fused kernel, else ``torch.optim.Adam``."""
    if hasattr(torch, "_fused_adam_"):
        return LeanAdam(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)  # pragma: no cover
