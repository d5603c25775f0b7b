"""Categorical side features of items and users, stored column-wise as CSR.

A :class:`FeatureTable` holds, for ``n_rows`` rows (items or users), named categorical
fields. Each field is single-valued (gender, year) or multi-valued (genres, title tokens,
Amazon attribute ids, the tails of one KG relation) and is stored as CSR: the values of row
``r`` are ``values[indptr[r]:indptr[r + 1]]``, value ids index the field's ``vocab`` (raw
labels). A row may have no value (an unknown year). This is the input shape of feature-aware
models (FM / Wide&Deep fields, S3-Rec's attribute masking, two-tower towers).

Everything here is vectorised: building a field is a factorize, a stable sort and a
``bincount``; :meth:`FeatureTable.padded` is one scatter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kgrec.utils.lazy import pd

if TYPE_CHECKING:
    from kgrec.data.dataset import Dataset

__all__ = ["CATEGORY_FIELDS", "FeatureField", "FeatureTable", "category_codes",
           "field_mutual_information", "item_categories", "kg_item_features",
           "tower_features"]


@dataclass(frozen=True)
class FeatureField:
    """One categorical field over ``len(indptr) - 1`` rows.

    Attributes:
        indptr: ``(n_rows + 1,)`` int64 CSR row pointers.
        values: ``(nnz,)`` int64 value ids, indices into ``vocab``.
        vocab: ``(n_values,)`` raw labels of the value ids (strings).
        multi: whether a row may hold several values.
    """

    indptr: np.ndarray
    values: np.ndarray
    vocab: np.ndarray
    multi: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "indptr", np.asarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.int64))
        object.__setattr__(self, "vocab", np.asarray(self.vocab, dtype=str))
        ip, v = self.indptr, self.values
        if ip.ndim != 1 or len(ip) < 1 or ip[0] != 0 or ip[-1] != len(v) or \
                (np.diff(ip) < 0).any():
            raise ValueError("indptr must start at 0, never decrease and end at len(values)")
        if len(v) and (v.min() < 0 or v.max() >= len(self.vocab)):
            raise ValueError(f"value ids must lie in [0, {len(self.vocab)})")
        if not self.multi and len(ip) > 1 and np.diff(ip).max() > 1:
            raise ValueError("a single-valued field has a row with several values")

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        """Number of values of each row."""
        return np.diff(self.indptr)

    def row(self, r: int) -> np.ndarray:
        """Value ids of row ``r``."""
        return self.values[self.indptr[r]:self.indptr[r + 1]]

    def labels(self, r: int) -> list[str]:
        """Raw labels of row ``r``'s values."""
        return self.vocab[self.row(r)].tolist()

    def take(self, rows: np.ndarray) -> FeatureField:
        """The field over ``rows`` (in that order), same vocabulary."""
        rows = np.asarray(rows, np.int64)
        lens = self.lengths()[rows]
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lens, out=indptr[1:])
        src = np.repeat(self.indptr[rows], lens) + np.arange(int(lens.sum())) \
            - np.repeat(indptr[:-1], lens)
        return FeatureField(indptr, self.values[src], self.vocab, self.multi)

    def drop_rare(self, min_rows: int) -> FeatureField:
        """The field without the values fewer than ``min_rows`` rows hold (the vocabulary
        shrinks to the values kept, in their order). A value one row holds, such as an
        actor seen in one film, ties that row to no other, so it can carry nothing learned
        from one row to another."""
        if min_rows <= 1 or not len(self.values):
            return self
        rows_per_value = np.bincount(self.values, minlength=len(self.vocab))
        kept = rows_per_value >= min_rows
        new_id = np.cumsum(kept) - 1
        keep = kept[self.values]
        lens = np.bincount(np.repeat(np.arange(self.n_rows), self.lengths())[keep],
                           minlength=self.n_rows)
        return FeatureField(np.r_[0, np.cumsum(lens)].astype(np.int64),
                            new_id[self.values[keep]], self.vocab[kept], self.multi)


