"""A whole training run as a user starts it: data, split, model, trainer, evaluation, run
directory. ``kgrec train`` and the benchmarks are thin calls into :func:`train`."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.config import load_preset
from kgrec.config.coerce import ConfigError
from kgrec.data.dataset import Dataset, Split
from kgrec.data.sampling import PairSet, training_rows
from kgrec.data.split import random_split, subsample
from kgrec.models import MODELS, is_variant, model_config, resolve_name
from kgrec.models.base import Recommender, TrainData
from kgrec.pretrain import build_model as build_with_inputs
from kgrec.train.optim import OPTIMIZERS
from kgrec.train.trainer import FitResult, TrainConfig, Trainer, seed_everything
from kgrec.utils.io import atomic_write_text

__all__ = ["RunConfig", "RunResult", "check_run_config", "evaluate_run", "prepare_data",
           "resume_config", "train"]

# dense enough for Precision@K / Recall@K curves over K = 1..100
KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100)


@dataclass
class RunConfig:
    """Everything that defines a run (written to ``config.json``).

    Attributes:
        dataset: catalog name (``synthetic``, ``music``, ``book``, ``movie``, ``movie-half``).
        model: registry name (``mkr``, ``mkr-nokg``, ``kgmf``, ``mf``).
        seed: seeds the conversion's negatives, the 6:2:2 split, init and shuffling.
        epochs: run length (None: the preset's).
        negatives: ``fixed`` (the paper's sampled rows) or ``resample`` (fresh every
            epoch); None: the preset's ``negatives`` (a tuned section may set it), else
            ``fixed``.
        train_ratio: keep this share of the training rows (sparse experiments); the preset's
            epochs are divided by it, so a sparse run takes as many steps as a full one (10
            epochs of 10% of Last.FM are 100 Adam steps, which leave MKR at its initial
            AUC 0.5).
        kg_ratio: keep this share of the KG triples (KG-size ablation).
        kg_shuffle: permute the tails within each relation (the "is it the facts?" ablation).
        params: model hyper-parameters overriding the preset.
        tuned: start from the dataset's tuned preset (``[<dataset>.tuned]`` in the model's
            preset file: what ``kgrec tune`` found on the validation split) instead of the
            papers' settings; ``params`` still override it.
        topk: also run the full-ranking top-K evaluation on the test split.
        topk_users: rank for at most this many test users, drawn with the run's seed (None:
            all; MKR's own code draws 100). Bounds the cost of models whose score of a
            (user, item) pair is an MLP, so full ranking is users x items network calls.
        out: run directory (None: ``runs/<dataset>-<model>-s<seed>-<time>``).
        threads: torch intra-op threads (None: 1; more gain little on these models, and
            spin-waiting OpenMP threads slow a busy machine down tenfold).
        progress: show progress bars.
        plot: write ``learning_curve.svg`` (``kgrec plot curve`` draws it as a PNG).
        protocol: ``ctr`` (MKR's 6:2:2 over labelled rows with sampled negatives, CTR metrics
            plus top-K) or a ranking protocol over the observed events: ``loo`` (last item
            test, second-last validation, full ranking), ``user-split`` (ComiRec's held-out
            users), ``cold-items`` (a seeded 10% of items never seen in training); see
            :func:`kgrec.data.split.make_split`. Ranking protocols train CTR-style models on
            the training positives with fresh sampled negatives every epoch.
        ks: cut-offs of the ranking metrics (``recall@K``, ``ndcg@K``, ``hr@K``, ``mrr@K``).
        monitor: validation metric that picks the epoch (None: ``auc`` for ``ctr``,
            ``ndcg@<first K>`` for the ranking protocols).
        device: ``auto`` (CUDA where available), ``cpu``, ``cuda``, ``cuda:N``.
        optimizer: ``adam``, ``adamw``, ``adagrad`` or ``sgd`` for every task (None: the
            model's choice).
        lr_schedule: ``none``, ``step`` or ``cosine`` (per epoch; see
            :class:`~kgrec.train.trainer.TrainConfig`).
        clip_norm: clip each task's gradient to this L2 norm (None: no clipping).
        resume: continue this run directory's interrupted training from its checkpoint
            (optimizer state and random generators included); the run writes into it.
        patience: stop after this many epochs without a better validation metric (None: run
            every epoch).
        force: overwrite the run in ``out`` (a finished or interrupted run is otherwise
            refused, so that nothing already written is lost).
        data: a folder of your own data in any format the readers know, detected by content
            (:mod:`kgrec.data.folder`); ``dataset`` then names it (default: the folder's name).
        min_user, max_user: keep only users with at least / at most this many observed
            events (``kgrec analyze``'s user filter; None: no bound), before the split.
        negative_sampling: how fresh negatives are drawn where they are (ranking protocols,
            ``negatives="resample"``): ``uniform``, ``popularity`` (proportional to training
            positives) or ``low-ratings`` (the user's known low ratings first; see
            :func:`kgrec.data.sampling.training_rows`).
        evaluate_test: evaluate on the test split at the end (False: the test split is never
            scored, as ``kgrec tune`` needs; ``metrics.json`` then has ``"test": null``).
    """

    dataset: str = "synthetic"
    model: str = "mkr"
    seed: int = 0
    epochs: int | None = None
    negatives: str | None = None
    train_ratio: float = 1.0
    kg_ratio: float = 1.0
    kg_shuffle: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    tuned: bool = False
    topk: bool = True
    topk_users: int | None = None
    out: str | None = None
    threads: int | None = None
    progress: bool = True
    plot: bool = True
    protocol: str = "ctr"
    ks: tuple[int, ...] = (10, 20, 50)
    monitor: str | None = None
    device: str = "auto"
    optimizer: str | None = None
    lr_schedule: str = "none"
    clip_norm: float | None = None
    resume: str | None = None
    patience: int | None = None
    force: bool = False
    data: str | None = None
    min_user: int | None = None
    max_user: int | None = None
    negative_sampling: str = "uniform"
    evaluate_test: bool = True

    @property
    def ranking(self) -> bool:
        """True for the ranking protocols (no labelled CTR rows in validation and test)."""
        return self.protocol != "ctr"


#: the validation metrics a run can monitor (ranking ones take any of the run's cut-offs)
CTR_METRICS = ("auc", "acc", "f1", "logloss")
RANKING_METRICS = ("precision", "recall", "ndcg", "hit", "hr", "mrr")
LR_SCHEDULES = ("none", "step", "cosine")
NEGATIVES = ("fixed", "resample")


def _bad(name: str, reason: str, value: Any) -> ConfigError:
    flag = "--" + name.replace("_", "-")
    return ConfigError(f"{flag} ({name}): {reason}, got {value!r}")


def check_run_config(cfg: RunConfig) -> None:
    """Every setting of a run against its type and range, before any work starts; the
    :class:`~kgrec.config.coerce.ConfigError` names the setting (and its CLI flag)."""
    from kgrec.data.split import PROTOCOLS

    def whole(name: str, lo: int, *, optional: bool = False) -> None:
        v = getattr(cfg, name)
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise _bad(name, "expected an integer", v)
        if v < lo:
            raise _bad(name, f"must be >= {lo}", v)

    whole("seed", 0)
    if cfg.seed >= 2**32:
        raise _bad("seed", "must be below 2^32", cfg.seed)
    whole("epochs", 1, optional=True)
    whole("topk_users", 1, optional=True)
    whole("threads", 1, optional=True)
    whole("patience", 1, optional=True)
    whole("min_user", 0, optional=True)
    whole("max_user", 1, optional=True)
    if cfg.min_user is not None and cfg.max_user is not None and cfg.max_user < cfg.min_user:
        raise _bad("max_user", f"is below --min-user ({cfg.min_user})", cfg.max_user)
    for name, lo_open in (("train_ratio", True), ("kg_ratio", False)):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise _bad(name, "expected a number", v)
        if (v <= 0 if lo_open else v < 0) or v > 1:
            raise _bad(name, f"must lie in {'(' if lo_open else '['}0, 1]", v)
    if cfg.clip_norm is not None and not (isinstance(cfg.clip_norm, int | float)
                                          and cfg.clip_norm > 0):
        raise _bad("clip_norm", "must be > 0", cfg.clip_norm)
    from kgrec.data.sampling import NEGATIVE_SAMPLING

    for name, allowed in (("negatives", NEGATIVES), ("protocol", PROTOCOLS),
                          ("lr_schedule", LR_SCHEDULES),
                          ("negative_sampling", NEGATIVE_SAMPLING)):
        if name == "negatives" and cfg.negatives is None:  # the preset's (training_negatives)
            continue
        if getattr(cfg, name) not in allowed:
            raise _bad(name, f"expected one of {', '.join(allowed)}", getattr(cfg, name))
    if cfg.optimizer is not None and cfg.optimizer not in OPTIMIZERS:
        raise _bad("optimizer", f"expected one of {', '.join(OPTIMIZERS)}", cfg.optimizer)
    ks = tuple(cfg.ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1
                     for k in ks):
        raise _bad("ks", "expected positive integer cut-offs", ",".join(map(str, ks)))
    if cfg.monitor is not None:
        name, _, k = str(cfg.monitor).partition("@")
        if cfg.ranking:
            ok = name in RANKING_METRICS and k.isdigit() and int(k) in ks
            known = f"<{'|'.join(RANKING_METRICS)}>@K with K in --ks ({','.join(map(str, ks))})"
        else:
            ok = cfg.monitor in CTR_METRICS
            known = ", ".join(CTR_METRICS)
        if not ok:
            raise _bad("monitor", f"expected {known} under --protocol {cfg.protocol}",
                       cfg.monitor)
    device = str(cfg.device)
    if device != "auto":
        try:
            torch.device(device)
        except (RuntimeError, ValueError):
            raise _bad("device", "expected auto, cpu, cuda or cuda:N", device) from None
    if not isinstance(cfg.params, dict):
        raise _bad("params", "expected a mapping of model parameters", cfg.params)
    if cfg.data is not None:
        from kgrec.data.folder import detect_format

        detect_format(cfg.data)  # a missing folder or an unknown format, before any work
    if cfg.out is not None and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise _bad("out", "names an existing file, expected a run directory", str(cfg.out))


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: Recommender
    fit: FitResult


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("kgrec", "torch", "numpy", "pandas", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _write_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def prepare_data(cfg: RunConfig, dataset: Dataset | None = None) -> tuple[Dataset, Split]:
    """Load (cached) and split the dataset of a run: ``dataset`` as given, else the folder
    ``cfg.data``, else the catalog's ``cfg.dataset``."""
    if dataset is not None:
        ds = dataset
    elif cfg.data:
        from kgrec.data.folder import load_folder

        ds = load_folder(cfg.data, seed=cfg.seed)
    else:
        from kgrec.data.catalog import load_dataset

        ds = load_dataset(cfg.dataset, seed=cfg.seed)
    if cfg.min_user is not None or cfg.max_user is not None:
        ds = filter_users(ds, cfg.min_user, cfg.max_user)
    if cfg.kg_ratio < 1.0 or cfg.kg_shuffle:
        from kgrec.data.kg_transform import shuffle_tails, subsample_kg

        kg = subsample_kg(ds.kg, cfg.kg_ratio, seed=cfg.seed)
        if cfg.kg_shuffle:
            kg = shuffle_tails(kg, seed=cfg.seed)
        ds = dataclasses.replace(ds, kg=kg, meta={**ds.meta, "kg_ratio": cfg.kg_ratio,
                                                  "kg_shuffle": cfg.kg_shuffle})
    split = _ranking_split(ds, cfg) if cfg.ranking else random_split(ds.ratings, seed=cfg.seed)
    if cfg.train_ratio < 1.0:
        split = dataclasses.replace(split, train=subsample(split.train, cfg.train_ratio,
                                                           seed=cfg.seed))
    return ds, split


def filter_users(ds: Dataset, lo: int | None, hi: int | None) -> Dataset:
    """``ds`` with only the users whose number of observed events (positives where the data
    keeps no events) lies in ``[lo, hi]``; the counts are recorded in ``meta``."""
    from kgrec.data.dataset import DataError
    from kgrec.experiments.analyze import user_filter

    ev = ds.interactions
    users = ev.user if ev is not None and len(ev) else ds.ratings[ds.ratings[:, 2] == 1, 0]
    keep = user_filter(np.bincount(users, minlength=ds.n_users), lo, hi)
    if keep.sum() < 2:
        raise DataError(f"dataset {ds.name!r}: the user filter {lo}-{hi} keeps "
                        f"{int(keep.sum())} of {ds.n_users} users")
    out = ds.select_users(keep)
    out.meta["user_filter"] = {"min": lo, "max": hi, "users_before": ds.n_users,
                               "users_after": out.n_users}
    return out


def _ranking_split(ds: Dataset, cfg: RunConfig) -> Split:
    """The ranking protocol's split of the dataset's observed events (its positives in file
    order where a dataset keeps no events)."""
    from kgrec.data.split import make_split

    ev = getattr(ds, "interactions", None)
    if ev is not None and len(ev):
        user, item, time = ev.user, ev.item, ev.timestamp
    else:
        pos = ds.ratings[ds.ratings[:, 2] == 1]
        user, item, time = pos[:, 0], pos[:, 1], None
    return make_split(cfg.protocol, events_user=user, events_item=item, events_time=time,
                      n_users=ds.n_users, n_items=ds.n_items, seed=cfg.seed)


def _train_low_ratings(ds: Dataset, split: Split) -> np.ndarray:
    """The dataset's known low ratings that are no validation or test target (a held-out
    event must never be trained on, even as a negative)."""
    kn = ds.known_negatives
    held = [np.zeros((0, 2), np.int64)]
    for q in (getattr(split, "valid_queries", None), getattr(split, "test_queries", None)):
        if q is not None:
            pos, items = q.target_pairs()
            held.append(np.c_[q.users[pos], items])
    held = np.concatenate(held)
    if not len(kn) or not len(held):
        return kn
    return kn[~PairSet(held[:, 0], held[:, 1], ds.n_items).contains(kn[:, 0], kn[:, 1])]


def _train_data(ds: Dataset, split: Split, cfg: RunConfig) -> TrainData:
    if cfg.ranking:  # positives only: fresh negatives outside the user's training items
        pos = split.train
        exclude = PairSet(pos[:, 0], pos[:, 1], ds.n_items)
        # cold items stay out of training altogether: drawn as negatives, a model would learn
        # every one of them as disliked and rank it last (recall 0 on the cold slice)
        warm = (np.bincount(pos[:, 1], minlength=ds.n_items) > 0
                if cfg.protocol == "cold-items" else None)
        rows = training_rows(split.train, mode="resample", n_items=ds.n_items,
                             exclude=exclude, seed=cfg.seed, sampling=cfg.negative_sampling,
                             low_ratings=_train_low_ratings(ds, split), candidates=warm)
        return TrainData(
            rec_rows=rows, kg=ds.kg, n_users=ds.n_users, n_items=ds.n_items,
            n_entities=ds.n_entities, n_relations=ds.n_relations, item_entity=ds.item_entity,
            train=rows(0), sequences=getattr(split, "train_sequences", None),
            item_candidates=warm,
        )
    # never a fresh negative (--negatives resample, BPR-trained models): every labelled pair of
    # every split whatever its label (a drawn test negative would be trained on with its
    # label; a test positive pushed down), and the known low ratings (MKR draws its negatives
    # among unrated items)
    r, kn = ds.ratings, ds.known_negatives
    exclude = PairSet(np.r_[r[:, 0], kn[:, 0]], np.r_[r[:, 1], kn[:, 1]], ds.n_items)
    return TrainData(
        rec_rows=training_rows(split.train, mode=cfg.negatives, n_items=ds.n_items,
                               exclude=exclude, seed=cfg.seed,
                               sampling=cfg.negative_sampling,
                               low_ratings=ds.known_negatives),
        kg=ds.kg, n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
        n_relations=ds.n_relations, item_entity=ds.item_entity, train=split.train,
        exclude=exclude,
    )


def _settings(cfg: RunConfig) -> dict[str, Any]:
    """The preset's values (its tuned section with ``cfg.tuned``) under ``cfg.params``."""
    name = resolve_name(cfg.model)
    if cfg.tuned and is_variant(name):
        raise ConfigError(f"--tuned: {name} shares the preset file of {MODELS[name].preset} "
                          f"but was not tuned itself; run `kgrec tune -d {cfg.dataset} -m "
                          f"{name}` and train with its --set flags")
    try:
        preset = load_preset(MODELS[name].preset, cfg.dataset, tuned=cfg.tuned)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    return {**preset, **cfg.params}


def resolve(cfg: RunConfig) -> tuple[dict[str, Any], int]:
    """Model parameters (preset + overrides) and the number of epochs: the preset's, divided
    by ``train_ratio`` when that is below 1 (a sparse run keeps the full run's number of
    steps), unless ``cfg.epochs`` is given."""
    params = _settings(cfg)
    params.pop("negatives", None)  # a training regime, not a model parameter (see below)
    # ``epochs`` may come from the preset, its tuned section or ``--set epochs=N``: the run
    # length the values were chosen with (scaled for a sparse run; ``--epochs`` is exact)
    epochs = int(params.pop("epochs", 10))
    if cfg.train_ratio < 1:
        epochs = math.ceil(epochs / cfg.train_ratio - 1e-9)
    return params, int(cfg.epochs if cfg.epochs is not None else epochs)


def training_negatives(cfg: RunConfig) -> str:
    """The run's training negatives: ``cfg.negatives`` when set, else the preset's
    ``negatives`` (``--set negatives=...``, or the tuned section of a model tuned under fresh
    negatives), else ``fixed``."""
    if cfg.negatives is not None:
        return cfg.negatives
    value = _settings(cfg).get("negatives", "fixed")
    if value not in NEGATIVES:
        raise _bad("negatives", f"expected one of {', '.join(NEGATIVES)}", value)
    return value


def monitor_name(cfg: RunConfig) -> str:
    """The validation metric that picks the epoch (see :attr:`RunConfig.monitor`)."""
    if cfg.monitor:
        return cfg.monitor
    return f"ndcg@{min(cfg.ks)}" if cfg.ranking else "auc"


def _evaluation(cfg: RunConfig, split: Split, n_items: int):
    """``(evaluate, valid, test)`` for the trainer: CTR metrics on labelled rows, or full
    ranking of the protocol's query sets."""
    if not cfg.ranking:
        return None, split.valid, split.test
    from kgrec.eval.ranking import evaluate_ranking

    ks = tuple(sorted(int(k) for k in cfg.ks))

    def evaluate(model: Recommender, queries) -> dict[str, float]:
        return evaluate_ranking(model, queries, n_items=n_items, ks=ks)

    return evaluate, split.valid_queries, split.test_queries


#: diversity recall counts targets whose category is not among the last N history items'
DIVERSE_LAST = 10


def _test_slices(model: Recommender, split: Split, cfg: RunConfig, n_items: int,
                 item_category: np.ndarray | None = None) -> dict[str, dict]:
    """Ranking metrics of the test queries on tail and cold items
    (:func:`kgrec.eval.ranking.item_slices` of the training clicks), ranked among all items
    (``all_items``) where the queries rank candidates only, and, where the data has
    categories, on the ``diverse`` targets (a category new to the user's last
    :data:`DIVERSE_LAST` items: :func:`kgrec.eval.ranking.novel_category_targets`)."""
    from kgrec.eval.ranking import evaluate_slices, item_slices, novel_category_targets

    train = split.train[split.train[:, 2] == 1]
    slices: dict[str, Any] = dict(item_slices(train[:, 1], n_items))
    if split.test_queries.candidates is not None:  # cold-items: also ranked among all items
        slices["all_items"] = split.test_queries.with_candidates(None)
    if item_category is not None:
        slices["diverse"] = novel_category_targets(split.test_queries, item_category,
                                                   last=DIVERSE_LAST)
    return evaluate_slices(model, split.test_queries, slices,
                           n_items=n_items, ks=tuple(sorted(int(k) for k in cfg.ks)))


def _topk_users(split: Split, cfg: RunConfig) -> np.ndarray | None:
    """All test users with a positive, or ``cfg.topk_users`` of them drawn with the seed."""
    if cfg.topk_users is None:
        return None
    users = np.unique(split.test[split.test[:, 2] == 1, 0])
    if len(users) <= cfg.topk_users:
        return users
    return np.sort(np.random.default_rng(cfg.seed).choice(users, cfg.topk_users,
                                                          replace=False))


def dataset_folder(name: str) -> Path | None:
    """The folder a ``dataset`` that is no catalog name stands for: an existing directory
    (``-d path/to/data``), else ``$KGREC_DATA/<name>/``; None for catalog names or when
    neither exists (the catalog then says the name is unknown)."""
    import os

    from kgrec.data.catalog import CATALOG

    if name in CATALOG or name == "synthetic":
        return None
    path = Path(name)
    if path.is_dir():
        return path
    root = os.environ.get("KGREC_DATA")
    if root and (Path(root) / name).is_dir():
        return Path(root) / name
    return None


def train(cfg: RunConfig, dataset: Dataset | None = None, *,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    """Run one training job and write its run directory (see the README for its files).

    ``on_epoch(epoch, valid_metrics)`` is called after each epoch's validation (``kgrec
    tune`` reports to Optuna there; an exception it raises ends the run).

    ``dataset``: train on this :class:`Dataset` (your own, e.g. from
    :func:`~kgrec.data.readers.from_dataframes`) instead of ``cfg.dataset`` / ``cfg.data``;
    the run records its name and checksum. Under ``torchrun`` (several processes) every rank
    trains its shard of each batch and rank 0 alone evaluates and writes the run directory;
    every rank returns the result.
    """
    from kgrec.train import distributed as dist

    if dataset is not None:
        cfg = dataclasses.replace(cfg, dataset=dataset.name, data=None)
    elif cfg.data and cfg.dataset == RunConfig.dataset:
        cfg = dataclasses.replace(cfg, dataset=Path(cfg.data).resolve().name)
    elif not cfg.data and cfg.resume is None:
        folder = dataset_folder(cfg.dataset)
        if folder is not None:
            cfg = dataclasses.replace(cfg, dataset=folder.resolve().name, data=str(folder))
    own_group = not dist.is_distributed() and dist.init(device=cfg.device)
    try:
        return _train(cfg, dataset, on_epoch)
    finally:
        if own_group:
            dist.shutdown()


def _config_of(run: dict[str, Any]) -> RunConfig:
    """The :class:`RunConfig` recorded under ``run`` in a run's ``config.json`` (keys the
    record adds, such as ``world_size``, are dropped; JSON lists become tuples)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    cfg = RunConfig(**{k: v for k, v in run.items() if k in names})
    cfg.ks = tuple(cfg.ks)
    return cfg


#: the files a run writes into its directory (removed by ``force`` before a new run)
RUN_FILES = ("metrics.json", "checkpoint.pt", "config.json", "artifact.npz", "split.npz",
             "learning_curve.svg", "learning_curve.png")


def claim_run_dir(run_dir: Path, *, resume: bool = False, force: bool = False,
                  remove: bool = True) -> None:
    """Check that a run may write into ``run_dir``: a finished run (``metrics.json``) or an
    interrupted one (``config.json`` without it) is refused unless ``force`` (its run files
    are then removed, when ``remove``) or ``resume``."""
    if resume or not run_dir.is_dir():
        if run_dir.exists() and not run_dir.is_dir():
            raise _bad("out", "names an existing file, expected a run directory", str(run_dir))
        return
    finished = (run_dir / "metrics.json").exists()
    started = (run_dir / "config.json").exists() or (run_dir / "checkpoint.pt").exists()
    if not (finished or started):
        return
    if not force:
        if finished:
            raise ConfigError(f"--out: {run_dir} holds a finished run (metrics.json); pass "
                              "--force to overwrite it, or choose another --out")
        raise ConfigError(f"--out: {run_dir} holds an interrupted run; continue it with "
                          f"`kgrec train --resume {run_dir}`, or pass --force to start over")
    if remove:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)


def resume_config(run_dir: str | Path, **overrides: Any) -> RunConfig:
    """The :class:`RunConfig` of an interrupted run, to continue it with :func:`train`
    (``overrides``: e.g. more ``epochs``, another ``device``)."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --resume takes a run directory written "
                                "by `kgrec train`")
    if not (run_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{run_dir / 'checkpoint.pt'}: not found; the run stopped "
                                "before its first epoch ended, start it again instead")
    from kgrec.utils.io import read_json

    resolved = read_json(path)
    if not isinstance(resolved, dict) or "run" not in resolved:
        raise ValueError(f"{path}: no 'run' section; the file is damaged")
    cfg = _config_of(resolved["run"])
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for k, v in overrides.items():
        if k not in names:
            raise KeyError(f"unknown run setting {k!r}")
        setattr(cfg, k, v)
    cfg.out, cfg.resume = str(run_dir), str(run_dir)
    return cfg


def _train(cfg: RunConfig, dataset: Dataset | None = None,
           on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    from kgrec.train import distributed as dist

    t_start = time.perf_counter()
    main = dist.is_main()
    check_run_config(cfg)  # every setting, then every model parameter, before any work
    cfg = dataclasses.replace(cfg, negatives=training_negatives(cfg))
    params, epochs = resolve(cfg)
    model_cfg = model_config(cfg.model, params)
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / (
        f"{cfg.dataset}-{cfg.model}-s{cfg.seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    run_dir = Path(dist.broadcast_object(str(run_dir)))  # rank 0's clock names the run
    claim_run_dir(run_dir, resume=cfg.resume is not None, force=cfg.force, remove=main)

    t0 = time.perf_counter()
    ds, split = prepare_data(cfg, dataset)
    ds.check_trainable()
    data_seconds = time.perf_counter() - t0
    if MODELS[resolve_name(cfg.model)].family == "kg" and len(ds.kg) == 0 and cfg.kg_ratio >= 1:
        raise ValueError(f"model {cfg.model!r} needs a knowledge graph and dataset "
                         f"{ds.name!r} has none; pick a KG dataset (music, book, movie-half, "
                         "ml-100k-kg) or an interaction-only model (kgrec models)")

    seed_everything(cfg.seed)
    model = build_with_inputs(cfg.model, ds, model_cfg)
    if cfg.protocol == "user-split" and not (model.uses_history or model.user_free):
        raise ValueError(f"model {cfg.model!r} scores by user id, and the held-out users of "
                         "--protocol user-split were never trained; use a model that encodes "
                         "the history (kgrec models: sequential recall) or pop, or another "
                         "protocol (loo, cold-items)")
    threads = cfg.threads or 1
    resolved = {
        "run": {**asdict(cfg), "epochs": epochs, "threads": threads,
                "world_size": dist.world_size()},
        "model_params": dataclasses.asdict(model_cfg),
        "data": {"name": ds.name, "checksum": ds.checksum,
                 "source_checksums": ds.source_checksums, "split": split.sizes(),
                 "stats": ds.stats(), "meta": ds.meta},
    }
    if main:  # the folder is made once data and model are ready: a failed start leaves none
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(resolved, run_dir / "config.json")
        from kgrec.retrieval.artifact import save_artifact, save_split

        save_artifact(run_dir, ds)
        save_split(run_dir, split)

    evaluate, valid, test = _evaluation(cfg, split, ds.n_items)
    trainer = Trainer(
        TrainConfig(epochs=epochs, seed=cfg.seed, progress=cfg.progress, threads=threads,
                    monitor=monitor_name(cfg), device=cfg.device, optimizer=cfg.optimizer,
                    lr_schedule=cfg.lr_schedule, clip_norm=cfg.clip_norm,
                    patience=cfg.patience),
        evaluate=evaluate,
        checkpoint=run_dir / "checkpoint.pt",
        checkpoint_extra={"model": cfg.model, "model_params": dataclasses.asdict(model_cfg)},
        on_epoch=on_epoch,
    )
    resume = None if cfg.resume is None else Path(cfg.resume) / "checkpoint.pt"
    fit = trainer.fit(model, _train_data(ds, split, cfg), valid,
                      test if cfg.evaluate_test else None, resume=resume)

    topk, topk_seconds = None, 0.0
    if cfg.topk and not cfg.ranking and main and cfg.evaluate_test:
        from kgrec.eval import evaluate_topk

        t0 = time.perf_counter()
        topk = evaluate_topk(model, split.train, split.test, n_items=ds.n_items, ks=KS,
                             users=_topk_users(split, cfg))
        topk_seconds = time.perf_counter() - t0

    slices = None
    if cfg.ranking and main and cfg.evaluate_test:
        t0 = time.perf_counter()
        from kgrec.data.features import category_codes

        slices = _test_slices(model, split, cfg, ds.n_items,
                              category_codes(getattr(ds, "item_features", None)))
        topk_seconds = time.perf_counter() - t0

    metrics = {
        "dataset": ds.name,
        "model": cfg.model,
        "seed": cfg.seed,
        **fit.summary(),
        "test_topk": topk,
        "test_slices": slices,
        "timings": {
            "data_seconds": data_seconds,
            **fit.timings(),
            "topk_seconds": topk_seconds,
            "total_seconds": time.perf_counter() - t_start,
            "peak_rss_mb": _peak_rss_mb(),
        },
        "device": str(trainer.device),
        "world_size": dist.world_size(),
        "data_checksum": ds.checksum,
        "source_checksums": ds.source_checksums,
        "data_summary": ds.summary(),
        "versions": _versions(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if main:
        _write_json(metrics, run_dir / "metrics.json")
        if cfg.plot:
            try:
                from kgrec.viz.svg import learning_curve_svg

                learning_curve_svg(metrics, run_dir / "learning_curve.svg")
            except Exception as exc:  # a plot must never lose a finished run
                print(f"warning: learning curve not written: {exc}")
    dist.barrier()
    return RunResult(run_dir=run_dir, metrics=metrics, model=model, fit=fit)


def evaluate_run(run_dir: str | Path, *, topk: bool = True) -> dict[str, Any]:
    """Re-evaluate a run's checkpoint on its validation and test splits, from the run
    directory alone (:func:`kgrec.load` and the saved split; no raw data)."""
    from kgrec.retrieval.artifact import load, load_split

    art = load(run_dir)
    split = load_split(run_dir)
    cfg = _config_of(art.config["run"])
    evaluate, valid, test = _evaluation(cfg, split, art.n_items)
    if evaluate is None:
        from kgrec.eval import evaluate_ctr as evaluate
    out: dict[str, Any] = {"valid": evaluate(art.model, valid), "test": evaluate(art.model, test)}
    if not (Path(run_dir) / "metrics.json").is_file():
        import torch

        ckpt = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu",
                          weights_only=True)
        done = (ckpt.get("trainer") or {}).get("epoch")
        out["incomplete"] = (f"{run_dir} has no metrics.json: its training did not finish; "
                             "these figures are of its best checkpoint so far (epoch "
                             f"{ckpt.get('epoch')}"
                             + (f" of {done + 1} trained" if done is not None else "")
                             + f"); continue it with `kgrec train --resume {run_dir}`")
    if cfg.ranking:
        out["test_slices"] = _test_slices(art.model, split, cfg, art.n_items,
                                          art.item_category)
    if topk and not cfg.ranking:
        from kgrec.eval import evaluate_topk

        out["test_topk"] = evaluate_topk(art.model, split.train, split.test, n_items=art.n_items,
                                         ks=KS, users=_topk_users(split, cfg))
    return out


def evaluate_run_diversity(run_dir: str | Path, lambdas: list[float], *, n: int = 50,
                           index: str = "exact") -> dict[str, dict[str, float]]:
    """ComiRec's accuracy/diversity trade-off of a run on its test queries
    (:func:`kgrec.eval.diversity.evaluate_diversity`), from the run directory alone."""
    from kgrec.eval.diversity import evaluate_diversity
    from kgrec.retrieval.artifact import load, load_split

    art = load(run_dir)
    if art.item_category is None:
        raise ValueError(f"{run_dir}: the run's data has no item category field, which "
                         "diversity needs")
    split = load_split(run_dir)
    if split.test_queries is None:
        raise ValueError(f"{run_dir}: trained with --protocol ctr; diversity needs a ranking "
                         "protocol (loo, user-split, cold-items)")
    return evaluate_diversity(art.model, split.test_queries, art.item_category,
                              lambdas=lambdas, n=n, index=index)


def evaluate_run_ann(run_dir: str | Path, *, kinds: tuple[str, ...] = ("flat", "ivf", "hnsw"),
                     n: int = 50) -> dict[str, dict[str, float]]:
    """ANN recall against exact search and queries per second of a run's test queries
    (:func:`kgrec.eval.ann.evaluate_ann`), from the run directory alone."""
    from kgrec.eval.ann import evaluate_ann
    from kgrec.retrieval.artifact import load, load_split

    art = load(run_dir)
    split = load_split(run_dir)
    if split.test_queries is None:
        raise ValueError(f"{run_dir}: trained with --protocol ctr; ANN evaluation needs a "
                         "ranking protocol (loo, user-split, cold-items)")
    return evaluate_ann(art.model, split.test_queries, kinds=kinds, n=n)
