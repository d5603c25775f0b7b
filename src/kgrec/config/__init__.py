"""Configuration: presets (the papers' hyper-parameters per (model, dataset), stored as
``presets/<model>.toml``, the file name being the ``-m`` name) and typed coercion of ``--set``
values (:mod:`kgrec.config.coerce`)."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

__all__ = ["DATASET_ALIASES", "load_preset", "load_search_space", "tuned_datasets",
           "tuned_values"]

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


def _scalars(section: Any) -> dict[str, Any]:
    """A preset section's values without its sub-tables (``[music.tuned]``)."""
    return {k: v for k, v in dict(section or {}).items() if not isinstance(v, dict)}


def load_preset(model: str, dataset: str, *, tuned: bool = False) -> dict[str, Any]:
    """``[default]`` of ``<model>.toml`` updated with the dataset's section (if any): the
    section of the dataset it shares presets with (:data:`DATASET_ALIASES`: ``movie`` for
    ``movie-half``), then one of its own name.

    With ``tuned``, the dataset's ``[<dataset>.tuned]`` sub-section (the values ``kgrec tune``
    found on the validation split) is laid on top; a :class:`KeyError` names the model and
    dataset when there is none.
    """
    table = _table(model)
    out = _scalars(table.get("default"))
    alias = DATASET_ALIASES.get(dataset, dataset)
    names = [alias] + ([dataset] if alias != dataset else [])
    for name in names:  # a section of the dataset's own name refines the shared one
        out.update(_scalars(table.get(name)))
    if tuned:
        values = tuned_values(model, dataset)
        if not values:
            have = ", ".join(tuned_datasets(model)) or "none"
            raise KeyError(f"no tuned preset for model {model!r} on dataset {dataset!r} "
                           f"(tuned: {have}); run `kgrec tune -d "
                           f"{dataset} -m {model}` and train with its --set flags")
        out.update(values)
    return out


def tuned_values(model: str, dataset: str) -> dict[str, Any]:
    """Only the tuned values of ``model`` on ``dataset`` (``[<alias>.tuned]`` then
    ``[<dataset>.tuned]``); empty where it was not tuned."""
    table = _table(model)
    alias = DATASET_ALIASES.get(dataset, dataset)
    out: dict[str, Any] = {}
    for name in dict.fromkeys([alias, dataset]):
        sec = table.get(name, {}).get("tuned")
        if isinstance(sec, dict):
            out.update(_scalars(sec))
    return out


def tuned_datasets(model: str) -> list[str]:
    """Datasets with a ``[<dataset>.tuned]`` section in ``<model>.toml``."""
    return sorted(n for n, sec in _table(model).items()
                  if isinstance(sec, dict) and isinstance(sec.get("tuned"), dict))
