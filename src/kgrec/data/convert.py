"""MKR's data conversion (``preprocess.py`` of Wang et al., WWW'19), vectorised.

Ratings:
  * keep only items linked to a KG entity (``item_index2entity_id.txt``; its line order gives
    the item index);
  * a row is positive when ``rating >= threshold`` (4 for MovieLens, every row for Last.FM and
    Book-Crossing); lower ratings are *known negatives*, never drawn as sampled negatives;
  * users are indexed in the order of their first positive row; users without any positive
    are dropped (as in MKR);
  * per user, as many negatives as positives, drawn uniformly without replacement from the
    items the user never touched;
  * rows are written user by user: positives (by item index), then the sampled negatives.

KG:
  * items take the first entity indices; triples whose head is not an item are skipped; new
    tail entities and relations are indexed in order of first appearance.

Observed events (:class:`~kgrec.data.dataset.Interactions`) are aligned to the same user and
item vocabularies by :func:`align_interactions`: events whose user or item has no index (an
unlinked item, a user MKR dropped) are left out. Datasets without a KG (MovieLens-100K,
Amazon) are assembled by :func:`events_dataset`, which fixes the user vocabulary to every user
(sorted by id), so users without a positive keep their index and their events.

Deviation from the original script, on purpose: MKR skips the first line of every rating
file (``readlines()[1:]``), which drops a real rating from MovieLens' header-less
``ratings.dat``. kgrec skips a header only where the format has one (the readers decide).
Where a user has fewer never-touched items than positives, MKR crashes; kgrec draws them all.
"""

from __future__ import annotations

import numpy as np

from kgrec.data.dataset import DataError, Dataset, Interactions
from kgrec.data.features import FeatureTable
from kgrec.data.sampling import PairSet, sample_negatives, unique_sorted
from kgrec.utils.lazy import pd

__all__ = ["align_interactions", "events_dataset", "mkr_convert", "mkr_convert_kg",
           "mkr_convert_ratings", "natural_vocab"]


def natural_vocab(*values: np.ndarray) -> np.ndarray:
    """Distinct labels of the given arrays as strings, sorted numerically when all are
    integers (``"2" < "10"``), else lexicographically."""
    parts = [np.asarray(v).astype(str) for v in values if len(v)]
    if not parts:
        return np.zeros(0, dtype=str)
    u = pd.unique(np.concatenate(parts))
    u = np.asarray(u, dtype=str)
    num = pd.to_numeric(pd.Series(u), errors="coerce").to_numpy()
    if np.isfinite(num).all() and np.array_equal(num, np.round(num)):
        return u[np.lexsort((u, num))]
    return np.sort(u)


def align_interactions(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    users_raw: np.ndarray,
    items_raw: np.ndarray,
    *,
    rating: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
) -> Interactions:
    """Observed events over the given vocabularies (raw label -> index), file order kept.

    Events whose user or item is not in the vocabularies are dropped. ``rating`` defaults
    to NaN, ``timestamp`` to the event's position in the input (before dropping).
    """
    n = len(users_raw)
    u = pd.Index(np.asarray(user_ids, dtype=str)).get_indexer(np.asarray(users_raw).astype(str))
    i = pd.Index(np.asarray(item_ids, dtype=str)).get_indexer(np.asarray(items_raw).astype(str))
    keep = (u >= 0) & (i >= 0)
    ev = Interactions.build(u, i, rating, timestamp)
    if len(ev) != n:
        raise ValueError("rating / timestamp must align with the events")
    return ev if keep.all() else ev.select(keep)


def _unique_index(values: np.ndarray, what: str, path: str | None) -> pd.Index:
    idx = pd.Index(np.asarray(values, dtype=str))
    if not idx.is_unique:
        dup = idx[idx.duplicated()][0]
        line = int(np.flatnonzero(np.asarray(idx) == dup)[1]) + 1
        raise DataError(f"duplicate {what} {dup!r}", path=path, line=line)
    return idx


