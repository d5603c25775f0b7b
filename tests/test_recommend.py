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
    for model, protocol in (("gru4rec", "loo"), ("mkr", "ctr"), ("cke", "ctr")):
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
    bpr = kgrec.load(runs["mkr"])  # an MLP over pairs: no vectors
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
    bpr = kgrec.load(runs["mkr"])
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


def test_export_vectors_labels_and_index(runs, tmp_path):
    import faiss

    from kgrec.retrieval.export import export_run

    m = export_run(runs["gru4rec"], tmp_path / "exp", index="flat", k=10)
    assert m["ann_recall@10"] == pytest.approx(1.0)  # flat is exact
    art = kgrec.load(runs["gru4rec"])
    items = np.load(tmp_path / "exp" / "item_vectors.npy")
    users = np.load(tmp_path / "exp" / "user_vectors.npy")
    assert items.shape[0] == art.n_items and users.shape[0] == art.n_users
    labels = (tmp_path / "exp" / "items.tsv").read_text().splitlines()
    assert labels[0] == "index\titem_id\ttitle" and labels[5].split("\t")[1] == art.item_labels[4]
    # a user's exported vector scores items as the model does for their history
    from kgrec.models.sequential.base import last_windows

    indptr, seen = art.seen
    with torch.no_grad():
        h = torch.from_numpy(last_windows(indptr, seen, 200, np.array([3])))
        ref = art.model.score_queries(torch.tensor([3]), h)[0].numpy()
    np.testing.assert_allclose(users[3] @ items.T, ref, rtol=1e-4, atol=1e-4)
    index = faiss.deserialize_index(np.frombuffer(
        (tmp_path / "exp" / "items.faiss").read_bytes(), dtype=np.uint8))
    _, ids = index.search(users[:4].astype(np.float32), 5)
    np.testing.assert_array_equal(ids[:, 0], np.argmax(users[:4] @ items.T, axis=1))
    r = CliRunner().invoke(app, ["export", str(runs["mkr"]), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "mkr" in r.output
    r = CliRunner().invoke(app, ["export", str(runs["cke"]), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "cke" in r.output
    bpr = train(RunConfig(model="bpr-mf", epochs=1, progress=False, plot=False, topk=False,
                          out=str(tmp_path / "bpr"))).run_dir
    r = CliRunner().invoke(app, ["export", str(bpr), "--out", str(tmp_path / "b"),
                                 "--index", "hnsw"])
    assert r.exit_code == 0 and "ANN recall@50" in r.output, r.output
    b = kgrec.load(bpr)
    u = np.load(tmp_path / "b" / "user_vectors.npy")
    i = np.load(tmp_path / "b" / "item_vectors.npy")
    with torch.no_grad():  # [p_u, 1] . [q_i, b_i] is BPR's ranking score
        ref = b.model.raw_score(torch.zeros(b.n_items, dtype=torch.long),
                                torch.arange(b.n_items)).numpy()
    np.testing.assert_allclose(u[0] @ i.T, ref, rtol=1e-4, atol=1e-5)
