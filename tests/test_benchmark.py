"""`kgrec benchmark`: the table maths and a quick run end to end on the synthetic dataset."""

import json
import math

import pytest
from scipy import stats
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.experiments.benchmark import BenchmarkConfig, Job, ctr_rows, plan_jobs, topk_curves


def _result(model, seed, auc, acc, dataset="music", **job):
    j = {"dataset": dataset, "model": model, "seed": seed, "train_ratio": 1.0, "kg_ratio": 1.0,
         "kg_shuffle": False, "params": {}, **job}
    topk = {f"{m}@{k}": auc * k / 100 for m in ("precision", "recall", "ndcg", "hit")
            for k in (10, 20)}
    return {"key": f"{model}{seed}{job}", "job": j, "test": {"auc": auc, "acc": acc},
            "valid": {}, "test_topk": topk, "seconds": 2.0, "seconds_per_epoch": 0.5,
            "data_checksum": "x"}


def test_ctr_rows_maths_by_hand():
    res = [_result("mkr", 0, 0.80, 0.70), _result("mkr", 1, 0.82, 0.72),
           _result("mkr", 2, 0.81, 0.71),
           _result("fm", 0, 0.78, 0.69), _result("fm", 1, 0.79, 0.70),
           _result("fm", 2, 0.79, 0.70),
           _result("mkr", 0, 0.5, 0.5, train_ratio=0.1),  # another section: not in the table
           _result("fm", 0, 0.9, 0.9, dataset="book")]
    rows = {r["model"]: r for r in ctr_rows(res, "music", ["fm", "mkr", "ripplenet"])}
    assert set(rows) == {"fm", "mkr"}  # no runs, no row
    fm = rows["fm"]
    assert fm["n"] == 3
    assert fm["auc"][0] == pytest.approx((0.78 + 0.79 + 0.79) / 3)
    assert fm["auc"][1] == pytest.approx(stats.tstd([0.78, 0.79, 0.79]))
    assert fm["rel_auc"] == pytest.approx(((0.78 + 1.58) / 3 - 0.81) / 0.81)
    assert fm["p"] == pytest.approx(stats.ttest_rel([0.78, 0.79, 0.79], [0.80, 0.82, 0.81]).pvalue)
    assert fm["paper"] == (0.777, 0.709)
    assert rows["mkr"]["rel_auc"] == 0.0 and math.isnan(rows["mkr"]["p"])
    curves = topk_curves(res, "music", ["fm"])
    assert curves["fm"]["ks"] == [10, 20]
    assert curves["fm"]["recall"][1] == pytest.approx(fm["auc"][0] * 20 / 100)


def test_stalled_runs_are_flagged_not_averaged():
    res = [_result("mkr", 0, 0.80, 0.70), _result("mkr", 1, 0.505, 0.5),
           _result("mkr", 2, 0.82, 0.72),
           _result("fm", 0, 0.78, 0.69), _result("fm", 1, 0.79, 0.70),
           _result("fm", 2, 0.495, 0.5)]
    rows = {r["model"]: r for r in ctr_rows(res, "music", ["fm", "mkr"])}
    assert rows["mkr"]["stalled"] == [1] and rows["mkr"]["n"] == 2
    assert rows["mkr"]["auc"][0] == pytest.approx(0.81)
    assert rows["fm"]["stalled"] == [2] and rows["fm"]["auc"][0] == pytest.approx(0.785)
    # paired only on seeds where neither stalled: seed 0 alone, too few for a t-test
    assert math.isnan(rows["fm"]["p"])
    assert rows["fm"]["rel_auc"] == pytest.approx((0.785 - 0.81) / 0.81)


def test_plan_merges_duplicates_and_skips_kg_ablations_of_cf_models():
    cfg = BenchmarkConfig(datasets=["synthetic"], models=["mkr", "mf"], seeds=2,
                          sparse_models=["mkr"], sparse_ratios=[0.5, 1.0], sparse_seeds=1,
                          kg_models=["mkr", "mf"], kg_ratios=[0.5], kg_seeds=1,
                          intervals=[1], dims=[8])
    jobs = plan_jobs(cfg)
    keys = [j.key for j in jobs]
    assert len(keys) == len(set(keys))
    base = Job(dataset="synthetic", model="mkr", seed=0)
    merged = [j for j in jobs if j.key == base.key]
    assert len(merged) == 1 and merged[0].topk  # ctr run with top-K serves sparse ratio 1.0
    assert not any(j.model == "mf" and (j.kg_ratio < 1 or j.kg_shuffle) for j in jobs)
    # ctr 2x2 + sparse 0.5 + kg (none, shuffled, 0.5) + sensitivity 2 = 10
    assert len(jobs) == 10


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        BenchmarkConfig(models=["nope"])
    with pytest.raises(ValueError, match="unknown section"):
        BenchmarkConfig(sections=["ctr", "bogus"])


