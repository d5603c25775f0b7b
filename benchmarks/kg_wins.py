"""Does a KG model beat the best tuned CF model, and is the graph the reason? (issue "Make the
knowledge graph pay", must-show 2).

Runs one KG model with the given ``kgrec train`` arguments (its tuned values) on ``--seeds``
seeds three ways, through ``benchmarks/mkr_paper.py`` (test AUC at the best-validation epoch,
MKR's 6:2:2 CTR protocol): with the full KG, with no KG (``--kg-ratio 0``) and with shuffled
tails (``--kg-shuffle``). Then it compares each against the reference CF model's runs on the
same seeds (same splits) from ``tuned_*.json`` files, by paired t-tests, and writes
``kgwin_<dataset>_<model>.{md,json}``. The per-run figures are in
``kgwin_<dataset>_<model>_runs.{md,json}`` (mkr_paper's files).

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/kg_wins.py --dataset book --model kgmf \\
        --args "--negatives resample --epochs 30 --set dim=32 ..." \\
        --reference tuned_book_bpr-mf.json:bpr-mf[tuned] --seeds 5
    python benchmarks/kg_wins.py --dataset book --model kgmf --render   # tables only
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "src"))

ABLATIONS = {"full": [], "no KG": ["--kg-ratio", "0"], "shuffled tails": ["--kg-shuffle"]}


def run(dataset: str, model: str, args: str, seeds: int, name: str,
        skip_full: bool = False) -> None:
    variants = ";".join(f"{label.replace(' ', '-')}={args} {' '.join(extra)}".strip()
                        for label, extra in ABLATIONS.items()
                        if not (skip_full and label == "full"))
    cmd = [sys.executable, str(HERE / "mkr_paper.py"), "--datasets", dataset, "--models", model,
           "--seeds", str(seeds), "--name", f"{name}_runs", "--variants", variants]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def seed_aucs(entry: dict) -> dict[int, float]:
    return {r["seed"]: r["test"]["auc"] for r in entry["runs"]}


def _entry(spec: str, dataset: str) -> tuple[dict, dict]:
    """``FILE:KEY`` in benchmarks/results: the file's JSON and the runs under ``KEY``."""
    file, _, key = spec.partition(":")
    data = json.loads((RESULTS / file).read_text())
    return data, data["results"][dataset][key]


def render(dataset: str, model: str, references: list[str], name: str,
           full_from: str | None = None) -> str:
    from kgrec.eval.stats import paired_ttest
    from kgrec.utils.io import atomic_write_text

    runs = json.loads((RESULTS / f"{name}_runs.json").read_text())
    table = runs["results"][dataset]
    got = {label: seed_aucs(table[f"{model}[{label.replace(' ', '-')}]"])
           for label in ABLATIONS if not (full_from and label == "full")}
    full_note = ""
    if full_from:  # the full-KG runs of a tuned comparison: the same arguments and seeds
        full_json, full_entry = _entry(full_from, dataset)
        got = {"full": seed_aucs(full_entry), **got}
        full_note = (f" The full-KG runs are `{full_from}` (its command: "
                     f"`{full_json['meta']['command']}`), the same arguments and seeds.")

    def test(a: dict[int, float], b: dict[int, float]) -> tuple[float, float]:
        common = sorted(set(a) & set(b))
        diff = float(np.mean([a[s] - b[s] for s in common]))
        p = paired_ttest([a[s] for s in common], [b[s] for s in common])[1] \
            if len(common) > 1 else float("nan")
        return diff, p

    def verdict(diff: float, p: float) -> str:
        return "tie" if not p < 0.05 else ("**beats**" if diff > 0 else "**loses**")

    def mean_std(a: dict[int, float]) -> str:
        v = np.array(list(a.values()))
        return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}"

    out: dict = {"ablations": {}, "references": {}}
    lines = [
        f"# {model} on {dataset}: against the best tuned CF models, with and without the KG",
        "",
        f"Made by `python benchmarks/kg_wins.py --dataset {dataset} --model {model} --render"
        + "".join(f" --reference {r}" for r in references)
        + (f" --full-from {full_from}" if full_from else "") + f"` from `{name}_runs.json` "
        f"(its command: `{runs['meta']['command']}`; date {runs['meta']['date']}; "
        f"{runs['meta']['machine']}).{full_note}",
        "",
        "Test AUC (MKR's 6:2:2 CTR protocol, the epoch picked on validation), mean ± std over "
        "the seeds; each seed is one split, shared by every row. p: paired t-test over the "
        "seeds; **beats** / **loses** at p < 0.05.",
        "",
        f"## {model} with the full KG, with no KG, with shuffled tails",
        "",
        "| setting | test AUC | lift of the full KG (paired) |",
        "|---|---|---|",
    ]
    for label, aucs in got.items():
        d, p = test(got["full"], aucs) if label != "full" else (0.0, float("nan"))
        out["ablations"][label] = {"auc": aucs, "full_minus_this": {"diff": d, "p": p}}
        lift = "—" if label == "full" else f"{d:+.4f} (p {p:.3g}) {verdict(d, p)}"
        lines.append(f"| {label} | {mean_std(aucs)} | {lift} |")
    lines += ["", "## Against the CF references (the same seeds)", "",
              "| reference (file) | its test AUC | full KG: Δ, p | no KG: Δ, p | "
              "shuffled tails: Δ, p |", "|---|---|---|---|---|"]
    for reference in references:
        ref_file, _, ref_key = reference.partition(":")
        ref_json, ref_entry = _entry(reference, dataset)
        ref = seed_aucs(ref_entry)
        cells, out["references"][reference] = [], {"auc": ref,
                                                   "command": ref_json["meta"]["command"]}
        for label, aucs in got.items():
            d, p = test(aucs, ref)
            out["references"][reference][label] = {"diff": d, "p": p}
            cells.append(f"{d:+.4f}, p {p:.3g} {verdict(d, p)}")
        lines.append(f"| {ref_key} ([{ref_file[:-5]}.md]({ref_file[:-5]}.md)) | "
                     f"{mean_std(ref)} | " + " | ".join(cells) + " |")
    lines.append("")
    text = "\n".join(lines)
    atomic_write_text(RESULTS / f"{name}.md", text)
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(
        {"dataset": dataset, "model": model, "runs_command": runs["meta"]["command"], **out},
        indent=1) + "\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--args", default="", help="the model's `kgrec train` arguments")
    ap.add_argument("--reference", action="append", default=[],
                    help="FILE:KEY in benchmarks/results, e.g. "
                         "tuned_book_bpr-mf.json:bpr-mf[tuned] (repeatable; default: that of "
                         "BPR-MF)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--full-from", default=None,
                    help="FILE:KEY of finished full-KG runs with the same --args and seeds "
                         "(a tuned comparison's [tuned] runs): only the ablations run")
    ap.add_argument("--render", action="store_true", help="only rewrite the tables")
    a = ap.parse_args()
    name = f"kgwin_{a.dataset}_{a.model}"
    references = a.reference or [f"tuned_{a.dataset}_bpr-mf.json:bpr-mf[tuned]"]
    if not a.render:
        run(a.dataset, a.model, a.args, a.seeds, name, skip_full=bool(a.full_from))
    print(render(a.dataset, a.model, references, name, a.full_from))


if __name__ == "__main__":
    main()
