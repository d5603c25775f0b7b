"""Readers (and one writer) for the file formats of KG-aware recommendation.

* MKR's raw files (Wang et al., WWW'19, github.com/hwwang55/MKR): a rating file (Last.FM
  ``user_artists.dat``, MovieLens ``ratings.dat``, Book-Crossing ``BX-Book-Ratings.csv``), the
  raw KG ``kg.txt`` (``head<TAB>relation<TAB>tail``) and ``item_index2entity_id.txt``
  (``raw item<TAB>raw entity``; line order is the item index), converted the MKR way
  (:mod:`kgrec.data.convert`);
* MKR's processed files ``ratings_final.txt`` (``user<TAB>item<TAB>label``) and ``kg_final.txt``;
* RecBole atomic files ``<name>.inter`` / ``.kg`` / ``.link`` (read and write);
* pandas DataFrames (a KG dataset from your own CSV files).

Every reader validates while it parses: a missing or empty file, a wrong separator, a line
with the wrong number of fields, a non-integer id or a bad label raises
:class:`~kgrec.data.dataset.DataError` naming the file, the 1-based line and the reason.
Parsing is pandas' C parser; the slow line-by-line pass runs only to explain an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.data.convert import mkr_convert, mkr_convert_ratings
from kgrec.data.dataset import DataError, Dataset

__all__ = [
    "MKR_FORMATS",
    "RawFormat",
    "file_sha256",
    "from_dataframes",
    "read_mkr_final",
    "read_mkr_raw",
    "read_recbole",
    "read_table",
    "write_recbole",
]

_SEP_NAMES = {"\t": "TAB", ",": "','", ";": "';'", "::": "'::'", " ": "space", "|": "'|'"}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _guess_sep(line: str) -> str | None:
    for sep in ("::", "\t", ";", ",", "|", " "):
        if sep in line:
            return sep
    return None


def _explain(path: Path, lines: list[str], sep: str, n_cols: int, first: int) -> DataError:
    """Find the first line with the wrong number of fields (slow path, errors only)."""
    for i, line in enumerate(lines, start=first):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_cols:
            guess = _guess_sep(line) if len(fields) == 1 else None
            hint = ""
            if guess is not None and guess != sep:
                hint = f"; the line looks {_SEP_NAMES.get(guess, repr(guess))}-separated " \
                       "(wrong separator?)"
            return DataError(
                f"expected {n_cols} fields separated by {_SEP_NAMES.get(sep, repr(sep))}, "
                f"found {len(fields)}{hint}: {line[:80]!r}",
                path=path, line=i,
            )
        if any(not f.strip() for f in fields):
            return DataError(f"empty field: {line[:80]!r}", path=path, line=i)
    return DataError("could not parse the file", path=path)


def read_table(
    path: str | Path,
    *,
    sep: str,
    n_cols: int,
    header: bool = False,
    int_cols: tuple[int, ...] = (),
    float_cols: tuple[int, ...] = (),
    encoding: str = "utf-8",
    quoted: bool = False,
) -> list[np.ndarray]:
    """Parse a delimited text file into one array per column, validating every line.

    Args:
        path: the file.
        sep: field separator (one character, or ``'::'``).
        n_cols: exact number of fields per line.
        header: skip the first line.
        int_cols / float_cols: columns that must parse as integers / numbers (returned as
            int64 / float64); the others are returned as strings.
        encoding: text encoding (Book-Crossing is Latin-1).
        quoted: fields may be wrapped in double quotes (Book-Crossing CSV).

    Blank lines are skipped. Raises :class:`DataError` with file, line and reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} text ({exc.reason})", path=path, line=line) \
            from None
    first = 2 if header else 1
    body = text.split("\n", 1)[1] if header and "\n" in text else ("" if header else text)
    if not body.strip():
        raise DataError("empty file: no data lines" + (" after the header" if header else ""),
                        path=path)
    psep = sep
    if len(sep) > 1:  # the C parser takes one character; '::' data never holds \x1f
        body, psep = body.replace(sep, "\x1f"), "\x1f"
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    fast = _parse_fast(body, psep, n_cols, quoting, int_cols, float_cols)
    if fast is not None:
        return fast
    return _parse_checked(path, body, sep, psep, n_cols, quoting, first, int_cols, float_cols)


