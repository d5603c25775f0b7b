"""DKN: item tokens (titles / KG fallback), KCNN, attention, scoring and a short fit."""

import numpy as np
import pytest
import torch

import kgrec.data.text as text
import kgrec.models.kg.dkn as dkn
from kgrec.config import load_preset
from kgrec.data.dataset import DataError, Dataset
from kgrec.data.split import random_split
from kgrec.data.text import item_tokens, read_movie_titles, tokenize
from kgrec.eval import evaluate_ctr
from kgrec.models import model_config
from kgrec.models.base import TrainData
from kgrec.models.kg.dkn import DKN, DKNConfig, build, masked_softmax
from kgrec.pretrain import build_model, model_inputs
from kgrec.train.trainer import TrainConfig, Trainer


def _cfg(**kw):
    base = {"word_dim": 8, "entity_dim": 6, "n_filters": 4, "max_title_length": 6,
            "max_clicks": 5, "att_hidden": 3, "pred_hidden": 3, "kge": "none"}
    return DKNConfig(**{**base, **kw})


def _model(ds, **kw):
    torch.manual_seed(0)
    cfg = _cfg(**kw)
    return build(ds, cfg, inputs=model_inputs("dkn", ds, cfg))


def _train_data(ds, train):
    return TrainData(rec_rows=lambda e: train, kg=ds.kg, n_users=ds.n_users, n_items=ds.n_items,
                     n_entities=ds.n_entities, n_relations=ds.n_relations,
                     item_entity=ds.item_entity, train=train)


def _movie_dataset(item_ids):
    """Three items (entities 0-2) with raw MovieLens ids, two extra KG entities."""
    n = len(item_ids)
    ratings = np.array([[0, i, 1] for i in range(n)] + [[1, 0, 0]])
    kg = np.array([[0, 0, 3], [2, 0, 4], [2, 1, 3]])
    return Dataset(name="movie-half", ratings=ratings, kg=kg, n_users=2, n_items=n,
                   n_entities=5, n_relations=2, item_entity=np.arange(n),
                   item_ids=np.array(item_ids), entity_ids=np.array(list("abcde")))


# ---------------------------------------------------------------- item tokens
def test_kg_tokens_on_synthetic(tiny_dataset, monkeypatch):
    ds = tiny_dataset
    monkeypatch.setattr(text, "find_movies_dat", lambda: pytest.fail("opened files"))
    words, ents, vocab = item_tokens(ds, 4)
    assert words.shape == ents.shape == (ds.n_items, 4)
    assert vocab[0] == "<pad>" and len(vocab) == len(set(vocab))
    assert ((words == 0) == (ents == 0)).all()  # every KG token is linked to its entity
    np.testing.assert_array_equal(ents[:, 0], ds.item_entity + 1)  # the item itself first
    # the rest are distinct one-hop neighbours, left-aligned, padded with 0
    kg = ds.kg
    neigh = {(int(h), int(t)) for h, _, t in kg} | {(int(t), int(h)) for h, _, t in kg}
    for i in range(ds.n_items):
        row = ents[i][ents[i] > 0] - 1
        assert (ents[i][: len(row)] > 0).all()
        assert len(set(row.tolist())) == len(row)
        e = int(ds.item_entity[i])
        degree = len({b for a, b in neigh if a == e and b != e})
        assert len(row) == 1 + min(degree, 3)
        assert all((e, int(t)) in neigh for t in row[1:])
    # a token's word is the entity's label; one word per entity
    assert vocab[words[0, 0]] == f"e:{ds.entity_ids[ds.item_entity[0]]}"
    w2e = {}
    for w, e in zip(words[words > 0], ents[ents > 0], strict=True):
        assert w2e.setdefault(int(w), int(e)) == int(e)
    with pytest.raises(ValueError, match="max_len"):
        item_tokens(ds, 0)


