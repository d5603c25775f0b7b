import numpy as np
import torch

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.train.trainer import TrainConfig, Trainer


class Toy(Recommender):
    """Two tasks; records which task ran in which epoch."""

    def __init__(self):
        super().__init__()
        self.n_users, self.n_items = 4, 3
        self.w = torch.nn.Parameter(torch.zeros(4, 3))
        self.aux = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[str] = []

    def score(self, users, items):
        return self.w[users, items]

    def tasks(self, data):
        def rec(batch):
            self.calls.append("rec")
            return torch.nn.functional.binary_cross_entropy_with_logits(
                self.score(batch[:, 0], batch[:, 1]), batch[:, 2].float())

        def aux(batch):
            self.calls.append("aux")
            return (self.aux - 1).pow(2).sum() + 0 * batch.sum()

        return [Task("rec", data.rec_rows, rec, [self.w], lr=0.1, batch_size=2),
                Task("aux", lambda e: np.zeros((3, 3), np.int64), aux, [self.aux], lr=0.1,
                     batch_size=2, every=3)]


def _data():
    rows = np.array([[0, 0, 1], [0, 1, 0], [1, 2, 1], [2, 0, 0], [3, 1, 1]])
    return TrainData(lambda e: rows, np.zeros((0, 3)), 4, 3, 1, 1, np.arange(3)), rows


def test_schedule_selection_and_checkpoint(tmp_path):
    model = Toy()
    data, rows = _data()
    scores = iter([0.5, 0.9, 0.7, 0.8, 0.6, 0.95, 0.1])
    seen = []

    def fake_eval(m, r):
        seen.append(m.w.detach().clone())
        return {"auc": next(scores)}

    ckpt = tmp_path / "ckpt.pt"
    res = Trainer(TrainConfig(epochs=6, progress=False), evaluate=fake_eval,
                  checkpoint=ckpt).fit(model, data, rows, rows)
    # rec: 3 batches every epoch; aux: 2 batches in epochs 0 and 3
    assert model.calls.count("rec") == 18 and model.calls.count("aux") == 4
    assert [sorted(h.losses) for h in res.history][:4] == [["aux", "rec"], ["rec"], ["rec"],
                                                          ["aux", "rec"]]
    assert res.best_epoch == 5 and res.best_valid == {"auc": 0.95}
    assert res.test == {"auc": 0.1}  # test evaluated once, after restoring the best state
    assert torch.equal(seen[-1], seen[5])
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 5 and torch.equal(state["state_dict"]["w"], seen[5])
    assert not list(tmp_path.glob("*.tmp"))


def test_early_stopping_and_determinism():
    def run():
        torch.manual_seed(0)
        model = Toy()
        data, rows = _data()
        vals = iter([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
        res = Trainer(TrainConfig(epochs=6, patience=2, progress=False, seed=1),
                      evaluate=lambda m, r: {"auc": next(vals)}).fit(model, data, rows)
        return res, model

    res, model = run()
    assert len(res.history) == 3 and res.best_epoch == 0
    _res2, model2 = run()
    assert torch.equal(model.w, model2.w)