def _parse_fast(body: str, psep: str, n_cols: int, quoting: int, int_cols: tuple[int, ...],
                float_cols: tuple[int, ...]) -> list[np.ndarray] | None:
    """Typed C-parser pass; ``None`` when anything looks wrong (the checked pass explains)."""
    numeric = set(int_cols) | set(float_cols)
    dtype = {j: (np.float64 if j in numeric else object) for j in range(n_cols)}
    try:
        df = pd.read_csv(io.StringIO(body), sep=psep, header=None, dtype=dtype,
                         keep_default_na=False, na_values={j: [""] for j in numeric},
                         skip_blank_lines=True, engine="c", quoting=quoting)
    except (pd.errors.ParserError, ValueError, TypeError):
        return None
    if df.shape[1] != n_cols:
        return None
    out = []
    for j in range(n_cols):
        col = df[j].to_numpy()
        if j in numeric:
            if not np.isfinite(col).all():
                return None
            if j in int_cols:
                if not np.array_equal(col, np.round(col)):
                    return None
                col = col.astype(np.int64)
        else:
            col = pd.Series(col, dtype=object).str.strip().to_numpy(dtype=str)
            if (col == "").any():
                return None
        out.append(col)
    return out


def _parse_checked(path: Path, body: str, sep: str, psep: str, n_cols: int, quoting: int,
                   first: int, int_cols: tuple[int, ...], float_cols: tuple[int, ...]
                   ) -> list[np.ndarray]:
    """String pass with line numbers: validates every line and raises :class:`DataError`."""
    try:
        df = pd.read_csv(io.StringIO(body), sep=psep, header=None, dtype=object,
                         keep_default_na=False, skip_blank_lines=False, engine="c",
                         quoting=quoting)
    except pd.errors.ParserError:
        raise _explain(path, body.split("\n"), sep, n_cols, first) from None
    lines = np.arange(len(df)) + first
    cols = df.to_numpy(dtype=str)
    blank = (cols == "").all(axis=1) if cols.size else np.zeros(len(df), bool)
    if cols.shape[1] != n_cols or (cols[~blank] == "").any():
        raise _explain(path, body.split("\n"), sep, n_cols, first)
    cols, lines = cols[~blank], lines[~blank]
    out: list[np.ndarray] = []
    for j in range(n_cols):
        col = np.char.strip(cols[:, j])
        if j in int_cols or j in float_cols:
            num = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(num)
            if j in int_cols:
                bad |= num != np.round(num)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                what = "an integer" if j in int_cols else "a number"
                raise DataError(f"field {j + 1} is {str(col[k])!r}, expected {what}",
                                path=path, line=int(lines[k]))
            out.append(num.astype(np.int64) if j in int_cols else num)
        else:
            out.append(col)
    return out


# --------------------------------------------------------------------------- MKR raw files
@dataclass(frozen=True)
class RawFormat:
    """How MKR reads one dataset's rating file (``preprocess.py``)."""

    ratings_file: str
    sep: str
    header: bool
    threshold: float  # rating >= threshold is a positive
    encoding: str = "utf-8"
    quoted: bool = False


MKR_FORMATS: dict[str, RawFormat] = {
    "music": RawFormat("user_artists.dat", "\t", header=True, threshold=0),
    "book": RawFormat("BX-Book-Ratings.csv", ";", header=True, threshold=0,
                      encoding="latin-1", quoted=True),
    "movie": RawFormat("ratings.dat", "::", header=False, threshold=4),
}


def _read_links(path: Path) -> tuple[np.ndarray, np.ndarray]:
    items, entities = read_table(path, sep="\t", n_cols=2)
    return items, entities


