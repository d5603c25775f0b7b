"""Sequential recall reproduced: every model on the S3-Rec leave-one-out protocol and on ComiRec's
held-out users, with ComiRec's accuracy/diversity trade-off, next to the papers' figures.

Each run is ``kgrec train -d DATASET -m MODEL --protocol P --seed S`` in a fresh process (the
model's preset; ``--patience`` stops a run early), so the figures are what a user gets. Runs
already finished in ``--runs-dir`` are reused, so an interrupted benchmark resumes. Writes
``benchmarks/results/<name>.{md,json}``: mean +- std over seeds of the test metrics, seconds per
epoch, and, for the multi-interest models under ``user-split``, recall@50 and diversity@50 for
lambda in {0, 0.05, 0.1, 0.2}; peers' figures from ``peers_sequential.json`` where present.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/sequential.py               # the default plan
    KGREC_DATA=../shared/datasets python benchmarks/sequential.py --plan quick  # a smoke test
    KGREC_DATA=../shared/datasets python benchmarks/sequential.py --plan full   # 3 seeds a cell
    REPORT_ONLY=1 KGREC_DATA=../shared/datasets python benchmarks/sequential.py --plan full

A job without a run directory reuses its record from the results file already there (the same
job, from the commit that file names; the record keeps that commit in ``"commit"``), so a plan
grows an earlier table without redoing its runs; ``--no-reuse`` reruns everything.
``REPORT_ONLY=1`` writes the report from the runs finished so far and runs nothing.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _cli import bench_args, run_cli
from _cli import fmt_mean_std as _fmt

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# S3-Rec (Zhou et al., CIKM'20) Table 2, full ranking, HR@20 / NDCG@20 on the same data
S3REC = {
    ("amazon-beauty", "pop"): (0.0217, 0.0084), ("amazon-beauty", "gru4rec"): (0.0479, 0.0187),
    ("amazon-beauty", "sasrec"): (0.0902, 0.0394),
    ("amazon-sports", "pop"): (0.0192, 0.0078), ("amazon-sports", "gru4rec"): (0.0333, 0.0142),
    ("amazon-sports", "sasrec"): (0.0507, 0.0231),
}
# ComiRec (Cen et al., KDD'20) Table 3, Amazon Books, recall@50 (%): the order to compare with
COMIREC_BOOKS_R50 = {"youtubednn": 7.31, "mind": 7.64, "comirec-dr": 8.11, "comirec-sa": 8.47}
MULTI = ("mind", "comirec-dr", "comirec-sa")

#: (dataset, protocol, model, seeds)
PLANS = {
    # what fits a 2-core CPU in about an hour; "full" is the whole matrix, 3 seeds each
    "default": [
        *[("amazon-beauty", "user-split", m, 3) for m in ("youtubednn", "comirec-sa",
                                                          "comirec-dr")],
        *[("amazon-beauty", "user-split", m, 1) for m in ("mind", "pop", "gru4rec", "sasrec")],
        ("amazon-beauty", "loo", "pop", 1),
        *[("amazon-beauty", "loo", m, 3) for m in ("gru4rec", "sasrec")],
        *[("amazon-sports", "loo", m, 1) for m in ("pop", "gru4rec", "sasrec")],
        *[("movie-half", "user-split", m, 1) for m in ("pop", "youtubednn", "comirec-sa",
                                                       "comirec-dr", "sasrec")],
    ],
    # every cell, 3 seeds (popularity too: under user-split the seed draws the held-out
    # users); listed seed by seed so that an interrupted run has covered every cell once
    # before it adds seeds
    "full": [
        (ds, p, m, -s) for s in (1, 2, 3)
        for ds, p in (("amazon-beauty", "loo"), ("amazon-beauty", "user-split"),
                      ("movie-half", "user-split"), ("amazon-sports", "loo"))
        for m in ("pop", "youtubednn", "gru4rec", "sasrec", "mind", "comirec-dr", "comirec-sa")
    ],
    "quick": [("amazon-beauty", "loo", "pop", 1), ("amazon-beauty", "user-split", "comirec-sa", 1)],
}
LAMBDAS = (0.0, 0.05, 0.1, 0.2)
#: per-model patience: SASRec's validation metric stays flat for its first ~6 epochs (dropout
#: 0.5), and patience 5 stopped one seed there (HR@20 0.02)
PATIENCE = {"sasrec": 15}


def _run(job: tuple[str, str, str, int], runs: Path, quick: bool, patience: int,
         earlier: dict, report_only: bool) -> dict | None:
    ds, protocol, model, seed = job
    out = runs / f"{ds}-{protocol}-{model}-s{seed}"
    if not (out / "metrics.json").is_file() and tuple(job) in earlier:
        return earlier[tuple(job)]
    if report_only and not (out / "metrics.json").is_file():
        return None
    if (out / "metrics.json").is_file():
        m = json.loads((out / "metrics.json").read_text())
        m.setdefault("process_wall_seconds", None)
    else:
        args = ["train", "-d", ds, "-m", model, "--protocol", protocol, "--seed", str(seed),
                "--ks", "10,20,50", "--out", str(out), "-q", "--patience",
                str(PATIENCE.get(model, patience))]
        if protocol == "user-split":
            args += ["--monitor", "recall@50"]
        if quick:
            args += ["--epochs", "1"]
        m = run_cli(args, out)
    if protocol == "user-split" and model in (*MULTI, "youtubednn"):
        div = out / "diversity.json"
        if not div.is_file():
            sys.path.insert(0, str(HERE.parent / "src"))
            from kgrec.experiments.run import evaluate_run_diversity

            div.write_text(json.dumps(evaluate_run_diversity(out, list(LAMBDAS), n=50)))
        m["diversity"] = json.loads(div.read_text())
    m["job"] = list(job)
    m["model_params"] = json.loads((out / "config.json").read_text())["model_params"]
    stamp = out / "commit.txt"  # the commit the run was trained at
    if not stamp.is_file():
        stamp.write_text(_commit() + "\n")
    m["commit"] = stamp.read_text().strip()
    print(f"{ds:14s} {protocol:10s} {model:11s} seed {seed}: "
          f"hr@20 {m['test']['hr@20']:.4f} recall@50 {m['test']['recall@50']:.4f} "
          f"{m['timings']['seconds_per_epoch']:.1f} s/epoch", flush=True)
    return m


def _commit() -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def report(runs: list[dict], meta: dict, name: str) -> str:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for m in runs:
        ds, protocol, model, _ = m["job"]
        groups.setdefault((ds, protocol, model), []).append(m)
    peers = {}
    peer_file = RESULTS / "peers_sequential.json"
    if peer_file.is_file():
        peers = json.loads(peer_file.read_text())
    lines = [
        "# Sequential recall: leave-one-out (S3-Rec) and held-out users (ComiRec)", "",
        f"Command: `KGREC_DATA=../shared/datasets {meta['command']}`  ",
        f"Date: {meta['date']}; machine: {meta['machine']}; kgrec {meta['commit']} (runs "
        f"from commits {', '.join(sorted({r['commit'] for r in runs}))}); each run "
        "is `kgrec train -d D -m M --protocol P --seed S --ks 10,20,50 --patience "
        f"{meta['patience']}` (SASRec: `--patience {PATIENCE['sasrec']}`; user-split also "
        "`--monitor recall@50`) with the model's preset "
        "(`src/kgrec/config/presets/M.toml`), test metrics at the best validation epoch, "
        "mean ± std over the seeds listed. Data checksums and every run's config are in the "
        "JSON file beside this one.", "",
    ]
    for protocol, title in (("loo", "Leave-one-out, full ranking over all items, history "
                                    "masked (S3-Rec's protocol)"),
                            ("user-split", "Held-out users 8:1:1, first 80% of a user's "
                                           "sequence as history, the rest targets, nothing "
                                           "masked (ComiRec's protocol)")):
        keys = [k for k in groups if k[1] == protocol]
        if not keys:
            continue
        lines += [f"## {title}", ""]
        if protocol == "loo":
            lines += ["| dataset | model | seeds | HR@20 | NDCG@20 | HR@10 | NDCG@10 | paper "
                      "HR@20 / NDCG@20 (S3-Rec) | s/epoch | epochs (best) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["| dataset | model | seeds | recall@20 | recall@50 | HR@50 | NDCG@50 | "
                      "ComiRec Books recall@50 (%) | s/epoch | epochs (best) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
        for ds, _, model in keys:
            rs = groups[(ds, protocol, model)]
            t = [r["test"] for r in rs]
            spe = np.mean([r["timings"]["seconds_per_epoch"] for r in rs])
            n_ep = np.mean([len(r["history"]) for r in rs])
            ep = f"{n_ep:.0f} ({np.mean([r['best_epoch'] for r in rs]):.0f})"
            seeds = ",".join(str(r["job"][3]) for r in rs)
            if protocol == "loo":
                paper = S3REC.get((ds, model))
                lines.append(f"| {ds} | {model} | {seeds} | {_fmt([x['hr@20'] for x in t])} | "
                             f"{_fmt([x['ndcg@20'] for x in t])} | "
                             f"{_fmt([x['hr@10'] for x in t])} | {_fmt([x['ndcg@10'] for x in t])}"
                             f" | {f'{paper[0]} / {paper[1]}' if paper else '-'} | {spe:.1f} | "
                             f"{ep} |")
            else:
                paper = COMIREC_BOOKS_R50.get(model)
                lines.append(f"| {ds} | {model} | {seeds} | {_fmt([x['recall@20'] for x in t])}"
                             f" | {_fmt([x['recall@50'] for x in t])} | "
                             f"{_fmt([x['hr@50'] for x in t])} | {_fmt([x['ndcg@50'] for x in t])}"
                             f" | {paper if paper else '-'} | {spe:.1f} | {ep} |")
        lines.append("")
    div_rows = [(k, groups[k]) for k in groups if k[1] == "user-split" and "diversity" in
                groups[k][0]]
    if div_rows:
        lines += ["## Accuracy against diversity (ComiRec's greedy aggregation, N = 50, "
                  "test users)", "",
                  "Each interest retrieves its top 50 (exact search), the candidates are "
                  "aggregated greedily with weight lambda on category differences "
                  "(`kgrec evaluate RUN --lambdas 0,0.05,0.1,0.2`); one category per item "
                  "(`kgrec.data.features.item_categories`).", "",
                  "| dataset | model | " + " | ".join(
                      f"λ={lam} recall@50 / diversity@50" for lam in LAMBDAS) + " |",
                  "|---|---|" + "---|" * len(LAMBDAS)]
        for (ds, _, model), rs in div_rows:
            cells = []
            for lam in LAMBDAS:
                d = [r["diversity"][str(lam)] for r in rs]
                cells.append(f"{np.mean([x['recall@50'] for x in d]):.4f} / "
                             f"{np.mean([x['diversity@50'] for x in d]):.3f}")
            lines.append(f"| {ds} | {model} | " + " | ".join(cells) + " |")
        lines.append("")
    if peers:
        lines += ["## Peers on the same splits and machine", "",
                  "From [`peers_sequential.md`](peers_sequential.md) "
                  "(`benchmarks/peers_sequential.py`).", ""]
    notes = RESULTS / f"{name}.notes.md"
    if notes.is_file():
        lines += ["## Notes (hand-written)", "", notes.read_text().strip(), ""]
    return "\n".join(lines)


def main() -> None:
    a = bench_args(__doc__.splitlines()[0], PLANS, "runs/sequential", 5)
    quick = a.plan == "quick"
    name = a.name or ("sequential" if not quick else "sequential_quick")
    runs_dir = Path(a.runs_dir)
    # n > 0: seeds 0..n-1; n < 0: the one seed -n - 1
    jobs = [(ds, p, m, s) for ds, p, m, n in PLANS[a.plan]
            for s in (range(n) if n > 0 else [-n - 1])]
    import subprocess

    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    earlier: dict = {}
    if not a.no_reuse and (RESULTS / f"{name}.json").is_file():
        old = json.loads((RESULTS / f"{name}.json").read_text())
        for r in old["runs"]:
            r.setdefault("commit", old["meta"]["commit"])
            r.setdefault("history", [None] * r.get("epochs_run", 0))
            if r.get("diversity") is None:
                r.pop("diversity", None)
            earlier[tuple(r["job"])] = r
    report_only = os.environ.get("REPORT_ONLY") == "1"
    with ThreadPoolExecutor(a.workers) as ex:  # in the plan's order
        runs = list(ex.map(lambda j: _run(j, runs_dir, quick, a.patience, earlier,
                                          report_only), jobs))
    runs = [r for r in runs if r is not None]
    for r in runs:
        r.setdefault("commit", commit)
    meta = {"command": "python benchmarks/sequential.py"
                       + (f" --plan {a.plan}" if a.plan != "default" else "")
                       + (f" --patience {a.patience}" if a.patience != 5 else ""),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {a.workers} runs at a time",
            "commit": commit, "patience": a.patience}
    RESULTS.mkdir(exist_ok=True)
    slim = [{k: r.get(k) for k in ("job", "test", "valid", "best_epoch", "timings",
                                    "data_checksum", "diversity", "seed", "model_params",
                                    "commit")}
            | {"epochs_run": len(r["history"])} for r in runs]
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": slim}, indent=2)
                                          + "\n")
    md = report(runs, meta, name)
    (RESULTS / f"{name}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
