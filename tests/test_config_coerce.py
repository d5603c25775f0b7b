"""Typed ``--set`` values: conversion to each field's type and range checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kgrec.config.coerce import ConfigError, build_config, coerce_value
from kgrec.models import MODELS, model_config, resolve_name
from kgrec.models.kge import kge_config


@dataclass
class _Cfg:
    dim: int = 4
    lr: float = 0.1
    l2_weight: float = 0.0
    use_kg: bool = True
    init: str | None = None
    name: str = "x"


def test_strings_become_field_types():
    cfg = build_config(_Cfg, {"dim": "16", "lr": "1e-3", "use_kg": "false", "init": "None",
                              "name": "7"})
    assert cfg == _Cfg(dim=16, lr=1e-3, use_kg=False, init=None, name="7")
    assert isinstance(cfg.lr, float) and isinstance(cfg.dim, int)
    assert build_config(_Cfg, {"lr": 1}).lr == 1.0 and isinstance(build_config(_Cfg, {"lr": 1}).lr,
                                                                   float)
    assert build_config(_Cfg, {"dim": 8.0}).dim == 8


@pytest.mark.parametrize(("params", "message"), [
    ({"dim": -3}, "dim: must be >= 1, got -3"),
    ({"dim": "2.5"}, "dim: expected an integer"),
    ({"dim": "None"}, "dim: expected an integer"),
    ({"lr": "abc"}, "lr: expected a number, got 'abc'"),
    ({"lr": 0}, "lr: must be > 0"),
    ({"l2_weight": -1e-3}, "l2_weight: must be >= 0"),
    ({"use_kg": "maybe"}, "use_kg: expected true or false"),
    ({"dimm": 3}, "unknown parameter(s) dimm"),
])
def test_bad_values_name_the_field(params, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(_Cfg, params)


def test_coerce_value_bool_is_not_an_int():
    with pytest.raises(ConfigError):
        coerce_value("dim", True, int)


def test_every_model_rejects_bad_values_and_accepts_its_preset_types():
    for name in MODELS:
        with pytest.raises(ConfigError):
            model_config(name, {"no_such_field": 1})
    with pytest.raises(ConfigError, match="dim: must be >= 1"):
        model_config("mkr", {"dim": -3})
    with pytest.raises(ConfigError, match="lr_rs: expected a number"):
        model_config("mkr", {"lr_rs": "abc"})
    assert model_config("mkr", {"dim": "16"}).dim == 16
    assert model_config("kgmf", {"entity_init": "None"}).entity_init is None
    with pytest.raises(ConfigError, match="dim"):
        kge_config("transe", {"dim": "-1"})


def test_aliases_resolve():
    assert resolve_name("popularity") == "pop"
    assert type(model_config("popularity", {})).__name__ == "PopularityConfig"
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        resolve_name("nope")


def test_one_registry_names_every_family():
    from kgrec.models import KGE_SPECS, REGISTRY
    from kgrec.models.kge import KGE_MODELS

    assert set(KGE_SPECS) == set(KGE_MODELS)
    assert set(REGISTRY) == set(MODELS) | set(KGE_MODELS)
    with pytest.raises(KeyError, match="kgrec kge train -m transe"):
        resolve_name("transe")


def _preset_file(tmp_path, monkeypatch, text):
    """``kgrec.config`` reading one preset file ``m.toml`` holding ``text``."""
    import kgrec.config as config

    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "m.toml").write_text(text)
    monkeypatch.setattr(config.resources, "files", lambda pkg: tmp_path)
    return config


def test_preset_sections_of_an_alias_and_of_the_dataset_both_apply(tmp_path, monkeypatch):
    config = _preset_file(tmp_path, monkeypatch,
                          "[default]\nlr = 1.0\ndim = 8\nepochs = 3\n[movie]\nlr = 2.0\n"
                          "dim = 16\n[movie-half]\ndim = 32\n")
    assert config.load_preset("m", "movie-half") == {"lr": 2.0, "dim": 32, "epochs": 3}
    assert config.load_preset("m", "movie") == {"lr": 2.0, "dim": 16, "epochs": 3}
    assert config.load_preset("m", "music") == {"lr": 1.0, "dim": 8, "epochs": 3}


def test_tuned_sections_lay_over_the_preset_only_when_asked(tmp_path, monkeypatch):
    config = _preset_file(tmp_path, monkeypatch,
                          "[default]\nlr = 1.0\ndim = 8\nepochs = 3\n[movie]\nlr = 2.0\n"
                          "[movie.tuned]\ndim = 64\n[movie-half.tuned]\nlr = 5.0\n[music]\n"
                          "dim = 4\n[music.tuned]\nlr = 0.5\n")
    # a sub-table never leaks into the plain preset
    assert config.load_preset("m", "music") == {"lr": 1.0, "dim": 4, "epochs": 3}
    assert config.load_preset("m", "music", tuned=True) == {"lr": 0.5, "dim": 4, "epochs": 3}
    assert config.load_preset("m", "movie-half") == {"lr": 2.0, "dim": 8, "epochs": 3}
    assert config.load_preset("m", "movie-half", tuned=True) == {"lr": 5.0, "dim": 64,
                                                                "epochs": 3}
    assert config.tuned_datasets("m") == ["movie", "movie-half", "music"]
    with pytest.raises(KeyError, match=r"no tuned preset for model 'm' on dataset 'book'.*"
                                       r"tuned: movie, movie-half, music"):
        config.load_preset("m", "book", tuned=True)


def test_tuned_flag_reaches_the_run_and_fails_clearly():
    from kgrec.experiments.run import RunConfig, resolve

    plain, _ = resolve(RunConfig(dataset="music", model="fm"))
    tuned, _ = resolve(RunConfig(dataset="music", model="fm", tuned=True))
    assert tuned != plain
    with pytest.raises(ConfigError, match="no tuned preset for model 'pop'"):
        resolve(RunConfig(dataset="music", model="pop", tuned=True))
    with pytest.raises(ConfigError, match="mkr-dcn shares the preset file of mkr"):
        resolve(RunConfig(dataset="music", model="mkr-dcn", tuned=True))
