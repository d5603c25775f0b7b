"""``kgrec analyze``: the exploratory analysis of a recommendation dataset, as done for
MovieLens in the course slides, for any dataset (catalog name or folder).

Counts per user and per item (log-log histograms), the user filter (keep users with
``min_user``-``max_user`` interactions), the long tail (share of interactions held by the top
x% of items), the rating distribution, the most-rated items and every user's top items, Q-Q
plots of per-item ratings against a normal with Levene's test of equal variances across items,
time span and activity over time, sparsity, sequence lengths, and KG coverage (items linked,
triples per item, relations). Writes ``report.md``, PNGs and ``stats.json``.

The events analysed are the dataset's observed events; for MKR's raw formats they are all rows
of the rating file (MKR's conversion then keeps only the items linked to the KG, which the
report counts separately).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Events", "analyze", "events_of", "user_filter"]


@dataclass
class Events:
    """Observed events with raw ids: ``user``, ``item`` (strings), ``rating`` and ``time``
    (float / int64 arrays, or None), and ``linked`` (the event's item has a KG entity)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    time: np.ndarray | None
    linked: np.ndarray | None
    source: str


def events_of(ds) -> Events:
    """The events of a dataset (see the module doc)."""
    reader = str(ds.meta.get("reader", ""))
    src = ds.meta.get("source_dir")
    if reader.startswith("mkr_raw:") and src:
        from kgrec.data.readers.mkr import MKR_FORMATS
        from kgrec.data.readers.table import read_table

        fmt = MKR_FORMATS[reader.split(":", 1)[1]]
        path = Path(src) / fmt.ratings_file
        cols = read_table(path, sep=fmt.sep, n_cols=3 if fmt.time_col is None else 4,
                          header=fmt.header, float_cols=(2,),
                          int_cols=() if fmt.time_col is None else (fmt.time_col,),
                          encoding=fmt.encoding, quoted=fmt.quoted)
        items = np.asarray(cols[1], dtype=str)
        linked = np.isin(items, np.asarray(ds.item_ids, dtype=str))
        rating = np.asarray(cols[2], dtype=np.float64)
        time = None if fmt.time_col is None else np.asarray(cols[fmt.time_col], np.int64)
        return Events(np.asarray(cols[0], dtype=str), items, rating, time, linked,
                      f"every row of {path.name}")
    ev = ds.interactions
    if ev is None or not len(ev):
        pos = ds.ratings[ds.ratings[:, 2] == 1]
        u, i, r, t = pos[:, 0], pos[:, 1], None, None
    else:
        u, i, r, t = ev.user, ev.item, ev.rating, ev.timestamp
        if np.isnan(r).all():
            r = None
    def labels(ids, n: int) -> np.ndarray:
        return np.arange(n).astype(str) if ids is None else np.asarray(ids, dtype=str)

    users, items = labels(ds.user_ids, ds.n_users)[u], labels(ds.item_ids, ds.n_items)[i]
    has_kg = None
    if len(ds.kg):
        ent_deg = np.bincount(ds.kg[:, [0, 2]].ravel(), minlength=ds.n_entities)
        has_kg = (ent_deg[ds.item_entity] > 0)[i]
    times = None if ds.meta.get("timestamps") == "file order" else t
    return Events(users, items, r, times, has_kg, "the dataset's observed events")


def user_filter(counts: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """Users kept by the filter ``lo <= interactions <= hi`` (None: no bound)."""
    keep = counts > 0
    if lo is not None:
        keep &= counts >= lo
    if hi is not None:
        keep &= counts <= hi
    return keep


def _codes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniq = pd.factorize(a)
    return codes.astype(np.int64), np.asarray(uniq, dtype=str)


def _top_per_user(u: np.ndarray, i: np.ndarray, r: np.ndarray | None, t: np.ndarray | None,
                  n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user, rank, item)`` of every user's ``n`` best items (rating, then most recent)."""
    keys = [np.arange(len(u))]
    keys.append(-t if t is not None else -np.arange(len(u)))
    if r is not None:
        keys.append(-r)
    keys.append(u)
    order = np.lexsort(keys)
    from kgrec.data.sampling import group_ranks

    uo = u[order]
    rank = group_ranks(uo)
    keep = rank < n
    return uo[keep], rank[keep], i[order][keep]


def analyze(ds, out: str | Path, *, min_user: int | None = 30, max_user: int | None = 1000,
            top: int = 10, qq_items: int = 4, levene_items: int = 50) -> dict[str, Any]:
    """Analyse dataset ``ds`` into folder ``out`` (see the module doc); returns the stats
    written to ``out/stats.json``."""
    from scipy import stats as st

    from kgrec.utils.io import atomic_write_text
    from kgrec.viz import analysis as plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev = events_of(ds)
    u, user_ids = _codes(ev.user)
    i, item_ids = _codes(ev.item)
    n_users, n_items, n = len(user_ids), len(item_ids), len(u)
    per_user = np.bincount(u, minlength=n_users)
    per_item = np.bincount(i, minlength=n_items)
    keep = user_filter(per_user, min_user, max_user)
    s: dict[str, Any] = {
        "dataset": ds.name, "events_source": ev.source, "events": n, "users": n_users,
        "items": n_items, "sparsity": 1.0 - n / max(n_users * n_items, 1),
        "per_user": _summary(per_user), "per_item": _summary(per_item),
        "user_filter": {"min": min_user, "max": max_user, "users_before": n_users,
                        "users_after": int(keep.sum()),
                        "events_after": int(per_user[keep].sum())},
    }
    if ev.linked is not None:
        s["events_on_kg_items"] = int(ev.linked.sum())
    # long tail: share of events held by the top x% of items
    sorted_items = np.sort(per_item)[::-1]
    share = np.cumsum(sorted_items) / max(n, 1)
    frac = np.arange(1, n_items + 1) / n_items
    s["long_tail"] = {f"top_{p}%_items": float(share[max(int(np.ceil(p / 100 * n_items)) - 1,
                                                         0)])
                      for p in (1, 5, 10, 20, 50)}
    files = {"counts": plots.counts(per_user, per_item, out / "counts.png"),
             "long_tail": plots.long_tail(frac, share, out / "long_tail.png")}
    # most rated items, every user's top items
    names = {} if ds.item_names is None else dict(zip(np.asarray(ds.item_ids, dtype=str),
                                                       ds.item_names, strict=True))

    def label(j: int) -> str:
        return str(names.get(item_ids[j], ""))

    top_i = np.argsort(-per_item, kind="stable")[:top]
    s["most_rated"] = [{"item": str(item_ids[j]), "title": label(j) or None,
                        "interactions": int(per_item[j]),
                        **({"mean_rating": float(ev.rating[i == j].mean())}
                           if ev.rating is not None else {})} for j in top_i]
    tu, trank, ti = _top_per_user(u, i, ev.rating, ev.time, 5)
    atomic_write_text(out / "user_top_items.tsv", "user\trank\titem\n" + "".join(
        f"{user_ids[a]}\t{b + 1}\t{item_ids[c]}\n" for a, b, c in zip(tu, trank, ti,
                                                                      strict=True)))
    files["user_top_items"] = "user_top_items.tsv"
    if ev.rating is not None:
        values, counts = np.unique(ev.rating, return_counts=True)
        s["ratings"] = {"mean": float(ev.rating.mean()), "std": float(ev.rating.std()),
                        "distribution": {f"{v:g}": int(c) for v, c in zip(values, counts,
                                                                           strict=True)}}
        files["ratings"] = plots.ratings(values, counts, out / "ratings.png")
        qq = top_i[:qq_items]
        files["qq"] = plots.qq([ev.rating[i == j] for j in qq],
                               [label(j) or str(item_ids[j]) for j in qq], out / "qq.png")
        lev = np.argsort(-per_item, kind="stable")[:levene_items]
        lev = lev[per_item[lev] >= 30]
        if len(lev) >= 2:
            groups = [ev.rating[i == j] for j in lev]
            stat, p = st.levene(*groups, center="median")
            s["levene"] = {"items": len(lev), "statistic": float(stat), "p_value": float(p),
                           "test": "Brown-Forsythe (median-centred Levene) over the most-rated "
                                   "items with >= 30 ratings"}
            skew = [float(st.skew(g)) for g in groups]
            s["per_item_rating_skew"] = {"mean": float(np.mean(skew)),
                                         "share_negative": float(np.mean(np.array(skew) < 0))}
    if ev.time is not None and len(ev.time):
        t0, t1 = int(ev.time.min()), int(ev.time.max())
        s["time"] = {"first": _date(t0), "last": _date(t1), "span_days": (t1 - t0) / 86400}
        files["activity"] = plots.activity(ev.time, out / "activity.png")
    if len(ds.kg):
        ent_deg = np.bincount(ds.kg[:, [0, 2]].ravel(), minlength=ds.n_entities)
        linked = ent_deg[ds.item_entity] > 0
        head_is_item = np.zeros(ds.n_entities, np.int64)
        np.add.at(head_is_item, ds.kg[:, 0], 1)
        per_item_triples = head_is_item[ds.item_entity]
        rel = np.bincount(ds.kg[:, 1], minlength=ds.n_relations)
        rel_names = (np.asarray(ds.relation_ids, dtype=str) if ds.relation_ids is not None
                     else np.arange(ds.n_relations).astype(str))
        s["kg"] = {"triples": len(ds.kg), "entities": ds.n_entities,
                   "relations": ds.n_relations,
                   "items_with_triples": float(linked.mean()),
                   "triples_per_item_as_head": _summary(per_item_triples),
                   "relation_counts": {str(rel_names[r]): int(rel[r])
                                       for r in np.argsort(-rel, kind="stable")}}
        files["kg_relations"] = plots.relations(rel_names, rel, out / "kg_relations.png")
    s["files"] = {k: v for k, v in files.items() if v}
    atomic_write_text(out / "stats.json", json.dumps(s, indent=2) + "\n")
    atomic_write_text(out / "report.md", _report(s))
    return s


def _summary(c: np.ndarray) -> dict[str, float]:
    c = c[c > 0] if c.size else c
    if not c.size:
        return {"min": 0, "median": 0, "mean": 0, "max": 0}
    return {"min": int(c.min()), "median": float(np.median(c)), "mean": float(c.mean()),
            "max": int(c.max())}


def _date(t: int) -> str:
    from datetime import UTC, datetime

    if t > 10**11:  # nanoseconds (datetime columns)
        t //= 10**9
    try:
        return datetime.fromtimestamp(t, UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return str(t)


def _report(s: dict[str, Any]) -> str:
    f = s["user_filter"]
    lines = [f"# Dataset analysis: {s['dataset']}", "",
             f"Events: {s['events']:,} ({s['events_source']}); {s['users']:,} users, "
             f"{s['items']:,} items; sparsity {s['sparsity']:.4f}."]
    if "events_on_kg_items" in s:
        lines.append(f"Events on items linked to the KG (what MKR-style training keeps): "
                     f"{s['events_on_kg_items']:,}.")
    lines += ["", "| | min | median | mean | max |", "|---|---|---|---|---|"]
    for key, what in (("per_user", "interactions per user (sequence length)"),
                      ("per_item", "interactions per item")):
        d = s[key]
        lines.append(f"| {what} | {d['min']} | {d['median']:g} | {d['mean']:.1f} | "
                     f"{d['max']} |")
    lines += ["", f"**User filter** {f['min']}-{f['max']} interactions: {f['users_after']:,} of "
              f"{f['users_before']:,} users kept, {f['events_after']:,} events.", "",
              "![counts](counts.png)", "", "## Long tail", "",
              "| top items | share of interactions |", "|---|---|",
              *[f"| {k.split('_')[1]} | {v:.3f} |" for k, v in s["long_tail"].items()], "",
              "![long tail](long_tail.png)", "", "## Most-rated items", "",
              "| item | title | interactions | mean rating |", "|---|---|---|---|",
              *[f"| {m['item']} | {m['title'] or ''} | {m['interactions']} | "
                f"{m.get('mean_rating', float('nan')):.2f} |" for m in s["most_rated"]], "",
              "Every user's five best items (rating, then the most recent): "
              "`user_top_items.tsv`.", ""]
    if "ratings" in s:
        r = s["ratings"]
        lines += ["## Ratings", "", f"Mean {r['mean']:.3f}, std {r['std']:.3f}.", "",
                  "| rating | count |", "|---|---|",
                  *[f"| {k} | {v:,} |" for k, v in r["distribution"].items()], "",
                  "![ratings](ratings.png)", "",
                  "Q-Q plots of the most-rated items' ratings against a normal: ", "",
                  "![Q-Q](qq.png)", ""]
        if "levene" in s:
            lv = s["levene"]
            verdict = "differ" if lv["p_value"] < 0.05 else "do not differ significantly"
            lines += [f"{lv['test']}: W = {lv['statistic']:.2f}, p = {lv['p_value']:.3g} over "
                      f"{lv['items']} items: the items' rating variances {verdict}. Per-item "
                      f"skewness: mean {s['per_item_rating_skew']['mean']:.2f}, "
                      f"{s['per_item_rating_skew']['share_negative']:.0%} of items skewed "
                      "towards high ratings.", ""]
    if "time" in s:
        t = s["time"]
        lines += ["## Activity over time", "", f"From {t['first']} to {t['last']} "
                  f"({t['span_days']:.0f} days).", "", "![activity](activity.png)", ""]
    if "kg" in s:
        k = s["kg"]
        lines += ["## Knowledge graph", "", f"{k['triples']:,} triples, {k['entities']:,} "
                  f"entities, {k['relations']} relations; {k['items_with_triples']:.1%} of "
                  f"items have a triple; triples per item (as head): median "
                  f"{k['triples_per_item_as_head']['median']:g}, mean "
                  f"{k['triples_per_item_as_head']['mean']:.1f}.", "",
                  "![relations](kg_relations.png)", ""]
    lines += ["All numbers: `stats.json`."]
    return "\n".join(lines) + "\n"
