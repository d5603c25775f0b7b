"""Optimizers and learning-rate schedules of the trainer.

:class:`LeanAdam` is ``torch.optim.Adam``'s update (coupled L2 weight decay, bias correction,
parameters without a gradient skipped) through torch's public functional API
(``torch.optim.adam.adam``, fused kernel) with the per-step Python work cut to the minimum:
MKR's steps are tiny (batch 32-4096, d 4-8), so ``torch.optim.Adam.step``'s bookkeeping
(profiler hooks, state initialisation checks, per-parameter loops) would otherwise cost as much
as the model itself. Its ``state_dict`` has ``torch.optim.Adam``'s layout.

``adamw``, ``adagrad`` and ``sgd`` are ``torch.optim``'s (their steps are rare
enough in this library for their overhead not to matter).

Schedules (:func:`lr_factor`) are pure functions of the epoch, so resuming needs no state.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn

from kgrec.models.base import OPTIMIZERS

__all__ = ["OPTIMIZERS", "SCHEDULES", "LeanAdam", "Optimizer", "lr_factor", "make_optimizer"]

#: Learning-rate schedules of :class:`~kgrec.train.trainer.TrainConfig`.
SCHEDULES = ("none", "step", "cosine")

# ``torch.optim.adam`` (the module) is shadowed by the class in ``torch.optim``'s namespace in
# some releases; ``adam`` (the function) is in its ``__all__``: public.
_adam_fn = importlib.import_module("torch.optim.adam").adam
# the fused CPU kernel arrived in torch 2.4; before that only CUDA has one
_FUSED_CPU = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)


class Optimizer(Protocol):
    """What the trainer needs of an optimizer (``torch.optim.Optimizer`` and :class:`LeanAdam`)."""

    param_groups: list[dict[str, Any]]

    def step(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _groups(params: Iterable[nn.Parameter] | Iterable[dict]) -> list[dict]:
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    return params


class LeanAdam:
    """Adam (Kingma & Ba, 2015) over parameter groups ``{"params": [...], "weight_decay": w}``.

    The same arithmetic (the same kernel where the fused one is used) as
    ``torch.optim.Adam(params, lr, betas, eps, fused=True)``; ``param_groups[i]["lr"]`` may be
    changed between steps (learning-rate schedules).

    Args:
        params: parameters, or groups of them with an optional ``weight_decay`` (coupled L2).
        lr: learning rate.
        betas, eps: Adam's moment decay rates and denominator term.
        fused: use the fused kernel (default: where this torch build has one for the
            parameters' device); else torch's multi-tensor (``foreach``) implementation.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool | None = None,
    ):
        self.param_groups: list[dict[str, Any]] = []
        for g in _groups(params):
            ps = list(g["params"])
            self.param_groups.append({
                "params": ps,
                "lr": float(g.get("lr", lr)),
                "betas": tuple(g.get("betas", betas)),
                "eps": float(g.get("eps", eps)),
                "weight_decay": float(g.get("weight_decay", 0.0)),
            })
        self.state: dict[nn.Parameter, dict[str, torch.Tensor]] = {}
        if fused is None:
            devices = {p.device.type for g in self.param_groups for p in g["params"]}
            fused = _FUSED_CPU or devices <= {"cuda"}
        self.fused = bool(fused)
        # per group: (which parameters had a gradient, their state lists), reused while the
        # same parameters keep getting gradients (every step, in practice)
        self._cache: list[tuple[tuple[bool, ...], list] | None] = [None] * len(self.param_groups)

    def _lists(self, k: int, mask: tuple[bool, ...]) -> list:
        cached = self._cache[k]
        if cached is not None and cached[0] == mask:
            return cached[1]
        params = [p for p, m in zip(self.param_groups[k]["params"], mask, strict=True) if m]
        states = []
        for p in params:
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float32, device=p.device),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            states.append(st)
        lists = [params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                 [s["step"] for s in states]]
        self._cache[k] = (mask, lists)
        return lists

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        for k, g in enumerate(self.param_groups):
            ps = g["params"]
            grads = [p.grad for p in ps]
            mask = tuple([gr is not None for gr in grads])
            if not all(mask):
                if not any(mask):
                    continue
                grads = [gr for gr in grads if gr is not None]
            params, exp_avgs, exp_avg_sqs, steps = self._lists(k, mask)
            beta1, beta2 = g["betas"]
            _adam_fn(params, grads, exp_avgs, exp_avg_sqs, [], steps,
                     foreach=not self.fused, fused=self.fused, amsgrad=False, beta1=beta1,
                     beta2=beta2, lr=g["lr"], weight_decay=g["weight_decay"], eps=g["eps"],
                     maximize=False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam``'s layout: per-parameter state by running index, groups with
        their settings and parameter indices."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids,
                           "amsgrad": False, "maximize": False})
        state = {index[id(p)]: {k: v.clone() for k, v in st.items()}
                 for p, st in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors move to the parameters' devices)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups,
                                                                     strict=True)):
            raise ValueError("optimizer state does not match these parameter groups")
        by_index: dict[int, nn.Parameter] = {}
        for saved, g in zip(groups, self.param_groups, strict=True):
            for i, p in zip(saved["params"], g["params"], strict=True):
                by_index[int(i)] = p
            for key in ("lr", "betas", "eps", "weight_decay"):
                if key in saved:
                    g[key] = tuple(saved[key]) if key == "betas" else float(saved[key])
        self.state = {}
        for i, st in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {
                "step": st["step"].to(device=p.device, dtype=torch.float32).clone(),
                "exp_avg": st["exp_avg"].to(device=p.device, dtype=p.dtype).clone(),
                "exp_avg_sq": st["exp_avg_sq"].to(device=p.device, dtype=p.dtype).clone(),
            }
        self._cache = [None] * len(self.param_groups)


