"""Train a KG embedding model for link prediction and export its embeddings.

:func:`train_kge` is what ``kgrec kge train`` runs: load the triples (a catalog dataset's KG
or a ``head<TAB>relation<TAB>tail`` file), split them 8:1:1 with every held-out entity seen in
training (:func:`kgrec.data.kg_split.split_triples`), train with the generic
:class:`~kgrec.train.trainer.Trainer` (the epoch is chosen by filtered validation MRR), report
filtered test link prediction at that epoch, and write a run directory:

* ``config.json``: the run config, the resolved model parameters, data sizes and checksum;
* ``metrics.json``: valid/test metrics at the best epoch, per-epoch history, timings, seed,
  data checksum, library versions;
* ``checkpoint.pt``: the best state (``torch.load(..., weights_only=True)``);
* the embeddings (:func:`export_embeddings`): ``entity_embeddings.npy``,
  ``relation_embeddings.npy``, model-specific extras (``relation_normals.npy`` for TransH,
  ``relation_matrices.npy`` for TransR and Bilinear, ``entity_projections.npy`` and
  ``relation_projections.npy`` for TransD), ``entities.tsv`` and ``relations.tsv``
  (``index<TAB>raw label``) and ``embeddings.json`` (what was written).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.data.dataset import DataError, Split, array_checksum
from kgrec.data.kg_split import split_triples
from kgrec.eval.linkpred import link_prediction
from kgrec.experiments.run import _peak_rss_mb, _versions, _write_json
from kgrec.models.base import TrainData
from kgrec.models.kge import KGE_MODELS, KGEModel, build_kge, kge_config
from kgrec.train.trainer import FitResult, TrainConfig, Trainer, seed_everything
from kgrec.utils.io import atomic_write

__all__ = [
    "KGERunConfig",
    "KGERunResult",
    "TripleData",
    "evaluate_kge_run",
    "export_embeddings",
    "is_kge_run",
    "load_embeddings",
    "load_kge_model",
    "load_triples",
    "train_kge",
]

EMBEDDING_ARRAYS = (
    "entity_embeddings",
    "relation_embeddings",
    "relation_normals",
    "relation_matrices",
    "entity_projections",
    "relation_projections",
)


@dataclass
class KGERunConfig:
    """Everything that defines a KGE run (written to ``config.json``).

    Attributes:
        dataset: catalog name whose ``kg`` is embedded (ignored with ``triples_file``).
        model: ``transe``, ``transh``, ``transr``, ``transd``, ``bilinear``, ``distmult``.
        seed: seeds init, shuffling and negative sampling.
        split_seed: seeds the 8:1:1 triple split (fixed by default, so runs with different
            seeds are compared on the same test triples, as KG benchmarks do).
        epochs: run length (None: the model config's ``epochs``).
        params: :class:`~kgrec.models.kge.KGEConfig` fields overriding the model's preset.
        out: run directory (None: ``runs/kge-<dataset>-<model>-s<seed>-<time>``).
        triples_file: a ``head<TAB>relation<TAB>tail`` file of raw labels to embed instead.
        progress: show progress bars.
        threads: torch intra-op threads (None: 1).
        device: ``auto`` (CUDA where available), ``cpu``, ``cuda``, ``cuda:N``.
        force: overwrite the run in ``out`` (refused otherwise).
    """

    dataset: str = "music"
    model: str = "transe"
    seed: int = 0
    split_seed: int = 0
    epochs: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    triples_file: str | None = None
    progress: bool = True
    threads: int | None = None
    device: str = "auto"
    force: bool = False


@dataclass
class KGERunResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: KGEModel
    fit: FitResult
    split: Split


@dataclass
class TripleData:
    """Indexed triples with their raw labels."""

    name: str
    kg: np.ndarray
    entity_labels: list[str]
    relation_labels: list[str]
    source_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def n_entities(self) -> int:
        return len(self.entity_labels)

    @property
    def n_relations(self) -> int:
        return len(self.relation_labels)

    @property
    def checksum(self) -> str:
        return array_checksum(self.kg)


# --------------------------------------------------------------------------- data
def load_triples(cfg: KGERunConfig) -> TripleData:
    """The run's triples: ``cfg.triples_file`` if given, else the catalog dataset's KG.

    The catalog KG does not depend on the conversion seed (only the sampled negative
    interactions do), so it is always loaded with seed 0 (one cached conversion).
    """
    if cfg.triples_file:
        import pandas as pd

        from kgrec.data.readers import file_sha256, read_table

        path = Path(cfg.triples_file)
        h, r, t = read_table(path, sep="\t", n_cols=3)
        ent, entity_labels = pd.factorize(np.c_[h, t].astype(str).ravel())
        rel, relation_labels = pd.factorize(np.asarray(r, dtype=str))
        ht = ent.reshape(-1, 2)
        kg = np.c_[ht[:, 0], rel, ht[:, 1]].astype(np.int64)
        return TripleData(path.stem, kg, [str(x) for x in entity_labels],
                          [str(x) for x in relation_labels], {path.name: file_sha256(path)})
    from kgrec.data.catalog import load_dataset

    ds = load_dataset(cfg.dataset, seed=0)
    ents = ds.entity_ids if ds.entity_ids is not None else np.arange(ds.n_entities)
    rels = ds.relation_ids if ds.relation_ids is not None else np.arange(ds.n_relations)
    return TripleData(ds.name, ds.kg, [str(x) for x in ents], [str(x) for x in rels],
                      dict(ds.source_checksums))


# --------------------------------------------------------------------------- export
def _write_labels(path: Path, labels: list[str]) -> None:
    for k, lab in enumerate(labels):
        if "\t" in lab or "\n" in lab or "\r" in lab:
            raise ValueError(f"label {k} ({lab!r}) holds a tab or a line break")
    text = "".join(f"{k}\t{lab}\n" for k, lab in enumerate(labels))
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _read_labels(path: Path) -> list[str]:
    labels = []
    for k, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
        if not line:
            continue
        idx, _, lab = line.partition("\t")
        if idx != str(k):
            raise DataError(f"expected index {k}, found {idx!r}", path=path, line=k + 1)
        labels.append(lab)
    return labels


def export_embeddings(
    model: KGEModel,
    directory: str | Path,
    entity_labels: list[str] | np.ndarray | None = None,
    relation_labels: list[str] | np.ndarray | None = None,
) -> list[Path]:
    """Write the model's embeddings under ``directory`` (each file via a temporary file and
    ``os.replace``): ``<array>.npy`` for every array of :meth:`KGEModel.embeddings`,
    ``entities.tsv`` / ``relations.tsv`` (``index<TAB>label``; None: the index) and
    ``embeddings.json`` listing them. Returns the written paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ents = [str(x) for x in (entity_labels if entity_labels is not None
                             else range(model.n_entities))]
    rels = [str(x) for x in (relation_labels if relation_labels is not None
                             else range(model.n_relations))]
    if len(ents) != model.n_entities or len(rels) != model.n_relations:
        raise ValueError(f"{len(ents)} entity / {len(rels)} relation labels for a model of "
                         f"{model.n_entities} entities / {model.n_relations} relations")
    arrays = model.embeddings()
    paths = []
    for name, arr in arrays.items():
        p = d / f"{name}.npy"
        atomic_write(p, lambda f, a=arr: np.save(f, a, allow_pickle=False))
        paths.append(p)
    for fname, labels in (("entities.tsv", ents), ("relations.tsv", rels)):
        _write_labels(d / fname, labels)
        paths.append(d / fname)
    manifest = {"model": model.name, "n_entities": model.n_entities,
                "n_relations": model.n_relations, "dim": model.dim,
                "arrays": {k: list(v.shape) for k, v in arrays.items()},
                "labels": ["entities.tsv", "relations.tsv"]}
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(d / "embeddings.json", lambda f: f.write(text.encode("utf-8")))
    paths.append(d / "embeddings.json")
    return paths