def test_quick_benchmark_end_to_end(tmp_path):
    out, runs = tmp_path / "results", tmp_path / "runs"
    args = ["benchmark", "--datasets", "synthetic", "--models", "mf,kgmf,mkr", "--quick",
            "--sparse-models", "mkr,mf", "--kg-models", "mkr,kgmf", "--out-dir", str(out),
            "--runs-dir", str(runs), "--name", "q", "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    md = (out / "q.md").read_text()
    for heading in ("CTR prediction", "Top-K", "Sparse training", "KG ablations",
                    "MKR sensitivity"):
        assert heading in md
    assert "kgrec benchmark --datasets synthetic --models mf,kgmf,mkr" in md
    assert "{" not in md  # no unformatted template left
    data = json.loads((out / "q.json").read_text())
    assert data["data_checksums"]["synthetic"]
    for png in data["plots"]:
        assert (out / png).stat().st_size > 1000
    aucs = {(r["job"]["model"], r["job"]["seed"]): r["test"]["auc"] for r in data["runs"]
            if r["job"]["train_ratio"] == 1 and r["job"]["kg_ratio"] == 1
            and not r["job"]["kg_shuffle"] and not r["job"]["params"]}
    assert set(aucs) >= {(m, s) for m in ("mf", "kgmf", "mkr") for s in (0, 1)}
    assert all(0.55 < a < 1 for a in aucs.values())
    # a second invocation resumes: nothing to run, same figures
    res2 = CliRunner().invoke(app, args)
    assert res2.exit_code == 0 and "0 to run" in res2.output
    again = json.loads((out / "q.json").read_text())
    assert [r["test"] for r in again["runs"]] == [r["test"] for r in data["runs"]]
    # a run logged from other data (a changed file or conversion) is run again, not resumed
    log = runs / "q" / "jobs.jsonl"
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    first["data_version"] = "0" * 16
    log.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    res3 = CliRunner().invoke(app, args)
    assert res3.exit_code == 0 and "1 finished run(s)" in res3.output and "1 to run" in res3.output


def test_cold_section_and_kg_value_table(tmp_path):
    """``--sections kg,cold``: every KG model under cold-items with its full graph, none and
    shuffled tails, the baselines, the random floor, and the KG-value table."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    args = ["benchmark", "--datasets", "synthetic", "--models", "mkr", "--quick",
            "--sections", "kg,cold", "--kg-models", "kgmf", "--kg-ratios", "0.5",
            "--cold-models", "kgmf", "--cold-baselines", "pop", "--cold-seeds", "2",
            "--out-dir", str(out), "--runs-dir", str(runs), "--name", "c", "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    md = (out / "c.md").read_text()
    assert "Cold-start items" in md and "The KG-value table" in md
    assert "--cold-models kgmf --cold-baselines pop --cold-seeds 2" in md
    runs_ = json.loads((out / "c.json").read_text())["runs"]
    cold = [r for r in runs_ if r["job"]["protocol"] == "cold-items"]
    # pop x 2 seeds + kgmf x {full, none, shuffled} x 2 seeds
    assert len(cold) == 8
    assert {(r["job"]["kg_ratio"], r["job"]["kg_shuffle"]) for r in cold
            if r["job"]["model"] == "kgmf"} == {(1.0, False), (0.0, False), (1.0, True)}
    for r in cold:
        assert 0 <= r["test"]["recall@20"] <= 1 and "auc" not in r["test"]
        assert r["test_slices"]["all_items"]["random_recall@20"] < \
            r["test_slices"]["cold"]["random_recall@20"]
    kg_full = [r for r in runs_ if r["job"]["protocol"] == "ctr" and r["job"]["kg_ratio"] == 1
               and not r["job"]["kg_shuffle"]]
    assert all(r["test_topk"] for r in kg_full)  # the KG-value table's ranking column
    row = next(line for line in md.splitlines()
               if line.startswith("| kgmf |") and ("helps" in line or "effect" in line
                                                   or "hurts" in line))
    assert row.count(" / ") == 6  # three views, full / none / shuffled each


def test_job_key_unchanged_for_ctr_runs():
    """Logs written before ``protocol`` existed still resume: a CTR job's key ignores it."""
    a = Job(dataset="music", model="mkr", seed=0)
    assert a.key == Job(dataset="music", model="mkr", seed=0, protocol="ctr").key
    assert a.key != Job(dataset="music", model="mkr", seed=0, protocol="cold-items").key
    assert a.key == "e37c4ed8709d1feb"  # the key of this job in earlier logs


def test_tuned_benchmark_runs_tuned_values_only_where_they_exist():
    from kgrec.config import tuned_values
    from kgrec.experiments.benchmark import _tuned_note

    cfg = BenchmarkConfig(datasets=["music"], models=["fm", "mkr-dcn", "pop"], seeds=1,
                          sections=["ctr", "sensitivity"], intervals=[2], dims=[],
                          tuned=True)
    planned = plan_jobs(cfg)
    # what each run trains with: the tuned values, then the section's own settings
    jobs = {(j.model, tuple(sorted({**dict(j.tuned), **dict(j.params)}.items())))
            for j in planned}
    fm = tuned_values("fm", "music")
    assert fm and ("fm", tuple(sorted(fm.items()))) in jobs
    assert ("mkr-dcn", ()) in jobs and ("pop", ()) in jobs  # a variant and an untuned model
    # the sensitivity setting overrides the tuned value it varies, the rest stay tuned
    mkr = {**tuned_values("mkr", "music"), "kge_interval": 2}
    assert ("mkr", tuple(sorted(mkr.items()))) in jobs
    # the section's settings stay apart from the tuned values (the tables select by them),
    # and a tuned run does not resume a preset run's log entry
    assert {j.params for j in planned if j.model == "fm"} == {()}
    assert {j.params for j in planned if j.model == "mkr"} == {(("kge_interval", 2),)}
    tuned_fm = next(j for j in planned if j.model == "fm")
    assert tuned_fm.key != Job(dataset="music", model="fm", seed=0).key
    note = _tuned_note(cfg)
    assert "fm (music)" in note and "mkr-dcn" not in note and "pop" not in note
    plain = {j.params for j in plan_jobs(BenchmarkConfig(datasets=["music"], models=["fm"],
                                                         seeds=1, sections=["ctr"]))}
    assert plain == {()} and _tuned_note(BenchmarkConfig()) == ""
    # only the sections that run count: no sparse or KG models in a ctr-only note
    only = _tuned_note(BenchmarkConfig(datasets=["music"], models=["fm"], seeds=1,
                                       sections=["ctr"], tuned=True))
    assert "fm (music)" in only and "cke" not in only and "mkr" not in only


def test_tuned_section_sets_the_training_negatives(monkeypatch):
    """A model tuned under fresh negatives runs so with --tuned (its own resume key); an
    explicit --negatives wins; runs without --tuned keep the paper's fixed negatives."""
    import kgrec.config

    real = kgrec.config.tuned_values
    monkeypatch.setattr(kgrec.config, "tuned_values", lambda model, ds: (
        {"dim": 8, "negatives": "resample"} if model == "kgmf" else real(model, ds)))

    def regimes(**kw):
        cfg = BenchmarkConfig(datasets=["music"], models=["kgmf", "fm"], seeds=1,
                              sections=["ctr"], **kw)
        return {j.model: j.negatives for j in plan_jobs(cfg)}

    assert regimes(tuned=True) == {"kgmf": "resample", "fm": "fixed"}
    assert regimes(tuned=True, negatives="fixed") == {"kgmf": "fixed", "fm": "fixed"}
    assert regimes() == {"kgmf": "fixed", "fm": "fixed"}


def test_tuned_report_fills_every_table(tmp_path):
    """``--tuned`` runs carry their tuned values apart from the section's settings, so the
    CTR and KG tables find them (they once selected none: an empty report)."""
    from kgrec.config import tuned_values
    from kgrec.experiments.benchmark import write_report

    cfg = BenchmarkConfig(datasets=["music"], models=["mkr", "cke"], seeds=2,
                          sections=["ctr", "kg"], kg_models=["cke"], kg_seeds=2,
                          kg_ratios=[1.0], tuned=True, name="t", out_dir=str(tmp_path))
    cke = tuned_values("cke", "music")
    assert cke
    res = []
    for j in plan_jobs(cfg):
        auc = 0.8 + 0.01 * j.seed - 0.05 * (j.kg_ratio == 0) - 0.03 * j.kg_shuffle
        r = _result(j.model, j.seed, auc, 0.7, kg_ratio=j.kg_ratio, kg_shuffle=j.kg_shuffle,
                    tuned=dict(j.tuned))
        r["key"] = j.key
        res.append(r)
    assert any(r["job"]["tuned"] == cke for r in res)
    write_report(cfg, res, wall_seconds=1.0)
    md = (tmp_path / "t.md").read_text()
    ctr = [line for line in md.splitlines() if line.startswith(("| mkr |", "| cke |"))]
    assert any(line.startswith("| cke | 0.8050 ± 0.0071") for line in ctr)
    kg = next(line for line in md.splitlines() if line.startswith("| cke | 0.8050")
              and "0.7550" in line)
    assert "0.7750" in kg  # full, no KG, shuffled tails
