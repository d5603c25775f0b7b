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
        assert res.model.views == ["item", "kg"]  # synthetic data has no category field
        assert {"rec/w:item", "rec/w:kg", "rec/w:align:kg"} <= set(losses)
    else:
        assert res.model.views == ["item"] and "rec/w:item" in losses
    assert res.metrics["test"]["n_queries"] > 0
