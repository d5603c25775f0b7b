import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kgrec.eval.linkpred import link_prediction
from kgrec.experiments.kge_run import (
    KGERunConfig,
    export_embeddings,
    load_embeddings,
    load_kge_model,
    train_kge,
)
from kgrec.models.base import TrainData
from kgrec.models.kge import (
    KGE_MODELS,
    Bilinear,
    DistMult,
    KGEConfig,
    TransD,
    TransE,
    TransH,
    TransR,
    build_kge,
    corrupt_batch,
    kge_config,
)

T = torch.tensor


def _ids(*xs):
    return [torch.tensor(x) for x in xs]


def _set(param, value):
    with torch.no_grad():
        param.copy_(torch.as_tensor(value, dtype=param.dtype))


def _data(kg, n_entities, n_relations):
    return TrainData(rec_rows=lambda e: np.zeros((0, 3), np.int64), kg=np.asarray(kg),
                     n_users=0, n_items=0, n_entities=n_entities, n_relations=n_relations,
                     item_entity=np.zeros(0, np.int64))


# --------------------------------------------------------------------------- scores by hand
@pytest.mark.parametrize("p, expected", [(1, -2.0), (2, -math.sqrt(2.5))])
def test_transe_score_by_hand(p, expected):
    m = TransE(n_entities=3, n_relations=1, config=KGEConfig(dim=2, p_norm=p))
    _set(m.ent, [[1, 0], [0, 1], [0.6, 0.8]])
    _set(m.rel, [[0.5, 0.5]])
    # h + r - t = (1.5, -0.5)
    assert m.score(*_ids([0], [0], [1])).item() == pytest.approx(expected)
    assert m.score_emb(m.ent[[0]], T([0]), m.ent[[1]]).item() == pytest.approx(expected)


@pytest.mark.parametrize("p, expected", [(1, -6.0), (2, -math.sqrt(13.5))])
def test_transh_score_and_projection_by_hand(p, expected):
    m = TransH(n_entities=2, n_relations=1, config=KGEConfig(dim=3, p_norm=p))
    s = 1 / math.sqrt(2)
    _set(m.normal, [[s, s, 0]])  # w_r
    _set(m.rel, [[0, 0, 1]])  # d_r, in the hyperplane
    _set(m.ent, [[1, 2, 3], [2, 0, 1]])
    # h_perp = h - (w.h) w = (-0.5, 0.5, 3); t_perp = (1, -1, 1); h_perp + d - t_perp
    # = (-1.5, 1.5, 3)
    assert m._project(m.ent[[0]], T([0]))[0].tolist() == pytest.approx([-0.5, 0.5, 3])
    assert m.score(*_ids([0], [0], [1])).item() == pytest.approx(expected)
    vecs = torch.randn(50, 3)
    w = m.normal[0]
    assert (m._project(vecs, torch.zeros(50, dtype=torch.long)) @ w).abs().max() < 1e-6


_S6 = math.sqrt(6)
_TRANSR_DIFF = [1 / _S6, 2 / _S6 - 1, 1 / _S6 + 1]  # see the test below


@pytest.mark.parametrize("p, expected", [
    (1, -sum(abs(x) for x in _TRANSR_DIFF)), (2, -math.sqrt(sum(x * x for x in _TRANSR_DIFF)))])
def test_transr_score_and_shapes_by_hand(p, expected):
    m = TransR(n_entities=4, n_relations=2, config=KGEConfig(dim=2, rel_dim=3, p_norm=p))
    assert m.proj.shape == (2, 2, 3) and m.rel.shape == (2, 3)
    assert torch.equal(m.matrices()[1], torch.eye(2, 3))  # starts at the identity
    _set(m.ent[:2], [[1, 1], [0, 1]])
    _set(m.proj[0], (T([[1.0, 0, 1], [0, 2, 0]]) - torch.eye(2, 3)) / m.matrix_step)  # M_r
    _set(m.rel[0], [0, 0, 1])
    assert m.matrices()[0].tolist() == [pytest.approx([1, 0, 1]), pytest.approx([0, 2, 0])]
    # h M = (1, 2, 1) -> /sqrt(6); t M = (0, 2, 0) -> (0, 1, 0); h_r + r - t_r = _TRANSR_DIFF
    assert m.score(*_ids([0], [0], [1])).item() == pytest.approx(expected)
    assert m._project(m.ent[[0, 1, 2]], T([0, 1, 0])).shape == (3, 3)
    assert m._project_all(1).shape == (4, 3)