def test_movie_titles_latin1_and_fallback(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_bytes(
        "10::Café Society, The (1995)::Drama\r\n"
        "20::Toy Story (1995)::Animation|Comedy\n\n"
        "30::A Very Long Title Indeed With Many Words (1999)::Drama\n".encode("latin-1"))
    assert read_movie_titles(folder / "movies.dat")["10"] == "Café Society, The (1995)"
    assert tokenize("Café Society, The (1995)") == ["café", "society", "the", "1995"]
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "data"))
    ds = _movie_dataset(["20", "10", "99"])  # 99 has no title: KG tokens
    with pytest.warns(UserWarning, match="1 item"):
        words, ents, vocab = item_tokens(ds, 4)
    assert [vocab[w] for w in words[0]] == ["w:toy", "w:story", "w:1995", "<pad>"]
    assert [vocab[w] for w in words[1]] == ["w:café", "w:society", "w:the", "w:1995"]  # cut
    assert words[0, 2] == words[1, 3]  # one id per word
    np.testing.assert_array_equal(ents[0], [1, 1, 1, 0])  # every title word -> item entity
    np.testing.assert_array_equal(ents[1], [2, 2, 2, 2])
    assert ents[2, 0] == 3 and sorted(ents[2, 1:3]) == [4, 5] and ents[2, 3] == 0
    assert [vocab[w] for w in words[2, :1]] == ["e:c"]

    # an explicit file, and a missing one: KG tokens for every item, with a warning
    with pytest.warns(UserWarning, match="1 item"):
        words2, _, _ = item_tokens(ds, 4, movies=folder / "movies.dat")
    np.testing.assert_array_equal(words2, words)
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "nothing"))
    with pytest.warns(UserWarning, match="movies.dat not found"):
        words3, ents3, vocab3 = item_tokens(ds, 4)
    assert all(vocab3[w].startswith("e:") for w in words3[words3 > 0])
    np.testing.assert_array_equal(ents3[:, 0], [1, 2, 3])

    (folder / "movies.dat").write_bytes(b"1::no genres\n")
    with pytest.raises(DataError, match=r"movies\.dat:1"):
        read_movie_titles(folder / "movies.dat")


# ---------------------------------------------------------------- KCNN
def test_kcnn_channels_transform_and_convolution(tiny_dataset):
    m = _model(tiny_dataset, filter_sizes=(1, 2))
    d, de = 8, 6
    with torch.no_grad():
        m.transform.weight.copy_(torch.linspace(-1, 1, d * de).view(d, de))
        m.transform.bias.copy_(torch.linspace(0.5, -0.5, d))
    e = m.entity_emb[3].detach()
    expected = torch.tanh(m.transform.weight @ e + m.transform.bias)
    torch.testing.assert_close(m.g(e), expected)

    item = 5
    x = m.kcnn_input(torch.tensor([item]))[0].detach()  # (3 d, L)
    words, ents = m.word_ids[item], m.entity_ids[item]
    assert x.shape == (3 * d, 6)
    for p in range(6):
        if words[p] == 0:
            assert (x[:, p] == 0).all()
            continue
        torch.testing.assert_close(x[:d, p], m.word_emb[words[p]].detach())
        torch.testing.assert_close(x[d:2 * d, p], m.g(m.entity_emb[ents[p]]).detach())
        torch.testing.assert_close(x[2 * d:, p], m.g(m.context_emb[ents[p]]).detach())

    vec = m.item_vectors(torch.tensor([item, 7])).detach()
    assert vec.shape == (2, 4 * 2)
    # hand-written convolution: max over positions of relu(sum_j W[:, :, j] x[:, p + j] + b)
    for k, conv in enumerate(m.convs):
        w, b = conv.weight.detach(), conv.bias.detach()
        width = w.shape[2]
        outs = [torch.relu(sum(w[:, :, j] @ x[:, p + j] for j in range(width)) + b)
                for p in range(6 - width + 1)]
        torch.testing.assert_close(vec[0, 4 * k: 4 * k + 4], torch.stack(outs).amax(0))
    assert m.item_vectors().shape == (tiny_dataset.n_items, 8)


def test_context_is_neighbour_mean_of_pretrained_vectors(tiny_dataset):
    ds = tiny_dataset
    m = _model(ds, kge="transe", kge_epochs=1)
    e = int(ds.item_entity[0])
    kg = ds.kg
    nb = np.r_[kg[kg[:, 0] == e, 2], kg[kg[:, 2] == e, 0]]
    torch.testing.assert_close(m.context_emb[e + 1].detach(),
                               m.entity_emb[torch.from_numpy(nb) + 1].detach().mean(0))
    assert (m.entity_emb[0] == 0).all() and (m.context_emb[0] == 0).all()