def _sorted_vocab(codes: np.ndarray, vocab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-code so the vocabulary is sorted (numerically when every label is a number)."""
    num = pd.to_numeric(pd.Series(vocab), errors="coerce").to_numpy(dtype=np.float64)
    order = np.lexsort((vocab, num)) if np.isfinite(num).all() else np.argsort(vocab,
                                                                           kind="stable")
    rank = np.empty(len(vocab), np.int64)
    rank[order] = np.arange(len(vocab))
    return rank[codes], vocab[order]


def build_field(rows: np.ndarray, labels: np.ndarray, n_rows: int, *, multi: bool = True,
                sort_vocab: bool = True, vocab: np.ndarray | None = None) -> FeatureField:
    """A field from ``(row, label)`` pairs (any order; duplicates of a pair are dropped; per
    row the values keep the order of first appearance).

    ``vocab`` fixes the vocabulary (every label must be in it); else ``sort_vocab`` orders it
    by label (numeric labels numerically), or by first appearance.
    """
    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(labels).astype(str)
    if len(rows) != len(labels):
        raise ValueError("rows and labels must have the same length")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"row index out of range [0, {n_rows})")
    if vocab is not None:
        vocab = np.asarray(vocab, dtype=str)
        codes = pd.Index(vocab).get_indexer(labels)
        if (codes < 0).any():
            raise ValueError(f"label {labels[codes < 0][0]!r} is not in the vocabulary")
    else:
        codes, vocab = pd.factorize(labels)
        vocab = np.asarray(vocab, dtype=str)
        if sort_vocab and len(vocab):
            codes, vocab = _sorted_vocab(codes, vocab)
    codes = np.asarray(codes, dtype=np.int64)
    if len(rows):  # drop repeated (row, value) pairs, keep the first
        key = rows * max(len(vocab), 1) + codes
        _, first = np.unique(key, return_index=True)
        first.sort()
        rows, codes = rows[first], codes[first]
    order = np.argsort(rows, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n_rows))].astype(np.int64)
    return FeatureField(indptr, codes[order], vocab, multi)


class FeatureTable:
    """Named categorical fields over ``n_rows`` rows (items or users).

    Build it with :meth:`add` (from ``(row, label)`` pairs) or from :class:`FeatureField`\\ s.
    """

    def __init__(self, n_rows: int, fields: Mapping[str, FeatureField] | None = None):
        self.n_rows = int(n_rows)
        self._fields: dict[str, FeatureField] = {}
        for name, f in (fields or {}).items():
            self.set(name, f)

    # ------------------------------------------------------------------ building
    def set(self, name: str, field: FeatureField) -> None:
        """Add or replace field ``name``."""
        if field.n_rows != self.n_rows:
            raise ValueError(f"field {name!r} has {field.n_rows} rows, the table {self.n_rows}")
        self._fields[str(name)] = field

    def add(self, name: str, rows: np.ndarray, labels: np.ndarray, *, multi: bool = True,
            sort_vocab: bool = True, vocab: np.ndarray | None = None) -> FeatureTable:
        """Add field ``name`` from ``(row, label)`` pairs (see :func:`build_field`)."""
        self.set(name, build_field(rows, labels, self.n_rows, multi=multi,
                                   sort_vocab=sort_vocab, vocab=vocab))
        return self

    def add_column(self, name: str, rows: np.ndarray, column: np.ndarray, *,
                   sep: str | None = None, sort_vocab: bool = True) -> FeatureTable:
        """Add field ``name`` from one table column: ``column[k]`` holds the value of row
        ``rows[k]`` (rows ``< 0`` are skipped), or with ``sep`` several values separated by
        ``sep`` (a multi-valued field). Empty values are skipped."""
        rows = np.asarray(rows, dtype=np.int64)
        col = pd.Series(np.asarray(column, dtype=object), index=rows)
        col = col[rows >= 0]
        if sep is not None:
            col = col.astype(str).str.split(sep).explode()
        col = col.dropna().astype(str).str.strip()
        col = col[col != ""]
        return self.add(name, col.index.to_numpy(dtype=np.int64), col.to_numpy(dtype=str),
                        multi=sep is not None, sort_vocab=sort_vocab)

    # ------------------------------------------------------------------ views
    def take(self, rows: np.ndarray) -> FeatureTable:
        """The table over ``rows`` (in that order)."""
        rows = np.asarray(rows, np.int64)
        return FeatureTable(len(rows), {n: f.take(rows) for n, f in self._fields.items()})

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names, in insertion order."""
        return tuple(self._fields)

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}[{self.n_values(k)}{'*' if f.multi else ''}]"
                          for k, f in self._fields.items())
        return f"FeatureTable(n_rows={self.n_rows}, {parts})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureTable):
            return NotImplemented
        return self.checksum() == other.checksum()

    def field(self, name: str) -> FeatureField:
        """The field ``name`` (``KeyError`` naming the known fields otherwise)."""
        try:
            return self._fields[name]
        except KeyError:
            raise KeyError(f"no feature field {name!r}; fields: {', '.join(self._fields)}") \
                from None

    def n_values(self, name: str) -> int:
        """Vocabulary size of field ``name``."""
        return len(self.field(name).vocab)

    def padded(self, name: str, max_len: int | None = None) -> np.ndarray:
        """``(n_rows, max_len)`` int64 value ids of field ``name``, padded with -1.

        Rows longer than ``max_len`` keep their first ``max_len`` values; ``None`` uses the
        longest row (at least 1).
        """
        f = self.field(name)
        lengths = f.lengths()
        if max_len is None:
            max_len = max(int(lengths.max()) if len(lengths) else 0, 1)
        if max_len < 0:
            raise ValueError("max_len must be >= 0")
        out = np.full((self.n_rows, max_len), -1, dtype=np.int64)
        row = np.repeat(np.arange(self.n_rows), lengths)
        pos = np.arange(len(f.values)) - f.indptr[row]
        keep = pos < max_len
        out[row[keep], pos[keep]] = f.values[keep]
        return out

    def stacked(self, max_values: int = 16, fields: list[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All ``fields`` (default: every field) side by side, as one embedding table sees
        them: ``(values (n_rows, T), column_field (T,), sizes (k,))``.

        Field ``f``'s value ``v`` becomes the global id ``offset_f + v`` with ``offset_f`` the
        sum of the earlier fields' vocabulary sizes (so one table of ``sizes.sum()`` rows
        holds every field); each field takes ``min(longest row, max_values)`` columns
        (single-valued fields one), padded with ``-1``; ``column_field[t]`` is the field of
        column ``t``.
        """
        names = list(self._fields) if fields is None else list(fields)
        blocks, cols, sizes, offset = [], [], [], 0
        for k, name in enumerate(names):
            fld = self.field(name)
            width = 1 if not fld.multi else max(1, min(int(max_values),
                                                       int(fld.lengths().max(initial=0))))
            block = self.padded(name, width)
            blocks.append(np.where(block >= 0, block + offset, -1))
            cols.append(np.full(width, k, np.int64))
            sizes.append(len(fld.vocab))
            offset += len(fld.vocab)
        if not blocks:
            return (np.zeros((self.n_rows, 0), np.int64), np.zeros(0, np.int64),
                    np.zeros(0, np.int64))
        return (np.concatenate(blocks, axis=1), np.concatenate(cols),
                np.asarray(sizes, np.int64))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Flat arrays (npz-ready): ``<prefix>n_rows``, ``<prefix>names``, ``<prefix>multi``
        and ``<prefix><k>.indptr|values|vocab`` for the k-th field."""
        out: dict[str, np.ndarray] = {
            f"{prefix}n_rows": np.array(self.n_rows, dtype=np.int64),
            f"{prefix}names": np.asarray(list(self._fields), dtype=str),
            f"{prefix}multi": np.asarray([f.multi for f in self._fields.values()], dtype=bool),
        }
        for k, f in enumerate(self._fields.values()):
            out[f"{prefix}{k}.indptr"] = f.indptr
            out[f"{prefix}{k}.values"] = f.values
            out[f"{prefix}{k}.vocab"] = f.vocab
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, np.ndarray], prefix: str = "") -> FeatureTable:
        """Inverse of :meth:`to_dict`."""
        names = np.asarray(d[f"{prefix}names"]).astype(str).tolist()
        multi = np.asarray(d[f"{prefix}multi"], dtype=bool).tolist()
        table = cls(int(d[f"{prefix}n_rows"]))
        for k, (name, m) in enumerate(zip(names, multi, strict=True)):
            table.set(name, FeatureField(d[f"{prefix}{k}.indptr"], d[f"{prefix}{k}.values"],
                                         d[f"{prefix}{k}.vocab"], bool(m)))
        return table

    def to_npz(self, path: str | Path) -> None:
        """Write to ``path`` (a temporary file renamed into place)."""
        from kgrec.utils.io import atomic_write

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self.to_dict()
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def from_npz(cls, path: str | Path) -> FeatureTable:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_dict({k: z[k] for k in z.files})

    def checksum(self) -> str:
        """sha256 over all fields' arrays and names."""
        from kgrec.data.dataset import array_checksum

        d = self.to_dict()
        return array_checksum(*(d[k] for k in sorted(d)))


