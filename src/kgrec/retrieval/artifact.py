"""A run directory as a self-contained artifact: the model loads and recommends without the
raw data and without retraining anything.

``kgrec train`` writes, beside ``config.json`` and ``checkpoint.pt``:

* ``artifact.npz``: vocabulary sizes, the KG and item-entity links the model was built on,
  raw ids of users, items, entities and relations (index -> label), and every user's known
  items in time order (CSR ``seen_indptr``/``seen_items``): excluded from recommendations
  and handed to history-encoding models as the query history;
* ``split.npz``: the evaluation split (training rows for top-K masks, validation and test
  rows, ranking queries), so ``kgrec evaluate RUN`` needs no data either.

:func:`load` rebuilds the model from a *skeleton* of the dataset (sizes, KG, links) whose
``precomputed`` arrays are the checkpoint's own buffers: models whose ``build`` derives inputs
from data (pre-trained KG features of FM / Wide&Deep, DKN's title tokens) take them from
there instead of recomputing them.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Artifact", "ArtifactData", "load", "load_split", "save_artifact", "save_split"]

_VOCABS = ("user_ids", "item_ids", "entity_ids", "relation_ids")


@dataclass
class ArtifactData:
    """What a model's ``build`` reads of a dataset, without its interactions.

    ``precomputed`` maps buffer names to arrays taken from the checkpoint (see the module
    docstring); models check for it with ``getattr(ds, "precomputed", None)``.
    """

    name: str
    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    kg: np.ndarray
    item_entity: np.ndarray
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    entity_ids: np.ndarray | None = None
    relation_ids: np.ndarray | None = None
    precomputed: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _csr(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, items)`` grouping ``items`` by user, keeping their order within a user."""
    order = np.argsort(users, kind="stable")
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, np.asarray(items, np.int64)[order]


def seen_items(ds) -> tuple[np.ndarray, np.ndarray]:
    """Every user's known items, oldest first: the observed events where the dataset keeps
    them (time order), else the positive rows in file order."""
    ev = getattr(ds, "interactions", None)
    if ev is not None and len(ev):
        order = np.lexsort((np.arange(len(ev.user)), ev.timestamp, ev.user))
        return _csr(ev.user[order], ev.item[order], ds.n_users)
    pos = ds.ratings[ds.ratings[:, 2] == 1]
    return _csr(pos[:, 0], pos[:, 1], ds.n_users)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from kgrec.utils.io import atomic_write

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_artifact(run_dir: str | Path, ds) -> Path:
    """Write ``artifact.npz`` for dataset ``ds`` into ``run_dir``; returns its path."""
    indptr, items = seen_items(ds)
    arrays: dict[str, np.ndarray] = {
        "sizes": np.array([ds.n_users, ds.n_items, ds.n_entities, ds.n_relations], np.int64),
        "kg": np.asarray(ds.kg, np.int64), "item_entity": np.asarray(ds.item_entity, np.int64),
        "seen_indptr": indptr, "seen_items": items,
        "header": np.array(json.dumps({"name": ds.name})),
    }
    for key in _VOCABS:
        v = getattr(ds, key, None)
        if v is not None:
            arrays[key] = np.asarray(v, dtype=str)
    names = getattr(ds, "item_names", None)
    if names is not None:
        arrays["item_names"] = np.asarray(names, dtype=str)
    table = getattr(ds, "item_features", None)
    if table is not None:  # one category per item, for diversity metrics and plots
        from kgrec.data.features import CATEGORY_FIELDS, item_categories

        if any(f in table for f in CATEGORY_FIELDS):
            codes, labels = item_categories(table)
            arrays["item_category"], arrays["category_labels"] = codes, labels
    path = Path(run_dir) / "artifact.npz"
    _savez(path, arrays)
    return path


def save_split(run_dir: str | Path, split) -> Path:
    """Write the evaluation split (rows and ranking queries) to ``run_dir/split.npz``."""
    arrays = {"train": split.train, "valid": split.valid, "test": split.test,
              "protocol": np.array(getattr(split, "protocol", "ctr"))}
    for part in ("valid_queries", "test_queries"):
        q = getattr(split, part, None)
        if q is not None:
            for f in ("users", "hist_indptr", "hist_items", "tgt_indptr", "tgt_items"):
                arrays[f"{part}.{f}"] = getattr(q, f)
            arrays[f"{part}.mask_history"] = np.array(bool(q.mask_history))
            if q.candidates is not None:
                arrays[f"{part}.candidates"] = q.candidates
    path = Path(run_dir) / "split.npz"
    _savez(path, arrays)
    return path


def load_split(run_dir: str | Path):
    """The :class:`~kgrec.data.split.Split` saved by :func:`save_split`."""
    from kgrec.data.split import Queries, Split

    path = Path(run_dir) / "split.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a run from before kgrec 0.2 keeps no split)")
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    queries = {}
    for part in ("valid_queries", "test_queries"):
        if f"{part}.users" in a:
            queries[part] = Queries(
                *(a[f"{part}.{f}"] for f in ("users", "hist_indptr", "hist_items", "tgt_indptr",
                                              "tgt_items")),
                mask_history=bool(a[f"{part}.mask_history"]),
                candidates=a.get(f"{part}.candidates"))
    return Split(a["train"], a["valid"], a["test"], protocol=str(a["protocol"]), **queries)


