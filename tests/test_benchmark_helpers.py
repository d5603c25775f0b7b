"""The benchmark scripts' shared helpers (benchmarks/_cli.py) that hold no model code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _cli import scratch_cwd


def test_scratch_cwd_temporary_is_removed_and_cwd_restored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with scratch_cwd(None, prefix="kgrec-test-") as work:
        assert work.is_absolute() and work.name.startswith("kgrec-test-")
        assert Path.cwd() == work
        Path("log").mkdir()  # what RecBole does
        (work / "log" / "x.txt").write_text("x")
    assert Path.cwd() == tmp_path
    assert not work.exists()


def test_scratch_cwd_given_folder_is_created_and_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with scratch_cwd("scratch/inner", prefix="unused-") as work:
        assert work == (tmp_path / "scratch" / "inner").resolve()
        Path("kept.txt").write_text("k")
    assert Path.cwd() == tmp_path
    assert (tmp_path / "scratch" / "inner" / "kept.txt").read_text() == "k"


def test_scratch_cwd_restores_cwd_after_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), scratch_cwd(None, prefix="kgrec-test-") as work:
        raise RuntimeError("boom")
    assert Path.cwd() == tmp_path
    assert not work.exists()


def test_kg_link_check_item_tails_and_shared_tail_recall_by_hand():
    """benchmarks/kg_link_check.py: the item x tail matrix of a toy graph, and recall@20 of
    the shared-tail ranking equals a hand loop over the same queries."""
    import numpy as np
    from kg_link_check import item_tail_matrix, shared_tail_recall

    from kgrec.data.split import make_split
    from kgrec.data.synthetic import make_synthetic

    ds = make_synthetic(seed=0)
    x = item_tail_matrix(ds).toarray()
    ent_item = {e: i for i, e in enumerate(ds.item_entity)}
    for h, _, t in ds.kg[:50]:
        if h in ent_item:
            assert x[ent_item[h], t] == 1
    got = shared_tail_recall(ds, seeds=1)
    ev = ds.interactions
    q = make_split("cold-items", events_user=ev.user, events_item=ev.item,
                   events_time=ev.timestamp, n_users=ds.n_users, n_items=ds.n_items,
                   seed=0).test_queries
    cold = np.flatnonzero(q.candidates)
    sim = x @ x.T
    rng = np.random.default_rng(0)
    noise = rng.random((len(q), len(cold))) * 1e-6
    rec = []
    for i in range(len(q)):
        hist = q.hist_items[q.hist_indptr[i]:q.hist_indptr[i + 1]]
        tgt = q.tgt_items[q.tgt_indptr[i]:q.tgt_indptr[i + 1]]
        score = sim[hist][:, cold].sum(0) + noise[i]
        rec.append(np.isin(tgt, cold[np.argsort(-score)[:20]]).mean())
    assert got["recall"][0] == pytest.approx(np.mean(rec))
    assert got["random"][0] == pytest.approx(min(20, len(cold)) / len(cold))
