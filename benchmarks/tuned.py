"""Tuned against preset, test AUC over seeds: ``kgrec tune`` on validation, then both settings
on test (issue "Make the knowledge graph pay", item 1).

For each model: ``kgrec tune -d D -m M --trials N`` (validation split only; the study lives in
``runs/tune/D-M`` and resumes), its report files copied to ``benchmarks/results/tune/D-M``,
then ``benchmarks/mkr_paper.py`` runs the preset and the tuned values on ``--seeds`` seeds
(``tuned_D_M.{md,json}``). ``--summary`` only rewrites ``benchmarks/results/tuned.md``: one
table over every ``tuned_*.json``, with the paired t-test of tuned against preset and the MKR
paper's figure where it has one.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/tuned.py --dataset music \\
        --models ripplenet,fm --trials 12
    python benchmarks/tuned.py --dataset book --models lightgcn --epochs 200  # longer runs
    python benchmarks/tuned.py --summary
    python benchmarks/tuned.py --adopt   # best values -> [<dataset>.tuned] preset sections
    python benchmarks/tuned.py --readme  # tuned.md's table -> the README's
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPORT_FILES = ("best.json", "best.toml", "report.md", "history.png", "importance.png")


def tune(dataset: str, model: str, trials: int, workers: int, epochs: int | None = None,
         negatives: str = "fixed") -> list[str]:
    """Run (or resume) the study; copy its report; return the tuned ``kgrec train``
    arguments (with ``epochs`` or ``negatives``: a study of runs that long or under those
    training negatives, and tuned values that carry them)."""
    out = Path("runs/tune") / (f"{dataset}-{model}" + (f"-e{epochs}" if epochs else "")
                               + ("" if negatives == "fixed" else f"-{negatives}"))
    cmd = [sys.executable, "-m", "kgrec", "tune", "-d", dataset, "-m", model,
           "--trials", str(trials), "--workers", str(workers), "--out", str(out),
           "--negatives", negatives, *(["--epochs", str(epochs)] if epochs else [])]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    dest = RESULTS / "tune" / f"{dataset}-{model}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (out / name).is_file():
            shutil.copy2(out / name, dest / name)
    best = json.loads((out / "best.json").read_text())
    args: list[str] = []
    for key, value in best["best_params"].items():
        args += ["--set", f"{key}={value}"]
    args += ["--set", f"epochs={epochs}"] if epochs else []
    return args + (["--negatives", negatives] if negatives != "fixed" else [])


def compare(dataset: str, model: str, tuned_args: list[str], seeds: int) -> None:
    variants = "preset=;tuned=" + " ".join(tuned_args)
    cmd = [sys.executable, str(HERE / "mkr_paper.py"), "--datasets", dataset, "--models", model,
           "--seeds", str(seeds), "--name", f"tuned_{dataset}_{model}", "--variants", variants]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def summary() -> str:
    """``tuned.md``: every ``tuned_*.json`` in one table."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from kgrec.eval.stats import paired_ttest
    from kgrec.experiments.benchmark import PAPER, PAPER_DATASET
    from kgrec.utils.io import atomic_write_text

    rows = []
    tuned_runs: dict[str, dict[str, dict[int, float]]] = {}  # dataset -> model -> seed -> AUC
    for path in sorted(RESULTS.glob("tuned_*.json")):
        res = json.loads(path.read_text())
        for ds, models in res["results"].items():
            for key, t in models.items():
                if not key.endswith("[tuned]"):
                    continue
                model = key[: -len("[tuned]")]
                p = models.get(f"{model}[preset]")
                alone = RESULTS / f"{model}_{ds}.json"  # the preset measured on its own
                if p is None and alone.is_file():
                    p = json.loads(alone.read_text())["results"].get(ds, {}).get(model)
                if p is None:
                    continue
                a = {r["seed"]: r["test"]["auc"] for r in t["runs"]}
                b = {r["seed"]: r["test"]["auc"] for r in p["runs"]}
                # the better of the two settings on validation is the model's tuned figure
                tuned_runs.setdefault(ds, {})[model] = a if _tuned_wins(t, p) else b
                common = sorted(set(a) & set(b))
                pval = (paired_ttest([a[s] for s in common], [b[s] for s in common])[1]
                        if len(common) > 1 else float("nan"))
                ps, ts = p["summary"], t["summary"]
                paper = PAPER.get(model, {}).get(PAPER_DATASET.get(ds, ""))
                passes = "—" if paper is None else (
                    f"{paper[0]:.3f}: " + ("**passes**" if ts["auc_mean"] > paper[0]
                                           else "below"))
                rows.append(
                    f"| {ds} | {model} | {ps['auc_mean']:.4f} ± {ps['auc_std']:.4f} | "
                    f"{ts['auc_mean']:.4f} ± {ts['auc_std']:.4f} | "
                    f"{ts['auc_mean'] - ps['auc_mean']:+.4f} | {pval:.3g} | "
                    f"{ps['acc_mean']:.4f} → {ts['acc_mean']:.4f} | {passes} | "
                    f"[{path.name[:-5]}.md]({path.name[:-5]}.md) |")
    lines = ["# Tuned against preset (test AUC, mean ± std over seeds)", "",
             "Made by `python benchmarks/tuned.py --summary` from every `tuned_*.json` here; "
             "each file names the command that made it. Tuning read the validation split only "
             "(`kgrec tune`, seed 0); test is read here for the first time. p: paired t-test "
             "of tuned against preset over the same seeds. Paper: the MKR paper's Table 2 AUC "
             "(its movie column is full MovieLens-1M).", "",
             "| dataset | model | preset | tuned | Δ | p | ACC preset → tuned | paper AUC | "
             "file |",
             "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    for path in sorted(RESULTS.glob("*_*.json")):  # models measured at their preset only
        model, _, ds = path.stem.partition("_")
        if ds not in tuned_runs or model in tuned_runs[ds]:
            continue
        res = json.loads(path.read_text())
        res = res.get("results", {}) if isinstance(res, dict) else {}
        if isinstance(res.get(ds), dict) and "runs" in res[ds].get(model, {}):
            tuned_runs[ds][model + " (preset)"] = {
                r["seed"]: r["test"]["auc"] for r in res[ds][model]["runs"]}
    lines += ranking(tuned_runs, paired_ttest)
    text = "\n".join(lines)
    atomic_write_text(RESULTS / "tuned.md", text)
    return text


README_HEAD = "| dataset | model | preset | tuned | p | paper AUC |"


def readme() -> int:
    """Copy tuned.md's first table into the README's tuning table (its rows under
    :data:`README_HEAD`); returns the number of rows."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from kgrec.utils.io import atomic_write_text

    md = (RESULTS / "tuned.md").read_text().splitlines()
    start = next(i for i, line in enumerate(md) if line.startswith("| dataset | model | preset"))
    rows = []
    for line in md[start + 2:]:
        if not line.startswith("|"):
            break
        ds, model, preset, tuned, _delta, p, _acc, paper = \
            [x.strip() for x in line.strip("|").split("|")][:8]
        rows.append(f"| {ds} | {model} | {preset.split(' ± ')[0]} | {tuned} | {p} | {paper} |")
    path = HERE.parent / "README.md"
    lines = path.read_text().splitlines()
    head = lines.index(README_HEAD)
    end = head + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[head + 2:end] = rows
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(rows)


CF_MODELS = ("bpr-mf", "lightgcn", "item-cf", "mf", "pop")


def ranking(tuned_runs: dict[str, dict[str, dict[int, float]]], paired_ttest) -> list[str]:
    """Per dataset, every tuned model against the best tuned CF model (test AUC, the seeds
    both ran; each model at the setting with the better mean validation AUC)."""
    out = ["## Every tuned model against the best tuned CF model", "",
           "Each model at whichever of its preset and tuned values scored the better mean "
           "validation AUC; the reference is the CF model (BPR-MF, LightGCN, MF, item-CF) "
           "with the best mean test AUC. p: paired t-test over the seeds both ran; **beats** / "
           "**loses** at p < 0.05.", ""]
    for ds, models in sorted(tuned_runs.items()):
        cf = [m for m in models if m in CF_MODELS]
        if not cf:
            continue
        ref = max(cf, key=lambda m: np.mean(list(models[m].values())))
        out += [f"### {ds} (reference: {ref})", "", "| model | test AUC | seeds | Δ vs "
                f"{ref} | p | verdict |", "|---|---|---|---|---|---|"]
        for m in sorted(models, key=lambda m: -np.mean(list(models[m].values()))):
            a = models[m]
            mean, std = np.mean(list(a.values())), np.std(list(a.values()), ddof=1)
            if m == ref:
                out.append(f"| **{m}** | {mean:.4f} ± {std:.4f} | {len(a)} | ref. | — | — |")
                continue
            common = sorted(set(a) & set(models[ref]))
            x, y = [a[k] for k in common], [models[ref][k] for k in common]
            pval = paired_ttest(x, y)[1] if len(common) > 1 else float("nan")
            d = float(np.mean(x) - np.mean(y))
            verdict = ("**beats**" if d > 0 else "**loses**") if pval < 0.05 else "tie"
            out.append(f"| {m} | {mean:.4f} ± {std:.4f} | {len(a)} | {d:+.4f} | "
                       f"{pval:.3g} | {verdict} |")
        out.append("")
    return out


def _tuned_wins(tuned: dict, preset: dict) -> bool:
    """The tuned values' mean validation AUC over the seeds is at least the preset's."""
    return (np.mean([r["valid"]["auc"] for r in tuned["runs"]])
            >= np.mean([r["valid"]["auc"] for r in preset["runs"]]))


def _confirmed(dataset: str, model: str) -> bool:
    """True unless the seeds' comparison has the tuned values below the preset's on mean
    validation AUC."""
    path = RESULTS / f"tuned_{dataset}_{model}.json"
    if not path.is_file():
        return True
    res = json.loads(path.read_text())["results"].get(dataset, {})
    t, p = res.get(f"{model}[tuned]"), res.get(f"{model}[preset]")
    return t is None or p is None or _tuned_wins(t, p)


def _values(best_toml: Path) -> list[str]:
    """The ``key = value`` lines of a study's ``best.toml`` (as ``kgrec tune`` wrote them,
    after its section header)."""
    lines = best_toml.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("["))
    return [line for line in lines[start + 1:] if line.strip()]


def adopt() -> list[str]:
    """Write every study's best values (``results/tune/*/best.json``) into its model's preset
    file as the dataset's ``[<dataset>.tuned]`` section (replacing an older one), for
    ``kgrec train --tuned``. Only the CTR studies (``--protocol ctr``) are adopted, and only
    where the comparison over seeds (``tuned_<dataset>_<model>.json``) confirms the search
    on validation: a tuned mean validation AUC below the preset's (the seed-0 search
    overfitted) drops the section. Test is never read here."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from kgrec.models import MODELS, resolve_name
    from kgrec.utils.io import atomic_write_text

    done = []
    for path in sorted((RESULTS / "tune").glob("*/best.json")):
        best = json.loads(path.read_text())
        argv = shlex.split(best["tune_command"])
        opts = dict(zip(argv[2::2], argv[3::2], strict=False))
        if opts.get("--protocol", "ctr") != "ctr":
            continue
        dataset, model = opts["-d"], opts["-m"]
        preset = (HERE.parent / "src/kgrec/config/presets"
                  / f"{MODELS[resolve_name(model)].preset}.toml")
        head = f"[{dataset}.tuned]"
        lines = preset.read_text().splitlines()
        if head in lines:  # drop the old block: its comment lines above and its values
            i = lines.index(head)
            j = i + 1
            while j < len(lines) and lines[j].strip() and not lines[j].startswith("["):
                j += 1
            while i > 0 and lines[i - 1].startswith("# kgrec tune"):
                i -= 1
            del lines[i:j]
            while i < len(lines) and i > 0 and not lines[i].strip() and not lines[i - 1].strip():
                del lines[i]
        block = [f"# kgrec tune -d {dataset} -m {model} --trials {opts.get('--trials', '?')}: "
                 f"validation {best['metric']} {best['best_value']:.4f} (trial "
                 f"{best['best_trial']})",
                 f"# kgrec tune report: benchmarks/results/tune/{path.parent.name}; test: "
                 "benchmarks/results/tuned.md", head, *_values(path.parent / "best.toml"), ""]
        if not _confirmed(dataset, model):
            atomic_write_text(preset, "\n".join(lines).rstrip("\n") + "\n")
            done.append(f"{preset.name}: {head} not adopted (validation over seeds prefers "
                        "the preset)")
            continue
        at = lines.index("[search]") if "[search]" in lines else len(lines)
        while at > 0 and lines[at - 1].startswith("#"):  # keep [search]'s comment with it
            at -= 1
        lines[at:at] = block
        atomic_write_text(preset, "\n".join(lines).rstrip("\n") + "\n")
        done.append(f"{preset.name}: {head}")
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="music")
    ap.add_argument("--models", default="")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None,
                    help="tune at this run length (default: the preset's); the tuned runs "
                         "keep it, the preset runs do not")
    ap.add_argument("--negatives", default="fixed",
                    help="tune under these training negatives (fixed | resample); the tuned "
                         "runs keep them, the preset runs do not")
    ap.add_argument("--summary", action="store_true", help="only rewrite tuned.md")
    ap.add_argument("--adopt", action="store_true",
                    help="only write every study's best values into the presets as "
                         "[<dataset>.tuned] sections (kgrec train --tuned)")
    ap.add_argument("--readme", action="store_true",
                    help="only copy tuned.md's table into the README's tuning table")
    args = ap.parse_args()
    if args.readme:
        print(f"README: {readme()} rows")
        return
    if args.adopt:
        print("\n".join(adopt()))
        return
    if not args.summary:
        for model in [m for m in args.models.split(",") if m]:
            tuned = tune(args.dataset, model, args.trials, args.workers, args.epochs,
                         args.negatives)
            compare(args.dataset, model, tuned, args.seeds)
    print(summary())


if __name__ == "__main__":
    main()
