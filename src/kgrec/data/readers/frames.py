"""A KG dataset from tables: pandas DataFrames (your own CSV files), and the builder shared
with the RecBole reader (arbitrary triples whose heads need not be items)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kgrec.data.convert import align_interactions, mkr_convert_ratings, natural_vocab
from kgrec.data.dataset import DataError, Dataset, Interactions
from kgrec.utils.lazy import pd

__all__ = ["from_dataframes"]

UNLINKED = ("drop", "keep")


def _build(
    name: str,
    *,
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    labelled: bool,
    threshold: float,
    link_items: np.ndarray,
    link_entities: np.ndarray,
    heads: np.ndarray,
    relations: np.ndarray,
    tails: np.ndarray,
    seed: int,
    where: str,
    links_where: str | None,
    rating: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
    unlinked_items: str = "drop",
    extra_items: np.ndarray | None = None,
    line_of: Callable[[int], int] | None = None,
    kg_where: str | None = None,
    require_kg: bool = True,
) -> Dataset:
    """Index arbitrary triples (heads need not be items) and either keep given 0/1 labels or
    convert ratings the MKR way (threshold + sampled negatives).

    ``unlinked_items="drop"`` (MKR): the items are the linked ones, in link order, and events
    on other items are dropped; ``"keep"`` (RecBole): the items are every item of the events,
    the links and ``extra_items``, sorted by id, an unlinked item gets an entity of its own
    (labelled ``item:<id>``, no triples), and every user keeps an index (sorted by id).
    ``line_of(k)``: the line (or row) that errors name for interaction ``k`` (default
    ``k + 1``); ``kg_where``: what errors of the triples name.
    """
    line_of = line_of or (lambda k: k + 1)
    if unlinked_items not in UNLINKED:
        raise ValueError(f"unlinked_items must be 'drop' or 'keep', got {unlinked_items!r}")
    if len(heads) == 0 and require_kg:
        raise DataError("empty graph: no triples", path=kg_where or where)
    users = np.asarray(users).astype(str)
    items = np.asarray(items).astype(str)
    link_items = np.asarray(link_items, dtype=str)
    link_index = pd.Index(link_items)
    if not link_index.is_unique:
        raise DataError("duplicate item id in the item-entity links", path=links_where)
    ent_codes, entity_ids = pd.factorize(
        np.r_[np.asarray(link_entities, str), np.c_[heads, tails].astype(str).ravel()]
    )
    entity_ids = np.asarray(entity_ids, dtype=str)
    n_links = len(link_index)
    ht = ent_codes[n_links:].reshape(-1, 2)
    r, relation_ids = pd.factorize(np.asarray(relations, dtype=str))
    kg = np.c_[ht[:, 0], r, ht[:, 1]].astype(np.int64)
    keep = unlinked_items == "keep"
    if keep:
        item_vocab = natural_vocab(link_items, items,
                                   np.zeros(0, str) if extra_items is None else extra_items)
        pos = link_index.get_indexer(item_vocab)
        unlinked = pos < 0
        item_entity = np.empty(len(item_vocab), np.int64)
        item_entity[~unlinked] = ent_codes[pos[~unlinked]]
        item_entity[unlinked] = len(entity_ids) + np.arange(int(unlinked.sum()))
        entity_ids = np.r_[entity_ids, np.char.add("item:", item_vocab[unlinked])]
        user_vocab: np.ndarray | None = natural_vocab(users)
    else:
        item_vocab, item_entity, user_vocab = link_items, ent_codes[:n_links], None
    item_index = pd.Index(item_vocab)
    n_items = len(item_index)
    if labelled:
        codes = item_index.get_indexer(items)
        if (codes < 0).any():
            k = int(np.flatnonzero(codes < 0)[0])
            raise DataError(f"item {str(items[k])!r} has no entity link", path=where,
                            line=line_of(k))
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"label is {values[k]:g}, expected 0 or 1", path=where,
                            line=line_of(k))
        if user_vocab is None:
            ucodes, user_ids = pd.factorize(users)
        else:
            ucodes, user_ids = pd.Index(user_vocab).get_indexer(users), user_vocab
        ratings = np.c_[ucodes, codes, values.astype(np.int64)].astype(np.int64)
        known_neg = np.zeros((0, 2), np.int64)
        meta: dict = {"conversion": "labelled"}
        events = Interactions.build(ucodes, codes, rating, timestamp).select(
            np.asarray(values) == 1)
    else:  # MKR's rating conversion; the graph is indexed above (all heads kept)
        ratings, known_neg, user_ids = mkr_convert_ratings(
            users, items, values >= threshold, item_vocab, seed=seed, links_path=links_where,
            user_raw_ids=user_vocab)
        meta = {"conversion": "mkr", "seed": seed}
        events = align_interactions(user_ids, item_vocab, users, items, rating=rating,
                                    timestamp=timestamp)
    meta["timestamps"] = "file order" if timestamp is None else "time"
    if keep:
        meta["unlinked_items"] = int(unlinked.sum())  # kept, with an entity of their own
    else:
        seen = pd.Index(pd.unique(items))
        meta["unlinked_items_dropped"] = int((~seen.isin(link_index)).sum())
    return Dataset(
        name=name, ratings=ratings, kg=kg, n_users=len(user_ids), n_items=n_items,
        n_entities=len(entity_ids), n_relations=len(relation_ids), item_entity=item_entity,
        known_negatives=known_neg, user_ids=np.asarray(user_ids, str),
        item_ids=np.asarray(item_index, str), entity_ids=np.asarray(entity_ids, str),
        relation_ids=np.asarray(relation_ids, str), meta=meta, interactions=events,
    )


def _no_missing(col: pd.Series, name: str, where: str,
                line_of: Callable[[int], int] | None = None) -> None:
    """:class:`DataError` at the first row (1-based) where column ``name`` has no value."""
    na = col.isna().to_numpy()
    if na.any():
        k = int(np.flatnonzero(na)[0])
        raise DataError(f"missing {name} value", path=where,
                        line=line_of(k) if line_of else k + 1)


def _numbers(col: pd.Series, name: str, where: str,
             line_of: Callable[[int], int] | None = None) -> np.ndarray:
    """float64 values of a label / rating column; :class:`DataError` at the first row that is
    missing, NaN or not a number."""
    num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(num)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        v = col.iloc[k]
        what = "NaN (missing)" if v is None or (isinstance(v, float) and np.isnan(v)) \
            else repr(v)
        raise DataError(f"{name} is {what}, expected a number", path=where,
                        line=line_of(k) if line_of else k + 1)
    return num


def _timestamps(col: pd.Series, where: str,
                line_of: Callable[[int], int] | None = None) -> np.ndarray:
    """int64 times from a numeric or datetime column (datetimes as nanoseconds)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        if col.isna().any():
            k = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise DataError("missing timestamp", path=where,
                            line=line_of(k) if line_of else k + 1)
        return col.to_numpy().astype("datetime64[ns]").astype(np.int64)
    num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(num)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"timestamp {col.iloc[k]!r} is not a number", path=where,
                        line=line_of(k) if line_of else k + 1)
    return np.round(num).astype(np.int64)