def make_optimizer(kind: str, params: list, *, lr: float, **kwargs: Any) -> Optimizer:
    """The optimizer a task asks for: ``adam`` (:class:`LeanAdam`, coupled L2), ``adamw``
    (decoupled weight decay, Loshchilov & Hutter, ICLR'19), ``adagrad`` or ``sgd``
    (``torch.optim``), over parameters or groups ``{"params", "weight_decay"}``; ``kwargs``
    go to the constructor (``betas``, ``momentum`` ...)."""
    if kind == "adam":
        return LeanAdam(params, lr=lr, **kwargs)
    if kind in ("adamw", "adagrad", "sgd"):
        groups = [g for g in _groups(params) if list(g["params"])]
        if not groups:  # a parameterless task (a closed-form model): nothing to update
            return LeanAdam([], lr=lr)
        cls = {"adamw": torch.optim.AdamW, "adagrad": torch.optim.Adagrad,
               "sgd": torch.optim.SGD}[kind]
        return cls(groups, lr=lr, **kwargs)
    raise ValueError(f"unknown optimizer {kind!r}; known: {', '.join(OPTIMIZERS)}")


def lr_factor(
    schedule: str,
    epoch: int,
    *,
    epochs: int,
    step_size: int = 10,
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    min_ratio: float = 0.0,
) -> float:
    """Multiplier of every task's base learning rate in ``epoch`` (0-based).

    ``warmup_epochs`` first ramp linearly (``(epoch + 1) / (warmup_epochs + 1)``); then
    ``none``: 1; ``step``: ``gamma ** (t // step_size)``; ``cosine``:
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * t / T)) / 2`` with ``t`` the epochs since
    the warm-up and ``T`` the epochs after it (``torch.optim.lr_scheduler.CosineAnnealingLR``
    with ``T_max = T``, ``eta_min = min_ratio * lr``).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    t = epoch - warmup_epochs
    if schedule == "step":
        return float(gamma ** (t // max(step_size, 1)))
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1)
        return min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * t / span)) / 2.0
    return 1.0