def _read_raw_kg(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, r, t = read_table(path, sep="\t", n_cols=3)
    if len(h) == 0:
        raise DataError("empty graph: no triples", path=path)
    return h, r, t


def read_mkr_raw(
    directory: str | Path,
    kind: str,
    *,
    name: str | None = None,
    seed: int = 0,
    ratings_file: str | Path | None = None,
    checksums: bool = True,
) -> Dataset:
    """Convert MKR's raw files of one dataset, exactly as MKR's ``preprocess.py``.

    Args:
        directory: folder with the rating file, ``kg.txt`` and ``item_index2entity_id.txt``.
        kind: ``music``, ``book`` or ``movie`` (picks file name, separator and threshold).
        name: dataset name (defaults to ``kind``).
        seed: seed of the negative sampling.
        ratings_file: override the rating file's path.
        checksums: record the sha256 of each source file.
    """
    if kind not in MKR_FORMATS:
        raise ValueError(f"unknown MKR format {kind!r}; known: {', '.join(MKR_FORMATS)}")
    fmt = MKR_FORMATS[kind]
    directory = Path(directory)
    rpath = Path(ratings_file) if ratings_file else directory / fmt.ratings_file
    links, kgp = directory / "item_index2entity_id.txt", directory / "kg.txt"
    users, items, values = read_table(
        rpath, sep=fmt.sep, n_cols=3 if kind != "movie" else 4, header=fmt.header,
        float_cols=(2,), encoding=fmt.encoding, quoted=fmt.quoted,
    )[:3]
    item_raw, entity_raw = _read_links(links)
    heads, rels, tails = _read_raw_kg(kgp)
    sums = {p.name: file_sha256(p) for p in (rpath, links, kgp)} if checksums else {}
    ds = mkr_convert(
        name or kind, users_raw=users, items_raw=items, positive=values >= fmt.threshold,
        item_raw_ids=item_raw, item_entity_raw=entity_raw, heads=heads, relations=rels,
        tails=tails, seed=seed, source_checksums=sums, links_path=str(links),
    )
    ds.meta["reader"] = f"mkr_raw:{kind}"
    return ds


def read_mkr_final(
    ratings: str | Path,
    kg: str | Path,
    *,
    name: str,
    links: str | Path | None = None,
    checksums: bool = True,
) -> Dataset:
    """MKR's processed ``ratings_final.txt`` + ``kg_final.txt`` (already indexed and labelled).

    ``links`` (``item_index2entity_id.txt``), when given, fixes the number of items (some
    items may have no rating left) and supplies raw item/entity labels.
    """
    ratings, kg = Path(ratings), Path(kg)
    u, i, y = read_table(ratings, sep="\t", n_cols=3, int_cols=(0, 1, 2))
    h, r, t = read_table(kg, sep="\t", n_cols=3, int_cols=(0, 1, 2))
    for arr, what, path in ((u, "user", ratings), (i, "item", ratings), (h, "head", kg),
                            (r, "relation", kg), (t, "tail", kg)):
        if arr.min() < 0:
            k = int(np.argmin(arr))
            raise DataError(f"negative {what} index {arr[k]}", path=path, line=k + 1)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"label is {y[k]}, expected 0 or 1", path=ratings, line=k + 1)
    item_ids = entity_ids = None
    n_items = int(i.max()) + 1
    sums = {}
    if links is not None:
        links = Path(links)
        item_ids, ent_raw = _read_links(links)
        if n_items > len(item_ids):
            k = int(np.argmax(i >= len(item_ids)))
            raise DataError(f"item index {i[k]} but {links.name} lists only {len(item_ids)} "
                            "items", path=ratings, line=k + 1)
        n_items = len(item_ids)
        entity_ids = ent_raw
    n_entities = max(int(max(h.max(), t.max())) + 1, n_items)
    if entity_ids is not None:
        entity_ids = np.r_[entity_ids, [f"entity:{k}" for k in range(n_items, n_entities)]]
    if checksums:
        sums = {p.name: file_sha256(p) for p in (ratings, kg) + ((links,) if links else ())}
    return Dataset(
        name=name, ratings=np.c_[u, i, y], kg=np.c_[h, r, t], n_users=int(u.max()) + 1,
        n_items=n_items, n_entities=n_entities, n_relations=int(r.max()) + 1,
        item_entity=np.arange(n_items), item_ids=item_ids, entity_ids=entity_ids,
        source_checksums=sums, meta={"reader": "mkr_final"},
    )


