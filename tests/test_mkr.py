import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.kg import mkr_cpu
from kgrec.models.kg.mkr import MKR, MKRConfig


def _model(**kw):
    torch.manual_seed(0)
    cfg = MKRConfig(**{"dim": 4, "L": 2, "H": 2, "batch_size": 8, **kw})
    return MKR(n_users=6, n_items=5, n_entities=9, n_relations=3, config=cfg)


def _data(kg):
    return TrainData(rec_rows=lambda e: np.zeros((0, 3), np.int64), kg=kg, n_users=6, n_items=5,
                     n_entities=9, n_relations=3, item_entity=np.arange(5))


def test_scores_shapes_and_score_all_consistent():
    for inner in (True, False):
        m = _model(inner_product=inner)
        users = torch.tensor([0, 3, 5])
        all_scores = m.score_all(users)
        assert all_scores.shape == (3, 5)
        pair = m.score(users.repeat_interleave(5), torch.arange(5).repeat(3)).view(3, 5)
        assert torch.allclose(all_scores, pair, atol=1e-6)


def test_rec_loss_is_bce_plus_l2_of_transformed_vectors():
    m = _model(l2_weight=0.1)
    batch = torch.tensor([[0, 1, 1], [2, 3, 0], [5, 4, 1]])
    u = m.user_vectors(batch[:, 0])
    v, _ = m.item_entity_vectors(batch[:, 1])
    expected = F.binary_cross_entropy_with_logits((u * v).sum(-1), batch[:, 2].float())
    expected = expected + 0.1 * ((u**2).sum() + (v**2).sum()) / 2
    assert torch.allclose(m.rec_loss(batch), expected)


def test_kge_loss_formula():
    m = _model(l2_weight=0.0, L=1, H=1)
    batch = torch.tensor([[0, 1, 7], [4, 2, 8]])
    v = m.item_emb[batch[:, 0]]
    e = m.entity_emb[batch[:, 0]]
    _, e = m.cc[0](v, e)
    t = m.tail_mlp[0](m.entity_emb[batch[:, 2]])
    t_hat = torch.sigmoid(torch.relu(torch.cat([e, m.relation_emb[batch[:, 1]]], 1)
                                     @ m.kge_mlp[0].weight + m.kge_mlp[0].bias))
    expected = -torch.sigmoid((t * t_hat).sum(-1)).mean()
    assert torch.allclose(m.kge_loss(batch), expected)


def test_tasks_schedule_params_and_l2_groups():
    kg = np.array([[0, 0, 6], [1, 1, 7], [6, 2, 8]])  # last head is not an item: dropped
    m = _model(kge_interval=3, l2_weight=1e-3)
    tasks = m.tasks(_data(kg))
    assert [t.name for t in tasks] == ["rec", "kge"]
    assert tasks[1].every == 3 and len(tasks[1].source(0)) == 2
    decay = {id(p) for g in tasks[0].params if g["weight_decay"] > 0 for p in g["params"]}
    assert id(m.cc[0].weight) in decay and id(m.user_mlp[0].weight) in decay
    assert id(m.table) not in decay and id(m.cc[0].bias) not in decay
    rec_ids = {id(p) for g in tasks[0].params for p in g["params"]}
    assert id(m.relation_emb) not in rec_ids
    assert [t.name for t in _model(kge_interval=0).tasks(_data(kg))] == ["rec"]


def test_gradients_reach_shared_parameters_from_both_tasks():
    m = _model()
    m.rec_loss(torch.tensor([[0, 1, 1], [2, 3, 0]])).backward()
    users = slice(0, m.item_offset)
    assert m.cc[0].weight.grad.abs().sum() > 0 and m.table.grad[users].abs().sum() > 0
    assert m.relation_emb.grad is None
    m.zero_grad(set_to_none=True)
    m.kge_loss(torch.tensor([[0, 1, 7], [4, 2, 8]])).backward()
    assert m.cc[0].weight.grad.abs().sum() > 0 and m.relation_emb.grad is not None
    assert m.table.grad[users].abs().sum() == 0  # users take no part in the KGE task
    assert m.table.grad[m.entity_offset:].abs().sum() > 0  # entities do