@dataclass
class Artifact:
    """A loaded run: the model in eval mode, vocabularies both ways, seen items, sizes.

    Attributes:
        run_dir: where it was loaded from.
        model: the trained :class:`~kgrec.models.base.Recommender` at its best epoch.
        config: the run's resolved ``config.json``.
        data: the :class:`ArtifactData` skeleton (sizes, KG, raw ids).
        seen: ``(indptr, items)`` every user's known items, oldest first.
        item_category: ``(n_items,)`` one category id per item (``-1``: none; see
            :func:`kgrec.data.features.item_categories`), None where the data has no
            category field; ``category_labels`` their raw labels.
        item_names: display names (titles) by item index where the data has them.
    """

    run_dir: Path
    model: Any
    config: dict[str, Any]
    data: ArtifactData
    seen: tuple[np.ndarray, np.ndarray]
    item_category: np.ndarray | None = None
    category_labels: np.ndarray | None = None
    item_names: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def _labels(self, key: str, n: int) -> np.ndarray:
        v = getattr(self.data, key)
        return np.arange(n).astype(str) if v is None else np.asarray(v, dtype=str)

    @property
    def user_labels(self) -> np.ndarray:
        """Raw user id of each user index."""
        return self._labels("user_ids", self.n_users)

    @property
    def item_labels(self) -> np.ndarray:
        """Raw item id of each item index."""
        return self._labels("item_ids", self.n_items)

    @functools.cached_property
    def _lookups(self) -> dict[str, Any]:
        import pandas as pd

        return {"user": pd.Index(self.user_labels), "item": pd.Index(self.item_labels)}

    def user_index(self, raw: list | np.ndarray) -> np.ndarray:
        """Indices of raw user ids; an unknown id raises ``KeyError`` naming it."""
        return _index(self._lookups["user"], raw, "user")

    def item_index(self, raw: list | np.ndarray) -> np.ndarray:
        """Indices of raw item ids; an unknown id raises ``KeyError`` naming it."""
        return _index(self._lookups["item"], raw, "item")

    def recommend(self, users: list | np.ndarray, k: int = 10, *,
                  exclude_seen: bool = True, max_history: int = 200) -> list[list[str]]:
        """Top-``k`` raw item ids for each raw user id, best first, never an item the user
        has seen (with ``exclude_seen``). History-encoding models get the user's known items
        as the query history."""
        from kgrec.data.split import Queries
        from kgrec.eval.ranking import recommend_queries

        idx = self.user_index(users)
        indptr, items = self.seen
        starts, ends = indptr[idx], indptr[idx + 1]
        lens = ends - starts
        q_indptr = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(lens, out=q_indptr[1:])
        offsets = np.arange(int(lens.sum())) + np.repeat(starts - q_indptr[:-1], lens)
        queries = Queries.from_history(idx, q_indptr, items[offsets], mask_history=exclude_seen)
        top = recommend_queries(self.model, queries, k, n_items=self.n_items,
                                max_history=max_history)
        labels = self.item_labels
        return [[str(labels[j]) for j in row if j >= 0] for row in top]


    # ------------------------------------------------------------------ beyond known users
    def names_of(self, items: list[str]) -> list[str]:
        """Display names (titles) of raw item ids, '' where the data has none."""
        if self.item_names is None:
            return [""] * len(items)
        return [str(self.item_names[j]) for j in self.item_index(items)]

    @functools.cached_property
    def _popularity(self) -> np.ndarray:
        return np.bincount(self.seen[1], minlength=self.n_items).astype(np.float64)

    @functools.cached_property
    def _unit_item_vectors(self) -> np.ndarray | None:
        """L2-normalised item vectors (None: the model has none); the model is frozen."""
        import torch

        try:
            with torch.no_grad():
                v = self.model.item_vectors().detach().float()
        except NotImplementedError:
            return None
        return torch.nn.functional.normalize(v, dim=1).numpy()

    def popular(self, k: int = 10, *, exclude: np.ndarray | None = None) -> list[str]:
        """The ``k`` items most often seen in training (raw ids), without ``exclude``."""
        counts = self._popularity.copy()
        if exclude is not None and len(exclude):
            counts[np.asarray(exclude, np.int64)] = -np.inf
        order = np.argsort(-counts, kind="stable")[:k]
        return [str(self.item_labels[j]) for j in order if np.isfinite(counts[j])]

    def recommend_history(self, history: list | np.ndarray, k: int = 10, *,
                          exclude_seen: bool = True, max_history: int = 200
                          ) -> tuple[list[str], str]:
        """Top-``k`` raw item ids for a user *not* in training, from the raw ids of the items
        they interacted with (oldest first), and how they were found:

        * ``"history encoder"``: models that encode a history (sequential recall, M2GRL)
          score it as they score any user;
        * ``"popularity"``: the popularity model;
        * ``"mean of the history's item vectors"``: other models with item vectors (the user
          vector is the mean of the history's, scored against every item);
        * ``"popularity (the model cannot place a new user)"``: the rest.
        """
        import torch

        from kgrec.data.split import Queries
        from kgrec.eval.ranking import recommend_queries

        hist = self.item_index(history)
        if len(hist) == 0:
            return self.popular(k), "popularity (empty history)"
        exclude = hist if exclude_seen else None
        if self.model.uses_history or self.model.user_free:
            q = Queries.from_history(np.zeros(1, np.int64), np.array([0, len(hist)]), hist,
                                     mask_history=exclude_seen)
            top = recommend_queries(self.model, q, k, n_items=self.n_items,
                                    max_history=max_history)[0]
            how = "popularity" if self.model.user_free else "history encoder"
            return [str(self.item_labels[j]) for j in top if j >= 0], how
        try:
            with torch.no_grad():
                vecs = self.model.item_vectors()
        except NotImplementedError:
            return self.popular(k, exclude=exclude), \
                "popularity (the model cannot place a new user)"
        with torch.no_grad():
            scores = vecs @ vecs[torch.from_numpy(hist)].mean(0)
            if exclude is not None:
                scores[torch.from_numpy(exclude)] = -torch.inf
            values, top = torch.topk(scores, min(k, self.n_items))
        return [str(self.item_labels[j]) for j, s in zip(top.tolist(), values.tolist(),
                                                         strict=True) if s > -np.inf], \
            "mean of the history's item vectors"

    def similar(self, item: str, k: int = 10) -> tuple[list[str], str]:
        """The ``k`` items most similar to raw item ``item`` and how: cosine of the model's
        item vectors where it has them, else co-occurrence in users' training histories."""
        j = int(self.item_index([item])[0])
        v = self._unit_item_vectors
        if v is not None:
            scores = (v @ v[j]).astype(np.float64)
            how = "cosine of item vectors"
        else:
            indptr, items = self.seen
            user_of = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            users = np.unique(user_of[items == j])
            rows = np.isin(user_of, users)
            scores = np.bincount(items[rows], minlength=self.n_items).astype(np.float64)
            how = "co-occurrence in training histories"
        scores[j] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return [str(self.item_labels[t]) for t in top if np.isfinite(scores[t])], how