def test_transd_score_by_hand_and_no_vector_path():
    m = TransD(n_entities=2, n_relations=1, config=KGEConfig(dim=2, p_norm=1))
    _set(m.ent, [[1, 0], [0, 1]])
    _set(m.ent_p, [[1, 1], [0, 2]])
    _set(m.rel, [[0, 1]])
    _set(m.rel_p, [[0.5, 0]])
    # h_perp = r_p (h_p . h) + h = (1.5, 0); t_perp = r_p (t_p . t) + t = (1, 0) + (0, 1)
    # h_perp + r - t_perp = (0.5, 0)
    assert m.score(*_ids([0], [0], [1])).item() == pytest.approx(-0.5)
    # the same through the explicit mapping matrix M = r_p h_p^T + I
    h, hp, rp = m.ent[0], m.ent_p[0], m.rel_p[0]
    with torch.no_grad():
        assert ((torch.outer(rp, hp) + torch.eye(2)) @ h).tolist() == pytest.approx(
            m._project_ids(T([0]), T([0]))[0].tolist())
    with pytest.raises(NotImplementedError):
        m.score_emb(m.ent[[0]], T([0]), m.ent[[1]])
    wide = TransD(n_entities=2, n_relations=1, config=KGEConfig(dim=2, rel_dim=3))
    _set(wide.rel_p, [[0, 0, 0]])
    assert wide._project_ids(T([1]), T([0]))[0].tolist() == pytest.approx(
        [*wide.ent[1].tolist(), 0.0])  # I^{k x d} pads with zeros


def test_bilinear_and_distmult_by_hand():
    b = Bilinear(n_entities=2, n_relations=1, config=KGEConfig(dim=2))
    _set(b.ent, [[1, 1], [1, 0]])
    _set(b.rel, [[[1, 2], [3, 4]]])
    assert b.score(*_ids([0], [0], [1])).item() == pytest.approx(4.0)  # [1,1] W [1,0]^T
    d = DistMult(n_entities=2, n_relations=1, config=KGEConfig(dim=2))
    _set(d.ent, [[1, 2], [2, 2]])
    _set(d.rel, [[3, -1]])
    assert d.score(*_ids([0], [0], [1])).item() == pytest.approx(2.0)  # 6 - 4
    assert d.score(*_ids([1], [0], [0])).item() == pytest.approx(2.0)  # symmetric


# --------------------------------------------------------------------------- interface
@pytest.mark.parametrize("name, p", [(n, p) for n in KGE_MODELS for p in (1, 2)
                                     if p == 2 or n.startswith("trans")])
def test_score_tails_and_heads_agree_with_score(name, p):
    torch.manual_seed(0)
    n_e, n_r = 9, 3
    m = build_kge(name, n_entities=n_e, n_relations=n_r,
                  config=KGEConfig(dim=6, rel_dim=4, p_norm=p))
    h, r, t = T([0, 3, 8, 5, 3]), T([2, 0, 1, 2, 2]), T([1, 1, 4, 0, 7])
    with torch.no_grad():
        tails, heads = m.score_tails(h, r), m.score_heads(r, t)
        assert tails.shape == heads.shape == (5, n_e)
        e = torch.arange(n_e)
        for k in range(5):
            want_t = m.score(h[k].repeat(n_e), r[k].repeat(n_e), e)
            want_h = m.score(e, r[k].repeat(n_e), t[k].repeat(n_e))
            assert torch.allclose(tails[k], want_t, atol=1e-5)
            assert torch.allclose(heads[k], want_h, atol=1e-5)
        if name != "transd":  # score_emb with the model's own vectors is score
            assert torch.allclose(m.score_emb(m.ent[h], r, m.ent[t]), m.score(h, r, t))