def test_registry_rejects_unknown_parameter():
    try:
        model_config("mkr", {"dimension": 3})
    except ValueError as exc:
        assert "dimension" in str(exc) and "dim" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")
    assert model_config("mkr-nokg", {"kge_interval": 2}).kge_interval == 0


def test_build_from_dataset(tiny_dataset):
    m = build_model("mkr", tiny_dataset, model_config("mkr", {"dim": 4}))
    assert m.score_all(torch.tensor([0])).shape == (1, tiny_dataset.n_items)


def _perturbed(L, H=1, seed=0):
    torch.manual_seed(seed + L + 10 * H)
    model = MKR(n_users=7, n_items=9, n_entities=15, n_relations=3,
                config=MKRConfig(dim=5, L=L, H=H, l2_weight=0.01))
    with torch.no_grad():
        for p in model.parameters():  # non-zero biases, larger weights: every path matters
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _grads_of(model, fn, batch):
    model.zero_grad(set_to_none=True)
    out = fn(batch)
    if out.requires_grad:
        out.backward()
    return out.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                        if p.grad is not None}


def _assert_same(got, ref):
    (l1, g1), (l2, g2) = got, ref
    assert l1 == pytest.approx(l2, rel=1e-6)
    assert set(g1) == set(g2)
    for n in g2:
        torch.testing.assert_close(g1[n], g2[n], rtol=1e-5, atol=1e-7, msg=n)


@pytest.mark.parametrize("L", [1, 2])
def test_analytic_rec_step_matches_autograd(L):
    """The CPU kernel's loss and gradients equal autograd's (repeated user and item rows)."""
    model = _perturbed(L)
    batch = torch.tensor([[0, 1, 1], [3, 8, 0], [3, 1, 0], [6, 4, 1], [0, 1, 1]])
    assert mkr_cpu.supported(model)
    _assert_same(_grads_of(model, model.rec_step, batch),
                 _grads_of(model, model.rec_loss, batch))


@pytest.mark.parametrize(("L", "H"), [(1, 1), (2, 1), (1, 2), (2, 3)])
def test_analytic_kge_step_matches_autograd(L, H):
    """Same for the KGE task: heads are items' entities (items 0-8 link entities 0-8), one
    head and one relation repeated, a tail that is also a head."""
    model = _perturbed(L, H)
    batch = torch.tensor([[0, 1, 9], [4, 0, 14], [0, 2, 3], [8, 1, 9], [3, 1, 0]])
    _assert_same(_grads_of(model, model.kge_step, batch),
                 _grads_of(model, model.kge_loss, batch))


def test_cpu_kernels_follow_replaced_parameters():
    """The NumPy views are rebuilt when a parameter is replaced, and a float64 model falls
    back to autograd."""
    model = _perturbed(1)
    batch = torch.tensor([[0, 1, 1], [3, 8, 0]])
    model.rec_step(batch)
    model.table = torch.nn.Parameter(model.table.detach() * 2)
    _assert_same(_grads_of(model, model.rec_step, batch),
                 _grads_of(model, model.rec_loss, batch))
    model.double()
    assert not mkr_cpu.supported(model)
    _, grads = _grads_of(model, model.rec_step, batch)
    assert grads["table"].dtype == torch.float64


@pytest.mark.parametrize("scorer", ["transe", "transh", "transr"])
def test_pluggable_kge_scorer(scorer):
    m = _model(kge_scorer=scorer, kge_interval=1)
    kg = np.array([[0, 0, 6], [1, 1, 7], [2, 0, 8], [4, 2, 5]])
    tasks = {t.name: t for t in m.tasks(_data(kg))}
    kge = tasks["kge"]
    ids = {id(p) for g in kge.params for p in g["params"]}
    assert all(id(p) in ids for p in m.kge_scorer.relation_tables())
    assert id(m.table) in ids and kge.after_step is not None
    loss = kge.loss(torch.from_numpy(kg))
    assert torch.isfinite(loss) and loss.item() >= 0
    loss.backward()
    assert m.table.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.kge_scorer.relation_tables())
    kge.after_step()  # the scorer's constraints run on its relation parameters


def test_unknown_kge_scorer():
    with pytest.raises(ValueError, match="kge_scorer"):
        _model(kge_scorer="nope")