def _index(labels, raw, what: str) -> np.ndarray:
    """Positions of ``raw`` ids in ``labels`` (a ``pandas.Index``)."""
    raw = np.asarray([raw] if np.isscalar(raw) else list(raw)).astype(str)
    where = labels.get_indexer(raw)
    if (where < 0).any():
        bad = raw[where < 0][:5].tolist()
        raise KeyError(f"unknown {what} id(s) {', '.join(bad)} (not in the run's vocabulary "
                       f"of {len(labels)} {what}s)")
    return where.astype(np.int64)


def load(run_dir: str | Path) -> Artifact:
    """Load a run directory written by ``kgrec train``: no raw data, no retraining.

    Raises:
        FileNotFoundError: a file of the run is missing (the message names it).
    """
    import torch

    from kgrec.models import build_model, model_config

    run_dir = Path(run_dir)
    paths = [run_dir / n for n in ("config.json", "checkpoint.pt", "artifact.npz")]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing; is {run_dir} a kgrec run directory "
                                    "(written by kgrec >= 0.2)?")
    from kgrec.utils.io import read_json

    resolved = read_json(paths[0])
    for key in ("run", "model_params"):
        if not isinstance(resolved, dict) or key not in resolved:
            raise ValueError(f"{paths[0]}: no {key!r} section; the file is damaged")
    try:
        state = torch.load(paths[1], map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # torch raises several types for a truncated file
        raise ValueError(f"{paths[1]}: cannot be read ({type(exc).__name__}); the file is "
                         "damaged") from None
    try:
        with np.load(paths[2], allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"{paths[2]}: cannot be read ({type(exc).__name__}); the file is "
                         "damaged") from None
    n_users, n_items, n_entities, n_relations = (int(x) for x in a["sizes"])
    data = ArtifactData(
        name=json.loads(str(a["header"]))["name"], n_users=n_users, n_items=n_items,
        n_entities=n_entities, n_relations=n_relations, kg=a["kg"],
        item_entity=a["item_entity"], **{k: a[k] for k in _VOCABS if k in a},
        precomputed={k: v.numpy() for k, v in state.items()},
    )
    params = dict(resolved["model_params"])
    if params.get("entity_init"):  # the checkpoint holds the trained vectors already
        params["entity_init"] = None
    name = resolved["run"]["model"]
    model = build_model(name, data, model_config(name, params), inputs=data.precomputed)
    model.load_state_dict(state)
    model.eval()
    return Artifact(run_dir=run_dir, model=model, config=resolved, data=data,
                    seen=(a["seen_indptr"], a["seen_items"]),
                    item_category=a.get("item_category"),
                    category_labels=a.get("category_labels"),
                    item_names=a.get("item_names"))