def from_dataframes(
    interactions: pd.DataFrame,
    kg: pd.DataFrame,
    links: pd.DataFrame | None = None,
    *,
    name: str = "custom",
    user_col: str = "user",
    item_col: str = "item",
    label_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    threshold: float = 0.0,
    head_col: str = "head",
    relation_col: str = "relation",
    tail_col: str = "tail",
    link_item_col: str = "item",
    link_entity_col: str = "entity",
    seed: int = 0,
    where: str = "<interactions DataFrame>",
    unlinked_items: str = "drop",
    line_of: Callable[[int], int] | None = None,
) -> Dataset:
    """A :class:`Dataset` from your own tables.

    ``interactions`` holds either 0/1 labels (``label_col``: rows kept as they are) or
    ratings / implicit rows (``rating_col`` with ``threshold``, or neither: every row a
    positive), which are converted the MKR way (per user as many sampled negatives as
    positives). ``links`` maps each item to its KG entity; without it an item *is* the entity
    of the same name. Triple heads may be any entity.

    :attr:`Dataset.interactions` holds the rows (with labels: the positive rows) of kept users
    and items, with ``rating_col`` as rating and ``timestamp_col`` (numbers or datetimes,
    stored as int64) as time, else the row position.

    ``kg`` may be empty (an interaction-only dataset: pass ``unlinked_items="keep"``).
    ``where`` names the interactions in errors and ``line_of(k)`` the line of row ``k``
    (default ``k + 1``); ``unlinked_items``: ``"drop"`` (MKR) or ``"keep"`` (see
    :func:`_build`).
    """
    line_of = line_of or (lambda k: k + 1)
    for df, cols, what in ((interactions, [user_col, item_col]
                            + [c for c in (label_col, rating_col, timestamp_col) if c],
                            "interactions"),
                           (kg, [head_col, relation_col, tail_col], "kg")):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{what} DataFrame lacks column(s) {missing}; it has "
                            f"{list(df.columns)}", path=f"<{what} DataFrame>")
    if len(interactions) == 0:
        raise DataError("empty: the interactions DataFrame has no rows", path=where)
    for col in (user_col, item_col):
        _no_missing(interactions[col], col, where, line_of)
    for col in (head_col, relation_col, tail_col):
        _no_missing(kg[col], col, "<kg DataFrame>")
    if links is not None:
        for col in (link_item_col, link_entity_col):
            if col not in links.columns:
                raise DataError(f"links DataFrame lacks column {col!r}; it has "
                                f"{list(links.columns)}", path="<links DataFrame>")
            _no_missing(links[col], col, "<links DataFrame>")
    for col in (label_col, rating_col):
        if col:
            interactions = interactions.assign(
                **{col: _numbers(interactions[col], col, where, line_of)})
    if links is None:
        li = pd.unique(interactions[item_col].astype(str).to_numpy())
        le = li
    else:
        li = links[link_item_col].astype(str).to_numpy()
        le = links[link_entity_col].astype(str).to_numpy()
    labelled = label_col is not None
    rating = interactions[rating_col].to_numpy(dtype=float) if rating_col else None
    values = (interactions[label_col].to_numpy() if labelled else
              rating if rating is not None else np.ones(len(interactions)))
    times = _timestamps(interactions[timestamp_col], where, line_of) if timestamp_col else None
    return _build(
        name, users=interactions[user_col].astype(str).to_numpy(),
        items=interactions[item_col].astype(str).to_numpy(), values=values,
        labelled=labelled, threshold=threshold, link_items=li, link_entities=le,
        heads=kg[head_col].astype(str).to_numpy(), relations=kg[relation_col].astype(str)
        .to_numpy(), tails=kg[tail_col].astype(str).to_numpy(), seed=seed,
        where=where, links_where="<links DataFrame>", rating=rating, timestamp=times,
        unlinked_items=unlinked_items, line_of=line_of, kg_where="<kg DataFrame>",
        require_kg=unlinked_items == "drop",
    )
