"""Data-parallel training over several processes (``torchrun``), with a one-process fallback.

Every function works without a process group (one process: rank 0 of 1, collectives are
no-ops), so callers need no branches. Under ``torchrun --nproc_per_node N``::

    from kgrec.train import distributed

    distributed.init()                  # before building the model: gloo on CPU, nccl on CUDA
    model = build(...)                  # same seed on every rank
    fit = Trainer(cfg, ...).fit(...)    # shards batches, averages gradients, rank 0 evaluates
    if distributed.is_main():
        write_results(fit)              # files from one process only

The :class:`~kgrec.train.trainer.Trainer` does the rest: the same permutation on every rank,
disjoint per-rank shards of each batch, gradients averaged after every backward (autograd or a
task's hand-written ``step``), evaluation and checkpoints on rank 0, the decisions (best
epoch, early stop) taken by every rank from the metrics rank 0 broadcasts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["all_gather_object", "all_reduce_grads", "all_reduce_sum", "barrier",
           "broadcast_module", "broadcast_object", "init", "is_distributed", "is_main",
           "local_rank", "rank", "shutdown", "world_size"]


def is_distributed() -> bool:
    """A process group of more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(backend: str | None = None, *, device: str = "auto") -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT`` in the environment) when ``WORLD_SIZE > 1``.

    Idempotent; without those variables (a plain ``python`` run) it does nothing.

    Args:
        backend: ``gloo`` / ``nccl`` (default: nccl when training on CUDA, else gloo).
        device: the training device (:class:`~kgrec.train.trainer.TrainConfig.device`);
            ``auto`` is CUDA where available. On CUDA each process takes GPU ``LOCAL_RANK``.

    Returns:
        Whether this process is one of several.
    """
    if dist.is_available() and dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():  # pragma: no cover - torch built without distributed
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    if backend is None:
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return is_distributed()


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the process that evaluates and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``src``'s ``obj`` (any picklable object) on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, by rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over processes, in place (and returned)."""
    if is_distributed():
        dist.all_reduce(t)
    return t


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters and buffers into every process's ``module`` (in place)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in module.state_dict(keep_vars=False).values():
            dist.broadcast(t, src=src)


@torch.no_grad()
def all_reduce_grads(params: Iterable[nn.Parameter]) -> None:
    """Average the parameters' ``.grad`` over processes, in place (what DDP does).

    Works whoever wrote the gradients (autograd or a hand-written backward). A parameter
    without a gradient on some processes counts as a zero gradient there; one without a
    gradient on every process keeps ``grad = None`` (so Adam skips it, as in one process).
    One ``all_reduce`` per gradient dtype (a flat buffer), sparse gradients made dense.
    """
    n = world_size()
    if n == 1:
        return
    params = list(params)
    if not params:
        return
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, p in enumerate(params):
        by_dtype.setdefault(p.dtype, []).append(i)
    first = True
    for dtype, idx in by_dtype.items():
        parts = []
        for i in idx:
            p = params[i]
            g = p.grad
            if g is None:
                g = torch.zeros_like(p)
            elif g.is_sparse:
                g = g.to_dense()
            parts.append(g.reshape(-1))
        if first:  # which parameters have a gradient anywhere, in the same collective
            ref = params[idx[0]]
            parts.append(torch.tensor([p.grad is not None for p in params], dtype=dtype,
                                      device=ref.device))
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        if first:
            present = flat[-len(params):].tolist()
            flat = flat[:-len(params)]
            first = False
        flat.div_(n)
        off = 0
        for i in idx:
            p = params[i]
            k = p.numel()
            if present[i] > 0:
                p.grad = flat[off:off + k].view_as(p)
            off += k
