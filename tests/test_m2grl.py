"""M2GRL (first version): the uncertainty-weighted loss and its gradient, per-epoch task weights
in the run's history, and the item2vec variant."""

from __future__ import annotations

import math

import pytest
import torch

from kgrec.models.losses import UncertaintyWeights


def test_uncertainty_parts_sum_to_the_loss_and_the_gradient_on_log_variance():
    w = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([0.5, -1.0]))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    parts = w.parts(losses)
    assert parts["a"].item() == pytest.approx(0.5 * math.exp(-0.5) * 2 + 0.25)
    total = w(losses)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()))
    total.backward()
    # d/ds (exp(-s) L / 2 + s / 2) = -exp(-s) L / 2 + 1 / 2: zero where exp(s) = L
    expect = [-0.5 * math.exp(-0.5) * 2 + 0.5, -0.5 * math.exp(1.0) * 3 + 0.5]
    torch.testing.assert_close(w.log_var.grad, torch.tensor(expect))


@pytest.mark.parametrize("model", ["m2grl", "item2vec"])
def test_m2grl_logs_task_weights_and_serves_histories(model, tmp_path, monkeypatch):
    import kgrec.data.catalog as catalog
    from kgrec.data.synthetic import make_synthetic
    from kgrec.experiments.run import RunConfig, train

    ds = make_synthetic(seed=0, n_users=80, n_items=60, n_topics=4, n_creators=8,
                        clicks_mean=10)
    monkeypatch.setattr(catalog, "load_dataset", lambda name, seed=0, **kw: ds)
    res = train(RunConfig(dataset="tiny", model=model, protocol="loo", epochs=2,
                          params={"walks_per_node": 2, "batch_size": 256},
                          out=str(tmp_path / model), progress=False, plot=False))
    losses = res.metrics["history"][-1]["losses"]
    if model == "m2grl":
        assert res.model.views == ["item", "category", "kg"]  # synthetic genre = topic
        assert {"rec/w:item", "rec/w:category", "rec/w:kg", "rec/w:align:kg"} <= set(losses)
    else:
        assert res.model.views == ["item"] and "rec/w:item" in losses
    assert res.metrics["test"]["n_queries"] > 0
    diverse = res.metrics["test_slices"]["diverse"]  # targets of a category new to the user
    assert 0 < diverse["n_queries"] <= res.metrics["test"]["n_queries"]


def test_gather_rows_matches_embedding_values_and_gradient():
    from kgrec.models.layers import gather_rows

    torch.manual_seed(0)
    w1 = torch.randn(7, 3, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    idx = torch.tensor([[0, 6, 6], [2, 0, 1]])
    g = torch.randn(2, 3, 3)
    a, b = gather_rows(w1, idx), torch.nn.functional.embedding(idx, w2)
    torch.testing.assert_close(a, b)
    (a * g).sum().backward()
    (b * g).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad)
    assert w1.grad[6].allclose(g[0, 1] + g[0, 2])  # repeated rows accumulate


def _m2grl(**kw):
    import numpy as np

    from kgrec.models.graph.m2grl import M2GRL, M2GRLConfig

    lookups = {"category": np.array([0, 1, -1, 1]), "kg": np.array([2, -1, 0, 1])}
    cfg = M2GRLConfig(dim=4, **kw)
    return M2GRL(n_users=3, n_items=4, config=cfg, lookups=lookups,
                 sizes={"category": 2, "kg": 3})


def test_eges_center_is_the_weighted_average_of_present_side_information():
    m = _m2grl(views="item", inter_view=False, side_info="category,kg")
    with torch.no_grad():
        m.side_att.zero_()
        m.side_att[3] = torch.tensor([0.0, 1.0, 0.0])
    c = m.centers(torch.tensor([0, 1, 3]))
    e, cat, kg = m.inp["item"].weight, m.side["category"].weight, m.side["kg"].weight
    torch.testing.assert_close(c[0], (e[0] + cat[0] + kg[2]) / 3)
    torch.testing.assert_close(c[1], (e[1] + cat[1]) / 2)  # item 1 has no KG token
    w = torch.softmax(torch.tensor([0.0, 1.0, 0.0]), 0)
    torch.testing.assert_close(c[2], w[0] * e[3] + w[1] * cat[1] + w[2] * kg[1])
    # candidates: input + output vectors; user vector: recency-weighted mean of centers
    torch.testing.assert_close(m.item_vectors(), m.centers(torch.arange(4)) +
                               m.out["item"].weight)
    u = m.user_vectors(torch.tensor([0]), torch.tensor([[-1, 1, 3]]))
    d = m.config.decay
    torch.testing.assert_close(u[0], (d * c[1] + c[2]) / (d + 1))


def test_diversity_pairs_and_metric_loss_outside_the_task_weights():
    import numpy as np

    from kgrec.models.graph.m2grl import _diversity_pairs

    # user 0 clicks 0 (cat 0), 1 (cat 1), 3 (cat 1); user 1 clicks 2 (no cat), 0
    a, b = _diversity_pairs(np.array([0, 3, 5]), np.array([0, 1, 3, 2, 0]),
                            np.array([0, 1, -1, 1]), window=2)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 1), (0, 3), (1, 0), (3, 0)]
    m = _m2grl(diversity=True)
    batch = {"item": (torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[3], [0]])),
             "metric": (torch.tensor([0]), torch.tensor([1]), torch.tensor([[2, 3]]))}
    losses = m._loss(batch)
    assert set(losses) == {"item", "metric"}
    losses["metric"].backward()
    assert m.inp["item"].weight.grad is None  # the views are not moved by the metric
    assert m.metric[0].weight.grad is not None
    assert m.item_vectors().shape == (4, m.config.div_dim)


def test_config_errors_name_the_key():
    from kgrec.models.graph.m2grl import M2GRLConfig

    for kw, word in (({"side_info": "shop"}, "side_info"), ({"candidates": "out"}, "candidates"),
                     ({"align_batch": 0}, "align_batch"), ({"views": "kg,item"}, "views")):
        with pytest.raises(ValueError, match=word):
            M2GRLConfig(**kw)


def test_sgd_rate_scales_the_gradient_not_the_loss_and_the_pair_estimate():
    import numpy as np

    from kgrec.data.graph import Graph, skipgram_pairs
    from kgrec.models.graph.m2grl import M2GRLConfig, _expected_pairs

    m = _m2grl(views="item", inter_view=False, weighting="equal", optimizer="sgd")
    with torch.no_grad():
        m.out["item"].weight.normal_()
    item = (torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[3], [0]]))
    full = m._loss({"item": item})["item"]
    full.backward()
    g_full = m.inp["item"].weight.grad.clone()
    m.zero_grad()
    part = m._loss({"item": item, "rate": torch.tensor(0.25)})["item"]
    assert part.item() == pytest.approx(full.item())  # logged loss unchanged
    part.backward()
    torch.testing.assert_close(m.inp["item"].weight.grad, 0.25 * g_full)
    # expected pairs of a walk without dead ends, against the dynamic window's average
    ring = Graph.from_edges(np.arange(6), (np.arange(6) + 1) % 6, 6)
    cfg = M2GRLConfig(walks_per_node=1, walk_length=8, window=3)
    rng = np.random.default_rng(0)
    walks = np.tile(np.arange(8) % 6, (4000, 1))
    mean = len(skipgram_pairs(walks, 3, rng=rng)[0]) / 4000
    assert _expected_pairs(ring, cfg) / 6 == pytest.approx(mean, rel=0.02)
