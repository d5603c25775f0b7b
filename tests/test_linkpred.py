import numpy as np
import pytest
import torch

from kgrec.eval.linkpred import filtered_ranks, link_prediction
from kgrec.models.kge import KGEConfig, TransE


class FixedScores:
    """A stand-in model whose candidate scores are given by hand."""

    training = False

    def __init__(self, n_entities, n_relations, tails, heads):
        self.n_entities, self.n_relations = n_entities, n_relations
        self.tails, self.heads = tails, heads  # {(h, r): row}, {(r, t): row}

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def score_tails(self, h, r):
        return torch.tensor([self.tails[(a, b)] for a, b in zip(h.tolist(), r.tolist(),
                                                                 strict=True)])

    def score_heads(self, r, t):
        return torch.tensor([self.heads[(a, b)] for a, b in zip(r.tolist(), t.tolist(),
                                                                 strict=True)])


def _toy():
    # entities 0..4, one relation; true triples (0,0,1), (0,0,2), (3,0,1)
    known = np.array([[0, 0, 1], [0, 0, 2], [3, 0, 1]])
    model = FixedScores(
        5, 1,
        tails={(0, 0): [0.9, 0.5, 0.8, 0.5, 0.1],  # (0, 0, ?)
               (3, 0): [0.1, 0.1, 0.1, 0.1, 0.1]},  # (3, 0, ?): all tied
        heads={(0, 1): [0.2, 0.3, 0.3, 0.9, 0.3]},  # (?, 0, 1)
    )
    return model, known


def test_filtered_ranks_by_hand():
    model, known = _toy()
    test = np.array([[0, 0, 1], [3, 0, 1]])
    for bs in (1, None):
        out = link_prediction(model, test, known=known, batch_size=bs, return_ranks=True)
        # (0,0,1) tail: 2 (0.8) is another true tail -> filtered; 0 (0.9) above, 3 (0.5) tied
        #   -> 1 + 1 + 1/2 = 2.5.  (3,0,1) tail: four tied candidates -> 1 + 4/2 = 3
        assert out["ranks"]["tail"].tolist() == [2.5, 3.0]
        # (0,0,1) head: 3 is another true head -> filtered; 1, 2, 4 above -> 4.
        # (3,0,1) head: 0 filtered, 3 scores highest -> 1
        assert out["ranks"]["head"].tolist() == [4.0, 1.0]
    ranks = np.array([2.5, 3.0, 4.0, 1.0])
    assert out["n"] == 2
    assert out["mr"] == pytest.approx(ranks.mean())
    assert out["mrr"] == pytest.approx((1 / ranks).mean())
    assert out["hits@1"] == pytest.approx(0.25)
    assert out["hits@3"] == pytest.approx(0.75)
    assert out["hits@10"] == pytest.approx(1.0)
    tail_only = link_prediction(model, test, known=known, sides=("tail",))
    assert tail_only["mr"] == pytest.approx(2.75)


def test_ties_give_mean_of_optimistic_and_pessimistic():
    scores = torch.zeros(1, 11)  # a model that scores everything alike
    r = filtered_ranks(scores, torch.tensor([4]))
    assert r.tolist() == [6.0]  # (1 + 11) / 2: a random guess, not rank 1
    nan = float("nan")  # a NaN score counts as -inf: a NaN target ranks last
    assert filtered_ranks(torch.tensor([[0.0, nan, 1.0]]), torch.tensor([1])).tolist() == [3.0]
    assert filtered_ranks(torch.tensor([[0.0, nan, 1.0]]), torch.tensor([0])).tolist() == [2.0]


def test_unfiltered_without_known_only_filters_the_test_triples():
    model, _ = _toy()
    out = link_prediction(model, np.array([[0, 0, 1]]), sides=("tail",), return_ranks=True)
    assert out["ranks"]["tail"].tolist() == [3.5]  # 0 and 2 above, 3 tied


def test_vectorised_filter_matches_a_loop():
    rng = np.random.default_rng(0)
    n_e, n_r = 30, 4
    kg = np.unique(np.c_[rng.integers(0, n_e, 400), rng.integers(0, n_r, 400),
                         rng.integers(0, n_e, 400)], axis=0)
    test = kg[rng.choice(len(kg), 40, replace=False)]
    torch.manual_seed(0)
    model = TransE(n_entities=n_e, n_relations=n_r, config=KGEConfig(dim=8))
    out = link_prediction(model, test, known=kg, batch_size=7, return_ranks=True)
    true = {tuple(x) for x in kg.tolist()}
    with torch.no_grad():
        for k, (h, r, t) in enumerate(test.tolist()):
            for side in ("tail", "head"):
                if side == "tail":
                    s = model.score_tails(torch.tensor([h]), torch.tensor([r]))[0]
                    target, other = t, [e for e in range(n_e) if e != t and (h, r, e) in true]
                else:
                    s = model.score_heads(torch.tensor([r]), torch.tensor([t]))[0]
                    target, other = h, [e for e in range(n_e) if e != h and (e, r, t) in true]
                keep = [e for e in range(n_e) if e != target and e not in other]
                gt = sum(float(s[e]) > float(s[target]) for e in keep)
                eq = sum(float(s[e]) == float(s[target]) for e in keep)
                assert out["ranks"][side][k] == 1 + gt + eq / 2


def test_bad_sides_and_ids():
    model, known = _toy()
    with pytest.raises(ValueError, match="sides"):
        link_prediction(model, known, sides=("left",))
    with pytest.raises(ValueError, match="outside"):
        link_prediction(model, np.array([[0, 0, 9]]))
    empty = link_prediction(model, np.zeros((0, 3), np.int64))
    assert empty["n"] == 0 and np.isnan(empty["mrr"])
