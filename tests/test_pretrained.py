"""Sequential KG use: exported KGE entity vectors start (and optionally freeze) MKR's."""

import numpy as np
import pytest
import torch

from kgrec.data.dataset import DataError
from kgrec.experiments.kge_run import export_embeddings
from kgrec.models import model_config
from kgrec.models.base import TrainData
from kgrec.models.kge import KGEConfig, build_kge
from kgrec.pretrain import build_model
from kgrec.train.optim import LeanAdam


def _train_data(ds):
    return TrainData(rec_rows=lambda e: ds.ratings, kg=ds.kg, n_users=ds.n_users,
                     n_items=ds.n_items, n_entities=ds.n_entities, n_relations=ds.n_relations,
                     item_entity=ds.item_entity)


@pytest.fixture
def exported(tmp_path, tiny_dataset):
    ds = tiny_dataset
    kge = build_kge("transe", n_entities=ds.n_entities, n_relations=ds.n_relations,
                    config=KGEConfig(dim=4))
    # export in reversed label order: alignment must go by label, not by index
    perm = np.arange(ds.n_entities)[::-1].copy()
    with torch.no_grad():
        kge.ent.copy_(kge.ent[torch.from_numpy(perm)])
    export_embeddings(kge, tmp_path / "kge", ds.entity_ids[perm], ds.relation_ids)
    return tmp_path / "kge", kge.ent.detach()[torch.from_numpy(np.argsort(perm))]


@pytest.mark.parametrize("analytic", [True, False])
def test_mkr_entity_init_and_freeze(exported, tiny_dataset, analytic):
    path, expected = exported
    ds = tiny_dataset
    cfg = model_config("mkr", {"dim": 4, "entity_init": str(path), "freeze_entities": True,
                               "analytic_grad": analytic, "kge_interval": 0})
    m = build_model("mkr", ds, cfg)
    torch.testing.assert_close(m.entity_emb.detach(), expected)
    data = _train_data(ds)
    (task,) = m.tasks(data)
    opt = LeanAdam(task.params, lr=0.1)
    users_before = m.user_emb.detach().clone()
    for _ in range(3):
        m.zero_grad(set_to_none=True)
        batch = torch.from_numpy(ds.ratings[:64])
        if task.step is not None:
            task.step(batch)
        else:
            task.loss(batch).backward()
        opt.step()
    torch.testing.assert_close(m.entity_emb.detach(), expected)  # frozen
    assert not torch.equal(m.user_emb.detach(), users_before)  # the rest trains


def test_entity_init_dimension_mismatch(exported, tiny_dataset):
    path, _ = exported
    with pytest.raises(DataError, match="dim=8"):
        build_model("mkr", tiny_dataset, model_config("mkr", {"dim": 8,
                                                             "entity_init": str(path)}))


def test_kgmf_entity_init_and_freeze(exported, tiny_dataset):
    path, expected = exported
    ds = tiny_dataset
    m = build_model("kgmf", ds, model_config("kgmf", {"dim": 4, "entity_init": str(path),
                                                      "freeze_entities": True}))
    torch.testing.assert_close(m.entity_emb.detach(), expected)
    data = _train_data(ds)
    (task,) = m.tasks(data)
    opt = LeanAdam(task.params, lr=0.1)
    m.zero_grad(set_to_none=True)
    task.loss(torch.from_numpy(ds.ratings[:64])).backward()
    opt.step()
    torch.testing.assert_close(m.entity_emb.detach(), expected)
