"""The MKR paper's comparison, reproduced: ``kgrec benchmark``.

One benchmark is a set of training runs (:func:`kgrec.experiments.run.train`, in-process or in
worker processes), grouped into sections:

* ``ctr``: every model x dataset x seed on MKR's 6:2:2 split: AUC/ACC mean ± std, relative
  difference to MKR, a paired t-test against MKR over the same seeds, the paper's figures, and
  the full-ranking top-K metrics of the same runs (Precision@K / Recall@K curves, Recall@20 and
  NDCG@20);
* ``sparse``: training ratio 10% .. 100% with validation and test fixed;
* ``kg``: KG ablations of the KG-aware models: the full graph, no graph, tails shuffled within
  each relation, and a share of the triples (KG size ratio);
* ``sensitivity``: MKR against its KGE interval ``t`` and its dimension ``d``;
* ``cold``: cold-start items (``--protocol cold-items``: 10% of the items never seen in
  training, ranked on the shelf of new items): each KG model with its full graph, with no
  graph (its KG-blind twin) and with shuffled tails, against the interaction-only baselines
  and the random floor; recall@20 over seeds with paired t-tests. With ``kg`` as well the
  report ends with the *KG-value table*: full / none / shuffled under CTR AUC, full-ranking
  recall@20 and cold-item recall@20, side by side.

Every finished run is appended to ``<runs_dir>/<name>/jobs.jsonl``, so an interrupted
benchmark resumes where it stopped (``fresh=True`` starts over). The report is written to
``<out_dir>/<name>.md`` and ``<name>.json`` (every run's figures, the config, seeds, data
checksums, versions) with PNG plots beside them; each file names the command that made it.
A hand-written ``<out_dir>/<name>.notes.md``, if present, is appended to the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.eval.stats import mean_std, paired_ttest, relative_diff
from kgrec.experiments.run import _json_default
from kgrec.utils.io import atomic_write_text

__all__ = [
    "DEFAULT_MODELS",
    "PAPER",
    "BenchmarkConfig",
    "Job",
    "plan_jobs",
    "run_benchmark",
    "write_report",
]

SECTIONS = ("ctr", "sparse", "kg", "sensitivity", "cold")

DEFAULT_MODELS = (
    "pop", "item-cf", "bpr-mf", "mf", "fm", "wide-deep", "cke", "dkn", "ripplenet", "kgmf",
    "mkr-1l", "mkr-dcn", "mkr-stitch", "mkr",
)

# MKR paper (Wang et al., WWW'19), Table 2: AUC / ACC in CTR prediction. LibFM is ``fm``.
# The movie column is full MovieLens-1M; kgrec's ``movie-half`` holds users 1-2999 of it.
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "mkr": {"movie": (0.917, 0.843), "book": (0.734, 0.704), "music": (0.797, 0.752)},
    "ripplenet": {"movie": (0.920, 0.842), "book": (0.729, 0.662), "music": (0.768, 0.691)},
    "cke": {"movie": (0.801, 0.742), "book": (0.671, 0.633), "music": (0.744, 0.673)},
    "dkn": {"movie": (0.655, 0.589), "book": (0.622, 0.598), "music": (0.602, 0.581)},
    "fm": {"movie": (0.892, 0.812), "book": (0.685, 0.640), "music": (0.777, 0.709)},
    "wide-deep": {"movie": (0.898, 0.820), "book": (0.712, 0.624), "music": (0.756, 0.688)},
}
PAPER_DATASET = {"movie-half": "movie", "movie": "movie", "book": "book", "music": "music"}


@dataclass
class BenchmarkConfig:
    """What a benchmark runs (recorded in its results file).

    Attributes:
        datasets: catalog names.
        models: registry names for the ``ctr`` section (MKR is the reference of the t-test).
        seeds: seeds ``0 .. seeds-1`` of the ``ctr`` section.
        sections: any of ``ctr``, ``sparse``, ``kg``, ``sensitivity``.
        quick: a smoke-test size: 2 seeds, at most ``quick_epochs`` epochs, fewer ratios and
            settings (CI; numbers are not comparable with the paper).
        quick_epochs: the epoch cap of quick mode.
        sparse_models, sparse_ratios, sparse_seeds: the training-ratio study.
        kg_models, kg_ratios, kg_seeds: the KG ablations (models of the ``kg`` family only).
        intervals, dims, sensitivity_seeds: MKR's sensitivity to ``kge_interval`` and ``dim``.
        cold_models, cold_baselines, cold_seeds: the cold-items study: KG models (each also
            without and with a shuffled graph) and interaction-only baselines.
        negatives: ``fixed`` (the paper's sampled negatives) or ``resample``; None:
            ``fixed``, or with ``tuned`` a tuned section's ``negatives``.
        topk_users: top-K ranking for at most this many test users per run (drawn with the
            run's seed; the same users for every model of a seed). None: all.
        workers: runs in parallel (worker processes of one torch thread each).
        out_dir: where the report goes; runs_dir: run directories and the resume log.
        name: report name (default ``benchmark_<datasets>[_quick]``).
        fresh: ignore finished runs of an earlier invocation.
        tuned: models with tuned values for a dataset (``[<dataset>.tuned]``, what ``kgrec
            tune`` found on validation) run with them; the others with the papers' presets.
            The report lists which.
        command: the command line recorded in the report.
    """

    datasets: list[str] = field(default_factory=lambda: ["music"])
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    seeds: int = 5
    sections: list[str] = field(default_factory=lambda: list(SECTIONS[:4]))  # not cold
    quick: bool = False
    quick_epochs: int = 3
    sparse_models: list[str] = field(
        default_factory=lambda: ["mkr", "ripplenet", "cke", "fm", "bpr-mf", "pop"])
    sparse_ratios: list[float] = field(
        default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    sparse_seeds: int = 1
    kg_models: list[str] = field(default_factory=lambda: ["mkr", "ripplenet", "cke", "kgmf"])
    kg_ratios: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75])
    kg_seeds: int = 3
    intervals: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 10])
    dims: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32])
    sensitivity_seeds: int = 1
    cold_models: list[str] = field(
        default_factory=lambda: ["kgcn", "cke", "mkr", "ripplenet", "kgmf"])
    cold_baselines: list[str] = field(default_factory=lambda: ["pop", "bpr-mf", "lightgcn"])
    cold_seeds: int = 3
    negatives: str | None = None
    topk_users: int | None = 2000
    workers: int = 1
    out_dir: str = "benchmarks/results"
    runs_dir: str = "runs/benchmark"
    name: str | None = None
    fresh: bool = False
    tuned: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        from kgrec.models import MODELS

        bad = [s for s in self.sections if s not in SECTIONS]
        if bad:
            raise ValueError(f"unknown section(s) {', '.join(bad)}; known: {', '.join(SECTIONS)}")
        for group in (self.models, self.sparse_models, self.kg_models, self.cold_models,
                      self.cold_baselines):
            unknown = [m for m in group if m not in MODELS]
            if unknown:
                raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(MODELS)}")
        if self.seeds < 1:
            raise ValueError("seeds must be >= 1")
        if self.quick:
            self.seeds = min(self.seeds, 2)
            self.sparse_ratios = [0.2, 1.0]
            self.kg_ratios = [0.5]
            self.kg_seeds = min(self.kg_seeds, 2)
            self.cold_seeds = min(self.cold_seeds, 2)
            self.intervals = [1, 3]
            self.dims = [4, 8]
        if self.name is None:
            self.name = "benchmark_" + "-".join(self.datasets) + ("_quick" if self.quick else "")


@dataclass(frozen=True)
class Job:
    """One training run of a benchmark."""

    dataset: str
    model: str
    seed: int
    train_ratio: float = 1.0
    kg_ratio: float = 1.0
    kg_shuffle: bool = False
    params: tuple[tuple[str, Any], ...] = ()
    #: the tuned values the run starts from (``--tuned``); ``params`` override them. Kept
    #: apart so that the tables select a section's runs by ``params`` alone.
    tuned: tuple[tuple[str, Any], ...] = ()
    epochs: int | None = None
    negatives: str = "fixed"
    topk: bool = False
    topk_users: int | None = None
    protocol: str = "ctr"

    @property
    def key(self) -> str:
        """Identity of the run (``topk`` excluded: a run with top-K serves one without;
        ``protocol`` only when not ``ctr``, so logs from before it existed still resume)."""
        d = asdict(self)
        d.pop("topk")
        d.pop("topk_users")
        if d["protocol"] == "ctr":
            d.pop("protocol")
        if not d["tuned"]:
            d.pop("tuned")
        else:
            d["tuned"] = sorted(self.tuned)
        d["params"] = sorted(self.params)
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _epochs(cfg: BenchmarkConfig, model: str, dataset: str) -> int | None:
    if not cfg.quick:
        return None
    from kgrec.experiments.run import RunConfig, resolve

    _, epochs = resolve(RunConfig(dataset=dataset, model=model))
    return min(epochs, cfg.quick_epochs)


def _tuned(cfg: BenchmarkConfig, model: str, dataset: str) -> dict[str, Any]:
    """The tuned values a job of ``model`` on ``dataset`` runs with (``cfg.tuned``; none for
    a variant such as ``mkr-dcn``, which shares its base's preset file but was not tuned)."""
    from kgrec.config import tuned_values
    from kgrec.models import is_variant, resolve_name

    if not cfg.tuned or is_variant(model):
        return {}
    return tuned_values(resolve_name(model), dataset)


def _tuned_note(cfg: BenchmarkConfig) -> str:
    """The report's sentence on tuned presets (``--tuned``)."""
    if not cfg.tuned:
        return ""
    used = list(dict.fromkeys(f"{j.model} ({j.dataset})" for j in plan_jobs(cfg)
                              if _tuned(cfg, j.model, j.dataset)))
    return ("`--tuned`: " + (", ".join(used) if used else "no model") + " ran with the values "
            "`kgrec tune` found on validation (`[<dataset>.tuned]`, `kgrec train --tuned`); "
            "every other model with the papers' preset. ")


def _negatives_note(cfg: BenchmarkConfig) -> str:
    """The report's words on the training negatives."""
    if cfg.negatives:
        return f"`{cfg.negatives}`"
    return "`fixed` (`resample` where a tuned section says so)" if cfg.tuned else "`fixed`"


def _family(model: str) -> str:
    from kgrec.models import MODELS, resolve_name

    return MODELS[resolve_name(model)].family


def _uses_kg(model: str) -> bool:
    """The model reads the KG: the ``kg`` family, or a model with a ``kg`` switch (the
    two-tower model's KG fields); such models get the no-KG and shuffled ablations."""
    from kgrec.models import MODELS, resolve_name

    spec = MODELS[resolve_name(model)]
    if spec.family == "kg":
        return True
    return any(f.name == "kg" for f in dataclasses.fields(spec.config_class))


def plan_jobs(cfg: BenchmarkConfig) -> list[Job]:
    """Every run the benchmark needs (duplicates merged; top-K where a section reads it)."""
    jobs: dict[str, Job] = {}

    def add(job: Job) -> None:
        old = jobs.get(job.key)
        jobs[job.key] = job if old is None else dataclasses.replace(old,
                                                                    topk=old.topk or job.topk)

    for ds in cfg.datasets:
        def mk(model: str, seed: int, ds: str = ds, **kw: Any) -> Job:
            tuned = _tuned(cfg, model, ds)
            negatives = cfg.negatives or tuned.get("negatives", "fixed")
            return Job(dataset=ds, model=model, seed=seed, epochs=_epochs(cfg, model, ds),
                       negatives=negatives, topk_users=cfg.topk_users,
                       tuned=tuple(sorted(tuned.items())), **kw)

        if "ctr" in cfg.sections:
            for m in cfg.models:
                for s in range(cfg.seeds):
                    add(mk(m, s, topk=True))
        if "sparse" in cfg.sections:
            for m in cfg.sparse_models:
                for r in cfg.sparse_ratios:
                    for s in range(cfg.sparse_seeds):
                        add(mk(m, s, train_ratio=float(r)))
        if "kg" in cfg.sections:
            for m in cfg.kg_models:
                if _family(m) != "kg":
                    continue
                for s in range(cfg.kg_seeds):
                    add(mk(m, s, topk=True))  # the KG-value table reads full-ranking recall
                    add(mk(m, s, kg_ratio=0.0, topk=True))
                    add(mk(m, s, kg_shuffle=True, topk=True))
                    for r in cfg.kg_ratios:
                        add(mk(m, s, kg_ratio=float(r)))
        if "sensitivity" in cfg.sections:
            for s in range(cfg.sensitivity_seeds):
                for t in cfg.intervals:
                    add(mk("mkr", s, params=(("kge_interval", int(t)),)))
                for d in cfg.dims:
                    add(mk("mkr", s, params=(("dim", int(d)),)))
        if "cold" in cfg.sections:
            for s in range(cfg.cold_seeds):
                for m in cfg.cold_baselines:
                    add(mk(m, s, protocol="cold-items"))
                for m in cfg.cold_models:
                    add(mk(m, s, protocol="cold-items"))
                    if _uses_kg(m):
                        add(mk(m, s, protocol="cold-items", kg_ratio=0.0))
                        add(mk(m, s, protocol="cold-items", kg_shuffle=True))
    return list(jobs.values())


# --------------------------------------------------------------------------- running
def run_job(job: Job, runs_dir: str, threads: int | None) -> dict[str, Any]:
    """Train one job and return its figures (top-level, so worker processes can run it)."""
    from kgrec.experiments.run import RunConfig, train

    cfg = RunConfig(dataset=job.dataset, model=job.model, seed=job.seed, epochs=job.epochs,
                    negatives=job.negatives, train_ratio=job.train_ratio,
                    kg_ratio=job.kg_ratio, kg_shuffle=job.kg_shuffle,
                    params={**dict(job.tuned), **dict(job.params)},
                    topk=job.topk and job.protocol == "ctr", topk_users=job.topk_users,
                    protocol=job.protocol, out=str(Path(runs_dir) / job.key), threads=threads,
                    progress=False, plot=False,
                    force=True)  # the resume log, not the folder, says what is done
    t0 = time.perf_counter()
    m = train(cfg).metrics
    return {
        "key": job.key,
        "job": {**asdict(job), "params": dict(job.params), "tuned": dict(job.tuned)},
        "test": m["test"],
        "valid": m["valid"],
        "best_epoch": m["best_epoch"],
        "test_topk": m.get("test_topk"),
        "test_slices": m.get("test_slices"),
        "seconds": time.perf_counter() - t0,
        "seconds_per_epoch": m["timings"]["seconds_per_epoch"],
        "data_checksum": m["data_checksum"],
        "data_version": data_version(m.get("source_checksums") or {}),
        "threads": threads,
    }


def data_version(source_checksums: dict[str, str]) -> str:
    """What a finished run was made from: its dataset's source files (sha256) and the
    catalog's conversion version. A run logged under another version (a changed file, a
    repaired conversion) is not resumed."""
    from kgrec.data.catalog import CONVERSION_VERSION

    text = json.dumps({"conversion": CONVERSION_VERSION, "sources": source_checksums},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _load_log(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interruption
                continue
            done[r["key"]] = r
    return done


def run_benchmark(cfg: BenchmarkConfig, *, progress: bool = True,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every job of ``cfg`` and write the report; returns the results."""
    from kgrec.data.catalog import load_dataset

    versions: dict[tuple[str, int], str] = {}

    def version(ds: str, seed: int) -> str:
        if (ds, seed) not in versions:
            versions[ds, seed] = data_version(load_dataset(ds, seed=seed).source_checksums)
        return versions[ds, seed]

    for ds in cfg.datasets:  # fail early (missing data) and convert once, before workers start
        version(ds, 0)
    jobs = plan_jobs(cfg)
    run_root = Path(cfg.runs_dir) / str(cfg.name)
    run_root.mkdir(parents=True, exist_ok=True)
    log_path = run_root / "jobs.jsonl"
    done = {} if cfg.fresh else _load_log(log_path)
    stale = [k for k, r in done.items() if r["job"]["dataset"] in cfg.datasets
             and r.get("data_version") != version(r["job"]["dataset"], r["job"]["seed"])]
    if stale:
        log(f"{len(stale)} finished run(s) in {log_path} were made from other data (changed "
            f"source files or conversion): run again")
        for k in stale:
            del done[k]
    if cfg.fresh and log_path.exists():
        log_path.unlink()
    todo = [j for j in jobs if j.key not in done
            or (j.topk and j.protocol == "ctr" and not done[j.key]["test_topk"])]
    log(f"{len(jobs)} runs planned, {len(jobs) - len(todo)} already done, {len(todo)} to run "
        f"with {cfg.workers} worker(s)")
    t0 = time.perf_counter()
    threads = 1 if cfg.workers > 1 else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="benchmark", unit="run", dynamic_ncols=True)

    def record(r: dict[str, Any]) -> None:
        done[r["key"]] = r
        with log_path.open("a") as f:
            f.write(json.dumps(r, default=_json_default) + "\n")
        if bar is not None:
            head = ("auc", "recall@20")["auc" not in r["test"]]
            bar.set_postfix_str(f"{r['job']['dataset']}/{r['job']['model']} "
                                f"{head} {r['test'].get(head, math.nan):.4f}")
            bar.update(1)

    if cfg.workers <= 1:
        for j in todo:
            record(run_job(j, str(run_root), threads))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=cfg.workers,
                                 mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(run_job, j, str(run_root), threads) for j in todo]
            for fut in as_completed(futures):
                record(fut.result())
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    results = [done[j.key] for j in jobs]
    return write_report(cfg, results, wall_seconds=wall)


# --------------------------------------------------------------------------- tables
def _select(results: Iterable[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    out = []
    for r in results:
        j = r["job"]
        defaults = {"train_ratio": 1.0, "kg_ratio": 1.0, "kg_shuffle": False, "params": {},
                    "protocol": "ctr"}
        if all(j.get(k, defaults.get(k)) == v for k, v in {**defaults, **where}.items()):
            out.append(r)
    return sorted(out, key=lambda r: r["job"]["seed"])


def _fmt(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


#: a run whose test AUC stays within this of 0.5 stalled (learned nothing): it is flagged
#: and left out of means and t-tests instead of being averaged in
STALL_BAND = 0.01


def stalled(r: dict[str, Any]) -> bool:
    """The run's test AUC is within :data:`STALL_BAND` of 0.5 (ranking runs: never)."""
    return "auc" in r["test"] and abs(float(r["test"]["auc"]) - 0.5) < STALL_BAND


def ctr_rows(results: list[dict[str, Any]], dataset: str, models: list[str]
             ) -> list[dict[str, Any]]:
    """Per model: AUC/ACC over seeds, relative AUC difference to MKR and the paired t-test
    (AUC, same seeds) against MKR, the paper's figures, seconds per run. Stalled runs
    (:func:`stalled`) are listed under ``stalled`` and left out of everything else."""
    by_model = {m: _select(results, dataset=dataset, model=m) for m in models}
    ref = {r["job"]["seed"]: r["test"]["auc"] for r in by_model.get("mkr", [])
           if not stalled(r)}
    rows = []
    for m in models:
        stuck = [r["job"]["seed"] for r in by_model[m] if stalled(r)]
        rs = [r for r in by_model[m] if not stalled(r)]
        if not rs:
            if stuck:
                rows.append({"model": m, "n": 0, "auc": (math.nan, math.nan),
                             "acc": (math.nan, math.nan), "rel_auc": math.nan, "t": math.nan,
                             "p": math.nan, "paper": (math.nan, math.nan), "seconds": math.nan,
                             "seconds_per_epoch": math.nan, "stalled": stuck})
            continue
        auc = [r["test"]["auc"] for r in rs]
        acc = [r["test"]["acc"] for r in rs]
        seeds = [r["job"]["seed"] for r in rs]
        paired = [(a, ref[s]) for a, s in zip(auc, seeds, strict=True) if s in ref]
        t, p = (math.nan, math.nan)
        if m != "mkr" and len(paired) >= 2:
            t, p = paired_ttest([a for a, _ in paired], [b for _, b in paired])
        auc_m, auc_s = mean_std(auc)
        acc_m, acc_s = mean_std(acc)
        ref_m = mean_std(list(ref.values()))[0] if ref else math.nan
        paper = PAPER.get(m, {}).get(PAPER_DATASET.get(dataset, ""), (math.nan, math.nan))
        rows.append({
            "model": m, "n": len(rs), "auc": (auc_m, auc_s), "acc": (acc_m, acc_s),
            "rel_auc": relative_diff(auc_m, ref_m) if m != "mkr" else 0.0, "t": t, "p": p,
            "paper": paper, "seconds": float(np.mean([r["seconds"] for r in rs])),
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in rs])),
            "stalled": stuck,
        })
    return rows


def topk_curves(results: list[dict[str, Any]], dataset: str, models: list[str]
                ) -> dict[str, dict[str, Any]]:
    """Per model: the K values and mean Precision@K / Recall@K / NDCG@K over seeds."""
    out = {}
    for m in models:
        rs = [r for r in _select(results, dataset=dataset, model=m) if r.get("test_topk")]
        if not rs:
            continue
        ks = sorted(int(k.split("@")[1]) for k in rs[0]["test_topk"] if k.startswith("recall@"))
        curves = {metric: [float(np.mean([r["test_topk"][f"{metric}@{k}"] for r in rs]))
                           for k in ks] for metric in ("precision", "recall", "ndcg", "hit")}
        std20 = {metric: mean_std([r["test_topk"].get(f"{metric}@20", math.nan) for r in rs])
                 for metric in ("recall", "ndcg")}
        out[m] = {"ks": ks, **curves, "at20": std20, "n": len(rs)}
    return out


def _auc_of(rs: list[dict[str, Any]]) -> tuple[float, float]:
    return mean_std([r["test"]["auc"] for r in rs if not stalled(r)])


# --------------------------------------------------------------------------- report
def write_report(cfg: BenchmarkConfig, results: list[dict[str, Any]], *,
                 wall_seconds: float | None = None) -> dict[str, Any]:
    """Write ``<name>.md``, ``<name>.json`` and the PNG plots; returns the JSON object."""
    from kgrec.experiments.run import _versions

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = str(cfg.name)
    command = cfg.command or f"kgrec benchmark --datasets {','.join(cfg.datasets)}"
    lines = [f"# Benchmark `{name}`", "",
             f"Command: `{command}`", "",
             f"Finished {datetime.now(UTC).isoformat(timespec='seconds')}; "
             f"{len(results)} runs taking {sum(r['seconds'] for r in results) / 60:.1f} min "
             f"in all (sum over runs, {cfg.workers} at a time)"
             + (f"; this invocation's wall time {wall_seconds / 60:.1f} min (finished runs "
                "are resumed, not rerun)" if wall_seconds is not None else "")
             + f". Seeds 0..{cfg.seeds - 1} (ctr); negatives " + _negatives_note(cfg)
             + (f"; **quick mode: epochs capped at {cfg.quick_epochs}, not comparable with "
                "the paper**" if cfg.quick else "") + ".",
             "",
             "Each run: `kgrec train -d <dataset> -m <model> --seed <s>` with the model's "
             "preset (src/kgrec/config/presets/<model>.toml); the epoch is chosen on validation "
             "AUC. " + _tuned_note(cfg) +
             "Paired t-test: two-sided, test AUC of the model against MKR over the same seeds "
             "(same split and negatives). Δ = relative AUC difference to MKR.", ""]
    checksums = {}
    plots: list[str] = []
    for ds in cfg.datasets:
        rs_ds = [r for r in results if r["job"]["dataset"] == ds]
        if not rs_ds:
            continue
        checksums[ds] = rs_ds[0]["data_checksum"]
        lines += [f"## {ds}", "", f"Data checksum `{checksums[ds][:16]}`.", ""]
        if "ctr" in cfg.sections:
            lines += _ctr_section(cfg, results, ds, plots, out_dir)
        if "sparse" in cfg.sections:
            lines += _sparse_section(cfg, results, ds, plots, out_dir)
        if "kg" in cfg.sections:
            lines += _kg_section(cfg, results, ds, plots, out_dir)
        if "sensitivity" in cfg.sections:
            lines += _sensitivity_section(cfg, results, ds, plots, out_dir)
        if "cold" in cfg.sections:
            lines += _cold_section(cfg, results, ds)
        if "cold" in cfg.sections and "kg" in cfg.sections:
            lines += _kg_value_section(cfg, results, ds)
    versions = _versions()
    lines += ["## Environment", "",
              f"{versions.get('platform')}, Python {versions.get('python')}, torch "
              f"{versions.get('torch')}, kgrec {versions.get('kgrec')}; {os.cpu_count()} cores.",
              ""]
    notes = out_dir / f"{name}.notes.md"
    if notes.is_file():
        lines += ["## Notes (hand-written)", "", notes.read_text().strip(), ""]
    md = "\n".join(lines)
    obj = {"name": name, "command": command, "config": asdict(cfg), "data_checksums": checksums,
           "versions": versions, "wall_seconds": wall_seconds, "plots": plots,
           "runs": results}
    atomic_write_text(out_dir / f"{name}.json",
                 json.dumps(obj, indent=1, default=_json_default) + "\n")
    atomic_write_text(out_dir / f"{name}.md", md)
    return obj


def _ctr_section(cfg, results, ds, plots, out_dir) -> list[str]:
    from kgrec.viz.plots import topk_curves_plot

    rows = ctr_rows(results, ds, cfg.models)
    out = ["### CTR prediction (test)", "",
           "| model | AUC | ACC | Δ AUC vs MKR | p (vs MKR) | paper AUC / ACC | "
           "AUC - paper | s / run | s / epoch |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pa, pc = r["paper"]
        paper = f"{pa:.3f} / {pc:.3f}" if math.isfinite(pa) else "—"
        gap = f"{r['auc'][0] - pa:+.3f}" if math.isfinite(pa) else "—"
        rel = "ref." if r["model"] == "mkr" else (
            f"{100 * r['rel_auc']:+.1f}%" if math.isfinite(r["rel_auc"]) else "—")
        out.append(f"| {r['model']} | {_fmt(*r['auc'])} | {_fmt(*r['acc'])} | {rel} | "
                   f"{_p(r['p'])} | {paper} | {gap} | {r['seconds']:.1f} | "
                   f"{r['seconds_per_epoch']:.2f} |")
    stuck = [f"{r['model']} seed(s) {', '.join(map(str, r['stalled']))}" for r in rows
             if r.get("stalled")]
    out += ["", f"n = {cfg.seeds} seeds per model. Paper: MKR paper Table 2 (its movie column "
            "is full MovieLens-1M)."
            + (f" **Stalled** (test AUC within {STALL_BAND} of 0.5, left out of the means and "
               f"t-tests): {'; '.join(stuck)}." if stuck else ""), ""]
    curves = topk_curves(results, ds, cfg.models)
    if curves:
        png = f"{cfg.name}_{ds}_topk.png"
        topk_curves_plot(curves, out_dir / png, title=f"{ds}: full-ranking top-K (test)")
        plots.append(png)
        best = max(curves, key=lambda m: curves[m]["at20"]["recall"][0])
        out += ["### Top-K by full ranking (test; train items masked)", "",
                f"![Precision@K and Recall@K]({png})", "",
                "| model | Recall@20 | NDCG@20 | Precision@20 | HR@20 |",
                "|---|---|---|---|---|"]
        for m, c in curves.items():
            i20 = c["ks"].index(20) if 20 in c["ks"] else -1
            out.append(f"| {m} | {_fmt(*c['at20']['recall'])} | {_fmt(*c['at20']['ndcg'])} | "
                       f"{c['precision'][i20]:.4f} | {c['hit'][i20]:.4f} |")
        mkr = curves.get("mkr")
        note = f"Best Recall@20: **{best}** ({curves[best]['at20']['recall'][0]:.4f})"
        if mkr is not None and best != "mkr":
            note += f"; MKR {mkr['at20']['recall'][0]:.4f}"
        out += ["", note + ".", ""]
    return out


def _sparse_section(cfg, results, ds, plots, out_dir) -> list[str]:
    from kgrec.viz.plots import lines_plot

    ratios = sorted(cfg.sparse_ratios)
    table: dict[str, list[tuple[float, float]]] = {}
    for m in cfg.sparse_models:
        vals = [_auc_of(_select(results, dataset=ds, model=m, train_ratio=float(r))[
            : cfg.sparse_seeds]) for r in ratios]
        if any(math.isfinite(v[0]) for v in vals):
            table[m] = vals
    if not table:
        return []
    png = f"{cfg.name}_{ds}_sparse.png"
    lines_plot({m: [v[0] for v in vals] for m, vals in table.items()}, ratios, out_dir / png,
               xlabel="share of training rows kept", ylabel="test AUC",
               title=f"{ds}: sparse training (valid and test fixed)")
    plots.append(png)
    out = ["### Sparse training: test AUC by training ratio", "",
           f"Seeds 0..{cfg.sparse_seeds - 1}; validation and test fixed.", "",
           "| model | " + " | ".join(f"{100 * r:g}%" for r in ratios) + " |",
           "|---|" + "---|" * len(ratios)]
    for m, vals in table.items():
        out.append(f"| {m} | " + " | ".join(f"{v[0]:.4f}" if math.isfinite(v[0]) else "—"
                                            for v in vals) + " |")
    out += ["", f"![sparse]({png})", ""]
    return out


def _kg_section(cfg, results, ds, plots, out_dir) -> list[str]:
    from kgrec.viz.plots import lines_plot

    models = [m for m in cfg.kg_models if _family(m) == "kg"]
    out = ["### KG ablations: does the graph help?", "",
           f"Test AUC, seeds 0..{cfg.kg_seeds - 1}. *No KG*: every triple removed; *shuffled*: "
           "tails permuted within each relation (same size and relation mix, facts destroyed). "
           "p: paired t-test of the full graph against the ablation over the same seeds.", "",
           "| model | full KG | no KG | p | shuffled tails | p |",
           "|---|---|---|---|---|---|"]
    ratio_curves: dict[str, list[float]] = {}
    ratios = sorted({*cfg.kg_ratios, 0.0, 1.0})
    for m in models:
        full = _select(results, dataset=ds, model=m)[: cfg.kg_seeds]
        none = _select(results, dataset=ds, model=m, kg_ratio=0.0)[: cfg.kg_seeds]
        shuf = _select(results, dataset=ds, model=m, kg_shuffle=True)[: cfg.kg_seeds]
        if not full:
            continue

        def p_of(other, full=full):
            a = {r["job"]["seed"]: r["test"]["auc"] for r in full}
            b = {r["job"]["seed"]: r["test"]["auc"] for r in other}
            common = sorted(set(a) & set(b))
            return paired_ttest([a[s] for s in common], [b[s] for s in common])[1]

        out.append(f"| {m} | {_fmt(*_auc_of(full))} | {_fmt(*_auc_of(none))} | "
                   f"{_p(p_of(none))} | {_fmt(*_auc_of(shuf))} | {_p(p_of(shuf))} |")
        ratio_curves[m] = [
            _auc_of(_select(results, dataset=ds, model=m, kg_ratio=float(r))[: cfg.kg_seeds])[0]
            for r in ratios]
    if not ratio_curves:
        return []
    png = f"{cfg.name}_{ds}_kg.png"
    lines_plot(ratio_curves, ratios, out_dir / png, xlabel="share of KG triples kept",
               ylabel="test AUC", title=f"{ds}: KG size ratio")
    plots.append(png)
    out += ["", "Test AUC by KG size ratio:", "",
            "| model | " + " | ".join(f"{r:g}" for r in ratios) + " |",
            "|---|" + "---|" * len(ratios)]
    for m, vals in ratio_curves.items():
        out.append(f"| {m} | " + " | ".join(f"{v:.4f}" if math.isfinite(v) else "—"
                                            for v in vals) + " |")
    out += ["", f"![kg ratio]({png})", ""]
    return out


def _sensitivity_section(cfg, results, ds, plots, out_dir) -> list[str]:
    from kgrec.viz.plots import sensitivity_plot

    n = cfg.sensitivity_seeds

    def auc(param: str, value: int) -> float:
        rs = [r for r in _select(results, dataset=ds, model="mkr", params={param: value})][:n]
        return _auc_of(rs)[0]

    t_vals = [auc("kge_interval", t) for t in cfg.intervals]
    d_vals = [auc("dim", d) for d in cfg.dims]
    if not any(math.isfinite(v) for v in t_vals + d_vals):
        return []
    png = f"{cfg.name}_{ds}_sensitivity.png"
    sensitivity_plot({"KGE interval t": (cfg.intervals, t_vals),
                      "dimension d": (cfg.dims, d_vals)}, out_dir / png,
                     title=f"{ds}: MKR sensitivity (test AUC)")
    plots.append(png)
    return ["### MKR sensitivity", "",
            f"Test AUC, seeds 0..{n - 1}, other parameters from the preset.", "",
            "| t | " + " | ".join(str(t) for t in cfg.intervals) + " |",
            "|---|" + "---|" * len(cfg.intervals),
            "| AUC | " + " | ".join(f"{v:.4f}" for v in t_vals) + " |", "",
            "| d | " + " | ".join(str(d) for d in cfg.dims) + " |",
            "|---|" + "---|" * len(cfg.dims),
            "| AUC | " + " | ".join(f"{v:.4f}" for v in d_vals) + " |", "",
            f"![sensitivity]({png})", ""]



def _metric(rs: list[dict[str, Any]], get: Callable[[dict[str, Any]], float | None]
            ) -> dict[int, float]:
    """``seed -> value`` of the runs where ``get`` finds the figure (stalled runs left out)."""
    out = {}
    for r in rs:
        v = get(r)
        if v is not None and not stalled(r):
            out[r["job"]["seed"]] = float(v)
    return out


def _vs(full: dict[int, float], other: dict[int, float]) -> float:
    """p of the paired t-test of ``full`` against ``other`` over their common seeds."""
    common = sorted(set(full) & set(other))
    if len(common) < 2:
        return math.nan
    return paired_ttest([full[s] for s in common], [other[s] for s in common])[1]


def _ms(vals: dict[int, float]) -> tuple[float, float]:
    return mean_std(list(vals.values())) if vals else (math.nan, math.nan)


def _cold_recall(r: dict[str, Any], k: int = 20) -> float | None:
    return r["test"].get(f"recall@{k}")


def _cold_section(cfg, results, ds) -> list[str]:
    n = cfg.cold_seeds
    sel = {"dataset": ds, "protocol": "cold-items"}
    base = {m: _metric(_select(results, model=m, **sel)[:n], _cold_recall)
            for m in cfg.cold_baselines}
    floor = [r["test_slices"]["cold"].get("random_recall@20")
             for m in [*cfg.cold_baselines, *cfg.cold_models]
             for r in _select(results, model=m, **sel)[:n] if r.get("test_slices")]
    rand = float(np.mean([f for f in floor if f is not None])) if floor else math.nan
    best_cf = max(base, key=lambda m: _ms(base[m])[0], default=None) if base else None
    out = ["### Cold-start items: can the graph place a new item?", "",
           f"`--protocol cold-items`, seeds 0..{n - 1}: 10% of the items never seen in "
           "training; each test user's cold items are ranked among all the cold items (the "
           "shelf of new arrivals; ranked among all items instead, every model's cold recall "
           "is about 0: the `all R@20` column). A model that knows an item by its id alone "
           "ranks new items at random (the *random* row: min(20, C) / C). *pop* has no count "
           "for any new item: all tie, and ties are broken at random per query (never by item "
           "index, which follows popularity in some datasets). Recall@20, "
           "mean ± std; p: paired t-test over the same seeds.", "",
           "| model | cold R@20 | NDCG@20 | x random | all R@20 | no KG | p | "
           "shuffled tails | p |",
           "|---|---|---|---|---|---|---|---|---|"]

    def row(m: str, rs: list[dict[str, Any]], abl: tuple[str, ...] = ("—",) * 4) -> str:
        rec = _metric(rs, _cold_recall)
        nd = _metric(rs, lambda r: r["test"].get("ndcg@20"))
        allr = _metric(rs, lambda r: (r.get("test_slices") or {}).get("all_items", {})
                       .get("recall@20"))
        mean = _ms(rec)[0]
        times = f"{mean / rand:.2f}" if math.isfinite(rand) and rand > 0 else "—"
        return (f"| {m} | {_fmt(*_ms(rec))} | {_fmt(*_ms(nd))} | {times} | "
                f"{_ms(allr)[0]:.4f} | " + " | ".join(abl) + " |")

    for m in cfg.cold_baselines:
        out.append(row(m, _select(results, model=m, **sel)[:n]))
    for m in cfg.cold_models:
        full = _select(results, model=m, **sel)[:n]
        if not full:
            continue
        if not _uses_kg(m):
            out.append(row(m, full))
            continue
        f = _metric(full, _cold_recall)
        none = _metric(_select(results, model=m, kg_ratio=0.0, **sel)[:n], _cold_recall)
        shuf = _metric(_select(results, model=m, kg_shuffle=True, **sel)[:n], _cold_recall)
        out.append(row(m, full, (_fmt(*_ms(none)), _p(_vs(f, none)), _fmt(*_ms(shuf)),
                                 _p(_vs(f, shuf)))))
    out.append(f"| random | {rand:.4f} | — | 1.00 | — | — | — | — | — |")
    kg_best = max((m for m in cfg.cold_models if _uses_kg(m)),
                  key=lambda m: _ms(_metric(_select(results, model=m, **sel)[:n],
                                            _cold_recall))[0], default=None)
    if kg_best is not None and best_cf is not None:
        kb = _metric(_select(results, model=kg_best, **sel)[:n], _cold_recall)
        out += ["", f"Best KG model **{kg_best}** ({_ms(kb)[0]:.4f}) against the best "
                f"baseline **{best_cf}** ({_ms(base[best_cf])[0]:.4f}): "
                f"{_ms(kb)[0] / max(_ms(base[best_cf])[0], 1e-12):.2f}x, "
                f"p = {_p(_vs(kb, base[best_cf]))}."]
    return [*out, ""]


def _kg_value_section(cfg, results, ds) -> list[str]:
    """Full KG vs no KG vs shuffled tails, under CTR AUC, full-ranking recall@20 (the CTR
    runs' top-K) and cold-item recall@20: where is a graph worth building?"""
    models = [m for m in cfg.kg_models if _family(m) == "kg" and m in cfg.cold_models]
    if not models:
        return []
    views = (
        ("CTR AUC", "ctr", cfg.kg_seeds, lambda r: r["test"].get("auc")),
        ("ranking R@20", "ctr", cfg.kg_seeds,
         lambda r: (r.get("test_topk") or {}).get("recall@20")),
        ("cold R@20", "cold-items", cfg.cold_seeds, _cold_recall),
    )
    out = ["### The KG-value table", "",
           "Each cell: full KG / no KG / shuffled tails (means over the seeds of the `kg` and "
           "`cold` sections), then the verdict: **helps** where the full graph beats both "
           "ablations with p < 0.05 (paired t-test), **hurts** where either ablation beats it "
           "with p < 0.05, else *no effect*.", "",
           "| model | " + " | ".join(v[0] for v in views) + " |",
           "|---|" + "---|" * len(views)]
    for m in models:
        cells = []
        for _, protocol, n, get in views:
            sel = {"dataset": ds, "model": m, "protocol": protocol}
            f = _metric(_select(results, **sel)[:n], get)
            a = _metric(_select(results, kg_ratio=0.0, **sel)[:n], get)
            b = _metric(_select(results, kg_shuffle=True, **sel)[:n], get)
            if not f:
                cells.append("—")
                continue
            pa, pb = _vs(f, a), _vs(f, b)
            fm, am, bm = _ms(f)[0], _ms(a)[0], _ms(b)[0]
            if pa < 0.05 and pb < 0.05 and fm > am and fm > bm:
                verdict = "**helps**"
            elif (pa < 0.05 and am > fm) or (pb < 0.05 and bm > fm):
                verdict = "**hurts**"
            else:
                verdict = "no effect"
            cells.append(f"{fm:.4f} / {am:.4f} / {bm:.4f} {verdict}")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return [*out, ""]
