"""One generic trainer for every model: task schedule, optimizers, model selection, checkpoints.

The trainer knows nothing model-specific. Per epoch it runs each task the model declares
(in declared order, when ``epoch % task.every == 0``): shuffle the task's rows, step its own
Adam optimizer batch by batch. Then it scores the validation split, keeps the best state by the
monitored metric, writes that state as a checkpoint (atomically) and, at the end, reports the
test split at the best epoch.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.models.base import Recommender, TrainData
from kgrec.train.optim import make_adam

__all__ = ["EpochLog", "FitResult", "TrainConfig", "Trainer", "atomic_save", "seed_everything"]


@dataclass
class TrainConfig:
    """Run-level settings.

    Attributes:
        epochs: number of epochs.
        seed: seeds torch (init, shuffling) and numpy.
        monitor: validation metric used to pick the epoch (higher is better).
        patience: stop after this many epochs without improvement (None: run all epochs).
        progress: show progress bars.
        threads: torch intra-op threads (None: leave torch's default).
    """

    epochs: int = 10
    seed: int = 0
    monitor: str = "auc"
    patience: int | None = None
    progress: bool = True
    threads: int | None = None


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
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


Evaluate = Callable[[Recommender, np.ndarray], dict[str, float]]


class Trainer:
    """Train a :class:`Recommender` on its tasks; select the epoch on validation.

    Args:
        config: run-level settings.
        evaluate: ``(model, rows) -> metrics`` used on validation and test rows
            (default: CTR metrics, :func:`kgrec.eval.evaluate_ctr`).
        checkpoint: where to write the best state (``None``: keep it in memory only).
        checkpoint_extra: extra entries stored in the checkpoint (config, vocab sizes ...).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        evaluate: Evaluate | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_extra: dict[str, Any] | None = None,
    ):
        if evaluate is None:
            from kgrec.eval import evaluate_ctr

            evaluate = evaluate_ctr
        self.config = config
        self.evaluate = evaluate
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_extra = checkpoint_extra or {}

    def fit(
        self,
        model: Recommender,
        data: TrainData,
        valid: np.ndarray,
        test: np.ndarray | None = None,
    ) -> FitResult:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # Denormal floats (an MKR run stuck at its all-small initial saddle produces them) make
        # CPU arithmetic ~5x slower; flushing them to zero changes nothing a healthy run sees.
        torch.set_flush_denormal(True)
        gen = torch.Generator().manual_seed(cfg.seed)
        t_setup = time.perf_counter()
        tasks = model.tasks(data)  # fits closed-form models (popularity, item-CF) too
        setup_seconds = time.perf_counter() - t_setup
        optims = {
            t.name: make_adam(t.params, lr=t.lr) for t in tasks
        }
        all_params = list(model.parameters())
        history: list[EpochLog] = []
        best_epoch, best_score, best_valid = -1, -math.inf, {}
        best_state: dict[str, torch.Tensor] | None = None
        eval_seconds = 0.0
        bar = _progress(cfg.epochs, cfg.progress)
        for epoch in range(cfg.epochs):
            model.train()
            t0 = time.perf_counter()
            losses: dict[str, float] = {}
            for task in tasks:
                if epoch % task.every:
                    continue
                rows = torch.from_numpy(np.ascontiguousarray(task.source(epoch), dtype=np.int64))
                rows = rows[torch.randperm(len(rows), generator=gen)]
                opt = optims[task.name]
                total, n_steps = torch.zeros(()), 0
                for batch in torch.split(rows, task.batch_size):
                    for p in all_params:  # a shared parameter keeps no gradient of another task
                        p.grad = None
                    if task.step is not None:
                        loss = task.step(batch)
                    else:
                        loss = task.loss(batch)
                        loss.backward()
                    opt.step()
                    if task.after_step is not None:
                        task.after_step()
                    total += loss.detach()
                    n_steps += 1
                losses[task.name] = float(total) / max(n_steps, 1)
            train_seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            valid_metrics = self.evaluate(model, valid)
            eval_seconds += time.perf_counter() - t1
            history.append(EpochLog(epoch, losses, train_seconds, valid_metrics))
            score = valid_metrics[cfg.monitor]
            if score > best_score:
                best_epoch, best_score, best_valid = epoch, score, valid_metrics
                best_state = copy.deepcopy(model.state_dict())
                if self.checkpoint is not None:
                    atomic_save(
                        {"state_dict": best_state, "epoch": epoch, "valid": valid_metrics,
                         **self.checkpoint_extra},
                        self.checkpoint,
                    )
            if bar is not None:
                bar.set_postfix(
                    {**{f"loss_{k}": f"{v:.4f}" for k, v in losses.items()},
                     f"val_{cfg.monitor}": f"{score:.4f}", "best": best_epoch}
                )
                bar.update(1)
            if cfg.patience is not None and epoch - best_epoch >= cfg.patience:
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        test_metrics = None
        if test is not None:
            t1 = time.perf_counter()
            test_metrics = self.evaluate(model, test)
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


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="epochs", unit="ep", dynamic_ncols=True)
