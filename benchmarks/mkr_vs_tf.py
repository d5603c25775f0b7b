"""A whole ``kgrec train -d music -m mkr`` process against the authors' TensorFlow code, side by
side on one machine: wall time, peak memory and test AUC, alternating runs.

The authors' code is https://github.com/hwwang55/MKR (``src/``), run as its README says
(``python preprocess.py -d music`` once, then ``python main.py`` with the dataset's block of
hyper-parameters from ``main.py``) under tensorflow-cpu 2.21, with its three
``import tensorflow as tf`` lines switched to ``import tensorflow.compat.v1 as tf`` followed by
``tf.disable_v2_behavior()`` (graph mode, which its placeholders and sessions need). Nothing
else is changed. Both sides read the same raw files from ``$KGREC_DATA/<dataset>``; each side's
one-off preprocessing (their ``preprocess.py``, kgrec's cached conversion) and a warm-up run are
done before the timed runs, which alternate TF, kgrec, kgrec, TF, ... Wall time is the whole
process, start-up included; peak memory is the process's max RSS.

Usage::

    python -m venv /tmp/tf && /tmp/tf/bin/pip install "tensorflow-cpu==2.21.*" scikit-learn
    git clone https://github.com/hwwang55/MKR /tmp/MKR
    KGREC_DATA=../shared/datasets python benchmarks/mkr_vs_tf.py \\
        --tf-python /tmp/tf/bin/python --mkr-src /tmp/MKR

Writes ``benchmarks/results/mkr_vs_tf.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: the authors' hyper-parameter blocks (hwwang55/MKR, src/main.py), as command-line flags
AUTHORS_ARGS = {
    "music": "--n_epochs 10 --dim 4 --L 2 --H 1 --batch_size 256 --l2_weight 1e-6 "
             "--lr_rs 1e-3 --lr_kge 2e-4 --kge_interval 2",
    "book": "--n_epochs 10 --dim 8 --L 1 --H 1 --batch_size 32 --l2_weight 1e-6 "
            "--lr_rs 2e-4 --lr_kge 2e-5 --kge_interval 2",
}
TF_IMPORT = "import tensorflow as tf"
TF_COMPAT = "import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()"
EPOCH_LINE = re.compile(r"epoch (\d+)\s+train auc: [\d.]+\s+acc: [\d.]+\s+eval auc: ([\d.]+)"
                        r"\s+acc: ([\d.]+)\s+test auc: ([\d.]+)\s+acc: ([\d.]+)")


def run_child(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv`` to completion: wall seconds, peak RSS (MB) of that process, output."""
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, out


def prepare_tf(mkr_src: Path, dataset: str, work: Path, tf_python: str,
               env: dict[str, str]) -> Path:
    """The authors' ``src/`` with the compat.v1 imports, their raw data, their preprocessing."""
    src = work / "src"
    src.mkdir(parents=True)
    patched = []
    for f in sorted((mkr_src / "src").glob("*.py")):
        text = f.read_text()
        if TF_IMPORT in text.splitlines():
            text = "\n".join(TF_COMPAT if line == TF_IMPORT else line
                             for line in text.splitlines()) + "\n"
            patched.append(f.name)
        (src / f.name).write_text(text)
    if len(patched) != 3:
        sys.exit(f"expected 3 files importing tensorflow in {mkr_src}/src, found {patched}")
    data = work / "data" / dataset
    data.mkdir(parents=True)
    root = Path(os.environ["KGREC_DATA"]) / dataset
    for f in root.iterdir():
        if f.is_file():
            shutil.copy(f, data / f.name)
    subprocess.run([tf_python, "preprocess.py", "-d", dataset], cwd=src, env=env, check=True,
                   capture_output=True)
    return src


def tf_auc(out: str) -> dict:
    """Test AUC/ACC at the epoch with the best eval AUC (kgrec's rule), from their log."""
    rows = [tuple(float(x) for x in m.groups()) for m in EPOCH_LINE.finditer(out)]
    if not rows:
        raise RuntimeError(f"no epoch lines in the TF output:\n{out[-2000:]}")
    best = max(rows, key=lambda r: r[1])
    return {"epochs": len(rows), "best_epoch": int(best[0]), "test_auc": best[3],
            "test_acc": best[4]}


