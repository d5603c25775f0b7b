"""MKR's files (Wang et al., WWW'19, github.com/hwwang55/MKR).

* raw: a rating file (Last.FM ``user_artists.dat``, MovieLens ``ratings.dat``, Book-Crossing
  ``BX-Book-Ratings.csv``), the raw KG ``kg.txt`` (``head<TAB>relation<TAB>tail``) and
  ``item_index2entity_id.txt`` (``raw item<TAB>raw entity``; line order is the item index),
  converted the MKR way (:mod:`kgrec.data.convert`);
* processed: ``ratings_final.txt`` (``user<TAB>item<TAB>label``) and ``kg_final.txt``.

Both fill :attr:`Dataset.interactions`: the rating file's rows of kept users and linked items
(rating = Last.FM listening count, MovieLens stars, Book-Crossing rating; time = MovieLens'
timestamp, else the row's position), or the positives of ``ratings_final.txt`` in file
order (no rating).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgrec.data.convert import mkr_convert
from kgrec.data.dataset import DataError, Dataset, Interactions
from kgrec.data.readers.table import data_line, file_sha256, read_table

__all__ = ["MKR_FORMATS", "RawFormat", "read_mkr_final", "read_mkr_raw"]


@dataclass(frozen=True)
class RawFormat:
    """How MKR reads one dataset's rating file (``preprocess.py``)."""

    ratings_file: str
    sep: str
    header: bool
    threshold: float  # rating >= threshold is a positive
    encoding: str = "utf-8"
    quoted: bool = False
    time_col: int | None = None  # column of an integer timestamp, if the file has one


MKR_FORMATS: dict[str, RawFormat] = {
    "music": RawFormat("user_artists.dat", "\t", header=True, threshold=0),
    "book": RawFormat("BX-Book-Ratings.csv", ";", header=True, threshold=0,
                      encoding="latin-1", quoted=True),
    "movie": RawFormat("ratings.dat", "::", header=False, threshold=4, time_col=3),
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
    cols = read_table(
        rpath, sep=fmt.sep, n_cols=3 if fmt.time_col is None else 4, header=fmt.header,
        float_cols=(2,), int_cols=() if fmt.time_col is None else (fmt.time_col,),
        encoding=fmt.encoding, quoted=fmt.quoted,
    )
    users, items, values = cols[:3]
    times = None if fmt.time_col is None else cols[fmt.time_col]
    item_raw, entity_raw = _read_links(links)
    heads, rels, tails = _read_raw_kg(kgp)
    sums = {p.name: file_sha256(p) for p in (rpath, links, kgp)} if checksums else {}
    ds = mkr_convert(
        name or kind, users_raw=users, items_raw=items, positive=values >= fmt.threshold,
        item_raw_ids=item_raw, item_entity_raw=entity_raw, heads=heads, relations=rels,
        tails=tails, seed=seed, source_checksums=sums, links_path=str(links),
        rating=values, timestamp=times,
    )
    if len(ds.kg) == 0:
        raise DataError(f"no usable triple: none of the {len(heads)} triples has a head that "
                        f"{links.name} links to an item (MKR keeps the triples of items' "
                        "entities); is the link file's second column the KG's entity ids?",
                        path=kgp)
    ds.meta["reader"] = f"mkr_raw:{kind}"
    ds.meta["timestamps"] = "time" if times is not None else "file order"
    return ds


def _check_dense(arr: np.ndarray, what: str, path: Path) -> None:
    """Processed files number users, items, entities and relations densely from 0: an index
    far beyond the number of distinct values (which would size a table by it) is an error."""
    top = int(arr.max())
    n_distinct = len(np.unique(arr))
    if top >= 2**31 or top >= 100 * n_distinct + 1_000_000:
        k = int(np.argmax(arr))
        raise DataError(f"{what} index {top} is far beyond the {n_distinct} distinct {what} "
                        f"indices: processed files number them densely from 0 (re-index the "
                        "file, or give the raw files)", path=path, line=data_line(path, k))


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
            raise DataError(f"negative {what} index {arr[k]}", path=path,
                            line=data_line(path, k))
        _check_dense(arr, what, path)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"label is {y[k]}, expected 0 or 1", path=ratings,
                        line=data_line(ratings, k))
    item_ids = entity_ids = None
    n_items = int(i.max()) + 1
    sums = {}
    if links is not None:
        links = Path(links)
        item_ids, ent_raw = _read_links(links)
        if n_items > len(item_ids):
            k = int(np.argmax(i >= len(item_ids)))
            raise DataError(f"item index {i[k]} but {links.name} lists only {len(item_ids)} "
                            "items", path=ratings, line=data_line(ratings, k))
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
        source_checksums=sums, meta={"reader": "mkr_final", "timestamps": "file order"},
        interactions=Interactions.build(u, i).select(y == 1),
    )


