import numpy as np
import torch

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.train.trainer import TrainConfig, Trainer, seed_everything


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


# ---------------------------------------------------------------------- generalised trainer
import math  # noqa: E402

import pytest  # noqa: E402

from kgrec.models.losses import UncertaintyWeights  # noqa: E402
from kgrec.train.optim import lr_factor  # noqa: E402
from kgrec.train.trainer import monitor_mode  # noqa: E402


class MF(Recommender):
    """Logistic MF with an auxiliary task that samples from a private generator."""

    def __init__(self, optimizer="adam", rng=True):
        super().__init__()
        self.n_users, self.n_items = 6, 5
        self.u = torch.nn.Parameter(torch.randn(6, 3) * 0.1)
        self.v = torch.nn.Parameter(torch.randn(5, 3) * 0.1)
        self.optimizer = optimizer
        self.gen = torch.Generator().manual_seed(7) if rng else None

    def score(self, users, items):
        return (self.u[users] * self.v[items]).sum(-1)

    def tasks(self, data):
        def rec(b):
            return torch.nn.functional.binary_cross_entropy_with_logits(
                self.score(b[:, 0], b[:, 1]), b[:, 2].float())

        def aux(b):  # random negatives from the task's own generator, global numpy draws
            neg = torch.randint(0, 5, (len(b),), generator=self.gen)
            jitter = float(np.random.rand()) * 1e-3
            return (self.score(b[:, 0], neg).sigmoid() ** 2).mean() + jitter

        groups = [{"params": [self.u], "weight_decay": 0.0},
                  {"params": [self.v], "weight_decay": 1e-2}]
        return [Task("rec", data.rec_rows, rec, groups, lr=0.05, batch_size=4,
                     optimizer=self.optimizer),
                Task("aux", lambda e: data.rec_rows(e)[:5], aux, [self.v], lr=0.01,
                     batch_size=2, every=2, rng=self.gen)]


def _mf_data():
    rng = np.random.default_rng(0)
    rows = np.c_[rng.integers(0, 6, 30), rng.integers(0, 5, 30), rng.integers(0, 2, 30)]
    return TrainData(lambda e: rows, np.zeros((0, 3)), 6, 5, 1, 1, np.arange(5)), rows


def _val(m, rows):
    with torch.no_grad():
        p = m.score(torch.from_numpy(rows[:, 0]), torch.from_numpy(rows[:, 1])).sigmoid()
    y = torch.from_numpy(rows[:, 2]).float()
    return {"logloss": float(torch.nn.functional.binary_cross_entropy(p, y)),
            "acc": float(((p > 0.5).float() == y).float().mean())}


@pytest.mark.parametrize(("every_s", "saved"), [(0.0, 3), (1e9, 0)])
def test_resume_is_bit_for_bit(tmp_path, every_s, saved):
    """Killed while evaluating epoch 4, resumed from the last checkpoint: epoch 3 when it is
    written every epoch, epoch 0 when ``checkpoint_seconds`` throttles it (the first due
    checkpoint is written at once); either way the same end as an uninterrupted run."""
    cfg = TrainConfig(epochs=7, seed=3, progress=False, monitor="logloss",
                      lr_schedule="cosine", lr_warmup_epochs=1, clip_norm=5.0,
                      checkpoint_seconds=every_s)

    def run(ckpt, crash_at=None, resume=None):
        seed_everything(3)
        model = MF()
        data, rows = _mf_data()

        def ev(m, r):
            if crash_at is not None and len(seen) == crash_at:
                raise KeyboardInterrupt
            seen.append(1)
            return _val(m, r)

        seen: list[int] = []
        res = Trainer(cfg, evaluate=ev, checkpoint=ckpt,
                      checkpoint_extra={"model": "mf"}).fit(model, data, rows, rows,
                                                             resume=resume)
        return res, model

    full, m_full = run(tmp_path / "full.pt")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut.pt", crash_at=4)  # epochs 0-3 done, dies evaluating epoch 4
    ck = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert ck["trainer"]["epoch"] == saved and ck["model"] == "mf"
    # the python/numpy/torch global generators are scrambled before resuming: restored
    seed_everything(99)
    res, m_res = run(tmp_path / "cut.pt", resume=tmp_path / "cut.pt")
    assert torch.equal(m_full.u, m_res.u) and torch.equal(m_full.v, m_res.v)
    assert res.best_epoch == full.best_epoch and res.test == full.test
    assert [(h.epoch, h.losses, h.valid) for h in res.history] == [
        (h.epoch, h.losses, h.valid) for h in full.history]
    # the existing readers: the best state at the top level, a plain load_state_dict
    a, b = (torch.load(p, weights_only=True) for p in (tmp_path / "full.pt", tmp_path / "cut.pt"))
    assert a["epoch"] == b["epoch"] == full.best_epoch and a["valid"] == full.best_valid
    fresh = MF()
    fresh.load_state_dict(b["state_dict"])
    assert torch.equal(fresh.u, m_full.u)
    # resuming a finished run trains nothing and reports the same
    again, _ = run(tmp_path / "full.pt", resume=tmp_path / "full.pt")
    assert again.test == full.test and len(again.history) == cfg.epochs


