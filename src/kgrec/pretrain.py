"""Inputs computed above the models: the sequential use of a KG (the "pre-train, then
recommend" way) and anything else a model's ``build`` takes ready-made (DKN's title tokens).

Models never train another model or open a file: :func:`model_inputs` does that work for a
model and hands the arrays to its ``build(ds, cfg, inputs=...)``; :func:`build_model` is the
one-call convenience (what ``kgrec train`` and the tests use). A loaded run takes the same
arrays from its checkpoint instead (:mod:`kgrec.retrieval.artifact`).

Entity vectors from a KG embedding run (:func:`kgrec.experiments.kge_run.train_kge`, ``kgrec kge
train``) as the initial, fixed or fine-tuned entity features of a recommender.

Vectors are matched to the recommender's entities by their raw labels (``Dataset.entity_ids``),
so embeddings trained on another indexing of the same graph still land on the right rows;
entities the embeddings do not know keep their random initialisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kgrec.data.dataset import DataError
from kgrec.utils.lazy import pd

__all__ = [
    "aligned_entity_vectors",
    "build_model",
    "item_kg_features",
    "kge_entity_vectors",
    "model_inputs",
    "neighbour_mean",
]


def aligned_entity_vectors(
    source: str | Path, entity_labels: np.ndarray | None, n_entities: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the exported entity embeddings in ``source`` for this dataset's entities.

    Args:
        source: a directory written by :func:`kgrec.experiments.kge_run.export_embeddings`
            (a KGE run).
        entity_labels: raw label of each of the recommender's entities (None: the index).
        n_entities, dim: the recommender's entity count and embedding dimension.

    Returns:
        ``(rows, vectors)``: entity indices that were found and their ``(len(rows), dim)``
        float32 vectors.

    Raises:
        DataError: the dimension differs, or no entity label matches.
    """
    from kgrec.experiments.kge_run import load_embeddings

    emb = load_embeddings(source)
    vec = np.asarray(emb["entity_embeddings"], dtype=np.float32)
    if vec.ndim != 2 or vec.shape[1] != dim:
        raise DataError(f"entity embeddings have shape {vec.shape}, the model needs dim={dim} "
                        "(set the recommender's dim to match)", path=Path(source))
    labels = (np.asarray(entity_labels, dtype=str) if entity_labels is not None
              else np.arange(n_entities).astype(str))
    where = pd.Index(np.asarray(emb["entities"], dtype=str)).get_indexer(labels)
    rows = np.flatnonzero(where >= 0)
    if len(rows) == 0:
        raise DataError("no entity label of the dataset occurs in the embeddings' "
                        "entities.tsv (different graph?)", path=Path(source))
    return torch.from_numpy(rows), torch.from_numpy(vec[where[rows]])


