"""MKR-1L, MKR-DCN and MKR-stitch (the MKR paper's variants, Sec. 4.2)."""

import numpy as np
import pytest
import torch

from kgrec.models import build_model, model_config
from kgrec.models.kg.mkr import MKR, MKRConfig
from kgrec.models.layers import CrossStitch, DCNCross


def test_dcn_cross_formula_by_hand():
    unit = DCNCross(dim=3)
    with torch.no_grad():
        unit.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        unit.bias.copy_(torch.tensor([[0.1, 0.1, 0.1], [0.0, 0.0, -1.0]]))
    v0 = torch.tensor([[1.0, 2.0, 3.0]])
    e0 = torch.tensor([[0.5, -1.0, 2.0]])
    v, e = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 1.0]])
    # v' = v0 (e . w_V) + v + b_V, with e . w_V = 1*1 + 0 + 1*1 = 2
    # e' = e0 (v . w_E) + e + b_E, with v . w_E = 0 + 1*2 + 0 = 2
    v1, e1 = unit(v, e, v0, e0)
    assert torch.allclose(v1, torch.tensor([[2.1, 5.1, 6.1]]))
    assert torch.allclose(e1, torch.tensor([[2.0, -2.0, 4.0]]))


def test_cross_stitch_is_a_2x2_mix():
    unit = CrossStitch(dim=2)
    with torch.no_grad():
        unit.alpha.copy_(torch.tensor([[0.5, 2.0], [1.0, -1.0]]))
    v, e = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])
    v1, e1 = unit(v, e)
    assert torch.allclose(v1, torch.tensor([[6.5, 9.0]]))
    assert torch.allclose(e1, torch.tensor([[-2.0, -2.0]]))
    assert sum(p.numel() for p in unit.parameters()) == 4


@pytest.mark.parametrize("name", ["mkr-1l", "mkr-dcn", "mkr-stitch"])
def test_variants_forward_backward_on_synthetic(tiny_dataset, name):
    from kgrec.data.split import random_split
    from kgrec.models.base import TrainData

    torch.manual_seed(0)
    cfg = model_config(name, {"dim": 4, "L": 2, "batch_size": 64})
    m = build_model(name, tiny_dataset, cfg)
    if name == "mkr-1l":
        assert cfg.L == 1 and len(m.cc) == 1
    split = random_split(tiny_dataset.ratings, seed=0)
    data = TrainData(rec_rows=lambda e: split.train, kg=tiny_dataset.kg,
                     n_users=tiny_dataset.n_users, n_items=tiny_dataset.n_items,
                     n_entities=tiny_dataset.n_entities, n_relations=tiny_dataset.n_relations,
                     item_entity=tiny_dataset.item_entity, train=split.train)
    tasks = {t.name: t for t in m.tasks(data)}
    assert set(tasks) == {"rec", "kge"}
    assert tasks["rec"].step is None or name == "mkr-1l"  # hand-written backward: c&c only
    for t in tasks.values():
        batch = torch.from_numpy(np.ascontiguousarray(t.source(0)[:64]))
        m.zero_grad()
        loss = t.loss(batch)
        assert torch.isfinite(loss)
        loss.backward()
        unit_grads = [p.grad for p in m.cc.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in unit_grads)
        assert any(g.abs().sum() > 0 for g in unit_grads)
    s = m.score_all(torch.tensor([0, 1]))
    pair = m.score(torch.tensor([0, 1]).repeat_interleave(tiny_dataset.n_items),
                   torch.arange(tiny_dataset.n_items).repeat(2)).view(2, -1)
    assert torch.allclose(s, pair, atol=1e-5)


def test_unknown_unit():
    with pytest.raises(ValueError, match="unit"):
        MKR(n_users=2, n_items=2, n_entities=3, n_relations=1, config=MKRConfig(unit="nope"))