# ---------------------------------------------------------------- attention and scores
def test_masked_softmax_sums_to_one_over_real_entries():
    logits = torch.tensor([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0], [3.0, -1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False], [True, True, True]])
    a = masked_softmax(logits, mask)
    e = torch.exp(torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(a[0], torch.cat([e / e.sum(), torch.zeros(1)]))
    assert (a[1] == 0).all()
    torch.testing.assert_close(a[2], torch.softmax(logits[2], 0))


def _with_history(ds, **kw):
    m = _model(ds, **kw)
    m.fill_history(random_split(ds.ratings, seed=0).train)
    return m


@pytest.mark.parametrize("attention", ["mlp", "dot"])
def test_attention_weights_and_padding(tiny_dataset, attention):
    m = _with_history(tiny_dataset, attention=attention)
    users = torch.arange(tiny_dataset.n_users)
    items = m.history[:, 0].clone()  # some candidates are the user's own first click
    items[::2] = 3
    with torch.no_grad():
        alpha = m.attention(users, items)
        real = m.history_mask & (m.history != items.unsqueeze(1))
        assert alpha.shape == (len(users), 5)
        assert (alpha[~real] == 0).all()
        has = real.any(1)
        torch.testing.assert_close(alpha[has].sum(1), torch.ones(int(has.sum())))
        assert (alpha[~has] == 0).all()
        before = m.score(users, items)
        m.history[~m.history_mask] = 7  # what a padding slot holds must not matter
        torch.testing.assert_close(m.score(users, items), before)


def test_factorised_mlps_equal_the_literal_concatenation(tiny_dataset):
    m = _with_history(tiny_dataset)
    with torch.no_grad():
        for layer in (m.pred_in, m.pred_out, m.att_in):
            layer.weight.normal_()
        m.pred_out.bias.fill_(0.3)
        for u, i in [(0, 3), (5, 11), (17, 40)]:
            real = m.history_mask[u] & (m.history[u] != i)
            clicks = m.item_vectors(m.history[u][real])
            v = m.item_vectors(torch.tensor([i]))[0]
            h = torch.relu(m.att_in(torch.cat([v.expand_as(clicks), clicks], 1)))
            alpha = torch.softmax(m.att_out(h).squeeze(1), 0)
            user = (alpha.unsqueeze(1) * clicks).sum(0)
            logit = m.pred_out(torch.relu(m.pred_in(torch.cat([user, v]))))
            torch.testing.assert_close(m.score(torch.tensor([u]), torch.tensor([i])), logit)


@pytest.mark.parametrize("attention,predictor", [("mlp", "mlp"), ("dot", "dot"),
                                                 ("mlp", "dot"), ("dot", "mlp")])
def test_score_all_matches_score(tiny_dataset, attention, predictor, monkeypatch):
    monkeypatch.setattr(dkn, "_USER_GROUP", 2)  # groups of users by history length
    m = _with_history(tiny_dataset, attention=attention, predictor=predictor)
    users = torch.tensor([0, 4, 9, 33])
    m.history_mask[4, 1:] = False  # histories of lengths 1, 5, ...
    n = tiny_dataset.n_items
    with torch.no_grad():
        full = m.score_all(users)
        pairs = m.score(users.repeat_interleave(n), torch.arange(n).repeat(4)).view(4, n)
    assert full.shape == (4, n)
    torch.testing.assert_close(full, pairs, atol=1e-5, rtol=1e-5)
    if predictor == "dot":  # no clicks: u = 0, the logit is the bias
        m.history_mask[0] = False
        with torch.no_grad():
            m.dot_bias.fill_(0.25)
            assert (m.score_all(users[:1]) == 0.25).all()


def test_score_chunks_many_rows(tiny_dataset):
    m = _with_history(tiny_dataset)
    g = torch.Generator().manual_seed(0)
    users = torch.randint(tiny_dataset.n_users, (9000,), generator=g)
    items = torch.randint(tiny_dataset.n_items, (9000,), generator=g)
    with torch.no_grad():
        many = m.score(users, items)
        few = torch.cat([m.score(u, i) for u, i in zip(users.split(1000), items.split(1000),
                                                        strict=True)])
    torch.testing.assert_close(many, few, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- training
def test_history_buffers_from_training_positives(tiny_dataset):
    ds = tiny_dataset
    train = random_split(ds.ratings, seed=0).train
    m = _model(ds)
    (task,) = m.tasks(_train_data(ds, train))
    pos = train[train[:, 2] == 1]
    counts = np.bincount(pos[:, 0], minlength=ds.n_users)
    np.testing.assert_array_equal(m.history_mask.sum(1).numpy(), np.minimum(counts, 5))
    for u in range(ds.n_users):
        got = m.history[u][m.history_mask[u]].tolist()
        assert len(set(got)) == len(got) and set(got) <= set(pos[pos[:, 0] == u, 1].tolist())
        assert m.history_mask[u, : len(got)].all()  # real clicks first
    state = m.state_dict()
    assert {"history", "history_mask", "word_ids", "entity_ids"} <= set(state)
    fresh = _model(ds)
    fresh.load_state_dict(state)
    users, items = torch.from_numpy(train[:50, 0]), torch.from_numpy(train[:50, 1])
    with torch.no_grad():
        torch.testing.assert_close(fresh.score(users, items), m.score(users, items))
    decayed = {id(p) for p in task.params[0]["params"]}
    assert id(m.convs[0].weight) in decayed and id(m.transform.weight) in decayed
    assert id(m.att_in.weight) in decayed and id(m.pred_out.weight) in decayed
    assert id(m.word_emb) not in decayed and id(m.pred_out.bias) not in decayed
    assert sum(len(g["params"]) for g in task.params) == len(list(m.parameters()))
    no_mlp = _model(ds, l2_mlp=False)
    decayed = {id(p) for p in no_mlp.param_groups()[0]["params"]}
    assert id(no_mlp.att_in.weight) not in decayed and id(no_mlp.convs[1].weight) in decayed
    assert task.params[0]["weight_decay"] == 0.01 and task.batch_size == 128


def test_forward_backward(tiny_dataset):
    ds = tiny_dataset
    train = random_split(ds.ratings, seed=0).train
    for freeze in (False, True):
        m = _model(ds, freeze_entities=freeze)
        m.tasks(_train_data(ds, train))
        loss = m.rec_loss(torch.from_numpy(train[:64]))
        assert torch.isfinite(loss)
        loss.backward()
        for p in (m.word_emb, m.transform.weight, m.convs[2].weight, m.att_in.weight,
                  m.att_out.weight, m.pred_in.weight, m.pred_out.bias):
            assert p.grad is not None and p.grad.abs().sum() > 0
        if freeze:
            assert m.entity_emb.grad is None and m.context_emb.grad is None
        else:
            assert m.entity_emb.grad.abs().sum() > 0 and m.context_emb.grad.abs().sum() > 0
    # the optimizer choice reaches the task, with the same L2 groups
    (task,) = _model(ds, optimizer="adamw").tasks(_train_data(ds, train))
    assert task.optimizer == "adamw" and task.params[0]["weight_decay"] == pytest.approx(
        _model(ds).config.l2_weight)


def test_short_fit_beats_chance(tiny_dataset):
    ds = tiny_dataset
    split = random_split(ds.ratings, seed=0)
    m = _model(ds, kge="transe", kge_epochs=2, lr=1e-2, batch_size=64)
    fit = Trainer(TrainConfig(epochs=8, seed=0, progress=False, threads=1)).fit(
        m, _train_data(ds, split.train), split.valid, split.test)
    assert fit.history[-1].losses["rec"] < fit.history[0].losses["rec"]
    assert fit.best_valid["auc"] > 0.7 and fit.test["auc"] > 0.6  # 190 test rows: noisy
    assert evaluate_ctr(m, split.test)["auc"] == pytest.approx(fit.test["auc"])


# ---------------------------------------------------------------- config and registry
@pytest.mark.parametrize("bad,match", [
    ({"filter_sizes": (1, 11)}, "max_title_length"), ({"attention": "cnn"}, "attention"),
    ({"predictor": "x"}, "predictor"), ({"kge": "foo"}, "kge"), ({"n_filters": 0}, "n_filters"),
    ({"lr": 0.0}, "lr"), ({"filter_sizes": ()}, "filter_sizes"),
    ({"optimizer": "sgd"}, "optimizer"),
])
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        DKNConfig(**bad)


def test_registry_presets_and_shape_checks(tiny_dataset):
    for name in ("music", "book", "movie-half", "synthetic"):
        preset = load_preset("dkn", name)
        preset.pop("epochs")
        cfg = model_config("dkn", preset)
        assert cfg.filter_sizes == (1, 2, 3)
    cfg = model_config("dkn", {"kge": "none", "n_filters": 2, "word_dim": 4, "entity_dim": 4})
    m = build_model("dkn", tiny_dataset, cfg)
    assert isinstance(m, DKN)
    with pytest.raises(ValueError, match="word_ids has shape"):
        DKN(n_users=2, n_items=3, n_entities=4, word_ids=np.zeros((3, 2)),
            entity_ids=np.zeros((3, 10)), n_words=1)
    with pytest.raises(ValueError, match="entity_vectors has shape"):
        DKN(n_users=2, n_items=1, n_entities=4, word_ids=np.zeros((1, 10)),
            entity_ids=np.zeros((1, 10)), n_words=1, entity_vectors=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="entity_ids out of range"):
        DKN(n_users=2, n_items=1, n_entities=4, word_ids=np.zeros((1, 10)),
            entity_ids=np.full((1, 10), 5), n_words=1)