def _unique_pairs(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    keys = unique_sorted(rows * n_cols + cols)
    return np.c_[keys // n_cols, keys % n_cols].astype(np.int64)


def mkr_convert_ratings(
    users_raw: np.ndarray,
    items_raw: np.ndarray,
    positive: np.ndarray,
    item_raw_ids: np.ndarray,
    *,
    seed: int = 0,
    links_path: str | None = None,
    user_raw_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelled rows from raw ratings, the MKR way.

    Args:
        users_raw, items_raw: raw ids of each rating row, in file order.
        positive: boolean per row (rating above the threshold).
        item_raw_ids: raw item ids of the linked items; position = item index.
        seed: seed of the negative draw.
        user_raw_ids: fix the user vocabulary (position = user index; rows of other users
            are dropped, users without a positive keep their index and get no rows). By
            default (MKR) users are indexed by first positive row and the others dropped.

    Returns:
        ``ratings`` ``(n, 3)`` (user, item, label), ``known_negatives`` ``(k, 2)`` and
        ``user_ids`` (raw id of each user index).
    """
    users_raw = np.asarray(users_raw).astype(str)
    positive = np.asarray(positive, dtype=bool)
    item_index = _unique_index(item_raw_ids, "item id", links_path)
    n_items = len(item_index)
    codes = item_index.get_indexer(np.asarray(items_raw).astype(str))
    linked = codes >= 0
    u_raw, it, pos = users_raw[linked], codes[linked].astype(np.int64), positive[linked]

    if user_raw_ids is None:
        ucodes, user_ids = pd.factorize(u_raw[pos])
        it_pos = it[pos]
    else:
        user_ids = _unique_index(user_raw_ids, "user id", None)
        ucodes = user_ids.get_indexer(u_raw[pos])
        it_pos = it[pos][ucodes >= 0]
        ucodes = ucodes[ucodes >= 0]
    n_users = len(user_ids)
    if len(ucodes) == 0:
        raise DataError("no positive interaction with a linked item: nothing to train on",
                        path=links_path)
    pos_pairs = _unique_pairs(ucodes.astype(np.int64), it_pos, n_items)

    neg_u = pd.Index(user_ids).get_indexer(u_raw[~pos])
    ok = neg_u >= 0
    neg_pairs = _unique_pairs(neg_u[ok].astype(np.int64), it[~pos][ok], n_items)
    pos_set = PairSet(pos_pairs[:, 0], pos_pairs[:, 1], n_items)
    neg_pairs = neg_pairs[~pos_set.contains(neg_pairs[:, 0], neg_pairs[:, 1])]

    exclude = PairSet(
        np.r_[pos_pairs[:, 0], neg_pairs[:, 0]], np.r_[pos_pairs[:, 1], neg_pairs[:, 1]], n_items
    )
    counts = np.bincount(pos_pairs[:, 0], minlength=n_users)
    rng = np.random.default_rng(seed)
    su, si = sample_negatives(np.arange(n_users), counts, n_items, exclude, rng)

    users = np.r_[pos_pairs[:, 0], su]
    items = np.r_[pos_pairs[:, 1], si]
    labels = np.r_[np.ones(len(pos_pairs), np.int64), np.zeros(len(su), np.int64)]
    order = np.argsort(users, kind="stable")  # per user: positives first, then negatives
    ratings = np.c_[users[order], items[order], labels[order]].astype(np.int64)
    return ratings, neg_pairs.astype(np.int64), np.asarray(user_ids, dtype=str)


def mkr_convert_kg(
    item_entity_raw: np.ndarray,
    heads: np.ndarray,
    relations: np.ndarray,
    tails: np.ndarray,
    *,
    links_path: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index a raw KG the MKR way (items first, then tails and relations by first appearance).

    Returns ``kg`` ``(m, 3)``, ``entity_ids`` and ``relation_ids`` (raw labels by index).
    """
    ent_index = _unique_index(item_entity_raw, "entity id", links_path)
    n_items = len(ent_index)
    heads = np.asarray(heads).astype(str)
    h = ent_index.get_indexer(heads)
    keep = h >= 0
    tails_kept = np.asarray(tails).astype(str)[keep]
    codes, entity_ids = pd.factorize(np.r_[np.asarray(ent_index), tails_kept])
    t = codes[n_items:]
    r, relation_ids = pd.factorize(np.asarray(relations).astype(str)[keep])
    kg = np.c_[h[keep], r, t].astype(np.int64)
    return kg, np.asarray(entity_ids, dtype=str), np.asarray(relation_ids, dtype=str)


def mkr_convert(
    name: str,
    *,
    users_raw: np.ndarray,
    items_raw: np.ndarray,
    positive: np.ndarray,
    item_raw_ids: np.ndarray,
    item_entity_raw: np.ndarray,
    heads: np.ndarray,
    relations: np.ndarray,
    tails: np.ndarray,
    seed: int = 0,
    source_checksums: dict[str, str] | None = None,
    links_path: str | None = None,
    rating: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
) -> Dataset:
    """Both conversions, assembled into a :class:`Dataset`, with the observed events
    (``rating`` / ``timestamp`` per input row, defaults NaN / file position) of kept users
    and linked items."""
    ratings, known_neg, user_ids = mkr_convert_ratings(
        users_raw, items_raw, positive, item_raw_ids, seed=seed, links_path=links_path
    )
    kg, entity_ids, relation_ids = mkr_convert_kg(
        item_entity_raw, heads, relations, tails, links_path=links_path
    )
    n_items = len(item_raw_ids)
    return Dataset(
        name=name,
        ratings=ratings,
        kg=kg,
        n_users=len(user_ids),
        n_items=n_items,
        n_entities=len(entity_ids),
        n_relations=len(relation_ids),
        item_entity=np.arange(n_items),
        known_negatives=known_neg,
        user_ids=user_ids,
        item_ids=np.asarray(item_raw_ids, dtype=str),
        entity_ids=entity_ids,
        relation_ids=relation_ids,
        source_checksums=dict(source_checksums or {}),
        meta={"conversion": "mkr", "seed": seed,
              "unlinked_items_dropped": _count_unlinked(items_raw, item_raw_ids)},
        interactions=align_interactions(user_ids, item_raw_ids, users_raw, items_raw,
                                        rating=rating, timestamp=timestamp),
    )


def _count_unlinked(items_raw: np.ndarray, linked: np.ndarray) -> int:
    """How many distinct rated items have no KG link (MKR's conversion drops their events)."""
    seen = pd.Index(pd.unique(np.asarray(items_raw).astype(str)))
    return int((~seen.isin(np.asarray(linked, dtype=str))).sum())


def events_dataset(
    name: str,
    *,
    users_raw: np.ndarray,
    items_raw: np.ndarray,
    positive: np.ndarray,
    item_raw_ids: np.ndarray,
    user_raw_ids: np.ndarray | None = None,
    rating: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
    item_features: FeatureTable | None = None,
    user_features: FeatureTable | None = None,
    seed: int = 0,
    source_checksums: dict[str, str] | None = None,
    where: str | None = None,
) -> Dataset:
    """A dataset without a KG from raw events: MKR's CTR rows (positives, known negatives,
    as many sampled negatives per user), the events themselves, optional features.

    Every user of ``user_raw_ids`` (default: all users of the events, sorted by id) keeps an
    index; items are ``item_raw_ids`` in order. The KG is empty, ``n_relations == 0`` and
    each item is its own entity (``item_entity == arange(n_items)``).
    """
    users_raw = np.asarray(users_raw).astype(str)
    items_raw = np.asarray(items_raw).astype(str)
    if user_raw_ids is None:
        user_raw_ids = natural_vocab(users_raw)
    ratings, known_neg, user_ids = mkr_convert_ratings(
        users_raw, items_raw, positive, item_raw_ids, seed=seed, links_path=where,
        user_raw_ids=user_raw_ids)
    item_ids = np.asarray(item_raw_ids, dtype=str)
    n_items = len(item_ids)
    events = align_interactions(user_ids, item_ids, users_raw, items_raw, rating=rating,
                                timestamp=timestamp)
    return Dataset(
        name=name, ratings=ratings, kg=np.zeros((0, 3), np.int64), n_users=len(user_ids),
        n_items=n_items, n_entities=n_items, n_relations=0, item_entity=np.arange(n_items),
        known_negatives=known_neg, user_ids=np.asarray(user_ids, str), item_ids=item_ids,
        entity_ids=item_ids.copy(), relation_ids=np.zeros(0, dtype=str),
        source_checksums=dict(source_checksums or {}),
        meta={"conversion": "mkr", "seed": seed, "kg": "none"},
        interactions=events, item_features=item_features, user_features=user_features,
    )
