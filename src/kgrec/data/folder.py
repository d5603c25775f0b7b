"""Your own data, one flag: a folder in any format the readers know, detected by its content
(``kgrec train --data DIR``, :func:`load_folder`).

Formats, checked in this order:

* **RecBole atomic files**: one ``<name>.inter`` (+ ``<name>.kg`` and ``<name>.link`` for a
  KG, ``.item`` / ``.user`` for features); ratings >= 4 are positives where there is a
  ``rating`` column and no ``label``; items without a link are kept;
* **MKR processed**: ``ratings_final.txt`` + ``kg_final.txt``;
* **MKR raw**: ``user_artists.dat`` (Last.FM), ``ratings.dat`` (MovieLens, ``::``) or
  ``BX-Book-Ratings.csv`` (Book-Crossing), with ``kg.txt`` and ``item_index2entity_id.txt``;
* **MovieLens-100K**: ``u.data`` (+ ``u.item``, ``u.user``);
* **Amazon (S3-Rec)**: ``<name>.txt`` of ``user item item ...`` lines (+
  ``<name>_item2attributes.json``);
* **tables**: one interactions table (``.csv``, ``.tsv`` or ``.parquet``; the file named
  ``interactions``, ``ratings`` or ``clicks``, else the only table) with user and item columns
  (``user``/``user_id``/``userId``, ``item``/``item_id``/``itemId``/``movieId``) and
  optionally ``rating``, ``label`` and ``timestamp``; ``kg``/``triples`` (``head``,
  ``relation``, ``tail``) and ``links`` (``item``, ``entity``) tables are optional.

The converted dataset is cached like a catalog dataset (keyed by the files' paths, sizes and
times), so the second run on a folder starts at once.
"""

from __future__ import annotations

from pathlib import Path

from kgrec.data.dataset import DataError, Dataset

__all__ = ["FORMATS", "detect_format", "load_folder", "read_folder"]

FORMATS = ("recbole", "mkr-final", "mkr-raw", "ml-100k", "amazon", "tables")
_TABLE_EXT = (".csv", ".tsv", ".parquet")
_USER = ("user", "user_id", "userId", "userid", "uid")
_ITEM = ("item", "item_id", "itemId", "itemid", "movieId", "movie_id", "iid")
_RAW = {"user_artists.dat": "music", "ratings.dat": "movie", "BX-Book-Ratings.csv": "book"}


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))


def detect_format(path: str | Path) -> tuple[str, dict]:
    """``(format, details)`` of a data folder (see the module doc); :class:`DataError`
    naming the folder and what was looked for when nothing fits."""
    d = Path(path)
    if not d.exists():
        raise DataError("not found (--data takes a folder of data files)", path=d)
    if not d.is_dir():
        raise DataError("is a file; --data takes the folder that holds it", path=d)
    files = _files(d)
    names = {p.name for p in files}
    inter = [p for p in files if p.suffix == ".inter"]
    if len(inter) > 1:
        raise DataError("holds several RecBole .inter files "
                        f"({', '.join(p.name for p in inter)}); keep one per folder", path=d)
    if inter:
        return "recbole", {"name": inter[0].stem}
    if {"ratings_final.txt", "kg_final.txt"} <= names:
        return "mkr-final", {}
    raw = [f for f in _RAW if f in names]
    if raw:
        missing = [f for f in ("kg.txt", "item_index2entity_id.txt") if f not in names]
        if missing:
            raise DataError(f"has MKR's {raw[0]} but not {' and '.join(missing)} (MKR's raw "
                            "format needs the KG and the item-entity links beside it)", path=d)
        return "mkr-raw", {"kind": _RAW[raw[0]]}
    if "u.data" in names:
        return "ml-100k", {}
    attrs = [p for p in files if p.name.endswith("_item2attributes.json")]
    for a in attrs:
        seq = d / (a.name[: -len("_item2attributes.json")] + ".txt")
        if seq.is_file():
            return "amazon", {"sequences": seq, "attributes": a}
    txt = [p for p in files if p.suffix == ".txt"]
    if len(txt) == 1 and _looks_like_sequences(txt[0]):
        return "amazon", {"sequences": txt[0], "attributes": None}
    tables = [p for p in files if p.suffix in _TABLE_EXT]
    if tables:
        return "tables", _table_roles(d, tables)
    raise DataError(
        "no data format recognised; expected a RecBole <name>.inter (+ .kg, .link), MKR's "
        "ratings_final.txt + kg_final.txt or raw files (user_artists.dat / ratings.dat / "
        "BX-Book-Ratings.csv + kg.txt + item_index2entity_id.txt), MovieLens u.data, Amazon "
        "<name>.txt sequences, or a CSV/TSV/Parquet interactions table", path=d)