def kg_item_features(ds: Dataset) -> FeatureTable:
    """Item features read off the KG: every relation becomes one multi-valued field named by
    the relation's label, whose values for item ``i`` are the tails of the triples
    ``(item_entity[i], relation, tail)`` (labelled by the entity's raw id where known).

    Items sharing an entity share its features. Fields are in relation-index order; a
    relation whose heads are never item entities gives an empty field.
    """
    kg = np.asarray(ds.kg, dtype=np.int64).reshape(-1, 3)
    n_items = ds.n_items
    item_entity = np.asarray(ds.item_entity, dtype=np.int64)
    ent_labels = (np.asarray(ds.entity_ids, dtype=str) if ds.entity_ids is not None
                  else np.arange(ds.n_entities).astype(str))
    rel_labels = (np.asarray(ds.relation_ids, dtype=str) if ds.relation_ids is not None
                  else np.char.add("r", np.arange(ds.n_relations).astype(str)))
    # join items to the triples of their entity: triples sorted by head, a range per item
    order = np.argsort(kg[:, 0], kind="stable")
    heads = kg[order, 0]
    lo = np.searchsorted(heads, item_entity, side="left")
    hi = np.searchsorted(heads, item_entity, side="right")
    counts = hi - lo
    items = np.repeat(np.arange(n_items), counts)
    starts = np.repeat(lo - np.r_[0, np.cumsum(counts)[:-1]], counts)
    trip = kg[order[np.arange(len(items)) + starts]]
    table = FeatureTable(n_items)
    by_rel = np.argsort(trip[:, 1], kind="stable")
    rel_sorted = trip[by_rel, 1]
    for r in range(ds.n_relations):  # one field per relation (a loop over relations only)
        a, b = np.searchsorted(rel_sorted, [r, r + 1])
        sel = by_rel[a:b]
        table.add(str(rel_labels[r]), items[sel], ent_labels[trip[sel, 2]], multi=True)
    return table


