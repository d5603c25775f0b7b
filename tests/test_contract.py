"""One test over every registered model: builds on a tiny dataset, trains one epoch, ``score``
agrees with ``score_all``, the run round-trips through :func:`kgrec.load` and ``recommend``
returns K items the user has not seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import kgrec
from kgrec.experiments.run import RunConfig, train
from kgrec.models import MODELS

K = 5


@pytest.fixture
def tiny_catalog(monkeypatch, tiny_dataset):
    """``load_dataset`` answers every name with the tiny synthetic dataset."""
    import kgrec.data.catalog as catalog

    monkeypatch.setattr(catalog, "load_dataset", lambda name, seed=0, **kw: tiny_dataset)
    return tiny_dataset


# small presets so every model trains in about a second
_SMALL = {"dkn": {"kge_epochs": 1}, "fm": {"kge_epochs": 1}, "wide-deep": {"kge_epochs": 1}}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name, tiny_catalog, tmp_path):
    ds = tiny_catalog
    res = train(RunConfig(dataset="tiny", model=name, epochs=1, params=_SMALL.get(name, {}),
                          out=str(tmp_path / name), progress=False, plot=False, topk=False))
    model = res.model.eval()
    users = torch.tensor([0, 3, 7])
    with torch.no_grad():
        full = model.score_all(users)
        assert full.shape == (3, ds.n_items)
        items = torch.tensor([0, 5, ds.n_items - 1])
        pairs = model.score(users.repeat_interleave(3), items.repeat(3)).view(3, 3)
        torch.testing.assert_close(pairs, full[:, items], rtol=1e-4, atol=1e-5)
        assert torch.isfinite(full).all()

    # --device cuda moves parameters and buffers; a tensor kept as a plain attribute would
    # stay behind on the CPU (checked here since CI has no GPU)
    for mod_name, mod in model.named_modules():
        stray = [k for k, v in vars(mod).items() if isinstance(v, torch.Tensor) and v.numel() > 1]
        assert not stray, f"{name}: {mod_name or 'model'}.{stray} are not buffers"

    art = kgrec.load(res.run_dir)
    with torch.no_grad():
        torch.testing.assert_close(art.model.score_all(users), full, rtol=1e-5, atol=1e-6)
    raw_users = art.user_labels[[0, 3, 7]].tolist()
    recs = art.recommend(raw_users, K)
    indptr, seen = art.seen
    for u, row in zip([0, 3, 7], recs, strict=True):
        assert len(row) == K and len(set(row)) == K
        seen_labels = set(art.item_labels[seen[indptr[u]:indptr[u + 1]]].tolist())
        assert not seen_labels & set(row)


def test_load_and_recommend_in_a_fresh_process_without_data(tiny_catalog, tmp_path):
    res = train(RunConfig(dataset="tiny", model="bpr-mf", epochs=1, out=str(tmp_path / "r"),
                          progress=False, plot=False, topk=False))
    env = {k: v for k, v in os.environ.items() if k != "KGREC_DATA"}
    env["KGREC_CACHE"] = str(tmp_path / "empty-cache")  # no converted data to fall back on
    code = ("import sys, kgrec; a = kgrec.load(sys.argv[1]); "
            "print(' '.join(a.recommend([a.user_labels[0]], 4)[0]))")
    out = subprocess.run([sys.executable, "-c", code, str(res.run_dir)], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    art = kgrec.load(res.run_dir)
    expected = art.recommend([art.user_labels[0]], 4)[0]
    assert out == expected and len(out) == 4
    again = subprocess.run([sys.executable, "-m", "kgrec.cli", "evaluate", str(res.run_dir),
                            "--json", "--no-topk"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test"]["auc"] == pytest.approx(res.metrics["test"]["auc"])


def test_unknown_user_is_named(tiny_catalog, tmp_path):
    res = train(RunConfig(dataset="tiny", model="pop", epochs=1, out=str(tmp_path / "p"),
                          progress=False, plot=False, topk=False))
    with pytest.raises(KeyError, match="unknown user id"):
        kgrec.load(res.run_dir).recommend(["no-such-user"], 3)
