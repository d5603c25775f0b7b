"""``kgrec analyze`` and the user filter: counts, long tail, Q-Q / Levene, KG coverage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats as st
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.data.features import FeatureField, FeatureTable
from kgrec.experiments.analyze import _top_per_user, analyze, user_filter
from kgrec.experiments.run import filter_users


def test_user_filter_and_top_items_by_hand():
    counts = np.array([0, 29, 30, 1000, 1001, 5])
    assert user_filter(counts, 30, 1000).tolist() == [False, False, True, True, False, False]
    assert user_filter(counts, None, None).tolist() == [False, True, True, True, True, True]
    u = np.array([0, 0, 0, 1, 1])
    i = np.array([7, 8, 9, 7, 9])
    r = np.array([3.0, 5.0, 5.0, 1.0, 2.0])
    t = np.array([1, 2, 3, 4, 5])
    tu, rank, ti = _top_per_user(u, i, r, t, 2)
    # user 0: the two 5s, the more recent (t=3, item 9) first; user 1: item 9 (2.0), item 7
    assert list(zip(tu, rank, ti, strict=True)) == [(0, 0, 9), (0, 1, 8), (1, 0, 9), (1, 1, 7)]


def test_feature_table_take():
    f = FeatureField(np.array([0, 2, 2, 3]), np.array([1, 0, 2]), np.array(["a", "b", "c"]))
    t = FeatureTable(3, {"g": f}).take(np.array([2, 0]))
    assert t.n_rows == 2 and t.field("g").labels(0) == ["c"] and t.field("g").labels(1) == \
        ["b", "a"]


def test_filter_users_reindexes(tiny_dataset):
    ds = filter_users(tiny_dataset, 9, None)
    counts = np.bincount(tiny_dataset.interactions.user, minlength=tiny_dataset.n_users)
    kept = np.flatnonzero(counts >= 9)
    assert ds.n_users == len(kept) and ds.user_ids.tolist() == \
        tiny_dataset.user_ids[kept].tolist()
    assert np.bincount(ds.interactions.user).tolist() == counts[kept].tolist()
    assert ds.ratings[:, 0].max() < ds.n_users and ds.meta["user_filter"]["users_after"] == \
        len(kept)


def test_analyze_ml100k_and_movie_half(data_dir, monkeypatch, tmp_path):
    from kgrec.data.catalog import load_dataset

    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    s = analyze(load_dataset("ml-100k"), tmp_path / "a")
    assert s["user_filter"]["users_after"] == 744 and s["user_filter"]["users_before"] == 943
    assert s["events"] == 100_000 and s["ratings"]["mean"] == pytest.approx(3.52986)
    for f in ("report.md", "stats.json", "qq.png", "counts.png", "long_tail.png",
              "activity.png", "user_top_items.tsv"):
        assert (tmp_path / "a" / f).is_file(), f
    assert json.loads((tmp_path / "a" / "stats.json").read_text())["levene"]["p_value"] < 0.05
    assert s["most_rated"][0]["title"] == "Star Wars (1977)"
    r = CliRunner().invoke(app, ["analyze", "-d", "movie-half", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "2,583 of 2,999 users kept" in r.output
    m = json.loads((tmp_path / "m" / "stats.json").read_text())
    assert m["kg"]["triples"] > 0 and 0 < m["kg"]["items_with_triples"] <= 1
    assert (tmp_path / "m" / "qq.png").is_file() and (tmp_path / "m" / "kg_relations.png").is_file()


def test_levene_and_long_tail_match_by_hand(tmp_path, tiny_dataset):
    from kgrec.data.dataset import Interactions

    rng = np.random.default_rng(0)
    n = len(tiny_dataset.interactions)
    ev = tiny_dataset.interactions
    ds = dataclasses.replace(tiny_dataset, interactions=Interactions(
        ev.user, ev.item, rng.integers(1, 6, n).astype(float), ev.timestamp))
    s = analyze(ds, tmp_path / "t", min_user=None, max_user=None, levene_items=5)
    per_item = np.bincount(ds.interactions.item, minlength=ds.n_items)
    top = np.sort(per_item[per_item > 0])[::-1]  # over the items that occur in the events
    k = int(np.ceil(0.1 * len(top)))
    assert s["long_tail"]["top_10%_items"] == pytest.approx(top[:k].sum() / n)
    five = np.argsort(-per_item, kind="stable")[:5]
    five = five[per_item[five] >= 30]
    if len(five) >= 2:
        ref = st.levene(*[ds.interactions.rating[ds.interactions.item == j] for j in five],
                        center="median")
        assert s["levene"]["statistic"] == pytest.approx(ref.statistic)


def test_analyze_cli_errors(tmp_path):
    r = CliRunner().invoke(app, ["analyze", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "-d NAME" in r.output
    r = CliRunner().invoke(app, ["analyze", "-d", "synthetic", "--out", str(tmp_path),
                                 "--min-user", "50", "--max-user", "10"])
    assert r.exit_code == 2 and "--max-user" in r.output