def kgrec_command() -> list[str]:
    """The ``kgrec`` console script of this interpreter's environment (else ``-m kgrec``)."""
    script = Path(sys.executable).parent / "kgrec"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kgrec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tf-python", required=True, help="a python with tensorflow-cpu 2.21")
    ap.add_argument("--mkr-src", required=True, type=Path, help="a checkout of hwwang55/MKR")
    ap.add_argument("--dataset", default="music", choices=sorted(AUTHORS_ARGS))
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per side")
    ap.add_argument("--name", default="mkr_vs_tf")
    a = ap.parse_args()
    if not os.environ.get("KGREC_DATA"):
        sys.exit("set KGREC_DATA to the shared datasets folder")
    # a user's environment writes bytecode; a sandbox may forbid it, which would make every
    # kgrec start-up compile its sources
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    tf_version = subprocess.run([a.tf_python, "-c", "import tensorflow as t; print(t.__version__)"],
                                env=env, capture_output=True, text=True,
                                check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mkr_vs_tf_") as tmp:
        work = Path(tmp)
        src = prepare_tf(a.mkr_src, a.dataset, work / "tf", a.tf_python, env)
        tf_argv = [a.tf_python, "main.py", "--dataset", a.dataset,
                   *AUTHORS_ARGS[a.dataset].split()]
        kg = kgrec_command()

        def kgrec_argv(tag: str, seed: int = 0) -> list[str]:
            return [*kg, "train", "-d", a.dataset, "-m", "mkr", "--seed", str(seed),
                    "--out", str(work / tag)]

        print("warm-up runs (untimed) ...", flush=True)
        run_child(tf_argv, src, env)
        run_child(kgrec_argv("warm"), work, env)
        runs: dict[str, list[dict]] = {"tf": [], "kgrec": []}
        for i in range(a.repeats):
            order = ("tf", "kgrec") if i % 2 == 0 else ("kgrec", "tf")
            for side in order:
                if side == "tf":
                    wall, mb, out = run_child(tf_argv, src, env)
                    rec = {"wall_s": wall, "peak_mb": mb, **tf_auc(out)}
                else:
                    wall, mb, _ = run_child(kgrec_argv(f"run{i}", i), work, env)
                    m = json.loads((work / f"run{i}" / "metrics.json").read_text())
                    rec = {"wall_s": wall, "peak_mb": mb, "epochs": len(m["history"]),
                           "best_epoch": m["best_epoch"], "test_auc": m["test"]["auc"],
                           "test_acc": m["test"]["acc"],
                           "in_process_s": m["timings"]["total_seconds"],
                           "s_per_epoch": m["timings"]["seconds_per_epoch"],
                           "data_checksum": m["data_checksum"], "seed": m["seed"]}
                runs[side].append(rec)
                print(f"{side:6s} run {i}: {wall:.2f} s, {mb:.0f} MB, "
                      f"test AUC {rec['test_auc']:.4f}", flush=True)
    summary = {side: {"median_wall_s": statistics.median(r["wall_s"] for r in rs),
                      "min_wall_s": min(r["wall_s"] for r in rs),
                      "max_wall_s": max(r["wall_s"] for r in rs),
                      "median_peak_mb": statistics.median(r["peak_mb"] for r in rs),
                      "mean_test_auc": statistics.fmean(r["test_auc"] for r in rs)}
               for side, rs in runs.items()}
    for side, rs in runs.items():  # the initialisation saddle: a run that never leaves 0.5
        summary[side]["stalled"] = sum(abs(r["test_auc"] - 0.5) < 0.01 for r in rs)
    ratio = summary["kgrec"]["median_wall_s"] / summary["tf"]["median_wall_s"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()
    meta = {
        "command": "python benchmarks/mkr_vs_tf.py " + " ".join(sys.argv[1:]),
        "dataset": a.dataset, "repeats": a.repeats, "commit": commit,
        "tf_command": "python main.py --dataset " + a.dataset + " " + AUTHORS_ARGS[a.dataset],
        "tf_patch": f"{TF_IMPORT!r} -> {TF_COMPAT!r} in the three files importing it",
        "kgrec_command": f"kgrec train -d {a.dataset} -m mkr --seed I",
        "tensorflow": tf_version, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    from kgrec.utils.io import atomic_write_text

    atomic_write_text(RESULTS / f"{a.name}.json", json.dumps(
        {"meta": meta, "summary": summary, "ratio": ratio, "runs": runs}, indent=1) + "\n")
    tf, kr = summary["tf"], summary["kgrec"]
    lines = [
        f"# A whole `kgrec train -d {a.dataset} -m mkr` process against the authors' TF code",
        "",
        f"`{meta['command']}` (commit {commit}, {meta['finished']}, {meta['machine']}, "
        f"tensorflow-cpu {tf_version}, Python {meta['python']}); {a.repeats} alternating runs "
        "per side after one warm-up each; wall time of the whole process, start-up included.",
        "",
        "| | median wall (min-max) | peak memory | test AUC (mean) |",
        "|---|---|---|---|",
        f"| authors' TF code: `{meta['tf_command']}` | {tf['median_wall_s']:.2f} s "
        f"({tf['min_wall_s']:.2f}-{tf['max_wall_s']:.2f}) | {tf['median_peak_mb']:.0f} MB | "
        f"{tf['mean_test_auc']:.4f} |",
        f"| kgrec: `{meta['kgrec_command']}` | {kr['median_wall_s']:.2f} s "
        f"({kr['min_wall_s']:.2f}-{kr['max_wall_s']:.2f}) | {kr['median_peak_mb']:.0f} MB | "
        f"{kr['mean_test_auc']:.4f} |",
        "",
        f"kgrec takes **{ratio:.2f}x** the authors' wall time ({1 / ratio:.1f} times faster). "
        "Both run 10 epochs; the TF code evaluates train, eval and test AUC after each, kgrec "
        "evaluates validation after each and test (CTR and top-K) once at the best epoch. The "
        "TF AUC is the test AUC at its best-eval epoch.",
        "",
        f"Stalled runs (test AUC within 0.01 of 0.5, averaged in above): authors' TF code "
        f"{tf['stalled']} of {a.repeats}, kgrec {kr['stalled']} of {a.repeats}.",
        "",
        f"TF patch: {meta['tf_patch']}.",
        "",
    ]
    atomic_write_text(RESULTS / f"{a.name}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
