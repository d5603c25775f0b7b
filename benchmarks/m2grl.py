"""M2GRL (Wang et al., KDD'20) against item2vec / DeepWalk, gensim's Word2Vec on the very same
walks, EGES and popularity on movie-half (loo; one seed on Amazon Beauty and under
``user-split``), with the ablation (no inter-view tasks, equal
task weights, alignment without a gradient into the item view), diversity recall of the
diversity-matching metric model, the learned task weights over epochs (a plot), and skip-gram
throughput against gensim.

Each run is ``kgrec train -d DATASET -m MODEL --protocol P --seed S [--set k=v ...]`` in a
fresh process (the m2grl preset, ``--patience`` stops a run early; one torch thread per run,
``--workers`` runs at a time). Finished runs in ``--runs-dir`` are reused, so an interrupted
benchmark resumes. *Diversity recall* is the ``diverse`` slice every ranking run on data with
categories reports: test targets whose category does not occur among the user's last 10
history items (:func:`kgrec.eval.ranking.novel_category_targets`).

gensim runs (movie-half, loo) in its own virtual environment (``--gensim-python``, default
``/tmp/gensim-venv/bin/python``; ``python -m venv /tmp/gensim-venv &&
/tmp/gensim-venv/bin/pip install gensim``): for each seed this script builds item2vec's item
graph and walks (:mod:`kgrec.data.graph`, the same settings as the preset), trains
``Word2Vec(sg=1, negative=5, window=3, vector_size=64, sample=0, min_count=1, workers=1)`` on
them, loads its input and output vectors into an item2vec model and evaluates it with kgrec's
full ranking (validation picks the epoch count among 1, 2, 4, 8). Throughput: walk tokens per
second of one thread, gensim's training loop against one kgrec epoch on the same corpus size.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/m2grl.py
    KGREC_DATA=../shared/datasets python benchmarks/m2grl.py --plan quick   # smoke test
    REPORT_ONLY=1 KGREC_DATA=../shared/datasets python benchmarks/m2grl.py  # finished runs
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _cli import bench_args, paired_p, slice_metric, train_job
from _cli import fmt_mean_std as _fmt

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: (model, variant) -> --set overrides
VARIANTS: dict[str, dict[str, str]] = {
    "full": {},
    "equal": {"weighting": "equal"},
    "no-inter-view": {"inter_view": "false"},
    "no-align-grad": {"align_moves_items": "false"},
    "sgd": {"optimizer": "sgd", "lr": "51", "batch_size": "1024", "weighting": "equal"},
}
LABELS = {("pop", "full"): "popularity", ("item2vec", "full"): "item2vec / DeepWalk",
          ("item2vec", "sgd"): "item2vec, SGD with word2vec's linear decay",
          ("eges", "full"): "EGES (side information)", ("m2grl", "full"): "M2GRL",
          ("m2grl", "equal"): "M2GRL, equal task weights",
          ("m2grl", "no-inter-view"): "M2GRL without inter-view tasks",
          ("m2grl", "no-align-grad"): "M2GRL, alignment without gradient into items",
          ("m2grl-div", "full"): "M2GRL + diversity metric model"}

#: (dataset, protocol, model, variant, seeds)
PLANS = {
    "default": [
        ("movie-half", "loo", "pop", "full", 1),
        *[("movie-half", "loo", m, "full", 3) for m in ("item2vec", "eges", "m2grl",
                                                       "m2grl-div")],
        *[("movie-half", "loo", "m2grl", v, 3) for v in ("equal", "no-inter-view")],
        ("movie-half", "loo", "item2vec", "sgd", 3),
        ("movie-half", "loo", "m2grl", "no-align-grad", 1),
        # Amazon Beauty (attributes, no KG) and ComiRec's user-split: 3 seeds for item2vec and
        # M2GRL with equal weights, one for the others
        *[(ds, p, m, v, 3 if (m, v) in (("item2vec", "full"), ("m2grl", "equal")) else 1)
          for ds, p in (("amazon-beauty", "loo"), ("movie-half", "user-split"))
          for m, v in (("pop", "full"), ("item2vec", "full"), ("item2vec", "sgd"),
                       ("eges", "full"), ("m2grl", "full"), ("m2grl", "equal"))],
        *[("amazon-beauty", "user-split", m, v, 1) for m, v in (
            ("pop", "full"), ("item2vec", "full"), ("m2grl", "full"), ("m2grl", "equal"))],
    ],
    "quick": [("movie-half", "loo", "item2vec", "full", 1)],
}
GENSIM_EPOCHS = (1, 2, 4, 8)


def _dir(runs: Path, job) -> Path:
    ds, protocol, model, variant, seed = job
    return runs / f"{ds}-{protocol}-{model}-{variant}-s{seed}"


def _run(job, runs: Path, patience: int, quick: bool) -> dict:
    return train_job(job, runs, patience=patience, quick=quick, sets=VARIANTS[job[3]])


# ---------------------------------------------------------------------- gensim
_GENSIM = r"""
import json, sys, time
import numpy as np
from gensim.models import Word2Vec
walks = np.load(sys.argv[1]); out = sys.argv[2]; epochs = [int(e) for e in sys.argv[3].split(",")]
cfg = json.loads(sys.argv[4])
sent = [[str(t) for t in w[w >= 0]] for w in walks]
res = {}
m = Word2Vec(vector_size=cfg["dim"], window=cfg["window"], negative=cfg["n_neg"], sg=1,
             min_count=1, sample=0, workers=1, seed=cfg["seed"], ns_exponent=0.75)