def test_constraints_after_constrain():
    torch.manual_seed(0)
    cfg = KGEConfig(dim=5, rel_dim=4)
    big = 3.0
    te = TransE(n_entities=6, n_relations=2, config=cfg)
    te.ent.data.mul_(big)
    te.constrain()
    assert torch.allclose(te.ent.norm(dim=1), torch.ones(6))

    th = TransH(n_entities=6, n_relations=2, config=cfg)
    for w in (th.ent, th.rel, th.normal):
        w.data.normal_().mul_(big)
    th.constrain()
    assert torch.allclose(th.normal.norm(dim=1), torch.ones(2))
    assert (th.ent.norm(dim=1) <= 1 + 1e-6).all()
    assert (th.rel * th.normal).sum(1).abs().max() < 1e-6  # d_r in the hyperplane

    tr = TransR(n_entities=6, n_relations=2, config=cfg)
    for w in (tr.ent, tr.rel, tr.proj):
        w.data.normal_().mul_(big)
    tr.constrain()
    assert (tr.ent.norm(dim=1) <= 1 + 1e-6).all() and (tr.rel.norm(dim=1) <= 1 + 1e-6).all()
    for r in range(2):  # ||e M_r|| = 1 (normalised) for every entity
        assert torch.allclose(tr._project_all(r).norm(dim=1), torch.ones(6))

    td = TransD(n_entities=6, n_relations=2, config=cfg)
    for w in (td.ent, td.ent_p, td.rel, td.rel_p):
        w.data.normal_().mul_(big)
    td.constrain()
    for w in (td.ent, td.ent_p, td.rel, td.rel_p):
        assert (w.norm(dim=1) <= 1 + 1e-6).all()

    dm = DistMult(n_entities=6, n_relations=2, config=cfg)
    dm.ent.data.mul_(big)
    dm.constrain()
    assert torch.allclose(dm.ent.norm(dim=1), torch.ones(6))


@pytest.mark.parametrize("kind", ["margin", "logistic"])
def test_loss_by_hand(kind):
    m = TransE(n_entities=3, n_relations=1,
               config=KGEConfig(dim=2, margin=1.0, loss=kind, l2_weight=0.0))
    pos, neg = T([[0, 0, 1], [1, 0, 2]]), T([[0, 0, 2], [2, 0, 2]])
    sp = m.score(pos[:, 0], pos[:, 1], pos[:, 2])
    sn = m.score(neg[:, 0], neg[:, 1], neg[:, 2])
    if kind == "margin":
        want = torch.clamp(1.0 - sp + sn, min=0).mean()
    else:
        want = 0.5 * (torch.log1p(torch.exp(-sp)).mean() + torch.log1p(torch.exp(sn)).mean())
    assert m.loss(pos, neg).item() == pytest.approx(want.item(), rel=1e-6)
    m.config.l2_weight = 0.5
    both = torch.cat([pos, neg])
    reg = (m.ent[both[:, 0]].pow(2).sum() + m.ent[both[:, 2]].pow(2).sum()
           + m.rel[both[:, 1]].pow(2).sum()) / 4
    assert m.loss(pos, neg).item() == pytest.approx((want + 0.5 * reg).item(), rel=1e-6)


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="p_norm"):
        KGEConfig(p_norm=3)
    with pytest.raises(ValueError, match="sampling"):
        KGEConfig(sampling="nope")
    with pytest.raises(ValueError, match="nonsense"):
        kge_config("transe", {"nonsense": 1})
    with pytest.raises(KeyError, match="known"):
        build_kge("transx", n_entities=2, n_relations=1)
    assert kge_config("transe", {"dim": 7}).dim == 7


# --------------------------------------------------------------------------- sampling / task
def _one_to_n():
    # relation 0 is 1-N: head 0 has tails 1..4 (tph 4, hpt 1) -> p(head) = 4/5
    # relation 1 is N-1: heads 5..7 point to 8 (tph 1, hpt 3) -> p(head) = 1/4
    return np.array([[0, 0, t] for t in range(1, 5)] + [[h, 1, 8] for h in range(5, 8)])


