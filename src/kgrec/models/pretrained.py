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

__all__ = ["aligned_entity_vectors"]


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
