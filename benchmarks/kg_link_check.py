"""Is ml-100k-kg's graph attached to the right films? RecBole's link against kgrec's re-keyed one.

Two checks that need no training, on each link:

* **genre agreement**: for each MovieLens genre, the Freebase genre entity (``film.film.genre``
  tail) whose films best match it (F1 over films); a link that hangs films on other films'
  facts gives low F1;
* **shared-tail ranking of new films**: under ``--protocol cold-items`` (the same seeded
  splits as ``kgrec train``), each test user's new films are ranked by how many KG tails they
  share with the user's training films (item-item co-occurrence over the graph, no learning);
  recall@20 against the random ranking's.

``KGREC_DATA=../shared/datasets python benchmarks/kg_link_check.py [--seeds 5]`` writes
``benchmarks/results/kg_link_check.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).resolve().parent / "results"
GENRES = ("Animation", "Documentary", "Horror", "Western", "Sci-Fi", "Film-Noir")


def entity_item(ds) -> np.ndarray:
    """``(n_entities,)`` the item of each entity (-1: none; the last item where several
    share one)."""
    out = np.full(ds.n_entities, -1)
    out[ds.item_entity] = np.arange(ds.n_items)
    return out


def item_tail_matrix(ds) -> sp.csr_matrix:
    """``(n_items, n_entities)`` 0/1: the tails of each item entity's triples."""
    rows = entity_item(ds)[ds.kg[:, 0]]
    keep = rows >= 0
    x = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], ds.kg[keep, 2])),
                      shape=(ds.n_items, ds.n_entities))
    x.data[:] = 1.0
    return x


def genre_agreement(ds) -> dict[str, dict]:
    """Per MovieLens genre: the best-matching Freebase genre entity, its films, how many of
    them carry the MovieLens genre, F1."""
    rel = ds.relation_ids.tolist().index("film.film.genre")
    ent_item = entity_item(ds)
    trip = ds.kg[(ds.kg[:, 1] == rel) & (ent_item[ds.kg[:, 0]] >= 0)]
    items, tails = ent_item[trip[:, 0]], trip[:, 2]
    cls = ds.item_features.field("class")
    out = {}
    for g in GENRES:
        has = np.array([g in cls.labels(i) for i in range(ds.n_items)])
        best = None
        for t in np.unique(tails):
            films = np.unique(items[tails == t])
            hit = int(has[films].sum())
            f1 = 2 * hit / (len(films) + has.sum())
            if best is None or f1 > best["f1"]:
                best = {"entity": str(ds.entity_ids[t]), "films": len(films), "with_genre": hit,
                        "genre_films": int(has.sum()), "f1": round(float(f1), 4)}
        out[g] = best
    return out


def shared_tail_recall(ds, seeds: int, k: int = 20) -> dict:
    """Recall@k of ranking each cold-items test query's new films by shared KG tails."""
    from kgrec.data.split import make_split

    x = item_tail_matrix(ds)
    sim = (x @ x.T).tocsr()
    ev = ds.interactions
    recalls, randoms = [], []
    for seed in range(seeds):
        split = make_split("cold-items", events_user=ev.user, events_item=ev.item,
                           events_time=ev.timestamp, n_users=ds.n_users, n_items=ds.n_items,
                           seed=seed)
        q = split.test_queries
        cold = np.flatnonzero(q.candidates)
        hist = sp.csr_matrix((np.ones(len(q.hist_items)), q.hist_items, q.hist_indptr),
                             shape=(len(q), ds.n_items))
        scores = np.asarray((hist @ sim[:, cold]).todense())
        scores += np.random.default_rng(seed).random(scores.shape) * 1e-6  # random ties
        top = cold[np.argsort(-scores, axis=1)[:, :k]]
        lens = np.diff(q.tgt_indptr)
        rows = np.repeat(np.arange(len(q)), lens)
        hits = (top[rows] == q.tgt_items[:, None]).any(1)
        recalls.append(float(np.mean(np.bincount(rows, weights=hits, minlength=len(q)) / lens)))
        randoms.append(min(k, len(cold)) / len(cold))
    return {"recall": recalls, "random": randoms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    from kgrec.data.catalog import load_dataset, locate
    from kgrec.data.readers import read_recbole
    from kgrec.utils.io import atomic_write_text

    root = locate("ml-100k-kg")
    if root is None:
        raise SystemExit("ml-100k-kg not found: set KGREC_DATA (see the README)")
    links = {"RecBole's ml-100k.link (MovieLens-1M ids)":
             read_recbole(root, "ml-100k", threshold=4.0, unlinked_items="keep"),
             "re-keyed by titles (kgrec)": load_dataset("ml-100k-kg")}
    payload = {"command": f"python benchmarks/kg_link_check.py --seeds {args.seeds}",
               "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "links": {}}
    for name, ds in links.items():
        r = shared_tail_recall(ds, args.seeds)
        payload["links"][name] = {"data_checksum": ds.checksum,
                                  "linked_items": int(ds.n_items
                                                      - ds.meta.get("unlinked_items", 0)),
                                  "genres": genre_agreement(ds), "cold": r}
    lines = ["# Is ml-100k-kg's graph attached to the right films?", "",
             f"Command: `KGREC_DATA=../shared/datasets {payload['command']}`  ",
             f"Date: {payload['date']}; machine: {payload['machine']}. No training: "
             "`benchmarks/kg_link_check.py` says what is computed.", "",
             "## Genre agreement (best-matching Freebase genre per MovieLens genre)", "",
             "| MovieLens genre | link | Freebase entity | its films | with the genre | F1 |",
             "|---|---|---|---|---|---|"]
    for g in GENRES:
        for name, v in payload["links"].items():
            b = v["genres"][g]
            lines.append(f"| {g} | {name} | {b['entity']} | {b['films']} | {b['with_genre']} of "
                         f"{b['genre_films']} | {b['f1']:.2f} |")
    lines += ["", f"## New films ranked by shared KG tails (cold-items test, seeds "
              f"0..{args.seeds - 1})", "",
              "| link | linked films | recall@20 | random | x random | data checksum |",
              "|---|---|---|---|---|---|"]
    for name, v in payload["links"].items():
        rec, rnd = np.array(v["cold"]["recall"]), np.array(v["cold"]["random"])
        lines.append(f"| {name} | {v['linked_items']:,} | {rec.mean():.4f} ± {rec.std(ddof=1):.4f}"
                     f" | {rnd.mean():.4f} | {rec.mean() / rnd.mean():.2f} | "
                     f"`{v['data_checksum'][:16]}` |")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "kg_link_check.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / "kg_link_check.json", json.dumps(payload, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
