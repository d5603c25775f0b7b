"""RecBole atomic files (recbole.io, "Atomic Files"): ``<name>.inter`` / ``.kg`` / ``.link``
(read and write) and the optional ``.item`` / ``.user`` feature files (read).

An atomic file is TAB-separated with a header of ``name:type`` fields (``token``,
``token_seq`` (space-separated tokens), ``float``, ``float_seq``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.data.dataset import DataError, Dataset
from kgrec.data.features import FeatureTable
from kgrec.data.readers.frames import _build
from kgrec.data.readers.table import _guess_sep, check_file, data_line, file_sha256, read_table
from kgrec.utils.lazy import pd

__all__ = ["read_atomic_features", "read_recbole", "write_recbole"]


#: RecBole's field types (recbole.io, "Atomic Files")
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def _atomic_header(path: Path) -> list[tuple[str, str]]:
    """The ``(name, type)`` fields of an atomic file's header (a byte-order mark is ignored);
    :class:`DataError` on line 1 for a malformed header or an unknown type."""
    check_file(path)
    with open(path, "rb") as f:
        raw = f.readline()
    try:
        first = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid utf-8 text ({exc.reason}, byte 0x{raw[exc.start]:02x})",
                        path=path, line=1) from None
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
        if ftype not in ATOMIC_TYPES:
            raise DataError(f"header field {col!r} has unknown type {ftype!r}; RecBole's "
                            f"types are {', '.join(ATOMIC_TYPES)}", path=path, line=1)
        fields.append((fname.strip(), ftype))
    return fields


def _atomic_columns(path: Path, wanted: list[str], numeric: tuple[str, ...] = (), *,
                    allow_empty: bool = False) -> dict[str, np.ndarray]:
    fields = _atomic_header(path)
    names = [f for f, _ in fields]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"missing column(s) {missing}; header has {names}", path=path, line=1)
    cols = read_table(path, sep="\t", n_cols=len(names), header=True,
                      float_cols=tuple(names.index(c) for c in numeric if c in names),
                      allow_empty=allow_empty)
    return dict(zip(names, cols, strict=True))


def read_atomic_features(path: str | Path, id_col: str, ids: np.ndarray) -> FeatureTable:
    """Categorical features from a RecBole ``.item`` / ``.user`` file, rows aligned to
    ``ids`` (raw ids; file rows of other ids are ignored, ids absent from the file get no
    values). ``token`` fields become single-valued fields, ``token_seq`` fields multi-valued
    ones (split on spaces); numeric fields are left out. Field names are the column names."""
    path = Path(path)
    fields = _atomic_header(path)
    cols = _atomic_columns(path, [id_col], allow_empty=True)
    rows = pd.Index(np.asarray(ids, dtype=str)).get_indexer(cols[id_col])
    dup = pd.Series(cols[id_col]).duplicated().to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise DataError(f"duplicate {id_col} {str(cols[id_col][k])!r}", path=path,
                        line=data_line(path, k, header=True))
    table = FeatureTable(len(ids))
    for fname, ftype in fields:
        if fname == id_col or ftype not in ("token", "token_seq"):
            continue
        table.add_column(fname, rows, cols[fname], sep=" " if ftype == "token_seq" else None)
    return table


def read_recbole(directory: str | Path, name: str, *, threshold: float | None = None,
                 seed: int = 0, unlinked_items: str = "drop", features: bool = True,
                 require_kg: bool = True,
                 link: tuple[np.ndarray, np.ndarray] | None = None) -> Dataset:
    """Read RecBole atomic files ``<directory>/<name>.inter``, ``.kg`` and ``.link``.

    ``.inter`` needs ``user_id`` and ``item_id``; with a ``label`` column the rows are kept
    as labelled; else with ``rating`` and ``threshold`` (or without: every row a positive)
    they are converted the MKR way. ``.kg`` needs ``head_id``, ``relation_id``, ``tail_id``;
    ``.link`` needs ``item_id`` and ``entity_id``.

    :attr:`Dataset.interactions` gets ``rating`` and ``timestamp`` (rounded to int64) where
    ``.inter`` has them. ``unlinked_items``: ``"drop"`` keeps only linked items (MKR);
    ``"keep"`` keeps every item (RecBole's way; see :func:`~kgrec.data.readers.frames._build`).
    With ``features``, ``<name>.item`` / ``<name>.user`` (when present) become
    ``item_features`` / ``user_features`` (see :func:`read_atomic_features`). Without
    ``require_kg``, missing ``.kg`` / ``.link`` files give a dataset without a KG. ``link``:
    ``(item ids, entity ids)`` to use instead of the ``.link`` file's (a repaired link, see
    :mod:`kgrec.data.readers.relink`).
    """
    d = Path(directory)
    inter_p, kg_p, link_p = (d / f"{name}.{ext}" for ext in ("inter", "kg", "link"))
    item_p, user_p = d / f"{name}.item", d / f"{name}.user"
    header = [f for f, _ in _atomic_header(inter_p)]
    labelled = "label" in header
    numeric = ("label",) if labelled else (("rating",) if "rating" in header else ())
    numeric += tuple(c for c in ("rating", "timestamp") if c in header and c not in numeric)
    inter = _atomic_columns(inter_p, ["user_id", "item_id", *numeric], numeric)
    extra_items = None
    if features and unlinked_items == "keep" and item_p.is_file():
        extra_items = _atomic_columns(item_p, ["item_id"], allow_empty=True)["item_id"]
    empty = np.zeros(0, dtype=str)
    if require_kg or kg_p.exists():
        kg = _atomic_columns(kg_p, ["head_id", "relation_id", "tail_id"])
    else:  # an interaction-only folder
        kg = {"head_id": empty, "relation_id": empty, "tail_id": empty}
    if link is not None:
        link = {"item_id": np.asarray(link[0], dtype=str),
                "entity_id": np.asarray(link[1], dtype=str)}
    elif require_kg or link_p.exists():
        link = _atomic_columns(link_p, ["item_id", "entity_id"])
    else:
        link = {"item_id": empty, "entity_id": empty}
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
                where=str(inter_p), links_where=str(link_p), rating=inter.get("rating"),
                timestamp=np.round(inter["timestamp"]).astype(np.int64)
                if "timestamp" in inter else None,
                unlinked_items=unlinked_items, extra_items=extra_items,
                line_of=lambda k: data_line(inter_p, k, header=True), kg_where=str(kg_p),
                require_kg=require_kg)
    used = [p for p in (inter_p, kg_p, link_p) if p.exists()]
    if features:
        if item_p.is_file():
            ds.item_features = read_atomic_features(item_p, "item_id", ds.item_ids)
            used.append(item_p)
            names = [f for f, _ in _atomic_header(item_p)]
            title = next((t for t in ("movie_title", "title", "name", "item_name")
                          if t in names), None)
            if title is not None:
                from kgrec.data.readers.movielens import item_names

                cols = _atomic_columns(item_p, ["item_id", title], allow_empty=True)
                ds.item_names = item_names(cols["item_id"], cols[title], ds.item_ids)
        if user_p.is_file():
            ds.user_features = read_atomic_features(user_p, "user_id", ds.user_ids)
            used.append(user_p)
    ds.source_checksums = {p.name: file_sha256(p) for p in used}
    ds.meta["reader"] = "recbole"
    return ds


def _write_atomic(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    from kgrec.utils.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    body = pd.DataFrame({i: c for i, c in enumerate(columns)}).to_csv(
        sep="\t", header=False, index=False, lineterminator="\n")
    atomic_write_text(path, "\t".join(header) + "\n" + body)


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