def kge_entity_vectors(
    kg: np.ndarray,
    n_entities: int,
    n_relations: int,
    *,
    model: str = "transr",
    dim: int = 32,
    epochs: int = 20,
    seed: int = 0,
    cache: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Entity vectors ``(n_entities, dim)`` of a KG embedding model trained on all of ``kg``.

    The "pre-train, then recommend" input of the sequential baselines (LibFM, Wide&Deep and
    DKN in the MKR paper use TransR vectors). Trained once per (graph, model, dim, epochs,
    seed) and cached as ``$KGREC_CACHE/kge/<key>.npy``; an empty graph gives zeros.
    """
    from kgrec.data.catalog import cache_dir
    from kgrec.data.dataset import array_checksum

    kg = np.ascontiguousarray(np.asarray(kg, dtype=np.int64).reshape(-1, 3))
    if len(kg) == 0:
        return np.zeros((n_entities, dim), np.float32)
    key = (f"{array_checksum(kg)[:16]}-n{n_entities}-r{n_relations}-{model}-d{dim}-e{epochs}"
           f"-s{seed}")
    path = cache_dir() / "kge" / f"{key}.npy"
    if cache and path.is_file():
        return np.load(path, allow_pickle=False)

    from kgrec.models.base import TrainData
    from kgrec.models.kge import build_kge, kge_config
    from kgrec.train.trainer import TrainConfig, Trainer, seed_everything

    state = torch.random.get_rng_state()
    seed_everything(seed)
    kge = build_kge(model, n_entities=n_entities, n_relations=max(n_relations, 1),
                    config=kge_config(model, {"dim": dim, "epochs": epochs}))
    data = TrainData(rec_rows=lambda epoch: np.zeros((0, 3), np.int64), kg=kg, n_users=0,
                     n_items=0, n_entities=n_entities, n_relations=n_relations,
                     item_entity=np.zeros(0, np.int64))
    counter = iter(range(10**9))

    def last_epoch_wins(m, rows):  # no held-out triples: keep the last epoch
        return {"auc": float(next(counter))}

    Trainer(TrainConfig(epochs=epochs, seed=seed, progress=progress, device="cpu"),
            evaluate=last_epoch_wins).fit(kge, data, np.zeros((0, 3), np.int64))
    torch.random.set_rng_state(state)  # the caller's stream is not disturbed
    vectors = np.ascontiguousarray(kge.embeddings()["entity_embeddings"], dtype=np.float32)
    if cache:
        from kgrec.utils.io import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.save(f, vectors, allow_pickle=False))
    return vectors


def neighbour_mean(
    vectors: np.ndarray, kg: np.ndarray, item_entity: np.ndarray, *, include_self: bool = True
) -> np.ndarray:
    """Per item, the mean vector of its entity and the entities one hop away in ``kg``
    (either direction): the "averaged embeddings of the item's related entities" that the MKR
    paper feeds LibFM and Wide&Deep. Items without a neighbour get their own vector."""
    vectors = np.asarray(vectors, dtype=np.float32)
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    n_ent = len(vectors)
    item_entity = np.asarray(item_entity, dtype=np.int64)
    src = np.r_[kg[:, 0], kg[:, 2]]
    dst = np.r_[kg[:, 2], kg[:, 0]]
    if include_self:
        src = np.r_[src, np.arange(n_ent)]
        dst = np.r_[dst, np.arange(n_ent)]
    adj = torch.sparse_coo_tensor(torch.from_numpy(np.stack([src, dst])),
                                  torch.ones(len(src)), (n_ent, n_ent),
                                  check_invariants=True).coalesce()
    deg = torch.sparse.sum(adj, 1).to_dense().clamp_min(1.0)
    mean = torch.sparse.mm(adj, torch.from_numpy(vectors)) / deg.unsqueeze(1)
    return mean.numpy()[item_entity]


def item_kg_features(ds, cfg) -> np.ndarray:
    """``(n_items, kg_dim)`` float32: the mean pre-trained TransR vector of each item's entity
    and its one-hop KG neighbours (cached TransR run, :func:`kge_entity_vectors`), z-scored per
    column when ``cfg.standardize``: the MKR paper's KG input of LibFM and Wide&Deep."""
    vectors = kge_entity_vectors(ds.kg, ds.n_entities, ds.n_relations, model="transr",
                                 dim=int(cfg.kg_dim), epochs=int(cfg.kge_epochs),
                                 seed=int(cfg.kge_seed))
    x = neighbour_mean(vectors, ds.kg, ds.item_entity)
    if getattr(cfg, "standardize", False):
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
    return np.ascontiguousarray(x, dtype=np.float32)


def _dkn_inputs(ds, cfg) -> dict[str, np.ndarray]:
    from kgrec.data.text import item_tokens

    word_ids, entity_ids, vocab = item_tokens(ds, cfg.max_title_length)
    if cfg.kge == "none":
        vectors = (torch.randn(ds.n_entities, cfg.entity_dim) / cfg.entity_dim**0.5).numpy()
    else:
        vectors = kge_entity_vectors(ds.kg, ds.n_entities, ds.n_relations, model=cfg.kge,
                                     dim=cfg.entity_dim, epochs=cfg.kge_epochs, seed=0)
    context = neighbour_mean(vectors, ds.kg, np.arange(ds.n_entities), include_self=False)
    return {"word_ids": word_ids, "entity_ids": entity_ids, "n_words": np.array(len(vocab)),
            "entity_vectors": vectors, "context_vectors": context}


def model_inputs(name: str, ds, cfg) -> dict[str, np.ndarray]:
    """The arrays model ``name`` takes ready-made in ``build(ds, cfg, inputs=...)``: pre-trained
    item KG features (FM, Wide&Deep), title tokens and entity vectors (DKN), entity vectors
    of a KGE run named by ``entity_init`` (MKR, KG-MF); empty for every other model."""
    from kgrec.models import MODELS, resolve_name

    module = MODELS[resolve_name(name)].module
    if module in ("ctr.fm", "ctr.wide_deep"):
        return {"item_features": item_kg_features(ds, cfg)} if cfg.use_kg else {}
    if module == "kg.dkn":
        return _dkn_inputs(ds, cfg)
    if module in ("kg.mkr", "kg.kgmf") and cfg.entity_init:
        rows, vectors = aligned_entity_vectors(cfg.entity_init, ds.entity_ids, ds.n_entities,
                                               cfg.dim)
        return {"entity_rows": rows.numpy(), "entity_vectors": vectors.numpy()}
    return {}


def build_model(name: str, ds, cfg):
    """Model ``name`` for dataset ``ds`` with its :func:`model_inputs` computed here."""
    from kgrec.models import build_model as _build

    return _build(name, ds, cfg, inputs=model_inputs(name, ds, cfg))