def test_monitor_direction():
    assert monitor_mode("logloss") == "min" and monitor_mode("loss") == "min"
    assert monitor_mode("mr") == "min" and monitor_mode("mrr") == "max"
    assert monitor_mode("auc") == "max" and monitor_mode("val/bpr_loss") == "min"
    assert monitor_mode("ndcg@10") == "max" and monitor_mode("auc", "min") == "min"
    data, rows = _mf_data()
    vals = iter([0.5, 0.3, 0.4, 0.2, 0.6])
    for mode in ("auto", "min"):
        vals = iter([0.5, 0.3, 0.4, 0.2, 0.6])
        res = Trainer(TrainConfig(epochs=5, progress=False, monitor="logloss",
                                  monitor_mode=mode),
                      evaluate=lambda m, r, vals=vals: {"logloss": next(vals)}
                      ).fit(MF(), data, rows)
        assert res.best_epoch == 3
    vals = iter([0.5, 0.3, 0.4, 0.2, 0.6])
    res = Trainer(TrainConfig(epochs=5, progress=False, monitor="logloss", monitor_mode="max"),
                  evaluate=lambda m, r: {"logloss": next(vals)}).fit(MF(), data, rows)
    assert res.best_epoch == 4
    with pytest.raises(KeyError, match="monitor"):
        Trainer(TrainConfig(epochs=1, progress=False, monitor="ndcg"),
                evaluate=lambda m, r: {"auc": 1.0}).fit(MF(), data, rows)


class Lin(Recommender):
    """One parameter, one task with a hand-chosen gradient: updates checked by hand."""

    def __init__(self, optimizer="sgd", grad=(3.0, 4.0), clip=None, kw=None):
        super().__init__()
        self.n_users = self.n_items = 1
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.g = torch.tensor(grad)
        self.opt, self.kw = optimizer, kw or {}

    def score(self, users, items):
        return self.w.sum().expand(len(users))

    def tasks(self, data):
        return [Task("t", lambda e: np.zeros((1, 1), np.int64),
                     lambda b: (self.w * self.g).sum(), [self.w], lr=0.5, batch_size=1,
                     optimizer=self.opt, optimizer_kwargs=self.kw)]


def _fit(model, epochs=1, **cfg):
    """Train; every epoch is a new best (the model ends in its last state)."""
    data, rows = _data()
    n = iter(range(100))
    return Trainer(TrainConfig(epochs=epochs, progress=False, **cfg),
                   evaluate=lambda m, r: {"auc": next(n)}).fit(model, data, rows)


def test_optimizer_choice_by_hand():
    sgd = Lin("sgd")
    _fit(sgd, epochs=2)
    torch.testing.assert_close(sgd.w.detach(), torch.tensor([1.0, -2.0]) - 2 * 0.5 * sgd.g)
    ada = Lin("adagrad")
    _fit(ada, epochs=2)
    w, acc = torch.tensor([1.0, -2.0]), torch.zeros(2)
    for _ in range(2):  # adagrad: acc += g^2; w -= lr g / (sqrt(acc) + eps)
        acc += ada.g ** 2
        w -= 0.5 * ada.g / (acc.sqrt() + 1e-10)
    torch.testing.assert_close(ada.w.detach(), w)
    mom = Lin("sgd", kw={"momentum": 0.9})
    _fit(mom, epochs=2)  # buf = g, then 0.9 g + g
    torch.testing.assert_close(mom.w.detach(), torch.tensor([1.0, -2.0]) - 0.5 * (1 + 1.9) * mom.g)
    with pytest.raises(ValueError, match="optimizer"):
        Task("t", lambda e: None, lambda b: None, [], lr=1.0, batch_size=1, optimizer="lbfgs")


def test_clip_norm():
    free, clipped = Lin("sgd"), Lin("sgd")
    _fit(free)
    _fit(clipped, clip_norm=1.0)
    w0 = torch.tensor([1.0, -2.0])
    assert torch.linalg.norm(free.w.detach() - w0) == pytest.approx(0.5 * 5.0)
    step = clipped.w.detach() - w0  # the gradient (norm 5) scaled to norm 1, same direction
    assert torch.linalg.norm(step) == pytest.approx(0.5 * 1.0, rel=1e-5)
    torch.testing.assert_close(step / torch.linalg.norm(step), -clipped.g / 5.0)