def _looks_like_sequences(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline().split()
    return len(first) >= 2 and all(t.isdigit() for t in first)


def _table_roles(d: Path, tables: list[Path]) -> dict:
    def named(*stems: str) -> Path | None:
        hits = [p for p in tables if p.stem.lower() in stems]
        return hits[0] if hits else None

    kg = named("kg", "triples", "knowledge_graph")
    links = named("links", "link", "item_entity")
    inter = named("interactions", "ratings", "clicks", "events", "inter")
    if inter is None:
        rest = [p for p in tables if p not in (kg, links)]
        if len(rest) != 1:
            raise DataError(f"has tables {', '.join(p.name for p in tables)}; name the "
                            "interactions one interactions.csv (or .tsv / .parquet)", path=d)
        inter = rest[0]
    return {"interactions": inter, "kg": kg, "links": links}


def _read_frame(path: Path):
    import pandas as pd

    from kgrec.data.readers.table import check_file, read_text

    check_file(path)
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:
            raise DataError(f"cannot be read as Parquet ({type(exc).__name__}: {exc})",
                            path=path) from None
    import io

    text = read_text(path)  # decoding errors with their line
    sep = "\t" if path.suffix == ".tsv" else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         na_values=[""], skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot be parsed ({str(exc).strip()})", path=path) from None
    if df.shape[1] == 1 and (("," in df.columns[0]) or ("\t" in df.columns[0])
                             or (";" in df.columns[0])):
        raise DataError(f"the header {df.columns[0]!r} is one column: wrong separator? "
                        f"({path.suffix} files are {'TAB' if sep == chr(9) else 'comma'}-"
                        "separated)", path=path, line=1)
    df.index = df.index + 2  # the file line of each row (after the header)
    return df[~df.isna().all(axis=1)]  # blank lines


def _column(df, path: Path, options: tuple[str, ...], what: str, required: bool = True):
    for c in options:
        if c in df.columns:
            return c
    if required:
        raise DataError(f"no {what} column; expected one of {', '.join(options)}; the header "
                        f"has {', '.join(map(str, df.columns))}", path=path, line=1)
    return None


def _read_tables(d: Path, roles: dict, name: str, seed: int) -> Dataset:
    import pandas as pd

    from kgrec.data.readers.frames import from_dataframes

    ip = roles["interactions"]
    inter = _read_frame(ip)
    user = _column(inter, ip, _USER, "user")
    item = _column(inter, ip, _ITEM, "item")
    label = _column(inter, ip, ("label", "click", "clicked"), "label", required=False)
    rating = _column(inter, ip, ("rating", "score", "stars"), "rating", required=False)
    ts = _column(inter, ip, ("timestamp", "time", "ts", "datetime"), "time", required=False)
    if ts is not None:  # numbers where every value is one, else datetimes
        num = pd.to_numeric(inter[ts], errors="coerce")
        inter[ts] = num if num.notna().all() else pd.to_datetime(inter[ts], errors="coerce")
    if roles["kg"] is not None:
        kgp = roles["kg"]
        kg = _read_frame(kgp)
        cols = [_column(kg, kgp, (c, f"{c}_id"), c) for c in ("head", "relation", "tail")]
        kg = kg.rename(columns=dict(zip(cols, ("head", "relation", "tail"), strict=True)))
    else:
        kg = pd.DataFrame({"head": [], "relation": [], "tail": []})
    links = None
    if roles["links"] is not None:
        lp = roles["links"]
        links = _read_frame(lp)
        li = _column(links, lp, _ITEM, "item")
        le = _column(links, lp, ("entity", "entity_id"), "entity")
        links = links.rename(columns={li: "item", le: "entity"})
    return from_dataframes(
        inter, kg, links, name=name, user_col=user, item_col=item, label_col=label,
        rating_col=None if label else rating, threshold=4.0 if rating and not label else 0.0,
        timestamp_col=ts, seed=seed, where=str(ip), unlinked_items="keep",
        line_of=(lambda k: int(inter.index[k])) if ip.suffix != ".parquet" else None)


def read_folder(path: str | Path, *, seed: int = 0, name: str | None = None) -> Dataset:
    """Read a data folder in any known format (see the module doc), converting ratings the
    MKR way with negatives drawn under ``seed``; ``name`` defaults to the folder's name."""
    from kgrec.data.readers import (
        read_amazon,
        read_mkr_final,
        read_mkr_raw,
        read_ml100k,
    )

    d = Path(path)
    fmt, info = detect_format(d)
    name = name or d.resolve().name
    if fmt == "recbole":
        from kgrec.data.catalog import read_recbole_relinked

        ds = read_recbole_relinked(d, info["name"], threshold=4.0, seed=seed,
                                   unlinked_items="keep", require_kg=False)
        ds.name = name
    elif fmt == "mkr-final":
        links = d / "item_index2entity_id.txt"
        ds = read_mkr_final(d / "ratings_final.txt", d / "kg_final.txt", name=name,
                            links=links if links.is_file() else None)
    elif fmt == "mkr-raw":
        ds = read_mkr_raw(d, info["kind"], name=name, seed=seed)
    elif fmt == "ml-100k":
        ds = read_ml100k(d, name=name, seed=seed)
    elif fmt == "amazon":
        ds = read_amazon(info["sequences"], info["attributes"], name=name, seed=seed)
    else:
        ds = _read_tables(d, info, name, seed)
    ds.meta["format"] = fmt
    ds.meta["source_dir"] = str(d.resolve())
    return ds


def load_folder(path: str | Path, *, seed: int = 0, refresh: bool = False) -> Dataset:
    """:func:`read_folder` through the conversion cache of the catalog."""
    from kgrec.data.catalog import cached_dataset

    d = Path(path)
    detect_format(d)  # a clear error before hashing anything
    return cached_dataset(f"folder-{d.resolve().name}", _files(d), seed,
                          lambda: read_folder(d, seed=seed), refresh=refresh)