def load_embeddings(directory: str | Path) -> dict[str, Any]:
    """Read what :func:`export_embeddings` wrote: every ``.npy`` array by name, plus
    ``entities`` / ``relations`` (label lists) and ``model``."""
    d = Path(directory)
    manifest_path = d / "embeddings.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: missing; was {d} written by "
                                "export_embeddings?")
    manifest = json.loads(manifest_path.read_text())
    out: dict[str, Any] = {"model": manifest.get("model")}
    for name in manifest["arrays"]:
        out[name] = np.load(d / f"{name}.npy", allow_pickle=False)
    out["entities"] = _read_labels(d / "entities.tsv")
    out["relations"] = _read_labels(d / "relations.tsv")
    if len(out["entities"]) != len(out["entity_embeddings"]):
        raise DataError(f"{len(out['entities'])} labels for {len(out['entity_embeddings'])} "
                        "entity vectors", path=d / "entities.tsv")
    return out


# --------------------------------------------------------------------------- training
def _resolve(cfg: KGERunConfig):
    from kgrec.experiments.run import _bad

    for name, lo in (("seed", 0), ("split_seed", 0), ("epochs", 1), ("threads", 1)):
        v = getattr(cfg, name)
        if v is None and name in ("epochs", "threads"):
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _bad(name, f"expected an integer >= {lo}", v)
    if cfg.model not in KGE_MODELS:
        raise KeyError(f"unknown KGE model {cfg.model!r}; known: {', '.join(KGE_MODELS)}")
    params = dict(cfg.params)
    if cfg.epochs is not None:
        params["epochs"] = int(cfg.epochs)
    return kge_config(cfg.model, params)


