"""The core's promises, measured: MKR's speed against an earlier commit, and DDP (torchrun, two
CPU processes) against one process.

1. **Trainer speed.** MKR on Last.FM (``music``, seed 0, the authors' preset), training seconds
   per epoch, in a fresh process, alternating this checkout and ``--ref`` (a git commit, checked
   out into a temporary worktree) ``--repeats`` times, so both see the same machine load.
2. **Several processes.** ``torchrun --standalone --nproc_per_node 2 -m kgrec train -d music -m
   bpr-mf`` against the same run in one process: test AUC and ACC.

Writes ``benchmarks/results/core_checks.{md,json}``.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/core_checks.py --ref 8db9e9d
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def _train(src: Path, out: Path, args: list[str], launcher: list[str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [*(launcher or [sys.executable]), "-m", "kgrec.cli" if launcher is None else "kgrec",
           "train", *args, "--out", str(out), "-q", "--no-topk"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    m = json.loads((out / "metrics.json").read_text())
    m["process_wall_seconds"] = time.perf_counter() - t0
    return m


def speed(ref: str, repeats: int, tmp: Path) -> dict:
    wt = tmp / "ref"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(wt), ref],
                   check=True, capture_output=True)
    try:
        sides = {"ref": wt / "src", "this": ROOT / "src"}
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        args = ["-d", "music", "-m", "mkr", "--seed", "0"]
        for i in range(repeats):
            for name, src in sides.items():
                runs[name].append(_train(src, tmp / f"{name}{i}", args))
        out = {}
        for name, rs in runs.items():
            spe = [r["timings"]["seconds_per_epoch"] for r in rs]
            out[name] = {"s_per_epoch": spe, "mean": float(np.mean(spe)),
                         "median": float(np.median(spe)),
                         "test_auc": [round(r["test"]["auc"], 6) for r in rs],
                         "data_checksum": rs[0]["data_checksum"]}
        out["slowdown_median"] = out["this"]["median"] / out["ref"]["median"] - 1.0
        out["ref"]["commit"] = subprocess.run(["git", "-C", str(wt), "rev-parse", "HEAD"],
                                              capture_output=True, text=True).stdout.strip()
        return out
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                       check=False, capture_output=True)


def ddp(tmp: Path) -> dict:
    args = ["-d", "music", "-m", "bpr-mf", "--seed", "0"]
    one = _train(ROOT / "src", tmp / "one", args)
    two = _train(ROOT / "src", tmp / "two", args,
                 launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2"])
    pick = ("auc", "acc")
    return {"one": {k: one["test"][k] for k in pick} | {"best_epoch": one["best_epoch"],
                                                        "world_size": one["world_size"]},
            "two": {k: two["test"][k] for k in pick} | {"best_epoch": two["best_epoch"],
                                                        "world_size": two["world_size"]},
            "auc_diff": abs(two["test"]["auc"] - one["test"]["auc"]),
            "data_checksum": one["data_checksum"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="8db9e9d", help="commit to compare MKR's speed against")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--name", default="core_checks")
    a = ap.parse_args()
    if not os.environ.get("KGREC_DATA"):
        sys.exit("set KGREC_DATA to the shared datasets folder")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"speed": speed(a.ref, a.repeats, tmp), "ddp": ddp(tmp)}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    res["meta"] = {"command": f"python benchmarks/core_checks.py --ref {a.ref} "
                              f"--repeats {a.repeats}",
                   "date": datetime.now(UTC).isoformat(timespec="seconds"),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                   "commit": commit, "seed": 0}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    s, d = res["speed"], res["ddp"]
    md = [
        "# Core checks: trainer speed and several processes", "",
        f"Command: `KGREC_DATA=../shared/datasets {res['meta']['command']}`  ",
        f"Date: {res['meta']['date']}; machine: {res['meta']['machine']}; this checkout: "
        f"{commit}; seed 0. Each run is a fresh `kgrec train` process.", "",
        "## MKR on Last.FM (music), training seconds per epoch", "",
        "| code | s/epoch per run | median | test AUC |", "|---|---|---|---|",
        f"| before (`{s['ref']['commit'][:10]}`) | "
        f"{' '.join(f'{x:.3f}' for x in s['ref']['s_per_epoch'])} | {s['ref']['median']:.3f} | "
        f"{s['ref']['test_auc'][0]:.4f} |",
        f"| this checkout | {' '.join(f'{x:.3f}' for x in s['this']['s_per_epoch'])} | "
        f"{s['this']['median']:.3f} | {s['this']['test_auc'][0]:.4f} |", "",
        f"Change of the median: {100 * s['slowdown_median']:+.1f}% (the promise: at most +10%).",
        "",
        "## BPR-MF on music: torchrun with 2 CPU processes (gloo) against one process", "",
        "| processes | test AUC | test ACC | best epoch |", "|---|---|---|---|",
        f"| 1 | {d['one']['auc']:.4f} | {d['one']['acc']:.4f} | {d['one']['best_epoch']} |",
        f"| 2 | {d['two']['auc']:.4f} | {d['two']['acc']:.4f} | {d['two']['best_epoch']} |", "",
        f"|AUC difference| = {d['auc_diff']:.5f} (the promise: within 0.005). Data checksum "
        f"{d['data_checksum'][:16]}.", "",
    ]
    (RESULTS / f"{a.name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
