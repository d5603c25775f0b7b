"""Sequential use of a KG (the "pre-train, then recommend" way): entity vectors from a KG
embedding run (:func:`kgrec.kge_run.train_kge`, ``kgrec kge train``) as the initial, fixed or
fine-tuned entity features of a recommender.

Vectors are matched to the recommender's entities by their raw labels (``Dataset.entity_ids``),
so embeddings trained on another indexing of the same graph still land on the right rows;
entities the embeddings do not know keep their random initialisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kgrec.data.dataset import DataError

__all__ = ["aligned_entity_vectors", "kge_entity_vectors", "neighbour_mean"]


def aligned_entity_vectors(
    source: str | Path, entity_labels: np.ndarray | None, n_entities: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the exported entity embeddings in ``source`` for this dataset's entities.

    Args:
        source: a directory written by :func:`kgrec.kge_run.export_embeddings` (a KGE run).
        entity_labels: raw label of each of the recommender's entities (None: the index).
        n_entities, dim: the recommender's entity count and embedding dimension.

    Returns:
        ``(rows, vectors)``: entity indices that were found and their ``(len(rows), dim)``
        float32 vectors.

    Raises:
        DataError: the dimension differs, or no entity label matches.
    """
    from kgrec.kge_run import load_embeddings

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

    Trainer(TrainConfig(epochs=epochs, seed=seed, progress=progress),
            evaluate=last_epoch_wins).fit(kge, data, np.zeros((0, 3), np.int64))
    torch.random.set_rng_state(state)  # the caller's stream is not disturbed
    vectors = np.ascontiguousarray(kge.embeddings()["entity_embeddings"], dtype=np.float32)
    if cache:
        from kgrec.atomic import atomic_write

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