def train_kge(cfg: KGERunConfig) -> KGERunResult:
    """Train, select by validation MRR, test, and write the run directory (module doc)."""
    t_start = time.perf_counter()
    model_cfg = _resolve(cfg)  # a bad model or parameter fails before any work
    t0 = time.perf_counter()
    data = load_triples(cfg)
    split = split_triples(data.kg, seed=cfg.split_seed)
    data_seconds = time.perf_counter() - t0
    if len(split.valid) == 0 or len(split.test) == 0:
        raise DataError(f"{len(data.kg)} triples are too few for a train/valid/test split "
                        f"(sizes {split.sizes()}, repeated triples counted once)",
                        path=cfg.triples_file)
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / (
        f"kge-{data.name}-{cfg.model}-s{cfg.seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    from kgrec.experiments.run import claim_run_dir

    claim_run_dir(run_dir, force=cfg.force)
    run_dir.mkdir(parents=True, exist_ok=True)

    seed_everything(cfg.seed)
    model = build_kge(cfg.model, n_entities=data.n_entities, n_relations=data.n_relations,
                      config=model_cfg)
    # one thread unless asked: KGE batches are small, and spin-waiting OpenMP threads made
    # an epoch 19x slower on a busy 2-core machine
    threads = cfg.threads or 1
    data_info = {"name": data.name, "checksum": data.checksum,
                 "source_checksums": data.source_checksums, "split": split.sizes(),
                 "n_entities": data.n_entities, "n_relations": data.n_relations,
                 "n_triples": len(data.kg)}
    _write_json({"run": {**asdict(cfg), "epochs": model_cfg.epochs, "threads": threads},
                 "model_params": dataclasses.asdict(model_cfg), "data": data_info},
                run_dir / "config.json")

    known = data.kg

    def evaluate(m: KGEModel, rows: np.ndarray) -> dict[str, float]:
        return link_prediction(m, rows, known=known)

    trainer = Trainer(
        TrainConfig(epochs=model_cfg.epochs, seed=cfg.seed, monitor="mrr",
                    progress=cfg.progress, threads=threads, device=cfg.device),
        evaluate=evaluate,
        checkpoint=run_dir / "checkpoint.pt",
        checkpoint_extra={"model": cfg.model, "model_params": dataclasses.asdict(model_cfg),
                          "n_entities": data.n_entities, "n_relations": data.n_relations},
    )
    train_data = TrainData(
        rec_rows=lambda epoch: np.zeros((0, 3), np.int64), kg=split.train, n_users=0,
        n_items=0, n_entities=data.n_entities, n_relations=data.n_relations,
        item_entity=np.zeros(0, np.int64),
    )
    fit = trainer.fit(model, train_data, split.valid, split.test)

    t0 = time.perf_counter()
    export_embeddings(model, run_dir, data.entity_labels, data.relation_labels)
    export_seconds = time.perf_counter() - t0
    metrics = {
        "dataset": data.name,
        "model": cfg.model,
        "seed": cfg.seed,
        **fit.summary(),
        "timings": {
            "data_seconds": data_seconds,
            **fit.timings(),
            "export_seconds": export_seconds,
            "total_seconds": time.perf_counter() - t_start,
            "peak_rss_mb": _peak_rss_mb(),
        },
        "split": split.sizes(),
        "data_checksum": data.checksum,
        "source_checksums": data.source_checksums,
        "versions": _versions(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(metrics, run_dir / "metrics.json")
    return KGERunResult(run_dir=run_dir, metrics=metrics, model=model, fit=fit, split=split)


def load_kge_model(run_dir: str | Path) -> KGEModel:
    """The best model of a finished run, rebuilt from ``config.json`` and ``checkpoint.pt``."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: missing; is {run_dir} a kgrec kge run directory?")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = build_kge(state["model"], n_entities=state["n_entities"],
                      n_relations=state["n_relations"],
                      config=kge_config(state["model"], state["model_params"]))
    model.load_state_dict(state["state_dict"])
    return model


def is_kge_run(run_dir: str | Path) -> bool:
    """``run_dir`` was written by ``kgrec kge train`` (its config names a KGE model)."""
    from kgrec.utils.io import read_json

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return False
    model = (read_json(path).get("run") or {}).get("model")
    return model in KGE_MODELS and (Path(run_dir) / "embeddings.json").is_file()


def evaluate_kge_run(run_dir: str | Path) -> dict[str, Any]:
    """Filtered link prediction of a KGE run's best checkpoint on its validation and test
    triples, re-split from the same data with the run's ``split_seed``; the data must have
    the run's checksum (a changed triples file or KG is named, not silently evaluated)."""
    from kgrec.utils.io import read_json

    run_dir = Path(run_dir)
    resolved = read_json(run_dir / "config.json")
    names = {f.name for f in dataclasses.fields(KGERunConfig)}
    cfg = KGERunConfig(**{k: v for k, v in resolved["run"].items() if k in names})
    data = load_triples(cfg)
    want = resolved.get("data", {}).get("checksum")
    if want is not None and data.checksum != want:
        where = cfg.triples_file or f"dataset {cfg.dataset!r}"
        raise DataError(f"the triples of {where} are not the ones this run trained on "
                        f"(checksum {data.checksum[:12]} against the run's {want[:12]}); "
                        "evaluate with the run's data")
    split = split_triples(data.kg, seed=cfg.split_seed)
    model = load_kge_model(run_dir)
    model.eval()
    with torch.no_grad():
        return {"valid": link_prediction(model, split.valid, known=data.kg),
                "test": link_prediction(model, split.test, known=data.kg),
                "model": cfg.model, "dataset": data.name}