@pytest.mark.parametrize("schedule", ["none", "step", "cosine"])
def test_lr_schedules_per_epoch(schedule):
    m = Lin("sgd", grad=(1.0, 0.0))
    seen = []

    def ev(model, r):
        seen.append(float(model.w[0].detach()))
        return {"auc": 0.0}

    data, rows = _data()
    kw = {"lr_step_size": 2, "lr_gamma": 0.5, "lr_warmup_epochs": 1, "lr_min_ratio": 0.1}
    Trainer(TrainConfig(epochs=6, progress=False, lr_schedule=schedule, **kw),
            evaluate=ev).fit(m, data, rows)
    lrs = -np.diff([1.0, *seen])  # one SGD step with gradient 1 per epoch moves w by lr
    expect = [0.5 * lr_factor(schedule, e, epochs=6, step_size=2, gamma=0.5, warmup_epochs=1,
                              min_ratio=0.1) for e in range(6)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-5, atol=1e-7)
    assert expect[0] == 0.25  # warm-up: (0 + 1) / (1 + 1)
    if schedule == "step":
        assert expect[1:] == [0.5, 0.5, 0.25, 0.25, 0.125]
    if schedule == "cosine":
        assert expect[1] == 0.5 and expect[5] == pytest.approx(
            0.5 * (0.1 + 0.9 * (1 + math.cos(math.pi * 4 / 5)) / 2))


class Stream(Recommender):
    """A streamed task (generator of tuple batches) and a multi-source task."""

    def __init__(self):
        super().__init__()
        self.n_users = self.n_items = 3
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.weights = UncertaintyWeights(["a", "b"])
        self.seen: list = []

    def score(self, users, items):
        return self.w[items]

    def tasks(self, data):
        def stream(epoch):
            for k in range(5):  # never materialised: built batch by batch
                yield (np.full(2, k % 3), torch.tensor([1.0, 0.5]))

        def walk_loss(batch):
            items, wts = batch
            self.seen.append(("walk", type(items), items.dtype, tuple(items.shape)))
            return (self.w[items] * wts).sum()

        def multi_loss(b):
            self.seen.append(("multi", len(b["a"]), len(b["b"])))
            return {"total": self.weights({"a": self.w[b["a"][:, 0]].pow(2).mean(),
                                           "b": self.w[b["b"][:, 0]].abs().mean()})}

        return [Task("walk", stream, walk_loss, [self.w], lr=0.1, batch_size=2),
                Task("multi", lambda e: {"a": np.zeros((10, 1), np.int64),
                                         "b": np.ones((4, 1), np.int64)},
                     multi_loss, [self.w, *self.weights.parameters()], lr=0.1, batch_size=4)]


def test_streaming_and_multi_source():
    m = Stream()
    res = _fit(m, epochs=2, device="cpu")
    walks = [s for s in m.seen if s[0] == "walk"]
    assert len(walks) == 10 and walks[0] == ("walk", torch.Tensor, torch.int64, (2,))
    multi = [s for s in m.seen if s[0] == "multi"]
    # 10 rows of "a" in batches of 4 -> 3 steps; "b" (4 rows) cut into the same 3 steps
    assert multi[:3] == [("multi", 4, 2), ("multi", 4, 1), ("multi", 2, 1)]
    assert set(res.history[0].losses) == {"walk", "multi", "multi/total"}
    assert res.history[0].losses["multi"] == pytest.approx(res.history[0].losses["multi/total"])
    assert m.weights.log_var.grad is not None or m.weights.log_var.abs().sum() > 0


def test_source_type_error():
    class Bad(Lin):
        def tasks(self, data):
            (t,) = super().tasks(data)
            t.source = lambda e: 3
            return [t]

    with pytest.raises(TypeError, match="source"):
        _fit(Bad())


def test_parameterless_model_and_device_cpu():
    class Closed(Recommender):
        def __init__(self):
            super().__init__()
            self.n_users = self.n_items = 2
            self.register_buffer("pop", torch.zeros(2))

        def tasks(self, data):
            self.pop += torch.tensor([1.0, 2.0])
            return []

        def score(self, users, items):
            return self.pop[items]

    m = Closed()
    res = _fit(m, epochs=2, device="cpu")
    assert len(res.history) == 2 and m.pop.device.type == "cpu" and m.pop[1] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():
    m = MF()
    data, rows = _mf_data()
    res = Trainer(TrainConfig(epochs=2, progress=False, device="cuda", monitor="acc"),
                  evaluate=lambda mod, r: {"acc": float(mod.u.sum().item())}).fit(m, data, rows)
    assert m.u.device.type == "cuda" and len(res.history) == 2
