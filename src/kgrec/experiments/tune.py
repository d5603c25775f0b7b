"""Hyper-parameter search on the validation split: ``kgrec tune -d D -m M --trials N``.

Optuna's TPE sampler (Bergstra et al., NeurIPS'11) proposes values from the ``[search]``
section of the model's preset file, after a first trial at the preset's own values; every
trial is one ``kgrec train`` run with ``evaluate_test=False``, so the test split is never
scored; the median pruner stops a trial whose validation metric at an epoch falls below the
median of earlier trials at that epoch.
The study lives in a journal file in the output folder, so an interrupted search resumes and
several worker processes (``--workers``) share it. The output folder gets ``best.toml`` (the
best values as a preset section for the dataset), ``report.md``, ``history.png`` and
``importance.png`` (fANOVA parameter importances).
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kgrec.config import load_search_space
from kgrec.config.coerce import ConfigError
from kgrec.experiments.run import (
    CTR_METRICS,
    RunConfig,
    check_run_config,
    monitor_name,
    resolve,
    train,
)
from kgrec.models import MODELS, is_variant, resolve_name
from kgrec.utils.io import atomic_write_text

__all__ = ["TuneConfig", "check_space", "search_space", "tune"]

_KINDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
          "categorical": {"choices"}}
LOSS_LIKE = ("logloss", "loss")


@dataclass
class TuneConfig:
    """Settings of a search.

    Attributes:
        trials: finished (complete or pruned) trials the study should hold; a resumed study
            runs only the missing ones (several workers may overshoot by a trial each).
        metric: validation metric to optimise (None: the run's monitor, ``auc`` for the CTR
            protocol, ``ndcg@<first K>`` for the ranking ones).
        workers: processes running trials at once (one torch thread each).
        seed: seeds the sampler (each trial's run uses the base run's seed).
        out: output folder (None: ``runs/tune/<dataset>-<model>``).
        prune: stop unpromising trials early (median pruner, after 5 trials and 2 epochs).
        keep_runs: keep every trial's run directory (else only the best trial's).
    """

    trials: int = 20
    metric: str | None = None
    workers: int = 1
    seed: int = 0
    out: str | None = None
    prune: bool = True
    keep_runs: bool = False


def check_space(space: dict[str, Any], fields: set[str], model: str) -> dict[str, dict]:
    """Validate a ``[search]`` section against the model's config fields; a
    :class:`ConfigError` names the parameter and the problem."""
    if not space:
        raise ConfigError(f"model {model!r} declares no search space ([search] in its "
                          "preset file); nothing to tune")
    out = {}
    for name, spec in space.items():
        where = f"[search] {name} of model {model!r}"
        if name not in fields:
            raise ConfigError(f"{where}: not a parameter of the model "
                              f"({', '.join(sorted(fields))})")
        if not isinstance(spec, dict) or spec.get("type") not in _KINDS:
            raise ConfigError(f"{where}: needs type = float, int or categorical")
        kind = spec["type"]
        extra = set(spec) - _KINDS[kind] - {"type"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {sorted(extra)} for type {kind}")
        if kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ConfigError(f"{where}: choices must be a non-empty list")
        else:
            lo, hi = spec.get("low"), spec.get("high")
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lo, hi)) \
                    or not lo < hi:
                raise ConfigError(f"{where}: needs numbers low < high, got {lo!r}, {hi!r}")
            if spec.get("log") and lo <= 0:
                raise ConfigError(f"{where}: log scale needs low > 0")
        out[name] = dict(spec)
    return out


def search_space(model: str) -> dict[str, dict]:
    """The model's checked search space, less the fields a variant fixes (``mkr-nokg``'s
    ``kge_interval``)."""
    from kgrec.models import model_config

    name = resolve_name(model)
    spec = MODELS[name]
    fields = {f.name for f in dataclasses.fields(model_config(name, {}))}
    space = check_space(load_search_space(spec.preset), fields, model)
    return {k: v for k, v in space.items() if k not in spec.fixed}


def suggest(trial, space: dict[str, dict]) -> dict[str, Any]:
    """One value per parameter from an Optuna trial."""
    out = {}
    for name, s in space.items():
        if s["type"] == "categorical":
            out[name] = trial.suggest_categorical(name, s["choices"])
        elif s["type"] == "int":
            out[name] = trial.suggest_int(name, int(s["low"]), int(s["high"]),
                                          log=bool(s.get("log", False)),
                                          step=int(s.get("step", 1)))
        else:
            out[name] = trial.suggest_float(name, float(s["low"]), float(s["high"]),
                                            log=bool(s.get("log", False)),
                                            step=s.get("step"))
    return out


def _preset_point(base: RunConfig, space: dict[str, dict]) -> dict[str, Any]:
    """The preset's values of the searched parameters (those inside the space), so that the
    first trial is the preset and the search never reports a worse validation figure. A
    parameter the preset leaves out takes the model's default (DKN's ``optimizer``)."""
    from kgrec.models import model_config

    params, _ = resolve(base)
    defaults = model_config(resolve_name(base.model), {})
    out = {}
    for name, s in space.items():
        v = params.get(name, getattr(defaults, name, None))
        if v is None or not in_space(s, v):
            continue
        out[name] = v if s["type"] == "categorical" else (
            int(v) if s["type"] == "int" else float(v))
    return out


def _tuned_point(base: RunConfig, space: dict[str, dict]) -> dict[str, Any]:
    """The searched values of the dataset's tuned section (``[<dataset>.tuned]``), or {}
    where there is none (or the model is a variant, which shares its base's file)."""
    from kgrec.config import tuned_values

    name = resolve_name(base.model)
    if base.tuned or is_variant(name) or not tuned_values(MODELS[name].preset, base.dataset):
        return {}
    return _preset_point(dataclasses.replace(base, tuned=True), space)


def in_space(spec: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is one of a parameter's searched values."""
    if spec["type"] == "categorical":
        return value in spec["choices"]
    return spec["low"] <= value <= spec["high"]


def _direction(metric: str) -> str:
    name = metric.split("@")[0]
    return "minimize" if name in LOSS_LIKE or name.endswith("_loss") else "maximize"


def _metric(base: RunConfig, tc: TuneConfig) -> str:
    metric = tc.metric or monitor_name(base)
    if not base.ranking and metric not in CTR_METRICS:
        raise ConfigError(f"--metric {metric}: the ctr protocol validates on "
                          f"{', '.join(CTR_METRICS)}; ranking metrics need a ranking protocol "
                          "(--protocol loo, user-split or cold-items)")
    if base.ranking and "@" not in metric:
        raise ConfigError(f"--metric {metric}: a ranking protocol validates on metrics at a "
                          f"cut-off, e.g. ndcg@{min(base.ks)} or recall@{max(base.ks)}")
    if base.ranking and int(metric.split("@")[1]) not in base.ks:
        raise ConfigError(f"--metric {metric}: its cut-off is not among --ks {base.ks}")
    return metric


def _study(out: Path, name: str, tc: TuneConfig, direction: str, worker: int = 0):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2) if tc.prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                direction=direction, pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=tc.seed + 1000 * worker))
    if study.direction.name.lower() != direction:
        raise ConfigError(f"{out}/study.journal holds a study that should {study.direction.name}"
                          f" its metric, this search {direction}s {tc.metric!r}: use another "
                          "--out")
    return study


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                        TrialState.PRUNED)))


