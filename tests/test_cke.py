"""CKE: MF + jointly trained TransR structural item embeddings."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.data.split import random_split
from kgrec.data.synthetic import make_synthetic
from kgrec.models import build_model, model_config
from kgrec.models.base import TrainData
from kgrec.models.kg.cke import CKE, CKEConfig
from kgrec.train.optim import LeanAdam
from kgrec.train.trainer import TrainConfig, Trainer, seed_everything

KG = np.array([[0, 0, 5], [1, 0, 5], [2, 1, 6], [3, 1, 7], [4, 2, 8], [5, 2, 8]])


def _model(**kw):
    torch.manual_seed(0)
    return CKE(n_users=4, n_items=5, n_entities=9, n_relations=3, kg=KG,
               item_entity=np.array([4, 3, 2, 1, 0]), config=CKEConfig(dim=4, **kw))


def _train_data(ds, rows=None):
    rows = ds.ratings if rows is None else rows
    return TrainData(rec_rows=lambda e: rows, kg=ds.kg, n_users=ds.n_users, n_items=ds.n_items,
                     n_entities=ds.n_entities, n_relations=ds.n_relations,
                     item_entity=ds.item_entity, train=rows)


def test_item_vector_is_offset_plus_entity_embedding():
    m = _model()
    items = torch.tensor([0, 3, 4])
    ent = torch.tensor([4, 1, 0])
    torch.testing.assert_close(m.item_vectors(items), m.item_emb[items] + m.kge.ent[ent])
    torch.testing.assert_close(m.item_vectors()[items], m.item_vectors(items))
    u = torch.tensor([1, 2, 0])
    torch.testing.assert_close(m.score(u, items),
                               (m.user_emb[u] * m.item_vectors(items)).sum(1) + m.bias[items])
    # the rec loss trains the entity rows of the batch's items (and no other entity)
    m.rec_loss(torch.tensor([[1, 0, 1], [2, 3, 0]])).backward()
    grad_rows = m.kge.ent.grad.abs().sum(1) > 0
    assert grad_rows.tolist() == [False, True, False, False, True, False, False, False, False]


@pytest.mark.parametrize("bias", [True, False])
def test_score_all_equals_score(bias):
    m = _model(item_bias=bias)
    with torch.no_grad():
        m.bias.normal_()
    users = torch.tensor([3, 0, 1])
    pair = m.score(users.repeat_interleave(5), torch.arange(5).repeat(3)).view(3, 5)
    torch.testing.assert_close(m.score_all(users), pair)


def test_bce_and_bpr_losses_by_hand():
    m = _model(l2_weight=0.0)
    batch = torch.tensor([[0, 1, 1], [2, 3, 0], [3, 4, 1]])
    s = m.score(batch[:, 0], batch[:, 1])
    torch.testing.assert_close(m.rec_loss(batch),
                               F.binary_cross_entropy_with_logits(s, batch[:, 2].float()))
    m = _model(l2_weight=0.0, rec_loss="bpr")
    gen = torch.Generator().manual_seed(3)
    neg = torch.randint(0, 5, (2,), generator=torch.Generator().manual_seed(3))
    u, i = torch.tensor([0, 3]), torch.tensor([1, 4])
    expected = -F.logsigmoid(m.score(u, i) - m.score(u, neg)).mean()
    torch.testing.assert_close(m.rec_loss(batch, gen), expected)


def test_sampled_corruptions_change_one_end_and_are_false():
    m = _model()
    pos, neg = m.sample_triples(200, torch.Generator().manual_seed(0))
    assert pos.shape == neg.shape == (200, 3)
    assert (pos[:, 1] == neg[:, 1]).all()
    changed = (pos[:, 0] != neg[:, 0]).int() + (pos[:, 2] != neg[:, 2]).int()
    assert (changed <= 1).all() and (changed == 1).float().mean() > 0.8
    true = {tuple(t) for t in KG.tolist()}
    assert sum(tuple(t) in true for t in neg.tolist()) <= 2  # filtered (10 redraw rounds)


def test_joint_loss_decreases_both_terms():
    m = _model(l2_weight=1e-3)
    batch = torch.tensor([[0, 1, 1], [0, 2, 0], [1, 3, 1], [1, 0, 0], [2, 4, 1], [3, 1, 0]])
    pos, neg = m.sample_triples(32, torch.Generator().manual_seed(1))
    opt = LeanAdam(list(m.parameters()), lr=0.05)
    rec0, kge0 = (x.item() for x in m.joint_losses(batch, pos, neg))
    assert kge0 > 0
    for _ in range(30):
        m.zero_grad(set_to_none=True)
        rec, kge = m.joint_losses(batch, pos, neg)
        (rec + m.config.kge_weight * kge).backward()
        opt.step()
        m.kge.constrain()
    rec1, kge1 = (x.item() for x in m.joint_losses(batch, pos, neg))
    assert rec1 < 0.8 * rec0 and kge1 < 0.8 * kge0, (rec0, rec1, kge0, kge1)
    assert (m.kge.ent.norm(dim=1) <= 1 + 1e-5).all()


def test_task_forward_backward_on_tiny_dataset(tiny_dataset):
    ds = tiny_dataset
    seed_everything(0)
    m = build_model("cke", ds, model_config("cke", {"dim": 8, "kge_batch_size": 64}))
    (task,) = m.tasks(_train_data(ds))
    assert task.after_step is not None
    loss = task.loss(torch.from_numpy(ds.ratings[:64]))
    assert torch.isfinite(loss)
    loss.backward()
    for p in (m.user_emb, m.item_emb, m.bias, m.kge.ent, m.kge.rel, m.kge.proj):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # without the KG term, the relation parameters get no gradient and nothing is constrained
    m.zero_grad(set_to_none=True)
    m2 = build_model("cke", ds, model_config("cke", {"dim": 8, "kge_weight": 0.0}))
    (task2,) = m2.tasks(_train_data(ds))
    task2.loss(torch.from_numpy(ds.ratings[:64])).backward()
    assert m2.kge.rel.grad is None and task2.after_step is None


def test_config_errors():
    with pytest.raises(ValueError, match="rec_loss"):
        CKEConfig(rec_loss="hinge")
    with pytest.raises(ValueError, match="kge_weight"):
        CKEConfig(kge_weight=-1)
    with pytest.raises(ValueError, match="dim"):
        CKEConfig(dim=0)


def test_short_fit_learns_synthetic():
    ds = make_synthetic(seed=1, n_users=150, n_items=200, n_topics=4, n_creators=12,
                        clicks_mean=15)
    split = random_split(ds.ratings, seed=0)
    seed_everything(0)
    m = build_model("cke", ds, model_config("cke", {"dim": 8, "batch_size": 128,
                                                    "kge_batch_size": 128, "l2_weight": 0.1}))
    fit = Trainer(TrainConfig(epochs=6, seed=0, progress=False, threads=1)).fit(
        m, _train_data(ds, split.train), split.valid, split.test)
    assert fit.test["auc"] > 0.6, fit.test
