"""Peer figure for the ml-100k link repair: RecBole 1.2.1's own KG models on its own ml-100k
example, with the link it ships (keyed in MovieLens-1M ids) and with kgrec's re-keyed one.

Everything but the ``.link`` file is RecBole's: its ``ml-100k.inter`` / ``.kg`` / ``.item`` /
``.user``, its split (random 8:1:1 per user), its training (one uniform negative per
positive), its full-ranking evaluation (recall@20, NDCG@20 over all items, training items
masked), each model's ``recbole/properties/model/<M>.yaml`` defaults, ``--epochs`` as the
cap, the best validation NDCG@20 checkpoint tested. The repaired link is
:func:`kgrec.data.catalog.load_dataset`'s (``ml-100k-kg``), written with
:func:`kgrec.data.readers.write_recbole`, without the films that have no entity and with one
film per entity (RecBole's item-entity merge needs a one-to-one link; MovieLens-100K lists 17
films twice). RecBole's KGIN and KGAT need ``torch_scatter``, which has no CPU wheel on PyPI
for this torch: not run here.

Run in an environment with RecBole 1.2.1 (and numpy 1.26 / pandas 2.1), kgrec on the path::

    KGREC_DATA=../shared/datasets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYTHONPATH=src \\
        PEER_VENV/bin/python benchmarks/peers_ml100k_link.py --models KGCN,CKE --seeds 2

writes ``benchmarks/results/peers_ml100k_link.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _cli import fmt_mean_std, recbole_prepare, scratch_cwd

RESULTS = Path(__file__).resolve().parent / "results"


def folders(work: Path) -> dict[str, str]:
    """``{label: dataset name}``: RecBole's files under ``work``, once with its own link and
    once with kgrec's re-keyed one."""
    from kgrec.data.catalog import load_dataset, locate
    from kgrec.data.readers import write_recbole

    src = locate("ml-100k-kg")
    if src is None:
        raise SystemExit("ml-100k-kg not found: set KGREC_DATA (see the README)")
    out = {"RecBole's link": "ml100k_recbole", "kgrec's re-keyed link": "ml100k_kgrec"}
    for name in out.values():
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        for ext in ("inter", "kg", "link", "item", "user"):
            shutil.copy(src / f"ml-100k.{ext}", d / f"{name}.{ext}")
    ds = load_dataset("ml-100k-kg")
    write_recbole(ds, work / "kgrec_out")
    rows = (work / "kgrec_out" / "ml-100k-kg.link").read_text().splitlines()
    seen: set[str] = set()
    kept = [rows[0]]
    for line in rows[1:]:
        ent = line.split("\t")[1]
        if not ent.startswith("item:") and ent not in seen:
            seen.add(ent)
            kept.append(line)
    name = out["kgrec's re-keyed link"]
    (work / name / f"{name}.link").write_text("\n".join(kept) + "\n")
    return out


def run(model: str, dataset: str, seed: int, epochs: int, work: Path) -> dict:
    from recbole.utils import get_model, get_trainer, init_seed

    params = {"data_path": str(work), "epochs": epochs, "seed": seed, "show_progress": False,
              "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "full",
                            "group_by": "user"},
              "topk": [20], "metrics": ["Recall", "NDCG"], "valid_metric": "NDCG@20",
              "checkpoint_dir": str(work / "saved"), "device": "cpu", "use_gpu": False}
    t0 = time.perf_counter()
    config, data, train, valid, test, _ = recbole_prepare(model, dataset, params)
    init_seed(config["seed"], config["reproducibility"])
    m = get_model(config["model"])(config, train._dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, m)
    trainer.fit(train, valid, saved=True, show_progress=False)
    res = trainer.evaluate(test, load_best_model=True, show_progress=False)
    linked = len(data.item2entity) if hasattr(data, "item2entity") else None
    return {"model": model, "dataset": dataset, "seed": seed, "recall@20": float(res["recall@20"]),
            "ndcg@20": float(res["ndcg@20"]), "linked_items": linked,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="KGCN,CKE")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    a = ap.parse_args()
    import recbole

    from kgrec.eval.stats import paired_ttest
    from kgrec.utils.io import atomic_write_text

    with scratch_cwd(a.workdir, prefix="kgrec-peers-link-") as work:
        labels = folders(work)
        runs = [run(m, ds, s, a.epochs, work) for m in a.models.split(",")
                for ds in labels.values() for s in range(a.seeds)]
    cmd = (f"python benchmarks/peers_ml100k_link.py --models {a.models} --seeds {a.seeds} "
           f"--epochs {a.epochs}")
    lines = ["# RecBole's own KG models on its ml-100k, with its link and with kgrec's", "",
             f"Command: `KGREC_DATA=../shared/datasets {cmd}` (RecBole {recbole.__version__}; "
             f"the script's docstring says how)  ",
             f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: "
             f"{platform.machine()}, {os.cpu_count()} cores. RecBole's split (8:1:1 per user, "
             "random), full ranking, test at the best validation NDCG@20; seeds "
             f"0..{a.seeds - 1}. p: paired t-test over seeds.", "",
             "| model | link | linked films | recall@20 | NDCG@20 | p (recall) | s / run |",
             "|---|---|---|---|---|---|---|"]
    for m in a.models.split(","):
        base = [r for r in runs if r["model"] == m and r["dataset"] == labels["RecBole's link"]]
        for label, ds in labels.items():
            rs = [r for r in runs if r["model"] == m and r["dataset"] == ds]
            p = "—"
            if ds != labels["RecBole's link"] and len(rs) > 1:
                _, pv = paired_ttest([r["recall@20"] for r in rs], [r["recall@20"] for r in base])
                p = f"{pv:.3g}"
            lines.append(f"| {m} | {label} | {rs[0]['linked_items']} | "
                         f"{fmt_mean_std([r['recall@20'] for r in rs])} | "
                         f"{fmt_mean_std([r['ndcg@20'] for r in rs])} | {p} | "
                         f"{np.mean([r['seconds'] for r in rs]):.0f} |")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "peers_ml100k_link.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / "peers_ml100k_link.json",
                      json.dumps({"command": cmd, "runs": runs}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
