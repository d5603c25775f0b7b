"""Sequential recall: training rows from sequences, routing and label-aware attention on
hand-checked tensors, multi-interest merge and greedy aggregation, diversity, and models that
learn a planted next-item rule."""

import math

import numpy as np
import pytest
import torch

from kgrec.data.split import make_split
from kgrec.eval.metrics import topk_sums
from kgrec.eval.ranking import evaluate_ranking
from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.sequential.base import (
    bucketed_batches,
    dynamic_routing,
    label_aware_attention,
    last_windows,
    next_item_rows,
    squash,
)
from kgrec.retrieval.index import (
    ExactIndex,
    build_index,
    category_diversity,
    greedy_diverse,
    merge_results,
    multi_interest_search,
)
from kgrec.train.trainer import TrainConfig, Trainer

SEQ_MODELS = ["youtubednn", "gru4rec", "sasrec", "mind", "comirec-dr", "comirec-sa"]


def test_training_rows_by_hand():
    indptr = np.array([0, 3, 4, 6])  # user 0: 5 6 7; user 1: 8; user 2: 1 2
    items = np.array([5, 6, 7, 8, 1, 2])
    assert last_windows(indptr, items, 2).tolist() == [[6, 7], [-1, 8], [1, 2]]
    rows = next_item_rows(indptr, items, 2)
    assert rows.tolist() == [[-1, 5, 6], [5, 6, 7], [-1, 1, 2]]


def test_bucketed_batches_cover_every_row_once():
    torch.manual_seed(0)
    rows = np.arange(100)[:, None].repeat(3, 1)
    lengths = np.random.default_rng(0).integers(1, 50, 100)
    seen = np.concatenate([b[:, 0].numpy() for b in bucketed_batches(rows, lengths, 7,
                                                                        chunk=3)])
    assert sorted(seen.tolist()) == list(range(100))


def test_squash_and_one_routing_iteration_by_hand():
    z = torch.tensor([[0.5, 0.5]])
    # |z|^2 = 0.5: 0.5 / 1.5 * z / |z| = (1/3) * (0.7071, 0.7071)
    assert squash(z).tolist()[0] == pytest.approx([0.2357023, 0.2357023], rel=1e-5)
    hat = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]],      # interest 0: behaviours (1,0), (0,1)
                         [[2.0, 0.0], [0.0, 0.0]]]])    # interest 1: (2,0), (0,0)
    mask = torch.tensor([[True, True]])
    out = dynamic_routing(hat, mask, torch.zeros(1, 2, 2), iterations=1)
    # equal weights 1/2: z0 = (0.5, 0.5), z1 = (1, 0) -> squash(z1) = 0.5 * (1, 0)
    assert out[0, 0].tolist() == pytest.approx([0.2357023, 0.2357023], rel=1e-5)
    assert out[0, 1].tolist() == pytest.approx([0.5, 0.0], abs=1e-6)


def test_routing_two_iterations_and_padding_match_a_loop():
    g = torch.Generator().manual_seed(0)
    hat = torch.randn(2, 3, 4, 5, generator=g)
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])
    logits = torch.randn(2, 3, 4, generator=g)
    out = dynamic_routing(hat, mask, logits, iterations=2)
    ref = torch.empty_like(out)
    for b in range(2):
        lg = logits[b].clone()
        for it in range(2):
            w = torch.softmax(lg, dim=0) * mask[b].float()
            v = torch.stack([squash((w[k][:, None] * hat[b, k]).sum(0)) for k in range(3)])
            if it == 0:
                lg = lg + torch.stack([hat[b, k] @ v[k] for k in range(3)])
        ref[b] = v
    torch.testing.assert_close(out, ref)
    # a padded behaviour never changes the interests
    hat2 = hat.clone()
    hat2[0, :, 3] = 100.0
    torch.testing.assert_close(dynamic_routing(hat2, mask, logits, 2)[0], out[0])


