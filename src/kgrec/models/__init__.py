"""Models and the registry the CLI and benchmarks build them from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kgrec.data.dataset import Dataset
from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.kgmf import KGMF, KGMFConfig
from kgrec.models.mkr import MKR, MKRConfig

__all__ = [
    "KGMF",
    "MKR",
    "MODELS",
    "KGMFConfig",
    "MKRConfig",
    "Recommender",
    "Task",
    "TrainData",
    "build_model",
    "model_config",
]


def _mkr(ds: Dataset, cfg: MKRConfig) -> Recommender:
    model = MKR(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, item_entity=ds.item_entity, config=cfg)
    if cfg.entity_init:
        from kgrec.models.pretrained import aligned_entity_vectors

        rows, vectors = aligned_entity_vectors(cfg.entity_init, ds.entity_ids, ds.n_entities,
                                               cfg.dim)
        model.load_entity_vectors(rows, vectors, freeze=cfg.freeze_entities)
    return model


def _kgmf(ds: Dataset, cfg: KGMFConfig) -> Recommender:
    model = KGMF(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                 n_relations=ds.n_relations, kg=ds.kg, item_entity=ds.item_entity, config=cfg)
    if cfg.entity_init:
        import torch

        from kgrec.models.pretrained import aligned_entity_vectors

        rows, vectors = aligned_entity_vectors(cfg.entity_init, ds.entity_ids, ds.n_entities,
                                               cfg.dim)
        with torch.no_grad():
            model.entity_emb[rows] = vectors
        model.entity_emb.requires_grad_(not cfg.freeze_entities)
    return model


# name -> (config class, builder, preset file, fixed overrides, description)
MODELS: dict[str, tuple[type, Callable[[Dataset, Any], Recommender], str, dict, str]] = {
    "mkr": (MKRConfig, _mkr, "mkr", {}, "MKR, cross & compress + alternating KGE (WWW'19)"),
    "mkr-nokg": (MKRConfig, _mkr, "mkr", {"kge_interval": 0},
                 "MKR with the KGE task switched off (ablation)"),
    "kgmf": (KGMFConfig, _kgmf, "kgmf", {}, "MF + mean of KG neighbours (KG-aware reference)"),
    "mf": (KGMFConfig, _kgmf, "kgmf", {"use_kg": False}, "plain MF, BCE (KG-blind twin)"),
}


def model_config(name: str, params: dict[str, Any]) -> Any:
    """The model's config dataclass from ``params``; unknown keys fail with the valid ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    cls, _, _, fixed, _ = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(params) - fields)
    if bad:
        raise ValueError(
            f"unknown parameter(s) {', '.join(bad)} for model {name!r}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    return cls(**{**params, **fixed})


def build_model(name: str, dataset: Dataset, config: Any) -> Recommender:
    """Instantiate model ``name`` for ``dataset`` with a config from :func:`model_config`."""
    return MODELS[name][1](dataset, config)
