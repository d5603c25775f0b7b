"""Recommendations beyond known users: a new user's history, similar items, titles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import kgrec
from kgrec.cli import app
from kgrec.experiments.run import RunConfig, train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("rec")
    out = {}
    for model, protocol in (("gru4rec", "loo"), ("bpr-mf", "ctr"), ("cke", "ctr")):
        res = train(RunConfig(model=model, protocol=protocol, epochs=1, progress=False,
                              plot=False, topk=False, out=str(base / model)))
        out[model] = res.run_dir
    return out


def test_history_encoder_serves_a_new_user(runs):
    art = kgrec.load(runs["gru4rec"])
    hist = list(art.item_labels[[3, 1, 4]])
    items, how = art.recommend_history(hist, 5)
    assert how == "history encoder" and len(items) == 5 and not set(items) & set(hist)
    # the same as a known user's query with that history: the model's own ranking
    with torch.no_grad():
        h = torch.tensor([[3, 1, 4]])
        scores = art.model.score_queries(torch.zeros(1, dtype=torch.long), h)[0]
        scores[[3, 1, 4]] = -torch.inf
    assert items == list(art.item_labels[torch.topk(scores, 5).indices.numpy()])


def test_fallbacks_say_which(runs):
    bpr = kgrec.load(runs["bpr-mf"])
    hist = list(bpr.item_labels[[0, 1]])
    items, how = bpr.recommend_history(hist, 4)
    assert how.startswith("popularity") and "cannot place" in how
    counts = np.bincount(bpr.seen[1], minlength=bpr.n_items).astype(float)
    counts[[0, 1]] = -np.inf
    assert items == list(bpr.item_labels[np.argsort(-counts, kind="stable")[:4]])
    cke = kgrec.load(runs["cke"])
    items, how = cke.recommend_history(hist, 4)
    assert how == "mean of the history's item vectors"
    with torch.no_grad():
        v = cke.model.item_vectors()
        s = v @ v[[0, 1]].mean(0)
        s[[0, 1]] = -torch.inf
    assert items == list(cke.item_labels[torch.topk(s, 4).indices.numpy()])


def test_similar_items(runs):
    gru = kgrec.load(runs["gru4rec"])
    item = str(gru.item_labels[7])
    items, how = gru.similar(item, 3)
    assert how == "cosine of item vectors" and item not in items
    with torch.no_grad():
        v = torch.nn.functional.normalize(gru.model.item_vectors(), dim=1)
        s = v @ v[7]
        s[7] = -torch.inf
    assert items == list(gru.item_labels[torch.topk(s, 3).indices.numpy()])
    bpr = kgrec.load(runs["bpr-mf"])
    items, how = bpr.similar(item, 3)
    assert how == "co-occurrence in training histories" and item not in items
    indptr, seen = bpr.seen
    with_item = [u for u in range(len(indptr) - 1) if 7 in seen[indptr[u]:indptr[u + 1]]]
    co = np.zeros(bpr.n_items)
    for u in with_item:
        np.add.at(co, seen[indptr[u]:indptr[u + 1]], 1)
    co[7] = -np.inf
    assert items == list(bpr.item_labels[np.argsort(-co, kind="stable")[:3]])


def test_cli_history_similar_and_errors(runs):
    r = CliRunner().invoke(app, ["recommend", str(runs["gru4rec"]), "--history", "i1,i2",
                                 "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    (q,) = json.loads(r.output).values()
    assert q["method"] == "history encoder" and len(q["items"]) == 3
    r = CliRunner().invoke(app, ["recommend", str(runs["gru4rec"]), "--similar", "nope"])
    assert r.exit_code == 2 and "nope" in r.output
    r = CliRunner().invoke(app, ["recommend", str(runs["gru4rec"])])
    assert r.exit_code == 2 and "--history" in r.output


def test_titles_travel_with_the_run(data_dir, tmp_path):
    from kgrec.data.folder import read_folder

    ds = read_folder(data_dir / "ml-100k")
    assert ds.item_names[ds.item_ids.tolist().index("1")] == "Toy Story (1995)"
    res = train(RunConfig(model="pop", protocol="loo", epochs=1, progress=False, plot=False,
                          out=str(tmp_path / "pop")), dataset=ds)
    art = kgrec.load(res.run_dir)
    assert art.names_of(["1"]) == ["Toy Story (1995)"]