def test_label_aware_attention_by_hand():
    v = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    e = torch.tensor([[1.0, 1.0]])
    # dots (1, 2), p = 2 -> softmax(1, 4) = (0.0474, 0.9526)
    w1 = math.e / (math.e + math.e ** 4)
    out = label_aware_attention(v, e, 2.0)
    assert out[0].tolist() == pytest.approx([w1, 2 * (1 - w1)], rel=1e-5)
    assert label_aware_attention(v, e, float("inf"))[0].tolist() == [0.0, 2.0]
    # the power keeps the sign: an interest pointing away gets (almost) no weight
    away = torch.tensor([[[-3.0, 0.0], [1.0, 0.0]]])
    out = label_aware_attention(away, torch.tensor([[1.0, 0.0]]), 2.0)
    assert out[0, 0].item() == pytest.approx(1.0, abs=1e-3)


def test_merge_of_multi_interest_results_equals_max_over_interests():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    interests = rng.normal(size=(5, 4, 8)).astype(np.float32)
    index = ExactIndex(items)
    s, ids = multi_interest_search(index, interests, 20)
    best = (interests @ items.T).max(1)  # (5, 300)
    expect = np.argsort(-best, axis=1, kind="stable")[:, :20]
    assert (ids == expect).all()
    np.testing.assert_allclose(s, np.take_along_axis(best, expect, 1), rtol=1e-5)
    # faiss' exact index retrieves the same
    _, fids = multi_interest_search(build_index(items, "flat"), interests, 20)
    assert (fids == ids).all()
    # an approximate index finds most of them
    _, hids = multi_interest_search(build_index(items, "hnsw"), interests, 20)
    assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(hids, ids, strict=True)]) > 0.9


def test_merge_results_deduplicates_keeping_the_best_score():
    s = np.array([[0.9, 0.5, 0.8, 0.7]], dtype=np.float32)
    i = np.array([[3, 1, 1, -1]])
    ms, mi = merge_results(s, i, 3)
    assert mi.tolist() == [[3, 1, -1]]
    assert ms[0, :2].tolist() == pytest.approx([0.9, 0.8])


def test_greedy_aggregation_and_diversity_by_hand():
    scores = np.array([[1.0, 0.9, 0.8]])
    ids = np.array([[0, 1, 2]])
    cats = np.array([7, 7, 9])  # items 0, 1 in category 7; item 2 in 9
    assert greedy_diverse(scores, ids, cats, 2, 0.0).tolist() == [[0, 1]]
    # lambda 0.2: item 2 gains 0.2 (differs from item 0), 0.8 + 0.2 > 0.9
    assert greedy_diverse(scores, ids, cats, 2, 0.2).tolist() == [[0, 2]]
    assert category_diversity(np.array([[0, 1, 2]]), cats) == pytest.approx(2 / 3)
    assert category_diversity(np.array([[0, 1]]), cats) == 0.0


def test_hr_recall_ndcg_by_hand():
    hits = np.array([[False, True, False], [True, False, True]])
    s = topk_sums(hits, np.array([1, 3]), [2])
    # user 0: hit at rank 2 of 1 relevant; user 1: hit at rank 1 of 3 relevant
    assert s["hr@2"] == 2
    assert s["recall@2"] == pytest.approx(1 + 1 / 3)
    idcg1, idcg2 = 1.0, 1 + 1 / math.log2(3)
    assert s["ndcg@2"] == pytest.approx((1 / math.log2(3)) / idcg1 + 1 / idcg2)
    assert s["mrr@2"] == pytest.approx(0.5 + 1.0)


