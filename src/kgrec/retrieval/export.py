"""Embeddings out, with their labels, and a faiss index to serve them (``kgrec export``).

A run's item vectors and its users' query vectors (id models: the user's vector; history
encoders: the vector of the user's training history; multi-interest models: ``(K, d)`` per
user) are written as ``.npy`` with ``.tsv`` labels (index, raw id, title), next to a faiss
inner-product index of the items (``flat``, ``ivf`` or ``hnsw``) and ``export.json``, which
records the ANN recall@K of the index against exact search over the users' query vectors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_run", "user_query_vectors"]


def user_query_vectors(art: Any, *, max_history: int = 200, block: int = 4096) -> np.ndarray:
    """``(n_users, d)`` or ``(n_users, K, d)`` query vectors of every user of a loaded run,
    from their training history (oldest first)."""
    import torch

    from kgrec.models.sequential.base import last_windows

    indptr, items = art.seen
    width = max(1, min(max_history, int(np.diff(indptr).max(initial=1))))
    out = []
    with torch.no_grad():
        for start in range(0, art.n_users, block):
            users = np.arange(start, min(start + block, art.n_users))
            hist = last_windows(indptr, items, width, users)
            out.append(art.model.user_vectors(torch.from_numpy(users),
                                              torch.from_numpy(hist)).float().numpy())
    return np.concatenate(out)


def _tsv(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    from kgrec.utils.io import atomic_write_text

    rows = ["\t".join(header)]
    clean = [np.char.replace(np.char.replace(np.asarray(c, dtype=str), "\t", " "), "\n", " ")
             for c in columns]
    rows += ["\t".join(r) for r in zip(*clean, strict=True)]
    atomic_write_text(path, "\n".join(rows) + "\n")


def _npy(path: Path, a: np.ndarray) -> None:
    from kgrec.utils.io import atomic_write

    atomic_write(path, lambda f: np.save(f, a))


def export_run(run_dir: str | Path, out: str | Path, *, index: str = "flat", k: int = 50,
               check_users: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Write a run's vectors, labels and faiss index into ``out``; returns the manifest
    (also ``out/export.json``) with the ANN recall@``k`` of the index against exact search
    on up to ``check_users`` users drawn with ``seed``.

    Raises:
        ValueError: the model has no item vectors (id-free scores such as MKR's MLP), or an
            unknown index kind.
    """
    import faiss
    import torch

    from kgrec.eval.ann import _overlap
    from kgrec.retrieval.artifact import load
    from kgrec.retrieval.index import build_index, multi_interest_search
    from kgrec.utils.io import atomic_write

    if index not in ("flat", "ivf", "hnsw"):
        raise ValueError(f"--index: expected flat, ivf or hnsw, got {index!r}")
    art = load(run_dir)
    name = art.config["run"]["model"]
    try:
        with torch.no_grad():
            items = art.model.item_vectors().float().numpy()
        users = user_query_vectors(art)
    except (NotImplementedError, TypeError):  # no vectors, or vectors of another contract
        raise ValueError(f"model {name!r} scores pairs without item and user vectors, so "
                         "there is nothing to index; export a vector model: bpr-mf, "
                         "two-tower, youtubednn, gru4rec, sasrec, mind, comirec-dr, "
                         "comirec-sa, m2grl, item2vec, eges") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = art.item_names if art.item_names is not None else np.full(art.n_items, "")
    _npy(out / "item_vectors.npy", items)
    _npy(out / "user_vectors.npy", users)
    _tsv(out / "items.tsv", ["index", "item_id", "title"],
         [np.arange(art.n_items), art.item_labels, names])
    _tsv(out / "users.tsv", ["index", "user_id"], [np.arange(art.n_users), art.user_labels])
    t0 = time.perf_counter()
    idx = build_index(items, index, seed=seed)
    build = time.perf_counter() - t0
    atomic_write(out / "items.faiss", lambda f: f.write(faiss.serialize_index(idx.index)
                                                         .tobytes()))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(art.n_users, min(check_users, art.n_users), replace=False))
    q = users[pick]
    kk = min(k, art.n_items)
    exact = build_index(items, "exact")
    if q.ndim == 3:
        _, ref = multi_interest_search(exact, q, kk)
        _, got = multi_interest_search(idx, q, kk)
    else:
        _, ref = exact.search(q, kk)
        _, got = idx.search(q, kk)
    overlap = _overlap(got, ref, art.n_items)
    manifest = {
        "run": str(run_dir), "model": name, "dataset": art.data.name,
        "n_items": art.n_items, "n_users": art.n_users, "dim": int(items.shape[1]),
        "interests": int(users.shape[1]) if users.ndim == 3 else 1,
        "index": index, "index_build_seconds": build, f"ann_recall@{kk}": overlap,
        "checked_users": len(pick),
        "files": ["item_vectors.npy", "items.tsv", "user_vectors.npy", "users.tsv",
                  "items.faiss", "export.json"],
        "score": "inner product of a user vector (or the best of its interests) and an "
                 "item vector",
    }
    from kgrec.utils.io import atomic_write_text

    atomic_write_text(out / "export.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
