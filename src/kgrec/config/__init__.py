"""Configuration: presets (the papers' hyper-parameters per (model, dataset), stored as
``presets/<model>.toml``, the file name being the ``-m`` name) and typed coercion of ``--set``
values (:mod:`kgrec.config.coerce`)."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

__all__ = ["DATASET_ALIASES", "load_preset", "load_search_space"]

# datasets that share another's preset
DATASET_ALIASES = {"movie-half": "movie"}


def _table(model: str) -> dict[str, Any]:
    path = resources.files("kgrec.config") / "presets" / f"{model}.toml"
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def load_search_space(model: str) -> dict[str, dict[str, Any]]:
    """The ``[search]`` section of ``<model>.toml``: the hyper-parameters ``kgrec tune``
    searches, each ``{type = "float"|"int"|"categorical", low, high, log, step, choices}``
    (checked by :func:`kgrec.experiments.tune.check_space`)."""
    return dict(_table(model).get("search", {}))


def load_preset(model: str, dataset: str) -> dict[str, Any]:
    """``[default]`` of ``<model>.toml`` updated with the dataset's section (if any): the
    section of the dataset it shares presets with (:data:`DATASET_ALIASES`: ``movie`` for
    ``movie-half``), then one of its own name."""
    table = _table(model)
    out = dict(table.get("default", {}))
    alias = DATASET_ALIASES.get(dataset, dataset)
    out.update(table.get(alias, {}))
    if alias != dataset:  # a section of the dataset's own name refines the shared one
        out.update(table.get(dataset, {}))
    return out
