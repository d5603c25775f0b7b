"""The run layer over the general trainer: several processes (torchrun, gloo), resuming a run
directory, ``python -m kgrec``, per-run optimizer / schedule / device options."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.experiments.run import RunConfig, resume_config, train


def _cfg(tmp_path, name, **kw):
    base = dict(dataset="synthetic", model="bpr-mf", out=str(tmp_path / name), progress=False,
                topk=False, plot=False, epochs=3, params={"dim": 8})
    return RunConfig(**{**base, **kw})


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("KGREC_DATA", None)  # synthetic data only
    return env


def test_python_dash_m_kgrec():
    r = subprocess.run([sys.executable, "-m", "kgrec", "models"], capture_output=True,
                       text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "mkr" in r.stdout and "bpr-mf" in r.stdout


def test_torchrun_two_processes_matches_one(tmp_path):
    """DDP on 2 CPU processes (gloo): each rank trains half of every batch, gradients are
    averaged, so a step is the one-process step up to float summation order."""
    one = train(_cfg(tmp_path, "one")).metrics
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "kgrec", "train", "-d", "synthetic", "-m", "bpr-mf", "--epochs", "3",
           "--set", "dim=8", "--no-topk", "-q", "--out", str(tmp_path / "two")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("test   AUC") == 1  # rank 0 reports, rank 1 stays quiet
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["test"]["auc"] == pytest.approx(one["test"]["auc"], abs=0.005)
    assert two["best_epoch"] == one["best_epoch"]
    for h1, h2 in zip(one["history"], two["history"], strict=True):
        assert h2["losses"]["rec"] == pytest.approx(h1["losses"]["rec"], rel=1e-3)


def test_resume_a_run_directory_equals_an_uninterrupted_run(tmp_path):
    full = train(_cfg(tmp_path, "full", epochs=4)).metrics
    train(_cfg(tmp_path, "part", epochs=2))
    cfg = resume_config(tmp_path / "part", epochs=4)
    assert cfg.epochs == 4 and cfg.resume == str(tmp_path / "part")
    resumed = train(cfg).metrics
    assert len(resumed["history"]) == 4
    assert resumed["test"]["auc"] == pytest.approx(full["test"]["auc"], abs=1e-9)
    assert [h["losses"] for h in resumed["history"]] == [h["losses"] for h in full["history"]]


def test_cli_resume_and_train_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r"
    r = runner.invoke(app, ["train", "-m", "bpr-mf", "--epochs", "2", "--out", str(out), "-q",
                            "--no-topk", "--optimizer", "adagrad", "--lr-schedule", "cosine",
                            "--clip-norm", "5", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    run = json.loads((out / "config.json").read_text())["run"]
    assert run["optimizer"] == "adagrad" and run["lr_schedule"] == "cosine"
    assert json.loads((out / "metrics.json").read_text())["device"] == "cpu"
    ckpt = __import__("torch").load(out / "checkpoint.pt", weights_only=True)
    assert "sum" in next(iter(ckpt["trainer"]["optimizers"]["rec"]["state"].values()))  # Adagrad
    r = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 3
    r = runner.invoke(app, ["train", "--resume", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "config.json" in r.output
    r = runner.invoke(app, ["train", "--optimizer", "rmsprop", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "optimizer" in r.output


def test_sparse_runs_keep_the_step_budget():
    """--train-ratio r divides the preset's epochs by r unless --epochs is given."""
    from kgrec.experiments.run import RunConfig, resolve

    epochs = {r: resolve(RunConfig(dataset="music", model="mkr", train_ratio=r))[1]
              for r in (1.0, 0.5, 0.2, 0.1, 0.3)}
    assert epochs == {1.0: 10, 0.5: 20, 0.2: 50, 0.1: 100, 0.3: 34}
    assert resolve(RunConfig(dataset="music", model="mkr", train_ratio=0.1, epochs=7))[1] == 7
    # --set epochs=N stands in for the preset's value (scaled alike); --epochs stays exact
    params, n = resolve(RunConfig(dataset="music", model="mkr", params={"epochs": 4}))
    assert n == 4 and "epochs" not in params
    assert resolve(RunConfig(dataset="music", model="mkr", train_ratio=0.5,
                             params={"epochs": 4}))[1] == 8
    assert resolve(RunConfig(dataset="music", model="mkr", epochs=3,
                             params={"epochs": 4}))[1] == 3


def test_training_negatives_come_from_the_run_then_the_preset(tmp_path):
    """--negatives wins; else the preset's ``negatives`` (a tuned section's, --set); else
    fixed. The model never sees the key, and the run records the regime it trained with."""
    import json

    from kgrec.config.coerce import ConfigError
    from kgrec.experiments.run import RunConfig, resolve, train, training_negatives

    assert training_negatives(RunConfig(dataset="music", model="kgmf")) == "fixed"
    fresh = RunConfig(dataset="music", model="kgmf", params={"negatives": "resample"})
    assert training_negatives(fresh) == "resample"
    assert "negatives" not in resolve(fresh)[0]
    fresh.negatives = "fixed"
    assert training_negatives(fresh) == "fixed"
    with pytest.raises(ConfigError, match="negatives"):
        training_negatives(RunConfig(model="kgmf", params={"negatives": "sometimes"}))
    out = tmp_path / "r"
    train(RunConfig(model="mf", epochs=1, params={"negatives": "resample"}, out=str(out),
                    progress=False, plot=False, topk=False))
    assert json.loads((out / "config.json").read_text())["run"]["negatives"] == "resample"


def test_fresh_negatives_never_touch_held_out_rows():
    """Under the CTR protocol a fresh negative (--negatives resample, and the BPR-trained
    models' own draws) is never a validation or test pair: a drawn test negative would be
    trained on with its test label. A sampler that excludes the training positives only
    does draw them on this data, so the check can fail."""
    import numpy as np

    from kgrec.data.sampling import PairSet
    from kgrec.experiments.run import RunConfig, _train_data, prepare_data
    from kgrec.models.cf.bpr_mf import bpr_rows, sample_bpr_triples

    cfg = RunConfig(model="mf", negatives="resample")
    ds, split = prepare_data(cfg)
    data = _train_data(ds, split, cfg)
    out = np.r_[split.valid, split.test]
    held = PairSet(out[:, 0], out[:, 1], ds.n_items)
    bpr = bpr_rows(data, ds.n_users, ds.n_items)
    train_pos = PairSet(bpr.pos[:, 0], bpr.pos[:, 1], ds.n_items)
    naive_hits = 0
    for epoch in range(3):
        rows = data.rec_rows(epoch)
        fresh = rows[rows[:, 2] == 0]
        assert len(fresh) and not held.contains(fresh[:, 0], fresh[:, 1]).any()
        t = sample_bpr_triples(bpr.pos, ds.n_items, bpr.exclude, np.random.default_rng(epoch))
        assert not held.contains(t[:, 0], t[:, 2]).any()
        naive = sample_bpr_triples(bpr.pos, ds.n_items, train_pos, np.random.default_rng(epoch))
        naive_hits += int(held.contains(naive[:, 0], naive[:, 2]).sum())
    assert naive_hits > 0