def _rule_data(n_users=300, n_items=40, length=12, seed=0):
    """Sequences that follow ``next = (item + 1) % n_items`` from a random start."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n_items, n_users)
    items = (start[:, None] + np.arange(length)[None, :]) % n_items
    user = np.repeat(np.arange(n_users), length)
    time = np.tile(np.arange(length), n_users)
    split = make_split("loo", events_user=user, events_item=items.reshape(-1),
                       events_time=time, n_users=n_users, n_items=n_items)
    data = TrainData(rec_rows=lambda e: split.train, kg=np.zeros((0, 3), np.int64),
                     n_users=n_users, n_items=n_items, n_entities=0, n_relations=0,
                     item_entity=np.zeros(n_items, np.int64), train=split.train,
                     sequences=split.train_sequences)
    return split, data


class _DS:
    def __init__(self, n_users, n_items):
        self.n_users, self.n_items = n_users, n_items


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_models_learn_a_planted_next_item_rule(name):
    split, data = _rule_data()
    torch.manual_seed(0)
    params = {"dim": 16, "max_len": 8, "lr": 0.01, "batch_size": 64, "dropout": 0.0}
    model = build_model(name, _DS(data.n_users, data.n_items), model_config(name, params))

    def evaluate(m, q):
        return evaluate_ranking(m, q, n_items=data.n_items, ks=(1, 5))

    fit = Trainer(TrainConfig(epochs=6, progress=False, monitor="hr@5"),
                  evaluate=evaluate).fit(model, data, split.valid_queries, split.test_queries)
    # random ranking: hr@5 = 5 / 40; YouTubeDNN's mean pooling sees the order only dimly
    floor = 0.5 if name == "youtubednn" else 0.9
    assert fit.test["hr@5"] > floor, fit.test


def test_one_query_at_a_time_equals_the_batched_evaluation():
    split, data = _rule_data(n_users=60)
    torch.manual_seed(1)
    model = build_model("comirec-sa", _DS(60, 40), model_config("comirec-sa", {"dim": 8}))
    model.tasks(data)
    q = split.test_queries
    whole = evaluate_ranking(model, q, n_items=40, ks=(5, 10))
    one = [evaluate_ranking(model, q.subset([i]), n_items=40, ks=(5, 10)) for i in range(len(q))]
    for key in ("recall@10", "ndcg@10", "hr@5", "mrr@10"):
        assert whole[key] == pytest.approx(np.mean([o[key] for o in one]), abs=1e-12)


def test_score_queries_is_the_best_interest_and_unseen_users_are_served():
    torch.manual_seed(0)
    model = build_model("mind", _DS(5, 30), model_config("mind", {"dim": 8, "max_len": 6}))
    model.eval()
    hist = torch.tensor([[-1, -1, 3, 4, 5, 6], [-1, -1, -1, -1, -1, 2]])
    with torch.no_grad():
        v = model.user_vectors(torch.tensor([0, 99]), hist)  # user 99: never seen
        assert v.shape == (2, 4, 8)
        s = model.score_queries(torch.tensor([0, 99]), hist)
        torch.testing.assert_close(s, (v @ model.item_vectors().T).amax(1))
        # a longer padding on the left changes nothing
        wide = torch.cat([torch.full((2, 3), -1), hist], 1)
        torch.testing.assert_close(model.score_queries(torch.tensor([0, 99]), wide), s)


def test_cli_diversity_and_tsne_on_a_user_split_run(tmp_path, monkeypatch, tiny_dataset):
    import dataclasses
    import json

    from typer.testing import CliRunner

    import kgrec.data.catalog as catalog
    from kgrec.cli import app
    from kgrec.data.features import FeatureTable

    table = FeatureTable(tiny_dataset.n_items)
    items = np.arange(tiny_dataset.n_items)
    table.add("genre", items, np.array([f"g{i % 5}" for i in items]), multi=False)
    ds = dataclasses.replace(tiny_dataset, item_features=table)
    monkeypatch.setattr(catalog, "load_dataset", lambda name, seed=0, **kw: ds)
    run = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(app, ["train", "-d", "tiny", "-m", "comirec-sa", "--protocol",
                            "user-split", "--epochs", "1", "--set", "dim=8", "--ks", "5,10",
                            "-q", "--out", str(run)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", str(run), "--lambdas", "0,0.5", "--n", "10", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["0.5"]["diversity@10"] >= res["0.0"]["diversity@10"]
    assert 0 <= res["0.0"]["recall@10"] <= 1
    import kgrec

    user = kgrec.load(run).user_labels[0]
    r = runner.invoke(app, ["plot", "tsne", str(run), "-u", str(user), "--items", "40"])
    assert r.exit_code == 0, r.output
    assert (run / "tsne.png").stat().st_size > 1000


def test_sasrec_last_position_encoding_equals_the_full_one():
    from kgrec.models.sequential.sasrec import SASRec, SASRecConfig

    torch.manual_seed(0)
    m = SASRec(n_users=5, n_items=30, config=SASRecConfig(dim=16, max_len=10, heads=2,
                                                          blocks=3)).eval()
    h = torch.randint(0, 30, (7, 10))
    h[:, :4] = -1  # left padding, and one empty history
    h[2] = -1
    with torch.no_grad():
        torch.testing.assert_close(m.encode(h), m.encode_positions(h)[:, -1])


def test_mind_dynamic_number_of_interests():
    from kgrec.models.sequential.base import dynamic_routing, label_aware_attention
    from kgrec.models.sequential.mind import MIND, MINDConfig

    torch.manual_seed(0)
    hat = torch.randn(2, 4, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    logits = torch.randn(2, 4, 6)
    active = torch.tensor([[True, True, False, False], [True, True, True, True]])
    got = dynamic_routing(hat, mask, logits, 3, active)
    # routing among the active capsules only is routing with only those capsules
    torch.testing.assert_close(got[0, :2], dynamic_routing(hat[:1, :2], mask[:1],
                                                           logits[:1, :2], 3)[0])
    assert torch.all(got[0, 2:] == 0)
    torch.testing.assert_close(got[1], dynamic_routing(hat[1:], mask[1:], logits[1:], 3)[0])
    target = torch.randn(2, 8)
    torch.testing.assert_close(label_aware_attention(got, target, 2.0, active)[0],
                               label_aware_attention(got[:1, :2], target[:1], 2.0)[0])

    m = MIND(n_users=3, n_items=50, config=MINDConfig(dim=8, max_len=20, n_interests=4,
                                                      dynamic_interests=True)).eval()
    h = torch.full((3, 20), -1)
    h[0, -3:] = torch.tensor([1, 2, 3])        # 3 items: log2 3 -> 1 interest
    h[1, -5:] = torch.arange(5)                 # 5 items: 2 interests
    h[2, -16:] = torch.arange(16)               # 16 items: 4 interests
    with torch.no_grad():
        v = m.encode(h)
    assert torch.allclose(v[0], v[0, :1].expand(4, -1))
    assert torch.allclose(v[1, 2:], v[1, :1].expand(2, -1)) and not torch.allclose(v[1, 1], v[1, 0])
    assert len({tuple(x.round(decimals=5).tolist()) for x in v[2]}) == 4
    assert m.active_interests(h >= 0).sum(1).tolist() == [1, 2, 4]


@pytest.mark.parametrize("loss", ["sampled", "full"])
def test_negatives_come_from_the_candidate_pool(loss, monkeypatch):
    """Under cold-items the held-out items are never negatives: sampled negatives are drawn
    from the pool, and the full softmax leaves the other items out of the normaliser."""
    model = build_model("youtubednn", _DS(4, 12), model_config("youtubednn", {
        "dim": 4, "loss": loss, "n_neg": 5}))
    pool = torch.tensor([0, 2, 3, 7])
    model.neg_pool = pool
    vec = torch.randn(3, 4)
    tgt = torch.tensor([2, 7, 11])  # 11 is no candidate, yet a target keeps its logit
    if loss == "sampled":
        drawn = []
        real = torch.randint

        def spy(*a, **k):
            drawn.append(a[:2])
            return real(*a, **k)

        monkeypatch.setattr(torch, "randint", spy)
        model.logits_loss(vec, tgt)
        assert drawn == [(0, len(pool))]  # positions in the pool, not item ids
        return
    table = model.item_vectors().detach()
    got = model.logits_loss(vec, tgt)
    logits = vec @ table.T
    keep = torch.tensor([0, 2, 3, 7, 11])
    want = torch.nn.functional.cross_entropy(logits[:, keep],
                                             torch.tensor([1, 3, 4]))
    torch.testing.assert_close(got, want)
