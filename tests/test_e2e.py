"""End-to-end runs as a user starts them: synthetic default, the shared Last.FM data, the CLI."""

import json

import pytest
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.experiments.run import RunConfig, evaluate_run, train


def _run(tmp_path, **kw):
    cfg = RunConfig(out=str(tmp_path / kw.get("model", "mkr")), progress=False, topk=False, **kw)
    return train(cfg)


def test_mkr_on_synthetic_default(tmp_path):
    res = _run(tmp_path, epochs=4)
    m = res.metrics
    assert m["dataset"] == "synthetic" and m["model"] == "mkr"
    assert m["test"]["auc"] > 0.68, m["test"]  # random is 0.5; 10 epochs reach ~0.72
    assert 0 <= m["best_epoch"] < 4 and len(m["history"]) == 4
    for f in ("config.json", "metrics.json", "checkpoint.pt", "learning_curve.svg"):
        assert (res.run_dir / f).is_file()
    again = evaluate_run(res.run_dir, topk=False)
    assert again["test"]["auc"] == pytest.approx(m["test"]["auc"], abs=1e-9)


def test_kg_aware_beats_kg_blind_on_synthetic(tmp_path):
    """The generator plants topics that only the KG reveals: KG-MF must beat plain MF."""
    kg = _run(tmp_path, model="kgmf", epochs=8).metrics["test"]["auc"]
    blind = _run(tmp_path, model="mf", epochs=8).metrics["test"]["auc"]
    assert kg > blind + 0.03, (kg, blind)


def test_mkr_on_shared_music(tmp_path, data_dir, monkeypatch):
    """The authors' Last.FM preset; the paper reports AUC 0.797, seed 0 gives ~0.797."""
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    m = _run(tmp_path, dataset="music", seed=0).metrics
    assert m["test"]["auc"] > 0.78, m["test"]
    assert m["test"]["acc"] > 0.72, m["test"]
    assert m["data_checksum"] and "user_artists.dat" in m["source_checksums"]


def test_cli_train_evaluate_datasets(tmp_path, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--epochs", "2", "--out", str(out), "--quiet",
                            "--set", "dim=4", "--no-topk"])
    assert r.exit_code == 0, r.output
    assert "test   AUC" in r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_params"]["dim"] == 4
    r = runner.invoke(app, ["evaluate", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["test"]["auc"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["test"]["auc"])
    r = runner.invoke(app, ["train", "--set", "nonsense=1", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "nonsense" in r.output
    assert not (tmp_path / "x").exists()
    r = runner.invoke(app, ["evaluate", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "missing" in r.output
    r = runner.invoke(app, ["datasets", "--no-stats"])
    assert r.exit_code == 0 and "music" in r.output and "movie-half" in r.output