def _worker(base: RunConfig, tc: TuneConfig, out: str, name: str, metric: str,
            space: dict[str, dict], worker: int = 0) -> None:
    """Run trials until the study holds ``tc.trials`` finished ones (one process; each
    worker's sampler has its own seed, so workers do not propose the same values)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = _study(Path(out), name, tc, _direction(metric), worker)

    def objective(trial) -> float:
        params = {**base.params, **suggest(trial, space)}
        run_dir = Path(out) / "trials" / f"trial-{trial.number:04d}"
        cfg = dataclasses.replace(base, params=params, out=str(run_dir), force=True,
                                  topk=False, plot=False, progress=False,
                                  evaluate_test=False, monitor=metric, resume=None)

        def on_epoch(epoch: int, valid: dict[str, float]) -> None:
            trial.report(float(valid[metric]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        res = train(cfg, on_epoch=on_epoch)
        trial.set_user_attr("best_epoch", res.metrics["best_epoch"])
        trial.set_user_attr("seconds", res.metrics["timings"]["total_seconds"])
        return float(res.metrics["valid"][metric])

    if _finished(study) < tc.trials:
        study.optimize(objective, n_trials=tc.trials, catch=(),
                       callbacks=[MaxTrialsCallback(tc.trials, states=(TrialState.COMPLETE,
                                                                       TrialState.PRUNED))])


def tune(base: RunConfig, tc: TuneConfig) -> dict[str, Any]:
    """Search the model's ``[search]`` space on the validation split of ``base``'s run
    (never its test split); returns ``{"best_value", "best_params", "out", ...}`` and writes
    the output folder (see the module docstring)."""
    check_run_config(base)
    if tc.trials < 1:
        raise ConfigError(f"--trials: must be >= 1, got {tc.trials}")
    if tc.workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {tc.workers}")
    metric = _metric(base, tc)
    space = search_space(base.model)
    out = Path(tc.out or Path("runs") / "tune" / f"{base.dataset}-{base.model}")
    out.mkdir(parents=True, exist_ok=True)
    name = f"{base.dataset}-{base.model}-{base.protocol}-{metric}"
    study = _study(out, name, tc, _direction(metric))
    done_before = _finished(study)
    if not study.get_trials(deepcopy=False):  # a new study: the preset is trial 0
        start = _preset_point(base, space)
        outside = sorted(set(space) - set(start))
        if outside:  # a preset value the space does not hold: trial 0 is not the preset
            import logging

            logging.getLogger("kgrec").warning(
                "preset values outside the search space of %s (trial 0 draws them): %s",
                base.model, ", ".join(outside))
        if start:
            study.enqueue_trial(start)
        # a model already tuned on this dataset: its tuned values are trial 1, so a new
        # search (under other negatives, a longer run) starts from both known points
        earlier = _tuned_point(base, space)
        if earlier and earlier != start:
            study.enqueue_trial(earlier)
    args = (base, tc, str(out), name, metric, space)
    if tc.workers == 1:
        _worker(*args)
    else:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(*args, w)) for w in range(tc.workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:
            raise RuntimeError(f"{len(bad)} tune worker(s) failed (exit codes {bad}); the "
                               f"study in {out} keeps every finished trial: run again to "
                               "resume")
    study = _study(out, name, tc, _direction(metric))
    return _report(study, base, tc, out, metric, space, done_before)


def _report(study, base: RunConfig, tc: TuneConfig, out: Path, metric: str,
            space: dict[str, dict], done_before: int) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"no trial of the study in {out} finished (all pruned or failed)")
    best = study.best_trial
    if not tc.keep_runs:  # the best trial's run stays: kgrec evaluate / recommend work on it
        for t in trials:
            d = out / "trials" / f"trial-{t.number:04d}"
            if t.number != best.number and d.is_dir():
                shutil.rmtree(d)
    importances: dict[str, float] = {}
    if len(complete) >= 2 and len(space) >= 2:
        import optuna

        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):  # too few distinct values to attribute variance
            importances = {}
    from kgrec.viz.plots import tune_history_plot, tune_importance_plot

    plots = [tune_history_plot([(t.number, t.value) for t in complete],
                               [t.number for t in trials if t.state == TrialState.PRUNED],
                               metric, study.direction.name.lower() == "maximize",
                               out / "history.png")]
    if importances:
        plots.append(tune_importance_plot(importances, out / "importance.png"))
    section = (base.dataset if re.fullmatch(r"[A-Za-z0-9_-]+", base.dataset)
               else json.dumps(base.dataset))  # a TOML key
    toml = [f"# kgrec tune -d {base.dataset} -m {base.model} --protocol {base.protocol}: "
            f"best validation {metric} {best.value:.4f} (trial {best.number}, "
            f"{len(complete)} complete trials), "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}",
            f"# paste into src/kgrec/config/presets/{MODELS[resolve_name(base.model)].preset}"
            ".toml (then `kgrec train --tuned` uses it), or train with the --set flags in "
            "report.md"]
    toml.append(f"[{section}.tuned]")
    # what a run needs besides the searched values: the study's fixed --set values, its
    # --epochs (a study run longer than the preset is tuned at that length) and its
    # --negatives (a study under fresh negatives is tuned for them)
    settings = {**base.params, **best.params}
    fresh = base.negatives not in (None, "fixed")
    toml += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    if fresh:
        toml.append(f"negatives = {_toml_value(base.negatives)}")
    if base.epochs is not None:
        toml.append(f"epochs = {base.epochs}")
    atomic_write_text(out / "best.toml", "\n".join(toml) + "\n")
    sets = " ".join(f"--set {k}={v}" for k, v in settings.items())
    regime = f"--negatives {base.negatives} " if fresh else ""
    command = (f"kgrec train -d {base.dataset} -m {base.model} --protocol {base.protocol} "
               + regime + ("" if base.epochs is None else f"--epochs {base.epochs} ") + sets)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    checksum = "-"
    best_metrics = out / "trials" / f"trial-{best.number:04d}" / "metrics.json"
    if best_metrics.is_file():
        checksum = json.loads(best_metrics.read_text()).get("data_checksum", "-")
    tune_cmd = (f"kgrec tune -d {base.dataset} -m {base.model} --protocol {base.protocol} "
                + regime
                + f"--trials {max(tc.trials, len(complete) + n_pruned)} --metric {metric} "
                f"--seed {tc.seed} --workers {tc.workers}"
                + ("" if tc.prune else " --no-prune")
                + ("" if base.epochs is None else f" --epochs {base.epochs}")
                + "".join(f" --set {k}={v}" for k, v in base.params.items()))
    lines = [
        f"# Tuning {base.model} on {base.dataset} ({base.protocol}): validation {metric}",
        "",
        f"`{tune_cmd}`; data checksum {checksum}.",
        "",
        f"{len(complete)} complete and {n_pruned} pruned trials ({len(trials)} in the study; "
        f"{len(trials) - done_before if done_before else len(trials)} run by this call), "
        f"TPE sampler seed {tc.seed}, runs with seed {base.seed}; the test split was never "
        "scored.",
        "",
        f"**Best: {metric} = {best.value:.4f}** (trial {best.number}, best epoch "
        f"{best.user_attrs.get('best_epoch')}): `{command}`",
        "",
        *_budget_warning(base, best.user_attrs.get("best_epoch")),
        "| trial | state | " + f"valid {metric} | " + " | ".join(space) + " |",
        "|---" * (len(space) + 3) + "|",
    ]
    for t in trials:
        val = "-" if t.value is None else f"{t.value:.4f}"
        lines.append(f"| {t.number} | {t.state.name.lower()} | {val} | "
                     + " | ".join(_fmt(t.params.get(k)) for k in space) + " |")
    if importances:
        lines += ["", "Parameter importances (fANOVA): " + ", ".join(
            f"{k} {v:.2f}" for k, v in importances.items())]
    lines += ["", "Plots: " + ", ".join(p.name for p in plots), ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    result = {"best_value": best.value, "best_params": best.params, "best_trial": best.number,
              "metric": metric, "complete": len(complete), "pruned": n_pruned,
              "out": str(out), "command": command, "tune_command": tune_cmd,
              "data_checksum": checksum, "importances": importances,
              "trials": [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
                          "params": t.params, **t.user_attrs} for t in trials]}
    atomic_write_text(out / "best.json", json.dumps(result, indent=1) + "\n")
    return result


def _budget_warning(base: RunConfig, best_epoch: int | None) -> list[str]:
    """A report line when the best trial peaked in the last tenth of its epochs: the run
    length, which the search does not cover, may still bind."""
    n_epochs = resolve(base)[1]
    if best_epoch is None or best_epoch < n_epochs - max(1, n_epochs // 10):
        return []
    return [f"The best trial peaked at epoch {best_epoch} of {n_epochs}: the run length "
            f"binds. A study with `--epochs {2 * n_epochs}` (and a fresh `--out`) may find "
            "more.", ""]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    return str(v)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)