@pytest.mark.parametrize("sampling, rate", [("bern", 0.8), ("unif", 0.5)])
def test_task_negatives_bern_rate(sampling, rate):
    kg = _one_to_n()
    torch.manual_seed(0)
    m = TransE(n_entities=50, n_relations=2, config=KGEConfig(dim=4, sampling=sampling))
    (task,) = m.tasks(_data(kg, 50, 2))
    assert task.name == "kge" and task.after_step == m.constrain
    assert np.array_equal(task.source(0), kg) and task.batch_size == m.config.batch_size
    seen = []
    m.loss = lambda pos, neg: seen.append(neg) or torch.zeros(())  # capture the negatives
    batch = torch.from_numpy(np.repeat(kg[:1], 20000, axis=0))  # (0, r0, 1)
    task.loss(batch)
    neg = seen[0]
    assert (neg[:, 1] == 0).all()
    head = neg[:, 0] != 0
    assert not (head & (neg[:, 2] != 1)).any()  # one side only
    # filtered: a corrupted head is never 0 and a corrupted tail never 1..4, so the share
    # of head corruptions is exactly the drawn one
    assert abs(head.float().mean().item() - rate) < 0.015
    assert not np.isin(neg[~head, 2].numpy(), [1, 2, 3, 4]).any()


def test_corrupt_batch_without_filter():
    g = torch.Generator().manual_seed(0)
    tr = T([[0, 0, 1]] * 5000)
    out = corrupt_batch(tr, 10, head_prob=0.3, generator=g)
    changed_h = out[:, 0] != 0
    assert abs(changed_h.float().mean().item() - 0.3 * 0.9) < 0.03


def test_training_steps_lower_the_loss_and_keep_constraints():
    from kgrec.train.trainer import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    kg = np.c_[rng.integers(0, 40, 300), rng.integers(0, 3, 300), rng.integers(0, 40, 300)]
    for name in ("transh", "transr", "distmult"):
        torch.manual_seed(0)
        m = build_kge(name, n_entities=40, n_relations=3,
                      config=KGEConfig(dim=8, batch_size=64, lr=0.02))
        fit = Trainer(TrainConfig(epochs=6, progress=False, monitor="mrr"),
                      evaluate=lambda mod, rows: link_prediction(mod, rows, known=kg)).fit(
            m, _data(kg, 40, 3), kg[:50])
        losses = [h.losses["kge"] for h in fit.history]
        assert losses[-1] < losses[0], (name, losses)
    assert (m.ent.norm(dim=1) - 1).abs().max() < 1e-5


# --------------------------------------------------------------------------- export / e2e
def test_export_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = TransH(n_entities=4, n_relations=2, config=KGEConfig(dim=3))
    ents = ["m.0abc", "Ünïcode ent", "with space", "3"]
    paths = export_embeddings(m, tmp_path, ents, ["r/a", "r/b"])
    assert all(p.exists() for p in paths)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    got = load_embeddings(tmp_path)
    assert got["model"] == "transh"
    assert got["entities"] == ents and got["relations"] == ["r/a", "r/b"]
    for k, v in m.embeddings().items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    assert got["relation_normals"].shape == (2, 3)
    tr = TransR(n_entities=4, n_relations=2, config=KGEConfig(dim=3, rel_dim=2))
    export_embeddings(tr, tmp_path / "r")  # no labels: the index
    got = load_embeddings(tmp_path / "r")
    assert got["relation_matrices"].shape == (2, 3, 2) and got["entities"] == list("0123")
    with pytest.raises(ValueError, match="labels"):
        export_embeddings(m, tmp_path / "bad", ents[:2], ["a", "b"])


@pytest.fixture(scope="module")
def triples_file(tmp_path_factory):
    from kgrec.data.synthetic import make_synthetic

    ds = make_synthetic(seed=0, n_users=50, n_items=400, n_topics=6, n_creators=30)
    ents, rels = ds.entity_ids, ds.relation_ids
    path = tmp_path_factory.mktemp("kg") / "synthetic_kg.tsv"
    path.write_text("".join(f"{ents[h]}\t{rels[r]}\t{ents[t]}\n" for h, r, t in ds.kg))
    return path