# --------------------------------------------------------------------------- general builder
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
) -> Dataset:
    """Index arbitrary triples (heads need not be items) and either keep given 0/1 labels or
    convert ratings the MKR way (threshold + sampled negatives)."""
    if len(heads) == 0:
        raise DataError("empty graph: no triples", path=where)
    item_index = pd.Index(np.asarray(link_items, dtype=str))
    if not item_index.is_unique:
        raise DataError("duplicate item id in the item-entity links", path=links_where)
    ent_codes, entity_ids = pd.factorize(
        np.r_[np.asarray(link_entities, str), np.c_[heads, tails].astype(str).ravel()]
    )
    n_items = len(item_index)
    item_entity = ent_codes[:n_items]
    ht = ent_codes[n_items:].reshape(-1, 2)
    r, relation_ids = pd.factorize(np.asarray(relations, dtype=str))
    kg = np.c_[ht[:, 0], r, ht[:, 1]].astype(np.int64)
    if labelled:
        codes = item_index.get_indexer(np.asarray(items, dtype=str))
        if (codes < 0).any():
            k = int(np.flatnonzero(codes < 0)[0])
            raise DataError(f"item {str(items[k])!r} has no entity link", path=where, line=k + 1)
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"label is {values[k]}, expected 0 or 1", path=where, line=k + 1)
        ucodes, user_ids = pd.factorize(np.asarray(users, dtype=str))
        ratings = np.c_[ucodes, codes, values.astype(np.int64)].astype(np.int64)
        known_neg = np.zeros((0, 2), np.int64)
        meta: dict = {"conversion": "labelled"}
    else:  # MKR's rating conversion; the graph is indexed above (all heads kept)
        ratings, known_neg, user_ids = mkr_convert_ratings(
            users, items, values >= threshold, link_items, seed=seed, links_path=links_where)
        meta = {"conversion": "mkr", "seed": seed}
    return Dataset(
        name=name, ratings=ratings, kg=kg, n_users=len(user_ids), n_items=n_items,
        n_entities=len(entity_ids), n_relations=len(relation_ids), item_entity=item_entity,
        known_negatives=known_neg, user_ids=np.asarray(user_ids, str),
        item_ids=np.asarray(item_index, str), entity_ids=np.asarray(entity_ids, str),
        relation_ids=np.asarray(relation_ids, str), meta=meta,
    )


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
    threshold: float = 0.0,
    head_col: str = "head",
    relation_col: str = "relation",
    tail_col: str = "tail",
    link_item_col: str = "item",
    link_entity_col: str = "entity",
    seed: int = 0,
) -> Dataset:
    """A :class:`Dataset` from your own tables.

    ``interactions`` holds either 0/1 labels (``label_col``: rows kept as they are) or
    ratings / implicit rows (``rating_col`` with ``threshold``, or neither: every row a
    positive), which are converted the MKR way (per user as many sampled negatives as
    positives). ``links`` maps each item to its KG entity; without it an item *is* the entity
    of the same name. Triple heads may be any entity.
    """
    for df, cols, what in ((interactions, [user_col, item_col]
                            + [c for c in (label_col, rating_col) if c], "interactions"),
                           (kg, [head_col, relation_col, tail_col], "kg")):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{what} DataFrame lacks column(s) {missing}; it has "
                            f"{list(df.columns)}", path=f"<{what} DataFrame>")
    if links is None:
        li = pd.unique(interactions[item_col].astype(str).to_numpy())
        le = li
    else:
        li = links[link_item_col].astype(str).to_numpy()
        le = links[link_entity_col].astype(str).to_numpy()
    labelled = label_col is not None
    values = (interactions[label_col].to_numpy() if labelled else
              interactions[rating_col].to_numpy(dtype=float) if rating_col else
              np.ones(len(interactions)))
    return _build(
        name, users=interactions[user_col].astype(str).to_numpy(),
        items=interactions[item_col].astype(str).to_numpy(), values=values,
        labelled=labelled, threshold=threshold, link_items=li, link_entities=le,
        heads=kg[head_col].astype(str).to_numpy(), relations=kg[relation_col].astype(str)
        .to_numpy(), tails=kg[tail_col].astype(str).to_numpy(), seed=seed,
        where="<interactions DataFrame>", links_where="<links DataFrame>",
    )


