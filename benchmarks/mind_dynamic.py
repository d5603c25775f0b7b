"""MIND with a fixed number of interests against the paper's dynamic number (K'_u =
max(1, min(K, floor(log2 |I_u|)))), under ComiRec's user-split on Amazon Beauty.

Each run is ``kgrec train -d amazon-beauty -m mind --protocol user-split --seed S --ks 10,20,50
--patience 5 --monitor recall@50 --threads 1 [--set dynamic_interests=true]``, the settings of
``benchmarks/sequential.py``. Finished runs in ``--runs-dir`` are reused. Writes
``benchmarks/results/mind_dynamic.{md,json}``.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/mind_dynamic.py --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _cli import fmt_mean_std, run_cli

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--runs-dir", default="runs/mind_dynamic")
    a = ap.parse_args()
    if not os.environ.get("KGREC_DATA"):
        sys.exit("set KGREC_DATA to the shared datasets folder")
    rows = {}
    for label, sets in (("fixed K = 4", []), ("dynamic K'_u", ["--set",
                                                              "dynamic_interests=true"])):
        runs = []
        for seed in range(a.seeds):
            out = Path(a.runs_dir) / f"{'dynamic' if sets else 'fixed'}-s{seed}"
            if (out / "metrics.json").is_file():
                m = json.loads((out / "metrics.json").read_text())
            else:
                m = run_cli(["train", "-d", "amazon-beauty", "-m", "mind", "--protocol",
                             "user-split", "--seed", str(seed), "--ks", "10,20,50",
                             "--patience", "5", "--monitor", "recall@50", "--threads", "1",
                             "-q", "--out", str(out), *sets], out)
            m["model_params"] = json.loads((out / "config.json").read_text())["model_params"]
            runs.append(m)
        rows[label] = runs
    from kgrec.eval.stats import paired_ttest

    fixed, dyn = rows["fixed K = 4"], rows["dynamic K'_u"]
    p = "-"
    if len(fixed) >= 2:  # same seeds, in order
        _, pv = paired_ttest([r["test"]["recall@50"] for r in dyn],
                             [r["test"]["recall@50"] for r in fixed])
        p = f"{pv:.3f}"
    lines = ["# MIND: fixed against dynamic number of interests (Amazon Beauty, user-split)", "",
             "Command: `KGREC_DATA=../shared/datasets python benchmarks/mind_dynamic.py "
             f"--seeds {a.seeds}`; test metrics at the best validation recall@50.", "",
             "| MIND | seeds | recall@20 | recall@50 | HR@50 | NDCG@50 | s/epoch | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for label, runs in rows.items():
        t = [r["test"] for r in runs]
        lines.append(f"| {label} | {len(runs)} | {fmt_mean_std([x['recall@20'] for x in t])} | "
                     f"{fmt_mean_std([x['recall@50'] for x in t])} | "
                     f"{fmt_mean_std([x['hr@50'] for x in t])} | "
                     f"{fmt_mean_std([x['ndcg@50'] for x in t])} | "
                     f"{np.mean([r['timings']['seconds_per_epoch'] for r in runs]):.1f} | "
                     f"{', '.join(str(len(r['history'])) for r in runs)} |")
    lines += ["", f"Paired t-test of recall@50, dynamic against fixed, same seeds: p = {p}."]
    results = HERE / "results"
    (results / "mind_dynamic.md").write_text("\n".join(lines) + "\n")
    slim = {k: [{f: r.get(f) for f in ("seed", "test", "valid", "best_epoch", "timings",
                                         "data_checksum", "model_params")} for r in v]
            for k, v in rows.items()}
    (results / "mind_dynamic.json").write_text(json.dumps(slim, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
