"""Cold start by id dropout (DropoutNet, Volkovs et al., NeurIPS'17) in KG-MF and KGCN: an
item never trained on is scored from its KG neighbours alone, and training drops the item's
own vector at the configured rate."""

import numpy as np
import pytest
import torch

from kgrec.models.base import TrainData
from kgrec.models.kg.kgcn import KGCN, KGCNConfig
from kgrec.models.kg.kgmf import KGMF, KGMFConfig

# 3 users, 4 items (entities 0..3), entities 4..5 attributes; item 3 never has a positive
KG = np.array([[0, 0, 4], [1, 0, 4], [2, 1, 5], [3, 0, 4], [3, 1, 5]])
TRAIN = np.array([[0, 0, 1], [1, 1, 1], [2, 2, 1], [0, 3, 0], [1, 2, 0]])


def _data() -> TrainData:
    return TrainData(rec_rows=lambda epoch: TRAIN, kg=KG, n_users=3, n_items=4, n_entities=6,
                     n_relations=2, item_entity=np.arange(4), train=TRAIN)


def _kgmf(p: float) -> KGMF:
    return KGMF(n_users=3, n_items=4, n_entities=6, n_relations=2, kg=KG,
                item_entity=np.arange(4), config=KGMFConfig(dim=4, id_dropout=p))


def _kgcn(p: float) -> KGCN:
    return KGCN(n_users=3, n_items=4, n_entities=6, n_relations=2, item_entity=np.arange(4),
                config=KGCNConfig(dim=4, n_neighbors=2, id_dropout=p))


def _perturb_own(model, item: int) -> None:
    with torch.no_grad():
        if isinstance(model, KGMF):
            model.item_emb[item] += 5.0
            model.item_bias[item] += 5.0
        else:
            model.entity_emb[item] += 5.0


@pytest.mark.parametrize("make", [_kgmf, _kgcn])
def test_never_trained_item_is_scored_from_its_neighbours_alone(make) -> None:
    torch.manual_seed(0)
    model = make(0.0)
    model.tasks(_data())
    assert model.item_seen.tolist() == [True, True, True, False]
    model.eval()
    users = torch.arange(3)
    before = model.score_all(users)
    _perturb_own(model, 3)  # the cold item's own vector: ignored
    after = model.score_all(users)
    torch.testing.assert_close(after[:, 3], before[:, 3])
    _perturb_own(model, 0)  # a trained item's own vector: used
    assert not torch.allclose(model.score_all(users)[:, 0], before[:, 0])
    # score and score_all agree
    torch.testing.assert_close(model.score(users, torch.full((3,), 3)), after[:, 3])


@pytest.mark.parametrize("make", [_kgmf, _kgcn])
def test_id_dropout_drops_trained_items_in_training_only(make) -> None:
    torch.manual_seed(0)
    model = make(0.5)
    model.tasks(_data())
    users = torch.zeros(4000, dtype=torch.long)
    items = torch.zeros(4000, dtype=torch.long)
    model.eval()
    full = model.score(users[:1], items[:1])
    model.train()
    got = model.score(users, items)
    dropped = ~torch.isclose(got, full.expand_as(got))
    assert 0.45 < dropped.float().mean().item() < 0.55
    with pytest.raises(ValueError, match="id_dropout"):
        make(1.0)


def test_kg_bias_is_the_mean_entity_bias_of_the_item_triples() -> None:
    torch.manual_seed(0)
    model = KGMF(n_users=3, n_items=4, n_entities=6, n_relations=2, kg=KG,
                 item_entity=np.arange(4), config=KGMFConfig(dim=4, kg_bias=True))
    model.tasks(_data())
    model.eval()
    with torch.no_grad():
        model.entity_bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 3.0]))
        model.user_emb.zero_()  # scores are the biases alone
        model.item_bias.copy_(torch.tensor([0.5, 0.0, 0.0, 9.0]))
    s = model.score_all(torch.tensor([0]))[0]
    # item 0: own 0.5 + entity 4's 1.0; item 2: entity 5's 3.0; cold item 3: (1 + 3) / 2
    torch.testing.assert_close(s, torch.tensor([1.5, 1.0, 3.0, 2.0]))
    assert not hasattr(_kgmf(0.0), "entity_bias")  # off by default: old checkpoints load


def test_relation_pooling_weighs_each_relation_of_an_item_equally() -> None:
    # item 0: three triples of relation 0 (tails 4, 5, 6), one of relation 1 (tail 7)
    kg = np.array([[0, 0, 4], [0, 0, 5], [0, 0, 6], [0, 1, 7], [1, 1, 7]])
    made = {}
    for pool in ("triple", "relation"):
        torch.manual_seed(0)
        made[pool] = KGMF(n_users=2, n_items=2, n_entities=8, n_relations=2, kg=kg,
                          item_entity=np.arange(2),
                          config=KGMFConfig(dim=3, kg_bias=True, kg_pool=pool))
    m = made["relation"]
    e, r, c = m.entity_emb.detach(), m.relation_emb.detach(), m.entity_bias.detach()
    rel0 = ((e[4] + e[5] + e[6]) / 3 + r[0])
    want = (rel0 + (e[7] + r[1])) / 2
    got = m._kg_part().detach()
    torch.testing.assert_close(got[0, :3], want)
    torch.testing.assert_close(got[0, 3], ((c[4] + c[5] + c[6]) / 3 + c[7]) / 2)
    torch.testing.assert_close(got[1, :3], e[7] + r[1])  # one triple: both pools agree
    t = made["triple"]._kg_part().detach()
    torch.testing.assert_close(t[0, :3], (e[4] + e[5] + e[6] + e[7] + 3 * r[0] + r[1]) / 4)
    with pytest.raises(ValueError, match="kg_pool"):
        KGMFConfig(kg_pool="entity")