m.build_vocab(sent)
done, total = 0, 0.0
for e in range(1, max(epochs) + 1):
    t = time.perf_counter()
    a0, a1 = 0.025 * (1 - (e - 1) / max(epochs)), 0.025 * (1 - e / max(epochs)) + 1e-4
    m.train(sent, total_examples=len(sent), epochs=1, start_alpha=a0, end_alpha=a1)
    total += time.perf_counter() - t
    if e in epochs:
        keys = np.array([int(k) for k in m.wv.index_to_key])
        np.savez(f"{out}/vec{e}.npz", keys=keys, inp=m.wv.vectors, out=m.syn1neg)
        res[e] = total
tokens = int(sum(len(s) for s in sent))
json.dump({"seconds": res, "tokens_per_epoch": tokens, "version": __import__("gensim").__version__},
          open(f"{out}/gensim.json", "w"))
"""


def gensim_runs(runs: list[dict], gensim_python: str) -> list[dict]:
    """gensim's Word2Vec on item2vec's walks, per seed of the item2vec runs."""
    import torch

    from kgrec.data.graph import cooccurrence_graph, random_walks
    from kgrec.eval.ranking import evaluate_ranking
    from kgrec.experiments.run import RunConfig, _train_data, prepare_data
    from kgrec.models.graph.m2grl import M2GRLConfig
    from kgrec.models.registry import build_model
    from kgrec.models.sequential.base import remember_histories

    if not Path(gensim_python).is_file():
        print(f"gensim: {gensim_python} not found, skipped", flush=True)
        return []
    out = []
    for r in runs:
        ds_name, protocol, model, variant, seed = r["job"]
        if (ds_name, protocol, model, variant) != ("movie-half", "loo", "item2vec", "full"):
            continue
        cfg = RunConfig(dataset=ds_name, model="item2vec", protocol=protocol, seed=seed)
        ds, split = prepare_data(cfg)
        mcfg = M2GRLConfig(**r["model_params"])
        torch.manual_seed(seed)
        m = build_model("item2vec", ds, mcfg)
        indptr, items = remember_histories(m, _train_data(ds, split, cfg))
        graph = cooccurrence_graph(indptr, items, ds.n_items)
        rng = np.random.default_rng(seed)
        starts = np.flatnonzero(graph.out_weight() > 0)
        walks = np.concatenate([random_walks(graph, rng.permutation(starts), mcfg.walk_length,
                                             rng=rng) for _ in range(mcfg.walks_per_node)])
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/walks.npy", walks)
            gcfg = {"dim": mcfg.dim, "window": mcfg.window, "n_neg": mcfg.n_neg, "seed": seed}
            subprocess.run([gensim_python, "-c", _GENSIM, f"{tmp}/walks.npy", tmp,
                            ",".join(map(str, GENSIM_EPOCHS)), json.dumps(gcfg)], check=True)
            info = json.loads(Path(f"{tmp}/gensim.json").read_text())
            per_epoch = {}
            for e in GENSIM_EPOCHS:
                v = np.load(f"{tmp}/vec{e}.npz")
                with torch.no_grad():
                    m.inp["item"].weight.zero_()
                    m.out["item"].weight.zero_()
                    m.inp["item"].weight[v["keys"]] = torch.as_tensor(v["inp"])
                    m.out["item"].weight[v["keys"]] = torch.as_tensor(v["out"])
                m.eval()
                per_epoch[e] = {
                    "valid": evaluate_ranking(m, split.valid_queries, n_items=ds.n_items,
                                              ks=(10, 20, 50)),
                    "test": evaluate_ranking(m, split.test_queries, n_items=ds.n_items,
                                             ks=(10, 20, 50)),
                    "train_seconds": info["seconds"][str(e)]}
        best = max(per_epoch, key=lambda e: per_epoch[e]["valid"]["ndcg@10"])
        out.append({"job": [ds_name, protocol, "gensim", "full", seed], "best_epochs": best,
                    **per_epoch[best], "tokens_per_epoch": info["tokens_per_epoch"],
                    "seconds_per_epoch": per_epoch[max(per_epoch)]["train_seconds"]
                    / max(per_epoch), "version": info["version"],
                    "per_epoch": {e: {"valid_ndcg@10": d["valid"]["ndcg@10"],
                                      "test_recall@50": d["test"]["recall@50"]}
                                  for e, d in per_epoch.items()}})
        print(f"done gensim s{seed}: recall@50 {out[-1]['test']['recall@50']:.4f} "
              f"({best} epochs)", flush=True)
    return out


# ---------------------------------------------------------------------- report
def _sec_per_epoch(r: dict) -> float | None:
    if "seconds_per_epoch" in r:
        return r["seconds_per_epoch"]
    t = r.get("timings") or {}
    return t.get("seconds_per_epoch")


def weights_plot(runs: list[dict], path: Path) -> bool:
    """The learned task weights ``exp(-s_k) / 2`` of the M2GRL runs over epochs."""
    full = [r for r in runs if r["job"][:4] == ["movie-half", "loo", "m2grl", "full"]]
    if not full:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    tasks = sorted({k.split("w:", 1)[1] for r in full for h in r["history"]
                    for k in h["losses"] if "/w:" in k})
    for t in tasks:
        curves = [[h["losses"].get(f"rec/w:{t}") for h in r["history"]] for r in full]
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves], dtype=float)
        x = np.arange(1, n + 1)
        ax.plot(x, arr.mean(0), marker="o", label=t)
        if len(arr) > 1:
            ax.fill_between(x, arr.min(0), arr.max(0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("task weight exp(-s)/2")
    ax.set_title("M2GRL learned task weights (movie-half, loo; band: seeds' range)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _diverse50(r: dict) -> float | None:
    return slice_metric(r, "diverse", "recall@50")


def report(runs: list[dict], gensim: list[dict], meta: dict, plot: str | None) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in [*runs, *gensim]:
        ds, protocol, model, variant, _ = r["job"]
        groups.setdefault((ds, protocol, model, variant), []).append(r)
    lines = ["# M2GRL: multi-view graph embeddings, item2vec, gensim, EGES", "",
             f"Command: `{meta['command']}` (commit {meta['commit']}, {meta['date']}, "
             f"{meta['machine']}; `--patience {meta['patience']}` on validation ndcg@10, "
             "preset `m2grl.toml`). Mean ± std over seeds; p: paired t-test against item2vec "
             "on the same seeds. Diversity R@50: test targets of a category absent from the "
             "user's last 10 items (random R@50 in brackets).", ""]
    for (ds, protocol) in sorted({k[:2] for k in groups}):
        ref = groups.get((ds, protocol, "item2vec", "full"), [])
        lines += [f"## {ds}, `--protocol {protocol}`", "",
                  "| model | seeds | test R@50 (=HR@50) | NDCG@50 | R@20 | diversity R@50 | "
                  "tail R@50 | p(R@50) vs item2vec | p(div) vs item2vec | s/epoch | epochs "
                  "(best) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        order = [("pop", "full"), ("item2vec", "full"), ("item2vec", "sgd"), ("gensim", "full"),
                 ("eges", "full"),
                 ("m2grl", "full"), ("m2grl", "equal"), ("m2grl", "no-inter-view"),
                 ("m2grl", "no-align-grad"), ("m2grl-div", "full")]
        for model, variant in order:
            rs = groups.get((ds, protocol, model, variant))
            if not rs:
                continue
            label = LABELS.get((model, variant), "gensim Word2Vec on item2vec's walks")
            div = [slice_metric(r, "diverse", "recall@50") for r in rs]
            rnd = [slice_metric(r, "diverse", "random_recall@50") for r in rs]
            is_ref = (model, variant) == ("item2vec", "full")
            ep = (", ".join(str(r["best_epochs"]) for r in rs) + " (val-picked)"
                  if model == "gensim" else
                  ", ".join(f"{len(r['history'])} ({r['best_epoch']})" for r in rs))
            lines.append(
                f"| {label} | {len(rs)} | {_fmt([r['test']['recall@50'] for r in rs])} | "
                f"{_fmt([r['test']['ndcg@50'] for r in rs])} | "
                f"{_fmt([r['test']['recall@20'] for r in rs])} | {_fmt(div)}"
                + (f" ({np.mean([x for x in rnd if x is not None]):.4f})"
                   if any(x is not None for x in rnd) else "")
                + f" | {_fmt([slice_metric(r, 'tail', 'recall@50') for r in rs])} | "
                f"{'' if is_ref else paired_p(rs, ref, lambda r: r['test']['recall@50'])} | "
                f"{'' if is_ref else paired_p(rs, ref, _diverse50)}"
                f" | {_fmt([_sec_per_epoch(r) for r in rs])} | {ep} |")
        lines.append("")
    if gensim:
        ours = [r for r in runs if r["job"][:4] == ["movie-half", "loo", "item2vec", "full"]]
        tok = gensim[0]["tokens_per_epoch"]
        lines += ["## Skip-gram throughput (one thread, the same walks)", "",
                  f"One epoch = {tok:,} walk tokens (10 walks of length 20 from every node of "
                  "the item graph), window 3 (dynamic), 5 negatives, dim 64.", "",
                  "| implementation | s/epoch | walk tokens/s |", "|---|---|---|"]
        g = [r["seconds_per_epoch"] for r in gensim]
        lines.append(f"| gensim {gensim[0]['version']} Word2Vec (Cython, workers=1) | "
                     f"{_fmt(g)} | {tok / np.mean(g):,.0f} |")
        k = [_sec_per_epoch(r) for r in ours if _sec_per_epoch(r)]
        if k:
            lines.append(f"| kgrec item2vec (torch, 1 thread, walks + batches + Adam) | "
                         f"{_fmt(k)} | {tok / np.mean(k):,.0f} |")
        lines.append("")
    if plot:
        lines += ["## Learned task weights", "", f"![task weights]({plot})", ""]
    return "\n".join(lines)


def main() -> None:
    import argparse

    a = bench_args(__doc__.splitlines()[0], PLANS, "runs/m2grl", 2)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--gensim-python", default="/tmp/gensim-venv/bin/python")
    g, _ = ap.parse_known_args()
    report_only = os.environ.get("REPORT_ONLY") == "1"
    quick = a.plan == "quick"
    name = a.name or ("m2grl" if not quick else "m2grl_quick")
    runs_dir = Path(a.runs_dir)
    jobs = [(ds, p, m, v, s) for ds, p, m, v, n in PLANS[a.plan] for s in range(n)]
    if report_only:
        jobs = [j for j in jobs if (_dir(runs_dir, j) / "metrics.json").is_file()]
    with ThreadPoolExecutor(a.workers) as ex:
        runs = list(ex.map(lambda j: _run(j, runs_dir, a.patience, quick), jobs))
    for r in runs:
        r["model_params"] = json.loads((Path(r["run_dir"]) / "config.json").read_text()
                                       )["model_params"]
    gpath = RESULTS / f"{name}_gensim.json"
    if report_only and gpath.is_file():
        gensim = json.loads(gpath.read_text())
    else:
        t0 = time.perf_counter()
        gensim = gensim_runs(runs, g.gensim_python)
        print(f"gensim: {time.perf_counter() - t0:.0f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    from kgrec.utils.io import atomic_write_text

    if gensim:
        atomic_write_text(gpath, json.dumps(gensim, indent=2) + "\n")
    plot = f"{name}_task_weights.png"
    if not weights_plot(runs, RESULTS / plot):
        plot = None
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    meta = {"command": "python benchmarks/m2grl.py"
                       + (f" --plan {a.plan}" if a.plan != "default" else ""),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {a.workers} runs at a "
                       "time", "commit": commit, "patience": a.patience}
    slim = [{k: r.get(k) for k in ("job", "test", "valid", "test_slices", "best_epoch",
                                    "timings", "data_checksum", "seed", "model_params")}
            | {"epochs_run": len(r["history"]),
               "task_weights": [{k: v for k, v in h["losses"].items() if "/w:" in k}
                                for h in r["history"]]} for r in runs]
    atomic_write_text(RESULTS / f"{name}.json",
                      json.dumps({"meta": meta, "runs": slim, "gensim": gensim}, indent=2) + "\n")
    md = report(runs, gensim, meta, plot)
    atomic_write_text(RESULTS / f"{name}.md", md + "\n")
    print(md)


if __name__ == "__main__":
    main()
