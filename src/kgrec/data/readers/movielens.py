"""MovieLens files of GroupLens (files.grouplens.org/datasets/movielens/).

* MovieLens-100K (``ml-100k.zip``): ``u.data`` (``user<TAB>item<TAB>rating<TAB>timestamp``),
  ``u.item`` (``id|title|release date|video date|IMDb url|19 genre flags``, Latin-1),
  ``u.user`` (``id|age|gender|occupation|zip``) and ``u.genre`` (``name|index``);
* MovieLens-1M side files (``ml-1m.zip``): ``movies.dat`` (``MovieID::Title::Genres``,
  genres ``|``-separated, Latin-1) and ``users.dat``
  (``UserID::Gender::Age::Occupation::Zip``), used as features of ``movie`` / ``movie-half``.

Item fields: ``genre`` (multi-valued), ``year`` and ``title`` (multi-valued lower-cased word
tokens of the title without its year). User fields: ``age``, ``gender``, ``occupation``
(raw codes / labels as in the files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.data.convert import events_dataset, natural_vocab
from kgrec.data.dataset import DataError, Dataset
from kgrec.data.features import FeatureTable
from kgrec.data.readers.table import file_sha256, read_table
from kgrec.utils.lazy import pd

__all__ = [
    "ML100K_GENRES",
    "attach_ml1m_features",
    "item_features_ml100k",
    "movie_features_ml1m",
    "read_ml100k",
    "user_features_ml1m",
    "user_features_ml100k",
]

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
_YEAR = r"\((\d{4})\)\s*$"


def _add_title_fields(table: FeatureTable, rows: np.ndarray, titles: np.ndarray,
                      years: pd.Series | None = None) -> None:
    """``year`` (from ``years`` where given, else the title's trailing ``(yyyy)``) and
    ``title`` tokens (lower-cased ``\\w+`` runs of the title without the year)."""
    t = pd.Series(np.asarray(titles, dtype=str))
    from_title = t.str.extract(_YEAR, expand=False)
    year = from_title if years is None else years.where(years.notna(), from_title)
    table.add_column("year", rows, year.to_numpy(dtype=object))
    words = t.str.replace(_YEAR, "", regex=True).str.lower().str.findall(r"\w+")
    words = pd.Series(words.to_numpy(), index=rows).explode().dropna()
    words = words[words.index >= 0]
    table.add("title", words.index.to_numpy(dtype=np.int64), words.to_numpy(dtype=str),
              multi=True, sort_vocab=True)


def _rows(ids: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    return pd.Index(np.asarray(vocab, dtype=str)).get_indexer(np.asarray(ids).astype(str))


def _check_unique(ids: np.ndarray, path: Path, first: int = 1) -> None:
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise DataError(f"duplicate id {str(ids[k])!r}", path=path, line=k + first)


def _read_uitem(path: Path, n_flags: int) -> list[np.ndarray]:
    return read_table(path, sep="|", n_cols=5 + n_flags, int_cols=(0, *range(5, 5 + n_flags)),
                      encoding="latin-1", allow_empty=True)


def item_features_ml100k(path: str | Path, item_ids: np.ndarray,
                         genres: tuple[str, ...] = ML100K_GENRES, *,
                         cols: list[np.ndarray] | None = None) -> FeatureTable:
    """``genre``, ``year`` (release date) and ``title`` fields from ``u.item`` (``cols``:
    its already parsed columns)."""
    path = Path(path)
    cols = _read_uitem(path, len(genres)) if cols is None else cols
    ids = cols[0]
    _check_unique(ids, path)
    flags = np.stack(cols[5:], axis=1)
    bad = ~np.isin(flags, (0, 1))
    if bad.any():
        k, j = np.argwhere(bad)[0]
        raise DataError(f"genre flag (field {j + 6}) is {flags[k, j]}, expected 0 or 1",
                        path=path, line=int(k) + 1)
    rows = _rows(ids, item_ids)
    table = FeatureTable(len(item_ids))
    r, g = np.nonzero(flags)
    keep = rows[r] >= 0
    table.add("genre", rows[r][keep], np.asarray(genres, dtype=str)[g[keep]], multi=True,
              vocab=np.asarray(genres, dtype=str))
    release = pd.Series(cols[2]).str.extract(r"(\d{4})\s*$", expand=False)
    _add_title_fields(table, rows, cols[1], release)
    return table


def _genre_names(path: Path) -> tuple[str, ...]:
    names, idx = read_table(path, sep="|", n_cols=2, int_cols=(1,), encoding="latin-1")
    order = np.argsort(idx, kind="stable")
    if not np.array_equal(idx[order], np.arange(len(idx))):
        raise DataError("genre indices must be 0..n-1", path=path)
    return tuple(names[order].tolist())


def user_features_ml100k(path: str | Path, user_ids: np.ndarray) -> FeatureTable:
    """``age``, ``gender``, ``occupation`` fields from ``u.user``."""
    path = Path(path)
    ids, age, gender, occ, _zip = read_table(path, sep="|", n_cols=5, int_cols=(0, 1),
                                             encoding="latin-1")
    _check_unique(ids, path)
    rows = _rows(ids, user_ids)
    table = FeatureTable(len(user_ids))
    for name, col in (("age", age), ("gender", gender), ("occupation", occ)):
        table.add_column(name, rows, col)
    return table


def read_ml100k(directory: str | Path, *, name: str = "ml-100k", seed: int = 0,
                threshold: float = 4.0, checksums: bool = True) -> Dataset:
    """MovieLens-100K from its native files (no KG).

    Events: every row of ``u.data`` (rating and timestamp). CTR rows: rating >=
    ``threshold`` positive, lower ratings known negatives, plus as many sampled negatives per
    user (MKR's conversion). Users and items are indexed by id order (``u.item`` ids and
    ``u.data`` ids); ``u.item`` / ``u.user`` give features when present.
    """
    d = Path(directory)
    data_p, item_p, user_p, genre_p = (d / f for f in ("u.data", "u.item", "u.user",
                                                       "u.genre"))
    users, items, rating, times = read_table(data_p, sep="\t", n_cols=4,
                                             int_cols=(0, 1, 2, 3))
    used = [data_p]
    item_raw = items.astype(str)
    item_vocab = natural_vocab(item_raw)
    user_vocab = natural_vocab(users)
    item_features = user_features = None
    if item_p.is_file():
        genres = ML100K_GENRES
        if genre_p.is_file():
            genres = _genre_names(genre_p)
            used.append(genre_p)
        cols = _read_uitem(item_p, len(genres))
        item_vocab = natural_vocab(item_raw, cols[0])
        item_features = item_features_ml100k(item_p, item_vocab, genres, cols=cols)
        used.append(item_p)
    if user_p.is_file():
        user_features = user_features_ml100k(user_p, user_vocab)
        used.append(user_p)
    ds = events_dataset(
        name, users_raw=users, items_raw=item_raw, positive=rating >= threshold,
        item_raw_ids=item_vocab, user_raw_ids=user_vocab, rating=rating.astype(np.float64),
        timestamp=times, item_features=item_features, user_features=user_features, seed=seed,
        source_checksums={p.name: file_sha256(p) for p in used} if checksums else {},
        where=str(data_p),
    )
    if item_p.is_file():
        ds.item_names = item_names(cols[0], cols[1], ds.item_ids)
    ds.meta.update({"reader": "ml100k", "timestamps": "time"})
    return ds


# --------------------------------------------------------------------------- MovieLens-1M
def movie_features_ml1m(path: str | Path, item_ids: np.ndarray) -> FeatureTable:
    """``genre``, ``year`` and ``title`` fields from MovieLens-1M's ``movies.dat``, rows
    aligned to ``item_ids`` (raw movie ids)."""
    path = Path(path)
    ids, titles, genres = read_table(path, sep="::", n_cols=3, int_cols=(0,),
                                     encoding="latin-1")
    _check_unique(ids, path)
    rows = _rows(ids, item_ids)
    table = FeatureTable(len(item_ids))
    table.add_column("genre", rows, genres, sep="|", sort_vocab=True)
    _add_title_fields(table, rows, titles)
    return table


def user_features_ml1m(path: str | Path, user_ids: np.ndarray) -> FeatureTable:
    """``gender``, ``age`` and ``occupation`` (codes) from MovieLens-1M's ``users.dat``."""
    path = Path(path)
    ids, gender, age, occ, _zip = read_table(path, sep="::", n_cols=5, int_cols=(0, 2, 3),
                                             encoding="latin-1")
    _check_unique(ids, path)
    rows = _rows(ids, user_ids)
    table = FeatureTable(len(user_ids))
    for name, col in (("gender", gender), ("age", age), ("occupation", occ)):
        table.add_column(name, rows, col)
    return table


def item_names(ids: np.ndarray, names: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """``names`` (a file's column, rows ``ids``) aligned to ``item_ids``; '' where absent."""
    rows = _rows(ids, item_ids)
    out = np.full(len(item_ids), "", dtype=object)
    keep = rows >= 0
    out[rows[keep]] = np.asarray(names, dtype=str)[keep]
    return out.astype(str)


def attach_ml1m_features(ds: Dataset, *, movies: Path | None = None,
                         users: Path | None = None) -> Dataset:
    """Set ``ds.item_features`` / ``ds.user_features`` from MovieLens-1M side files (those
    given), recording their checksums. Returns ``ds``."""
    if movies is not None:
        ds.item_features = movie_features_ml1m(movies, ds.item_ids)
        ids, titles, _ = read_table(movies, sep="::", n_cols=3, int_cols=(0,),
                                    encoding="latin-1")
        ds.item_names = item_names(ids, titles, ds.item_ids)
        ds.source_checksums[Path(movies).name] = file_sha256(movies)
    if users is not None:
        ds.user_features = user_features_ml1m(users, ds.user_ids)
        ds.source_checksums[Path(users).name] = file_sha256(users)
    return ds
