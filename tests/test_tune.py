"""`kgrec tune`: search spaces, the test split never scored, resuming, the written preset."""

import json
import tomllib

import pytest
from typer.testing import CliRunner

import kgrec.experiments.run as run_mod
from kgrec.cli import app
from kgrec.config.coerce import ConfigError
from kgrec.experiments.run import RunConfig, train
from kgrec.experiments.tune import TuneConfig, check_space, search_space, tune

FIELDS = {"dim", "lr", "l2_weight"}


@pytest.mark.parametrize(("space", "msg"), [
    ({}, "declares no search space"),
    ({"depth": {"type": "int", "low": 1, "high": 3}}, "not a parameter"),
    ({"lr": {"type": "loguniform", "low": 1, "high": 3}}, "needs type"),
    ({"lr": {"type": "float", "low": 0.1, "high": 0.1}}, "low < high"),
    ({"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log scale"),
    ({"dim": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"dim": {"type": "categorical", "choices": [8], "low": 1}}, "unknown keys"),
])
def test_check_space_refuses(space, msg):
    with pytest.raises(ConfigError, match=msg):
        check_space(space, FIELDS, "mf")


def test_every_preset_space_is_valid_and_variants_keep_their_fixed_fields():
    from kgrec.models import MODELS

    for name in MODELS:
        if name != "pop":
            assert search_space(name), name
    assert "kge_interval" in search_space("mkr")
    assert "kge_interval" not in search_space("mkr-nokg")  # fixed to 0 by the variant


def _base(**kw):
    return RunConfig(**{"dataset": "synthetic", "model": "mf", "epochs": 2, "progress": False,
                        **kw})


def test_tune_never_scores_test_and_resumes(tmp_path, monkeypatch):
    real = run_mod._evaluation

    class Poison:
        def __getattr__(self, name):
            raise AssertionError("the test split was read during tuning")

        def __len__(self):
            raise AssertionError("the test split was read during tuning")

    def poisoned(cfg, split, n_items):
        evaluate, valid, _ = real(cfg, split, n_items)
        return evaluate, valid, Poison()

    monkeypatch.setattr(run_mod, "_evaluation", poisoned)
    out = tmp_path / "t"
    tc = TuneConfig(trials=3, out=str(out), prune=False)
    res = tune(_base(), tc)
    assert res["complete"] == 3 and res["metric"] == "auc"
    assert 0.5 < res["best_value"] <= 1.0
    best = tomllib.loads((out / "best.toml").read_text())["synthetic"]["tuned"]
    # the tuned section carries the study's run length (its --epochs) with the best values
    assert best == {**res["best_params"], "epochs": 2}
    assert set(res["best_params"]) == set(search_space("mf"))
    assert res["command"].startswith("kgrec train -d synthetic -m mf --protocol ctr --epochs 2 ")
    for f in ("report.md", "history.png", "importance.png", "study.journal"):
        assert (out / f).is_file(), f
    kept = sorted(p.name for p in (out / "trials").iterdir())
    assert kept == [f"trial-{res['best_trial']:04d}"]  # only the best run is kept
    # resuming adds the missing trials only
    res2 = tune(_base(), TuneConfig(trials=5, out=str(out), prune=False))
    assert res2["complete"] == 5
    assert "5 complete and 0 pruned trials (5 in the study; 2 run by this call)" in \
        (out / "report.md").read_text()
    assert res2["best_value"] >= res["best_value"]
    # asking for fewer trials than the study holds runs none and records what it holds
    res3 = tune(_base(), TuneConfig(trials=2, out=str(out), prune=False))
    assert res3["complete"] == 5 and "--trials 5 " in res3["tune_command"]


def test_metric_must_be_validated_by_the_protocol(tmp_path):
    with pytest.raises(ConfigError, match="ranking protocol"):
        tune(_base(), TuneConfig(trials=1, metric="ndcg@20", out=str(tmp_path)))
    with pytest.raises(ConfigError, match="not among --ks"):
        tune(_base(protocol="loo"), TuneConfig(trials=1, metric="ndcg@5", out=str(tmp_path)))
    with pytest.raises(ConfigError, match="declares no search space"):
        tune(RunConfig(model="pop", progress=False), TuneConfig(trials=1, out=str(tmp_path)))


def test_on_epoch_sees_each_validation_and_can_stop_a_run(tmp_path):
    seen = []
    train(_base(out=str(tmp_path / "a"), epochs=3, plot=False, topk=False),
          on_epoch=lambda e, v: seen.append((e, round(v["auc"], 6))))
    assert [e for e, _ in seen] == [0, 1, 2]

    class Stop(Exception):
        pass

    def stop(epoch, valid):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(_base(out=str(tmp_path / "b"), epochs=3), on_epoch=stop)
    assert not (tmp_path / "b" / "metrics.json").exists()


def test_evaluate_test_false_leaves_test_empty(tmp_path):
    res = train(_base(out=str(tmp_path / "r"), evaluate_test=False, plot=False))
    assert res.metrics["test"] is None and res.metrics["test_topk"] is None


def test_cli_tune(tmp_path):
    r = CliRunner().invoke(app, ["tune", "-m", "mf", "--trials", "2", "--epochs", "1",
                                 "--out", str(tmp_path / "c"), "--no-prune"])
    assert r.exit_code == 0, r.output
    assert "best validation auc" in r.output and "--set dim=" in r.output
    # a study under fresh negatives trains every trial so and says so in what it writes
    r = CliRunner().invoke(app, ["tune", "-m", "mf", "--trials", "1", "--epochs", "1",
                                 "--negatives", "resample", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert "kgrec train -d synthetic -m mf --protocol ctr --negatives resample" in r.output
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    assert "--negatives resample" in best["tune_command"]
    best = tomllib.loads((tmp_path / "r" / "best.toml").read_text())["synthetic"]["tuned"]
    assert best["negatives"] == "resample" and best["epochs"] == 1
    r = CliRunner().invoke(app, ["tune", "-m", "mf", "--metric", "recall@20",
                                 "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "ranking protocol" in r.output


def test_first_trial_is_the_preset(tmp_path):
    from kgrec.experiments.run import resolve

    res = tune(_base(), TuneConfig(trials=1, out=str(tmp_path / "p"), prune=False))
    params, _ = resolve(_base())
    assert res["trials"][0]["params"] == {k: params[k] for k in search_space("mf")}


def test_a_new_search_starts_from_the_preset_then_the_earlier_tuned_values(
        tmp_path, data_dir, monkeypatch):
    from kgrec.config import tuned_values

    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    base = RunConfig(dataset="music", model="fm", epochs=1, progress=False)
    res = tune(base, TuneConfig(trials=2, out=str(tmp_path / "t"), prune=False))
    earlier = {k: v for k, v in tuned_values("fm", "music").items() if k in search_space("fm")}
    assert earlier and res["trials"][1]["params"] == pytest.approx(earlier)
    assert res["trials"][0]["params"] != res["trials"][1]["params"]


def test_every_preset_lies_inside_its_search_space():
    """So that a search's first trial is the preset itself."""
    from kgrec.models import MODELS

    for name in MODELS:
        if name == "pop":
            continue
        space = search_space(name)
        for ds in ("music", "book", "movie-half", "amazon-beauty", "ml-100k-kg"):
            params, _ = run_mod.resolve(RunConfig(dataset=ds, model=name))
            for k, s in space.items():
                v = params.get(k)
                if v is None:
                    continue
                ok = (v in s["choices"] if s["type"] == "categorical"
                      else s["low"] <= v <= s["high"])
                assert ok, (name, ds, k, v, s)


def test_the_preset_point_sets_every_searched_parameter():
    """Trial 0 is the whole preset: a searched parameter that the preset file leaves out
    takes the model's default (DKN's movie preset has no ``optimizer``: the authors' adam),
    not a value the sampler draws."""
    from kgrec.experiments.tune import _preset_point
    from kgrec.models import MODELS

    for name in MODELS:
        if name == "pop":
            continue
        space = search_space(name)
        for ds in ("music", "book", "movie-half", "amazon-beauty", "ml-100k-kg"):
            point = _preset_point(RunConfig(dataset=ds, model=name), space)
            assert set(point) == set(space), (name, ds, sorted(set(space) - set(point)))
    dkn = search_space("dkn")
    assert _preset_point(RunConfig(dataset="movie-half", model="dkn"), dkn)["optimizer"] == "adam"
    assert _preset_point(RunConfig(dataset="music", model="dkn"), dkn)["optimizer"] == "adamw"


def test_report_warns_when_the_best_trial_peaks_at_the_end():
    from kgrec.experiments.run import RunConfig
    from kgrec.experiments.tune import _budget_warning

    base = RunConfig(dataset="synthetic", model="mf", epochs=20)
    assert _budget_warning(base, 10) == [] and _budget_warning(base, None) == []
    (line, _) = _budget_warning(base, 19)
    assert "epoch 19 of 20" in line and "--epochs 40" in line
    assert _budget_warning(base, 18) != []  # the last tenth: epochs 18 and 19
