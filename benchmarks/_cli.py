"""Shared by the benchmark scripts: run one ``kgrec`` CLI command in a fresh process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def run_cli(args: list[str], out: Path) -> dict:
    """Run ``kgrec <args>`` through this interpreter (same environment, even when the console
    script is not on PATH) and return the run's ``metrics.json`` plus the process wall time."""
    if "train" in args[:2] and "--force" not in args:
        args = [*args, "--force"]  # called for unfinished runs only: an interrupted one restarts
    argv = [sys.executable, "-m", "kgrec.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    m = json.loads((out / "metrics.json").read_text())
    m["process_wall_seconds"] = wall
    return m


def fmt_mean_std(xs: list) -> str:
    """``mean ± std`` (sample std) of the values that are not None; one value as is."""
    import numpy as np

    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{np.mean(xs):.4f} ± {np.std(xs, ddof=1):.4f}"


def bench_args(description: str, plans: dict, runs_dir: str, patience: int):
    """The arguments every plan-driven benchmark takes (``--plan --runs-dir --workers
    --patience --name``); exits when ``KGREC_DATA`` is not set."""
    import argparse
    import os

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--plan", default="default", choices=sorted(plans))
    ap.add_argument("--runs-dir", default=runs_dir)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--patience", type=int, default=patience)
    ap.add_argument("--name", default=None)
    ap.add_argument("--no-reuse", action="store_true",
                    help="rerun jobs whose records an earlier results file holds")
    a = ap.parse_args()
    if not os.environ.get("KGREC_DATA"):
        sys.exit("set KGREC_DATA to the shared datasets folder")
    return a


def epoch_timings(train_s: list, train_cpu: list, valid_s: list, prep: float) -> dict:
    """The timing fields every peer result records: mean wall and CPU seconds of a training
    epoch, each epoch's wall seconds, mean validation seconds, data preparation seconds."""
    import numpy as np

    return {"train_seconds_per_epoch": float(np.mean(train_s)),
            "train_cpu_seconds_per_epoch": float(np.mean(train_cpu)),
            "train_seconds_each": [round(x, 2) for x in train_s],
            "valid_seconds_per_epoch": float(np.mean(valid_s)),
            "data_prep_seconds": prep}


def slice_metric(r: dict, name: str, key: str) -> float | None:
    """``key`` of the test slice ``name`` (tail, cold, diverse) of a run, None if empty."""
    d = (r.get("test_slices") or {}).get(name) or {}
    return d.get(key) if d.get("n_queries") else None


def paired_p(a: list[dict], b: list[dict], get) -> str:
    """Paired t-test (by seed, ``r["job"][4]``) of ``get`` between two groups of runs."""
    from kgrec.eval.stats import paired_ttest

    by_seed = {r["job"][4]: r for r in b}
    pairs = [(get(r), get(by_seed[r["job"][4]])) for r in a if r["job"][4] in by_seed]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    if len(pairs) < 2:
        return "-"
    _, p = paired_ttest([x for x, _ in pairs], [y for _, y in pairs])
    return "-" if p != p else f"{p:.3f}"


def train_job(job: tuple, runs: Path, *, patience: int, quick: bool,
              sets: dict[str, str]) -> dict:
    """One ``(dataset, protocol, model, variant, seed)`` job of a plan-driven benchmark:
    ``kgrec train ... --set k=v`` into ``runs/<ds>-<protocol>-<model>-<variant>-s<seed>``
    (reused when it finished before), one torch thread, ``--patience``; ``quick``: 2 epochs.
    Returns the run's metrics with ``job`` and ``run_dir`` added."""
    ds, protocol, model, variant, seed = job
    out = runs / f"{ds}-{protocol}-{model}-{variant}-s{seed}"
    if (out / "metrics.json").is_file():
        m = json.loads((out / "metrics.json").read_text())
    else:
        args = ["train", "-d", ds, "-m", model, "--protocol", protocol, "--seed", str(seed),
                "--ks", "10,20,50", "--out", str(out), "-q", "--threads", "1",
                "--patience", str(patience)]
        for k, v in sets.items():
            args += ["--set", f"{k}={v}"]
        if quick:
            args += ["--epochs", "2"]
        m = run_cli(args, out)
        print(f"done {out.name}: recall@50 {m['test']['recall@50']:.4f}", flush=True)
    m["job"] = list(job)
    m["run_dir"] = str(out)
    return m


def peer_md_head(title: str, payload: dict, run_note: str = "") -> list[str]:
    """The first lines of a peer script's report: title, what made it (command, machine,
    wall time; ``run_note`` goes before the wall time) and the package versions."""
    return [
        f"# {title}",
        "",
        f"Generated {payload['generated']} by `{payload['command']}` on {payload['machine']} "
        f"({run_note}wall {payload['wall_seconds'] / 60:.1f} min).",
        "",
        "Package versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items())
        + ".",
        "",
    ]


@contextlib.contextmanager
def scratch_cwd(workdir: str | None, prefix: str) -> Iterator[Path]:
    """Run the body inside a scratch working directory, yielded as an absolute path (RecBole
    writes ``log/`` and ``log_tensorboard/`` into the working directory): ``workdir`` when
    given (created, kept), else a temporary one removed on exit. The caller's working
    directory is restored on exit, also after an error."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix) if workdir is None else None
    work = Path(workdir or tmp.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(cwd)
        if tmp is not None:
            tmp.cleanup()


def recbole_prepare(model: str, dataset: str, params: dict):
    """RecBole's ``Config`` for ``model`` on ``dataset`` (seeded, one torch thread, its INFO
    log in its file only), the dataset and its train / valid / test loaders:
    ``(config, dataset, train_data, valid_data, test_data, prep_seconds)``."""
    import logging

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    config = Config(model=model, dataset=dataset, config_dict=params)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.WARNING)  # RecBole's INFO goes to its log file only
    t0 = time.perf_counter()
    data = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, data)
    return config, data, train_data, valid_data, test_data, time.perf_counter() - t0


def recbole_fit_timed(trainer, train_data, valid_data, *, on_train=None,
                      on_valid=None) -> dict:
    """RecBole's ``trainer.fit`` with every epoch's training (wall and CPU seconds) and
    validation (wall seconds, score) recorded: ``{"train_s", "train_cpu", "valid_s",
    "valid_curve", "best", "best_epoch"}``, the best epoch as RecBole keeps it (the last one
    to reach the best score). ``on_train(epoch, rec, result)`` and ``on_valid(epoch, score,
    rec)``, when given, run after each with the record so far (progress lines)."""
    rec: dict = {"train_s": [], "train_cpu": [], "valid_s": [], "valid_curve": []}
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        r = orig_train(*a, **k)
        rec["train_s"].append(time.perf_counter() - t)
        rec["train_cpu"].append(time.process_time() - c)
        if on_train is not None:
            on_train(len(rec["train_s"]) - 1, rec, r)
        return r

    def timed_valid(*a, **k):
        t = time.perf_counter()
        score, result = orig_valid(*a, **k)
        rec["valid_s"].append(time.perf_counter() - t)
        rec["valid_curve"].append(float(score))
        if on_valid is not None:
            on_valid(len(rec["train_s"]) - 1, float(score), rec)
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    best = max(rec["valid_curve"])
    rec["best"] = best
    rec["best_epoch"] = max(i for i, v in enumerate(rec["valid_curve"]) if v == best)
    return rec