#: fields :func:`item_categories` looks for, in this order
CATEGORY_FIELDS = ("genre", "category", "categories", "class", "attribute")


def category_codes(table: FeatureTable | None) -> np.ndarray | None:
    """:func:`item_categories` codes of a dataset's item table, or None where it has no
    category field (or no table)."""
    if table is None or not any(f in table for f in CATEGORY_FIELDS):
        return None
    return item_categories(table)[0]


def item_categories(table: FeatureTable, field: str | None = None,
                    max_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One category per item, for diversity metrics and plots (ComiRec's ``CATE(i)``).

    Of the item's values in ``field`` (default: the first of :data:`CATEGORY_FIELDS` the table
    has), those held by more than ``max_share`` of all items are ignored (a root category such
    as "Beauty" says nothing), and the most widely held of the rest is the category (ties: the
    smaller value id). Vectorised: one lexsort.

    Returns:
        ``(codes, labels)``: ``codes[i]`` the category id of item ``i`` (``-1``: none) and
        ``labels`` the raw label of each category id.
    """
    if field is None:
        field = next((f for f in CATEGORY_FIELDS if f in table), None)
        if field is None:
            raise KeyError(f"no category field among {sorted(table.fields)}; name one of them")
    fld = table.field(field)
    n = fld.n_rows
    item = np.repeat(np.arange(n), fld.lengths())
    value = fld.values
    held = np.bincount(np.unique(item * len(fld.vocab) + value) % len(fld.vocab),
                       minlength=len(fld.vocab))
    ok = held[value] <= max_share * n
    item, value = item[ok], value[ok]
    order = np.lexsort((value, -held[value], item))
    item, value = item[order], value[order]
    first = np.r_[True, item[1:] != item[:-1]] if len(item) else np.zeros(0, bool)
    codes = np.full(n, -1, dtype=np.int64)
    codes[item[first]] = value[first]
    return codes, fld.vocab


def field_mutual_information(table: FeatureTable, fields: list[str] | None = None
                             ) -> np.ndarray:
    """The ``k x k`` mutual information (nats) between the table's fields over its rows, the
    statistic of correlated feature masking (Yao et al., CIKM'21, section 3.2).

    Each row is one observation of every field. A multi-valued field spreads the row's unit
    mass evenly over its values (and a pair of fields over the row's value pairs); a row
    without a value takes a "missing" value, so every row counts in every pair:
    ``MI(A, B) = sum_ab p(a, b) log(p(a, b) / (p(a) p(b)))``. The diagonal is each field's
    entropy. Vectorised per pair of fields (a loop over the ``k (k + 1) / 2`` pairs only).
    """
    names = list(table.fields) if fields is None else list(fields)
    n = table.n_rows
    csr = []
    for name in names:  # fill empty rows with a "missing" value (id = vocab size)
        f = table.field(name)
        lengths = f.lengths()
        empty = lengths == 0
        lengths = np.where(empty, 1, lengths)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        values = np.full(int(indptr[-1]), len(f.vocab), np.int64)
        row = np.repeat(np.arange(n), f.lengths())
        values[indptr[row] + (np.arange(len(f.values)) - f.indptr[row])] = f.values
        csr.append((indptr, values, len(f.vocab) + 1))
    k = len(names)
    mi = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            (ia, va, na), (ib, vb, nb) = csr[i], csr[j]
            la, lb = np.diff(ia), np.diff(ib)
            c = la * lb
            row = np.repeat(np.arange(n), c)
            t = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
            a = va[ia[row] + t // lb[row]]
            b = vb[ib[row] + t % lb[row]]
            w = 1.0 / (c[row] * n)
            joint = np.bincount(a * nb + b, weights=w)
            keys = np.flatnonzero(joint > 0)
            pab = joint[keys]
            pa = np.bincount(a, weights=w, minlength=na)[keys // nb]
            pb = np.bincount(b, weights=w, minlength=nb)[keys % nb]
            mi[i, j] = mi[j, i] = float(np.sum(pab * np.log(pab / (pa * pb))))
    return mi


def tower_features(ds: Dataset, *, kg: bool = True, min_coverage: float = 0.01,
                   min_value_items: int = 1) -> tuple[FeatureTable, FeatureTable]:
    """The item and user fields of a two-tower model, read off the dataset.

    Items: ``item_id``, the dataset's item fields (genres, year, title tokens, Amazon
    attributes ...) and, with ``kg``, one multi-valued field per KG relation
    (:func:`kg_item_features`, named ``kg:<relation>``). Users: ``user_id`` and the dataset's
    user fields (demographics). Fields that fewer than ``min_coverage`` of the rows hold are
    left out (a relation whose heads are never items, a field five items have), and so are
    the item values fewer than ``min_value_items`` items hold (:meth:`FeatureField.drop_rare`,
    counted over the whole catalogue, never over clicks).
    """
    def keep(table: FeatureTable | None, prefix: str = "", min_rows: int = 1
             ) -> dict[str, FeatureField]:
        if table is None:
            return {}
        out = {}
        for name in table.fields:
            f = table.field(name).drop_rare(min_rows)
            if len(f.vocab) and (f.lengths() > 0).mean() >= min_coverage:
                out[prefix + name] = f
        return out

    def ids(n: int, labels) -> FeatureField:
        vocab = np.arange(n).astype(str) if labels is None else np.asarray(labels, dtype=str)
        return FeatureField(np.arange(n + 1), np.arange(n), vocab, multi=False)

    items = FeatureTable(ds.n_items, {"item_id": ids(ds.n_items, ds.item_ids)})
    fields = keep(ds.item_features, min_rows=min_value_items)
    if kg and len(ds.kg):
        fields.update(keep(kg_item_features(ds), "kg:", min_rows=min_value_items))
    for name, f in fields.items():
        items.set(name, f)
    users = FeatureTable(ds.n_users, {"user_id": ids(ds.n_users, ds.user_ids)})
    for name, f in keep(getattr(ds, "user_features", None)).items():
        users.set(name, f)
    return items, users