# --------------------------------------------------------------------------- RecBole atomic files
def _atomic_header(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DataError("file not found", path=path)
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise DataError("empty file: expected a RecBole header like 'user_id:token'",
                        path=path, line=1)
    fields = []
    for col in first.split("\t"):
        if ":" not in col:
            hint = " (wrong separator? atomic files are TAB-separated)" \
                if _guess_sep(col) not in (None, "\t") else ""
            raise DataError(f"header field {col!r} is not 'name:type'{hint}", path=path, line=1)
        fname, ftype = col.rsplit(":", 1)
        fields.append((fname, ftype))
    return fields


def _atomic_columns(path: Path, wanted: list[str], numeric: tuple[str, ...] = ()
                    ) -> dict[str, np.ndarray]:
    fields = _atomic_header(path)
    names = [f for f, _ in fields]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"missing column(s) {missing}; header has {names}", path=path, line=1)
    cols = read_table(path, sep="\t", n_cols=len(names), header=True,
                      float_cols=tuple(names.index(c) for c in numeric if c in names))
    return dict(zip(names, cols, strict=True))


def read_recbole(directory: str | Path, name: str, *, threshold: float | None = None,
                 seed: int = 0) -> Dataset:
    """Read RecBole atomic files ``<directory>/<name>.inter``, ``.kg`` and ``.link``.

    ``.inter`` needs ``user_id`` and ``item_id``; with a ``label`` column the rows are kept
    as labelled; else with ``rating`` and ``threshold`` (or without: every row a positive)
    they are converted the MKR way. ``.kg`` needs ``head_id``, ``relation_id``, ``tail_id``;
    ``.link`` needs ``item_id`` and ``entity_id``.
    """
    d = Path(directory)
    inter_p, kg_p, link_p = (d / f"{name}.{ext}" for ext in ("inter", "kg", "link"))
    header = [f for f, _ in _atomic_header(inter_p)]
    labelled = "label" in header
    numeric = ("label",) if labelled else (("rating",) if "rating" in header else ())
    inter = _atomic_columns(inter_p, ["user_id", "item_id", *numeric], numeric)
    kg = _atomic_columns(kg_p, ["head_id", "relation_id", "tail_id"])
    link = _atomic_columns(link_p, ["item_id", "entity_id"])
    if labelled:
        values = inter["label"]
    elif "rating" in inter and threshold is not None:
        values = inter["rating"]
    else:
        values, threshold = np.ones(len(inter["user_id"])), 0.0
    ds = _build(name, users=inter["user_id"], items=inter["item_id"], values=values,
                labelled=labelled, threshold=threshold or 0.0, link_items=link["item_id"],
                link_entities=link["entity_id"], heads=kg["head_id"],
                relations=kg["relation_id"], tails=kg["tail_id"], seed=seed,
                where=str(inter_p), links_where=str(link_p))
    ds.source_checksums = {p.name: file_sha256(p) for p in (inter_p, kg_p, link_p)}
    ds.meta["reader"] = "recbole"
    return ds


def _write_atomic(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("\t".join(header) + "\n")
            pd.DataFrame({i: c for i, c in enumerate(columns)}).to_csv(
                f, sep="\t", header=False, index=False, lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_recbole(ds: Dataset, directory: str | Path, name: str | None = None) -> list[Path]:
    """Write ``ds`` as RecBole atomic files (labelled ``.inter``, ``.kg``, ``.link``) under
    ``directory``, each written to a temporary file first and renamed into place. Raw labels
    are used where the dataset has them. Returns the written paths."""
    d, name = Path(directory), name or ds.name

    def labels(vocab: np.ndarray | None, prefix: str, n: int) -> np.ndarray:
        return np.asarray(vocab, str) if vocab is not None else \
            np.char.add(prefix, np.arange(n).astype(str))

    users = labels(ds.user_ids, "u", ds.n_users)
    items = labels(ds.item_ids, "i", ds.n_items)
    ents = labels(ds.entity_ids, "e", ds.n_entities)
    rels = labels(ds.relation_ids, "r", ds.n_relations)
    r, kg = ds.ratings, ds.kg
    paths = [d / f"{name}.{ext}" for ext in ("inter", "kg", "link")]
    _write_atomic(paths[0], ["user_id:token", "item_id:token", "label:float"],
                  [users[r[:, 0]], items[r[:, 1]], r[:, 2]])
    _write_atomic(paths[1], ["head_id:token", "relation_id:token", "tail_id:token"],
                  [ents[kg[:, 0]], rels[kg[:, 1]], ents[kg[:, 2]]])
    _write_atomic(paths[2], ["item_id:token", "entity_id:token"],
                  [items, ents[ds.item_entity]])
    return paths
