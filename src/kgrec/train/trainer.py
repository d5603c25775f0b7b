"""One generic trainer for every model: task schedule, optimizers, model selection, checkpoints.

The trainer knows nothing model-specific. Per epoch it runs each task the model declares
(in declared order, when ``epoch % task.every == 0``): shuffle the task's rows (or stream its
batches, see :class:`~kgrec.models.base.Task`), step its own optimizer batch by batch (with an
optional learning-rate schedule and gradient clipping). Then it scores the validation split,
keeps the best state by the monitored metric, writes a checkpoint (atomically) and, at the end,
reports the test split at the best epoch.

The checkpoint holds the best state where readers expect it (``state_dict``, ``epoch``,
``valid`` and the caller's ``checkpoint_extra`` at the top level) and, under ``trainer``,
everything :meth:`Trainer.fit` needs to resume after the last finished epoch with the same
result as an uninterrupted run: the current state, optimizer states, learning rates, best
epoch/score, history, random generator states.

Under several processes (:mod:`kgrec.train.distributed`) each rank trains on a disjoint shard
of every batch and gradients are averaged; rank 0 evaluates and writes the checkpoint.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.train import distributed as dist
from kgrec.train.optim import OPTIMIZERS, SCHEDULES, Optimizer, lr_factor, make_optimizer
from kgrec.utils.io import atomic_write

__all__ = ["EpochLog", "FitResult", "TrainConfig", "Trainer", "atomic_save", "monitor_mode",
           "resolve_device", "seed_everything"]

#: Version of the ``trainer`` entry of checkpoints (resume state).
CHECKPOINT_VERSION = 1
#: Monitored names that are lower-is-better under ``monitor_mode="auto"``.
LOWER_IS_BETTER = ("loss", "logloss", "mr", "mse", "rmse", "mae")


@dataclass
class TrainConfig:
    """Run-level settings.

    Attributes:
        epochs: number of epochs.
        seed: seeds torch (init, shuffling) and numpy.
        monitor: validation metric used to pick the epoch.
        patience: stop after this many epochs without improvement (None: run all epochs).
        progress: show progress bars.
        threads: torch intra-op threads (None: leave torch's default).
        monitor_mode: ``max`` (higher is better), ``min``, or ``auto``: ``min`` for loss-like
            names (``loss``, ``logloss``, ``*_loss``, ``mr`` but not ``mrr``, ``mse`` ...).
        device: ``auto`` (CUDA where available, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
            The model, its buffers, the batches and the optimizer states live there; under
            several processes on CUDA each takes its ``LOCAL_RANK`` GPU.
        lr_schedule: ``none``, ``step`` (times ``lr_gamma`` every ``lr_step_size`` epochs) or
            ``cosine`` (down to ``lr_min_ratio`` of the base rate at the end), per epoch, after
            ``lr_warmup_epochs`` of linear warm-up (:func:`kgrec.train.optim.lr_factor`).
        lr_step_size, lr_gamma, lr_warmup_epochs, lr_min_ratio: the schedule's parameters.
        clip_norm: clip each task's gradient to this global L2 norm (None: no clipping).
        checkpoint_every: write the (resumable) checkpoint every this many epochs, and at
            every new best epoch, and at the end.
        checkpoint_seconds: between the first epoch and the end, write it at most once per
            this many seconds (an interrupted run redoes at most that much training; a short
            run such as MKR on Last.FM writes it twice instead of every epoch).
        optimizer: ``adam``, ``adamw``, ``adagrad`` or ``sgd`` for every task (None: each task's own
            choice, :attr:`~kgrec.models.base.Task.optimizer`).
    """

    epochs: int = 10
    seed: int = 0
    monitor: str = "auc"
    patience: int | None = None
    progress: bool = True
    threads: int | None = None
    monitor_mode: str = "auto"
    device: str = "auto"
    lr_schedule: str = "none"
    lr_step_size: int = 10
    lr_gamma: float = 0.1
    lr_warmup_epochs: int = 0
    lr_min_ratio: float = 0.0
    clip_norm: float | None = None
    checkpoint_every: int = 1
    checkpoint_seconds: float = 10.0
    optimizer: str | None = None

    def __post_init__(self) -> None:
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.monitor_mode not in ("max", "min", "auto"):
            raise ValueError(f"monitor_mode must be max, min or auto, got {self.monitor_mode!r}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ValueError("clip_norm must be positive (or None)")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        if not self.checkpoint_seconds >= 0:
            raise ValueError("checkpoint_seconds must be >= 0")


@dataclass
class EpochLog:
    epoch: int
    losses: dict[str, float]
    train_seconds: float
    valid: dict[str, float]


@dataclass
class FitResult:
    best_epoch: int
    best_valid: dict[str, float]
    test: dict[str, float] | None
    history: list[EpochLog] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    setup_seconds: float = 0.0

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([h.train_seconds for h in self.history])) if self.history else 0.0

    def summary(self) -> dict[str, Any]:
        """What a run's ``metrics.json`` reports of the fit: best epoch, its validation
        metrics, test at that epoch, the per-epoch history."""
        return {"best_epoch": self.best_epoch, "valid": self.best_valid, "test": self.test,
                "history": [asdict(h) for h in self.history]}

    def timings(self) -> dict[str, float]:
        """Training seconds per epoch and in all, evaluation seconds."""
        return {"seconds_per_epoch": self.seconds_per_epoch,
                "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                "setup_seconds": self.setup_seconds}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds_per_epoch"] = self.seconds_per_epoch
        return d


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f))


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA (this process's ``LOCAL_RANK`` GPU) where available, else CPU; a bare
    ``cuda`` also means the local rank's GPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        return torch.device("cuda", dist.local_rank() if dist.is_distributed() else
                            torch.cuda.current_device())
    return torch.device(spec)


def monitor_mode(name: str, mode: str = "auto") -> str:
    """``max`` or ``min`` for a monitored metric ``name`` (``auto``: ``min`` for loss-like
    names, :data:`LOWER_IS_BETTER`, also as a suffix ``*_loss`` / ``*/loss``)."""
    if mode != "auto":
        return mode
    key = name.lower()
    for sep in ("/", ".", "_", "-"):
        key = key.rsplit(sep, 1)[-1] if sep in key and key.rsplit(sep, 1)[-1] else key
    return "min" if key in LOWER_IS_BETTER or name.lower().endswith("loss") else "max"


Evaluate = Callable[[Recommender, Any], dict[str, float]]


class Trainer:
    """Train a :class:`Recommender` on its tasks; select the epoch on validation.

    Args:
        config: run-level settings.
        evaluate: ``(model, valid_or_test) -> metrics`` used on the validation and test
            objects handed to :meth:`fit`, which the trainer never looks into (rows, ranking
            query sets ...); default: CTR metrics, :func:`kgrec.eval.evaluate_ctr`. Called on
            rank 0 only under several processes.
        checkpoint: where to write the checkpoint (``None``: keep the best state in memory
            only, no resuming).
        checkpoint_extra: extra entries stored at the checkpoint's top level (config, vocab
            sizes ...).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        evaluate: Evaluate | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_extra: dict[str, Any] | None = None,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ):
        if evaluate is None:
            from kgrec.eval import evaluate_ctr

            evaluate = evaluate_ctr
        self.config = config
        self.evaluate = evaluate
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_extra = checkpoint_extra or {}
        self.on_epoch = on_epoch  # (epoch, validation metrics) after each validation
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: Recommender,
        data: TrainData,
        valid: Any,
        test: Any | None = None,
        *,
        resume: str | Path | None = None,
    ) -> FitResult:
        """Train ``model``; return the best epoch's validation and test metrics.

        Args:
            model: the model (moved to :attr:`TrainConfig.device`).
            data: what its :meth:`~Recommender.tasks` train on.
            valid, test: opaque objects for the ``evaluate`` callable (``test`` optional).
            resume: a checkpoint written by this trainer: continue after its last finished
                epoch (same model, data, tasks and config as the interrupted run) and end with
                the same result as an uninterrupted run.
        """
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # Denormal floats (an MKR run stuck at its all-small initial saddle produces them) make
        # CPU arithmetic ~5x slower; flushing them to zero changes nothing a healthy run sees.
        torch.set_flush_denormal(True)
        self.device = device = resolve_device(cfg.device)
        distributed = dist.is_distributed()
        main = dist.is_main()
        mode = monitor_mode(cfg.monitor, cfg.monitor_mode)
        sign = 1.0 if mode == "max" else -1.0
        model.to(device)
        gen = torch.Generator().manual_seed(cfg.seed)  # shuffling: on CPU, the same anywhere
        t_setup = time.perf_counter()
        tasks = model.tasks(data)  # fits closed-form models (popularity, item-CF) too
        setup_seconds = time.perf_counter() - t_setup
        if len({t.name for t in tasks}) != len(tasks):
            raise ValueError("task names must be unique")
        model.to(device)  # state tasks() registered (closed-form fits, buffers)
        optims = {t.name: make_optimizer(
            cfg.optimizer or t.optimizer, t.params, lr=t.lr,
            **(t.optimizer_kwargs if cfg.optimizer in (None, t.optimizer) else {}))
            for t in tasks}
        base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in optims.items()}
        history: list[EpochLog] = []
        best_epoch, best_score, best_valid = -1, -math.inf, {}
        best_state: dict[str, torch.Tensor] | None = None
        eval_seconds, start, stopped = 0.0, 0, False
        last_save: float | None = None  # the first due checkpoint is written at once
        if resume is not None:
            st = self._load(resume, model, tasks, optims, gen)
            start, stopped = st["epoch"] + 1, st["stopped"]
            history = [EpochLog(**h) for h in st["history"]]
            best_epoch, best_valid = st["best_epoch"], st["best_valid"]
            best_score = st["best_score"]
            best_state = st["best_state"]
        elif distributed:
            dist.broadcast_module(model)  # every rank starts from rank 0's state
        bar = _progress(cfg.epochs, cfg.progress and main)
        if bar is not None and start:
            bar.update(min(start, cfg.epochs))
        for epoch in range(start, cfg.epochs):
            if stopped:
                break
            if cfg.lr_schedule != "none" or cfg.lr_warmup_epochs:
                f = lr_factor(cfg.lr_schedule, epoch, epochs=cfg.epochs,
                              step_size=cfg.lr_step_size, gamma=cfg.lr_gamma,
                              warmup_epochs=cfg.lr_warmup_epochs, min_ratio=cfg.lr_min_ratio)
                for name, opt in optims.items():
                    for g, lr in zip(opt.param_groups, base_lrs[name], strict=True):
                        g["lr"] = lr * f
            model.train()
            t0 = time.perf_counter()
            losses: dict[str, float] = {}
            for task in tasks:
                if epoch % task.every:
                    continue
                losses.update(self._run_task(model, task, optims[task.name], epoch, gen))
            train_seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            valid_metrics = self.evaluate(model, valid) if main else None
            if distributed:
                valid_metrics = dist.broadcast_object(valid_metrics)
            eval_seconds += time.perf_counter() - t1
            history.append(EpochLog(epoch, losses, train_seconds, valid_metrics))
            if cfg.monitor not in valid_metrics:
                raise KeyError(f"monitor {cfg.monitor!r} is not among the validation metrics "
                               f"{sorted(valid_metrics)}")
            score = float(valid_metrics[cfg.monitor])
            if self.on_epoch is not None and main:
                self.on_epoch(epoch, valid_metrics)
            improved = sign * score > best_score
            if improved:
                best_epoch, best_score, best_valid = epoch, sign * score, valid_metrics
                best_state = copy.deepcopy(model.state_dict())
            stopped = cfg.patience is not None and epoch - best_epoch >= cfg.patience
            last = stopped or epoch == cfg.epochs - 1
            due = improved or (epoch + 1) % cfg.checkpoint_every == 0
            if due and last_save is not None:  # throttled between the first and the last
                due = time.perf_counter() - last_save >= cfg.checkpoint_seconds
            if self.checkpoint is not None and (last or due):
                self._save(model, tasks, optims, gen, epoch=epoch, history=history,
                           best=(best_epoch, best_score, best_valid, best_state),
                           stopped=stopped)
                last_save = time.perf_counter()
            if bar is not None:
                bar.set_postfix(
                    {**{f"loss_{k}": f"{v:.4f}" for k, v in losses.items()},
                     f"val_{cfg.monitor}": f"{score:.4f}", "best": best_epoch}
                )
                bar.update(1)
        if bar is not None:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        test_metrics = None
        if test is not None:
            t1 = time.perf_counter()
            test_metrics = self.evaluate(model, test) if main else None
            if distributed:
                test_metrics = dist.broadcast_object(test_metrics)
            eval_seconds += time.perf_counter() - t1
        return FitResult(
            best_epoch=best_epoch,
            best_valid=best_valid,
            test=test_metrics,
            history=history,
            train_seconds=float(sum(h.train_seconds for h in history)),
            eval_seconds=eval_seconds,
            setup_seconds=setup_seconds,
        )

    # ------------------------------------------------------------------ one task, one epoch
    def _run_task(self, model: nn.Module, task: Task, opt: Optimizer, epoch: int,
                  gen: torch.Generator) -> dict[str, float]:
        """Train ``task`` for one epoch; its mean loss (and parts) over the steps."""
        cfg = self.config
        device = self.device
        distributed = dist.is_distributed()
        all_params = list(model.parameters())
        task_params = _flat_params(task.params)
        clip = cfg.clip_norm
        step_fn = task.step
        loss_fn = task.loss
        after = task.after_step
        total = torch.zeros((), device=device)
        parts: dict[str, torch.Tensor] = {}
        n_steps = 0
        for batch in self._batches(task, task.source(epoch), gen):
            for p in all_params:  # a shared parameter keeps no gradient of another task
                p.grad = None
            if step_fn is not None:
                out = step_fn(batch)
                loss = _total(out)
            else:
                out = loss_fn(batch)
                loss = _total(out)
                loss.backward()
            if distributed:
                dist.all_reduce_grads(task_params)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(task_params, clip)
            opt.step()
            if after is not None:
                after()
            total += loss.detach()
            if type(out) is not torch.Tensor:
                for k, v in out.items():
                    parts[k] = parts.get(k, 0.0) + v.detach()
            n_steps += 1
        names = [task.name, *(f"{task.name}/{k}" for k in parts)]
        values = torch.stack([total, *(torch.as_tensor(v, device=device, dtype=total.dtype)
                                       for v in parts.values())])
        sums, count = values.tolist(), float(n_steps)
        if distributed:  # the mean over every rank's steps
            both = torch.cat([values.double(), torch.tensor([count], device=device,
                                                            dtype=torch.float64)])
            *sums, count = dist.all_reduce_sum(both).tolist()
        out = {k: v / max(count, 1.0) for k, v in zip(names, sums, strict=True)}
        if task.epoch_stats is not None:
            out.update({f"{task.name}/{k}": float(v) for k, v in task.epoch_stats().items()})
        return out

    def _batches(self, task: Task, src: Any, gen: torch.Generator) -> Iterator[Any]:
        """The batches this process trains on, on the device (see :class:`Task`)."""
        device, cpu = self.device, self.device.type == "cpu"
        n_proc, me = dist.world_size(), dist.rank()
        if isinstance(src, np.ndarray | torch.Tensor):
            rows = _rows(src)
            rows = rows[torch.randperm(len(rows), generator=gen)]
            if not cpu:
                rows = rows.to(device, non_blocking=True)
            for batch in torch.split(rows, task.batch_size):
                yield batch if n_proc == 1 else _shard(batch, me, n_proc)
            return
        if isinstance(src, Mapping):
            if not src:
                return
            srcs = {k: _rows(v) for k, v in src.items()}
            srcs = {k: v[torch.randperm(len(v), generator=gen)] for k, v in srcs.items()}
            if not cpu:
                srcs = {k: v.to(device, non_blocking=True) for k, v in srcs.items()}
            lead, *others = srcs
            chunks = {lead: torch.split(srcs[lead], task.batch_size)}
            n_steps = len(chunks[lead])  # the first source sets the steps
            if n_steps == 0:
                return
            chunks.update({k: torch.tensor_split(srcs[k], n_steps) for k in others})
            for i in range(n_steps):
                batch = {k: c[i] for k, c in chunks.items()}
                yield batch if n_proc == 1 else {k: _shard(v, me, n_proc)
                                                 for k, v in batch.items()}
            return
        if not isinstance(src, Iterable):
            raise TypeError(f"task {task.name!r}: source(epoch) returned {type(src).__name__}; "
                            "expected an array, a dict of arrays or an iterable of batches")
        stream: Iterable[Any] = src
        if n_proc > 1:
            stream = _agreed(src if task.sharded else _every(src, me, n_proc), device)
        for batch in stream:
            yield _to_device(batch, device)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, model: nn.Module, tasks: list[Task], optims: dict[str, Optimizer],
              gen: torch.Generator, *, epoch: int, history: list[EpochLog],
              best: tuple[int, float, dict, dict | None], stopped: bool) -> None:
        best_epoch, best_score, best_valid, best_state = best
        rngs = dist.all_gather_object(_rng_state(gen, tasks, self.device))
        if not dist.is_main():
            return
        current = model.state_dict()
        trainer = {
            "version": CHECKPOINT_VERSION,
            "epoch": epoch,
            "stopped": stopped,
            "model": None if best_epoch == epoch else current,
            "optimizers": {k: o.state_dict() for k, o in optims.items()},
            "lr": {k: [float(g["lr"]) for g in o.param_groups] for k, o in optims.items()},
            "best_epoch": best_epoch,
            "best_score": best_score,
            "best_valid": best_valid,
            "history": [asdict(h) for h in history],
            "rng": rngs,
            "world_size": dist.world_size(),
            "monitor": self.config.monitor,
        }
        atomic_save(
            {"state_dict": current if best_state is None else best_state, "epoch": best_epoch,
             "valid": best_valid, **self.checkpoint_extra, "trainer": trainer},
            self.checkpoint,
        )

    def _load(self, path: str | Path, model: nn.Module, tasks: list[Task],
              optims: dict[str, Optimizer], gen: torch.Generator) -> dict[str, Any]:
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        st = ckpt.get("trainer")
        if st is None or st.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} holds no resumable trainer state (version "
                             f"{CHECKPOINT_VERSION}); it was written by an older kgrec")
        if set(st["optimizers"]) != set(optims):
            raise ValueError(f"{path}: tasks {sorted(st['optimizers'])} differ from this "
                             f"model's {sorted(optims)}")
        best_state = ckpt["state_dict"] if st["best_epoch"] >= 0 else None
        model.load_state_dict(st["model"] if st["model"] is not None else ckpt["state_dict"])
        for name, opt in optims.items():
            opt.load_state_dict(st["optimizers"][name])
        rngs = st["rng"]
        _set_rng_state(rngs[dist.rank()] if len(rngs) == dist.world_size() else rngs[0],
                       gen, tasks, self.device)
        return {"epoch": st["epoch"], "stopped": st["stopped"], "history": st["history"],
                "best_epoch": st["best_epoch"], "best_score": st["best_score"],
                "best_valid": st["best_valid"],
                "best_state": None if best_state is None else copy.deepcopy(best_state)}


