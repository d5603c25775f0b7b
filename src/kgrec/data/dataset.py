"""The one in-memory shape every model sees: labelled interactions, a KG and the item-entity links.

Ids are dense ``int64`` indices. Raw ids (as they appear in the source files) are kept in
vocabularies (``user_ids[i]`` is the raw id of user ``i``), so results and embeddings can be
mapped back to what the user knows.

Convention (as in MKR, Wang et al. WWW'19): items take the first entity indices, so
``item_entity[i] == i`` for datasets converted the MKR way; other sources may link items to
arbitrary entities through ``item_entity``. A dataset without a KG (MovieLens-100K, Amazon)
has an empty ``kg``, ``n_relations == 0`` and one entity per item (``item_entity ==
arange(n_items)``), as a KG ablation with ``kg_ratio=0`` would.

Besides MKR's CTR rows (``ratings``), a dataset keeps the observed events before any
negative sampling (:class:`Interactions`: ratings and timestamps where the source has them)
and categorical side features of items and users
(:class:`~kgrec.data.features.FeatureTable`), for sequential, feature-aware and two-tower
models.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.data.features import FeatureTable

__all__ = ["DataError", "Dataset", "Interactions", "Split", "array_checksum"]


class DataError(ValueError):
    """Bad input data: the message names the file, the line (1-based) and the reason."""

    def __init__(self, reason: str, *, path: str | Path | None = None, line: int | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(f"{where}{reason}")


def array_checksum(*arrays: np.ndarray) -> str:
    """sha256 over the raw bytes (dtype and shape included) of the given arrays."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class Interactions:
    """Observed events, aligned arrays (before any negative sampling).

    Attributes:
        user, item: int64 indices into the dataset's user / item vocabularies.
        rating: float64 rating of the event, NaN where the source has none.
        timestamp: int64 time of the event; where the source has no time, the event's
            position in its file (so ``sequences()`` keeps the file order).
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64).reshape(-1)
        self.item = np.asarray(self.item, dtype=np.int64).reshape(-1)
        self.rating = np.asarray(self.rating, dtype=np.float64).reshape(-1)
        self.timestamp = np.asarray(self.timestamp, dtype=np.int64).reshape(-1)
        n = len(self.user)
        if not (len(self.item) == len(self.rating) == len(self.timestamp) == n):
            raise DataError("interactions: user, item, rating and timestamp lengths differ "
                            f"({n}, {len(self.item)}, {len(self.rating)}, "
                            f"{len(self.timestamp)})")

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, rating: np.ndarray | None = None,
              timestamp: np.ndarray | None = None) -> Interactions:
        """Events with NaN ratings and file-position timestamps where not given."""
        n = len(user)
        return cls(user, item,
                   np.full(n, np.nan) if rating is None else rating,
                   np.arange(n, dtype=np.int64) if timestamp is None else timestamp)

    def to_dict(self, prefix: str = "interactions.") -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in ("user", "item", "rating",
                                                            "timestamp")}

    @property
    def checksum(self) -> str:
        return array_checksum(self.user, self.item, self.rating, self.timestamp)

    def select(self, mask: np.ndarray) -> Interactions:
        """The events where ``mask`` is true (order kept)."""
        return Interactions(self.user[mask], self.item[mask], self.rating[mask],
                            self.timestamp[mask])


@dataclass
class Dataset:
    """Labelled interactions plus a knowledge graph.

    Attributes:
        name: short name (``music``, ``book``, ``synthetic`` ...).
        ratings: ``(n, 3)`` int64 rows ``(user, item, label)`` with label in {0, 1}: the
            positives and the sampled negatives of MKR's conversion.
        kg: ``(m, 3)`` int64 triples ``(head, relation, tail)`` over entity indices.
        n_users, n_items, n_entities, n_relations: vocabulary sizes.
        item_entity: ``(n_items,)`` entity index of each item.
        known_negatives: ``(k, 2)`` int64 ``(user, item)`` pairs the user explicitly disliked
            (MovieLens ratings < 4). Never drawn as sampled negatives.
        user_ids, item_ids, entity_ids, relation_ids: raw labels, index -> raw id (strings).
        source_checksums: sha256 of each source file the dataset was built from.
        meta: free-form provenance (conversion seed, reader, notes).
        interactions: the observed events (ratings, timestamps) over the same vocabularies,
            or ``None`` for a dataset built from labelled rows only.
        item_features, user_features: categorical side features (``n_items`` / ``n_users``
            rows), or ``None``.
        item_names: ``(n_items,)`` display names (movie titles) where the data has them
            (empty string: none), for recommendations people read; not in any checksum.
    """

    name: str
    ratings: np.ndarray
    kg: np.ndarray
    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    item_entity: np.ndarray
    known_negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    entity_ids: np.ndarray | None = None
    relation_ids: np.ndarray | None = None
    source_checksums: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    interactions: Interactions | None = None
    item_features: FeatureTable | None = None
    user_features: FeatureTable | None = None
    item_names: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ratings = np.asarray(self.ratings, dtype=np.int64).reshape(-1, 3)
        self.kg = np.asarray(self.kg, dtype=np.int64).reshape(-1, 3)
        self.item_entity = np.asarray(self.item_entity, dtype=np.int64)
        self.known_negatives = np.asarray(self.known_negatives, dtype=np.int64).reshape(-1, 2)
        self.check()

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Raise :class:`DataError` if indices are out of range or the data is empty."""
        r, kg = self.ratings, self.kg
        if len(r) == 0:
            raise DataError(f"dataset {self.name!r} has no interactions")
        if r[:, 0].min() < 0 or r[:, 0].max() >= self.n_users:
            raise DataError(f"dataset {self.name!r}: user index out of range [0, {self.n_users})")
        if r[:, 1].min() < 0 or r[:, 1].max() >= self.n_items:
            raise DataError(f"dataset {self.name!r}: item index out of range [0, {self.n_items})")
        if not np.isin(r[:, 2], (0, 1)).all():
            raise DataError(f"dataset {self.name!r}: labels must be 0 or 1")
        if len(self.item_entity) != self.n_items:
            raise DataError(
                f"dataset {self.name!r}: item_entity has {len(self.item_entity)} entries "
                f"for {self.n_items} items"
            )
        if len(kg):
            ents = kg[:, [0, 2]]
            if ents.min() < 0 or ents.max() >= self.n_entities:
                raise DataError(
                    f"dataset {self.name!r}: entity index out of range [0, {self.n_entities})"
                )
            if kg[:, 1].min() < 0 or kg[:, 1].max() >= self.n_relations:
                raise DataError(
                    f"dataset {self.name!r}: relation index out of range [0, {self.n_relations})"
                )
        if len(self.item_entity) and (
            self.item_entity.min() < 0 or self.item_entity.max() >= max(self.n_entities, 1)
        ):
            raise DataError(f"dataset {self.name!r}: item_entity points outside the entities")
        ev = self.interactions
        if ev is not None and len(ev):
            if ev.user.min() < 0 or ev.user.max() >= self.n_users:
                raise DataError(f"dataset {self.name!r}: interaction user index out of range")
            if ev.item.min() < 0 or ev.item.max() >= self.n_items:
                raise DataError(f"dataset {self.name!r}: interaction item index out of range")
        if self.item_names is not None and len(self.item_names) != self.n_items:
            raise DataError(f"dataset {self.name!r}: item_names has {len(self.item_names)} "
                            f"entries for {self.n_items} items")
        for what, table, n in (("item", self.item_features, self.n_items),
                               ("user", self.user_features, self.n_users)):
            if table is not None and table.n_rows != n:
                raise DataError(f"dataset {self.name!r}: {what}_features has {table.n_rows} "
                                f"rows for {n} {what}s")

    def check_trainable(self) -> None:
        """Raise :class:`DataError` (naming the source file) unless at least two users and two
        items have interactions: a split, negatives, AUC and rankings need them."""
        r = self.ratings
        for col, what in ((0, "user"), (1, "item")):
            n = len(np.unique(r[:, col]))
            if n < 2:
                files = list(self.source_checksums)
                where = None
                if files:
                    where = Path(self.meta.get("source_dir", "")) / files[0]
                raise DataError(f"dataset {self.name!r} has interactions of {n} {what}; "
                                "training and evaluation need at least 2 users and 2 items",
                                path=where)

    def select_users(self, keep: np.ndarray) -> Dataset:
        """The dataset restricted to the users where boolean ``keep`` (``(n_users,)``) holds,
        re-indexed in their order; items, the KG and their vocabularies are unchanged."""
        import dataclasses

        keep = np.asarray(keep, dtype=bool)
        new = np.cumsum(keep) - 1
        r = self.ratings[keep[self.ratings[:, 0]]]
        kn = self.known_negatives[keep[self.known_negatives[:, 0]]]
        ev = self.interactions
        if ev is not None:
            ev = ev.select(keep[ev.user])
            ev = Interactions(new[ev.user], ev.item, ev.rating, ev.timestamp)
        rows = np.flatnonzero(keep)
        return dataclasses.replace(
            self, ratings=np.c_[new[r[:, 0]], r[:, 1:]], known_negatives=np.c_[new[kn[:, 0]],
                                                                              kn[:, 1:]],
            n_users=int(keep.sum()), interactions=ev,
            user_ids=None if self.user_ids is None else np.asarray(self.user_ids)[rows],
            user_features=None if self.user_features is None
            else self.user_features.take(rows), meta=dict(self.meta))

    # ------------------------------------------------------------------ views
    @property
    def checksum(self) -> str:
        """sha256 of the converted arrays: two datasets with equal checksums hold equal rows."""
        return array_checksum(self.ratings, self.kg, self.item_entity, self.known_negatives)

    def checksums(self) -> dict[str, str]:
        """``ctr``: :attr:`checksum` (unchanged definition, as published with MKR figures),
        plus ``interactions``, ``item_features`` and ``user_features`` where present."""
        out = {"ctr": self.checksum}
        if self.interactions is not None:
            out["interactions"] = self.interactions.checksum
        for key in ("item_features", "user_features"):
            table = getattr(self, key)
            if table is not None:
                out[key] = table.checksum()
        return out

    @property
    def n_positives(self) -> int:
        return int(self.ratings[:, 2].sum())

    def sequences(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each user's observed events in time order (ties keep file order), as CSR.

        Returns ``(indptr, items, timestamps)`` with ``indptr`` of length ``n_users + 1``
        (see :func:`kgrec.data.sequences.user_sequences`).
        """
        from kgrec.data.sequences import user_sequences

        if self.interactions is None:
            raise ValueError(f"dataset {self.name!r} has no observed interactions "
                             "(built from labelled rows only)")
        ev = self.interactions
        return user_sequences(ev.user, ev.item, ev.timestamp, self.n_users)

    def stats(self) -> dict[str, Any]:
        """Sizes and sparsity, as printed by ``kgrec datasets``.

        ``interactions`` counts the CTR rows (positives + sampled negatives); ``events``
        the observed events and ``avg_sequence`` their mean number per user (0 and 0.0
        without them); ``features`` lists ``item:<field>`` / ``user:<field>`` names.
        """
        pos = self.n_positives
        events = len(self.interactions) if self.interactions is not None else 0
        features = [f"{kind}:{name}" for kind, table in (("item", self.item_features),
                                                          ("user", self.user_features))
                    if table is not None for name in table.fields]
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self.ratings),
            "positives": pos,
            "entities": self.n_entities,
            "relations": self.n_relations,
            "triples": len(self.kg),
            "density": pos / max(self.n_users * self.n_items, 1),
            "events": events,
            "avg_sequence": events / max(self.n_users, 1),
            "features": features,
        }

    def summary(self) -> str:
        """One paragraph: sizes, events, KG, features and where the data came from."""
        s = self.stats()
        parts = [f"Dataset {self.name!r}: {s['users']:,} users, {s['items']:,} items"]
        if s["events"]:
            ev = self.interactions
            extra = [k for k, has in (("rating", not np.isnan(ev.rating).all()),
                                      ("time", self.meta.get("timestamps") != "file order"))
                     if has]
            parts.append(f"{s['events']:,} events ({s['avg_sequence']:.1f} per user"
                         + (f"; with {', '.join(extra)}" if extra else "") + ")")
        parts.append(f"{s['interactions']:,} CTR rows ({s['positives']:,} positive, density "
                     f"{s['density']:.4f})")
        text = ", ".join(parts) + ". "
        if s["triples"]:
            text += (f"Knowledge graph: {s['triples']:,} triples over {s['entities']:,} "
                     f"entities and {s['relations']} relations")
            linked = self.meta.get("unlinked_items")
            if linked is not None:
                text += f"; {s['items'] - linked:,} items linked, {linked:,} not"
            if isinstance(self.meta.get("link"), dict):
                text += " (RecBole's MovieLens-1M-keyed link re-keyed by titles)"
            text += ". "
        else:
            text += "No knowledge graph. "
        dropped = self.meta.get("unlinked_items_dropped")
        if dropped:
            text += f"{dropped:,} items without a KG link were dropped (MKR's way). "
        if s["features"]:
            text += f"Features: {', '.join(s['features'])}. "
        src = self.meta.get("source_dir")
        if src:
            text += f"From {src}" + (f" ({self.meta['format']})" if "format" in self.meta
                                     else "") + "."
        return text.strip()

    def __repr__(self) -> str:
        return self.summary()

    def to_npz(self, path: str | Path) -> None:
        """Write the dataset to ``path`` (a temporary file renamed into place)."""
        import json

        from kgrec.utils.io import atomic_write

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "ratings": self.ratings,
            "kg": self.kg,
            "item_entity": self.item_entity,
            "known_negatives": self.known_negatives,
        }
        for key in ("user_ids", "item_ids", "entity_ids", "relation_ids", "item_names"):
            v = getattr(self, key)
            if v is not None:
                arrays[key] = np.asarray(v, dtype=str)
        if self.interactions is not None:
            arrays.update(self.interactions.to_dict("interactions."))
        for key in ("item_features", "user_features"):
            table = getattr(self, key)
            if table is not None:
                arrays.update(table.to_dict(f"{key}."))
        header = {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_entities": self.n_entities,
            "n_relations": self.n_relations,
            "source_checksums": self.source_checksums,
            "meta": self.meta,
        }
        arrays["header"] = np.array(json.dumps(header))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def from_npz(cls, path: str | Path) -> Dataset:
        import json

        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in z.files if k != "header"}
        kwargs: dict[str, Any] = {k: v for k, v in arrays.items() if "." not in k}
        if "interactions.user" in arrays:
            kwargs["interactions"] = Interactions(
                *(arrays[f"interactions.{k}"] for k in ("user", "item", "rating", "timestamp")))
        for key in ("item_features", "user_features"):
            if f"{key}.names" in arrays:
                kwargs[key] = FeatureTable.from_dict(arrays, f"{key}.")
        return cls(**header, **kwargs)


@dataclass
class Split:
    """Train / validation / test rows ``(user, item, label)``; validation and test never change."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}