def test_train_kge_end_to_end_beats_random(tmp_path, triples_file):
    cfg = KGERunConfig(model="transe", triples_file=str(triples_file), epochs=25,
                       params={"dim": 32, "lr": 0.02, "batch_size": 256}, seed=0,
                       out=str(tmp_path / "run"), progress=False)
    res = train_kge(cfg)
    m = res.metrics
    for f in ("config.json", "metrics.json", "checkpoint.pt", "entity_embeddings.npy",
              "relation_embeddings.npy", "entities.tsv", "relations.tsv"):
        assert (res.run_dir / f).is_file(), f
    assert m["test"]["n"] == len(res.split.test) and len(m["history"]) == 25
    assert m["timings"]["seconds_per_epoch"] > 0 and m["data_checksum"]
    # an untrained model on the same split
    torch.manual_seed(0)
    rand = build_kge("transe", n_entities=res.model.n_entities,
                     n_relations=res.model.n_relations, config=res.model.config)
    known = np.r_[res.split.train, res.split.valid, res.split.test]
    base = link_prediction(rand, res.split.test, known=known)
    # random ~0.012; 25 epochs reach ~0.13 (seeds 0-2)
    assert m["test"]["mrr"] > 5 * base["mrr"] and m["test"]["mrr"] > 0.08, (m["test"], base)
    # the checkpoint is the best epoch, and the export holds its vectors
    again = link_prediction(load_kge_model(res.run_dir), res.split.test, known=known)
    assert again["mrr"] == pytest.approx(m["test"]["mrr"], abs=1e-12)
    emb = load_embeddings(res.run_dir)
    assert np.array_equal(emb["entity_embeddings"], res.model.ent.detach().numpy())
    assert emb["entities"][0].startswith("e:i")  # raw labels from the file


def test_cli_kge_train_and_models(tmp_path, triples_file):
    from kgrec.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["kge", "models"])
    assert r.exit_code == 0 and all(n in r.output for n in KGE_MODELS)
    out = tmp_path / "cli"
    r = runner.invoke(app, ["kge", "train", "--triples", str(triples_file), "--model",
                            "distmult", "--epochs", "2", "--out", str(out), "--quiet",
                            "--set", "dim=8", "--set", "sampling=unif"])
    assert r.exit_code == 0, r.output
    assert "MRR" in r.output and "Hits@10" in r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_params"]["dim"] == 8 and cfg["model_params"]["sampling"] == "unif"
    assert json.loads((out / "metrics.json").read_text())["test"]["n"] > 0
    r = runner.invoke(app, ["kge", "train", "--triples", str(triples_file), "--set",
                            "nonsense=1", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "nonsense" in r.output
    assert not (tmp_path / "x").exists()
    r = runner.invoke(app, ["kge", "train", "--model", "transx", "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "transx" in r.output


def test_transe_on_shared_music_kg(tmp_path, data_dir, monkeypatch):
    """The Last.FM KG of MKR: a few epochs of TransE already rank far above chance."""
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    res = train_kge(KGERunConfig(dataset="music", model="transe", epochs=6, progress=False,
                                 out=str(tmp_path / "music")))
    m = res.metrics
    assert res.model.n_entities == 9366 and res.model.n_relations == 60
    assert sum(m["split"].values()) == 15518
    assert m["test"]["mrr"] > 0.3, m["test"]  # random: ~0.003
    emb = load_embeddings(res.run_dir)
    assert emb["relations"][0] == "music.artist.origin"


def test_evaluate_a_kge_run_and_refuse_changed_triples(tmp_path):
    import json
    import random

    from typer.testing import CliRunner

    from kgrec.cli import app

    random.seed(0)
    f = tmp_path / "t.tsv"
    f.write_text("".join(f"e{random.randint(0, 30)}\tr{random.randint(0, 2)}\t"
                         f"e{random.randint(0, 30)}\n" for _ in range(300)))
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["kge", "train", "--triples", str(f), "--epochs", "2", "-q",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["evaluate", str(out), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)["test"]["mrr"]
    assert got == pytest.approx(json.loads((out / "metrics.json").read_text())["test"]["mrr"])
    f.write_text(f.read_text() + "e1\tr9\te2\n")
    r = CliRunner().invoke(app, ["evaluate", str(out)])
    assert r.exit_code == 2 and "t.tsv" in r.output and "checksum" in r.output