# ---------------------------------------------------------------------- helpers
def _total(out: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A loss, or the sum of a dict of loss parts."""
    if isinstance(out, torch.Tensor):
        return out
    vals = list(out.values())
    return torch.stack(vals).sum() if len(vals) > 1 else vals[0]


def _flat_params(params: list) -> list[nn.Parameter]:
    """The distinct parameters of a list of parameters or of groups."""
    out: dict[int, nn.Parameter] = {}
    for p in params:
        for q in (p["params"] if isinstance(p, dict) else [p]):
            out.setdefault(id(q), q)
    return list(out.values())


def _rows(src: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(src, torch.Tensor):
        return src.to(device="cpu", dtype=torch.int64)
    return torch.from_numpy(np.ascontiguousarray(src, dtype=np.int64))


def _shard(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s rows of a global batch: every ``world``-th row, the batch padded by
    wrapping around to a multiple of ``world`` (every rank gets the same number of rows)."""
    n = len(batch)
    m = -(-n // world) * world
    idx = torch.arange(rank, m, world, device=batch.device)
    if m != n:
        idx = idx % n
    return batch[idx]


def _every(stream: Iterable[Any], rank: int, world: int) -> Iterator[Any]:
    """Batches ``rank, rank + world, ...`` of a stream (complete groups of ``world`` only:
    a trailing partial group would leave some ranks without a batch)."""
    group: list[Any] = []
    for batch in stream:
        group.append(batch)
        if len(group) == world:
            yield group[rank]
            group = []


def _agreed(stream: Iterable[Any], device: torch.device) -> Iterator[Any]:
    """A stream that ends on every rank as soon as it ends on one (ranks step together)."""
    it = iter(stream)
    while True:
        batch = next(it, None)
        flag = torch.tensor([0.0 if batch is None else 1.0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        if flag.item() == 0:
            return
        yield batch


def _to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, array, or a tuple/list/dict of them) as tensors on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device, non_blocking=True)
    if isinstance(batch, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(batch))
        return t if device.type == "cpu" else t.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _rng_state(gen: torch.Generator, tasks: list[Task], device: torch.device) -> dict[str, Any]:
    """Every generator the run draws from, in a form ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
        "shuffle": gen.get_state(),
        "tasks": {},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    for t in tasks:
        if isinstance(t.rng, torch.Generator):
            state["tasks"][t.name] = t.rng.get_state()
        elif isinstance(t.rng, np.random.Generator):
            state["tasks"][t.name] = t.rng.bit_generator.state
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator, tasks: list[Task],
                   device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))
    gen.set_state(state["shuffle"].cpu())
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    for t in tasks:
        saved = state["tasks"].get(t.name)
        if saved is None:
            continue
        if isinstance(t.rng, torch.Generator):
            t.rng.set_state(saved.cpu())
        elif isinstance(t.rng, np.random.Generator):
            t.rng.bit_generator.state = saved


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="epochs", unit="ep", dynamic_ncols=True)
