"""Named datasets: where their files are, how to download them, and a converted-data cache.

Lookup order for a dataset ``name``:

1. ``$KGREC_DATA/<name>/`` (CI and tests point ``KGREC_DATA`` at ``../shared/datasets``);
2. ``$KGREC_CACHE/raw/<name>/`` (default cache ``~/.cache/kgrec``), where downloads go;
3. download from the original public sources (GroupLens, the MKR repository, the
   Book-Crossing page, the S3-Rec repository), verifying sha256 where the checksum is known.
   Offline (or for ``ml-100k-kg``, shipped inside the RecBole wheel), the error says which
   file to put where.

MovieLens-1M's ``movies.dat`` / ``users.dat`` become item / user features of ``movie`` and
``movie-half`` when found next to the ratings or in ``$KGREC_DATA/ml-1m/`` (optional).

A converted dataset is stored as ``$KGREC_CACHE/converted/<name>-s<seed>-<key>.npz`` where
``key`` hashes the source files' paths, sizes and modification times and the conversion
version, so a second load is a single ``np.load`` and a changed source is converted again.
Source files are validated (every line) during that one conversion.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec.data.dataset import DataError, Dataset
from kgrec.data.readers import (
    attach_ml1m_features,
    file_sha256,
    read_amazon,
    read_mkr_final,
    read_mkr_raw,
    read_ml100k,
    read_recbole,
    read_table,
)
from kgrec.utils.io import atomic_write, atomic_write_text

__all__ = [
    "CATALOG",
    "cache_dir",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "locate",
    "read_recbole_relinked",
]

CONVERSION_VERSION = 5  # 2: events, features, new sets; 3: names; 4: unlinked counts;
# 5: ml-100k-kg's link repaired by titles
_MKR = "https://raw.githubusercontent.com/hwwang55/MKR/master/data"
_ML1M = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
_ML100K = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
_S3REC = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data"
_BX = "http://www2.informatik.uni-freiburg.de/~cziegler/BX/BX-CSV-Dump.zip"


@dataclass(frozen=True)
class Source:
    """One file of a dataset: its name on disk, where to get it, its sha256 if known.

    ``member`` names the file inside a zip archive at ``url``.
    """

    filename: str
    url: str
    sha256: str | None = None
    member: str | None = None


@dataclass(frozen=True)
class Entry:
    """A catalog entry: description, file layouts it can be built from, and reader kind."""

    description: str
    layouts: tuple[tuple[str, ...], ...] = ()  # alternative sets of required file names
    sources: tuple[Source, ...] = ()  # what a download fetches (the first layout)
    paper: dict[str, Any] = field(default_factory=dict)
    hint: str = ""  # how to obtain the files by hand (offline message)
    optional: tuple[str, ...] = ()  # files used when present (features)


CATALOG: dict[str, Entry] = {
    "synthetic": Entry(
        "planted topics + KG revealing them (kgrec's built-in default; generated, no files)",
    ),
    "music": Entry(
        "Last.FM (HetRec 2011) listening + Satori KG, as in MKR; every row a positive",
        layouts=(("user_artists.dat", "kg.txt", "item_index2entity_id.txt"),),
        sources=(
            Source("user_artists.dat", f"{_MKR}/music/user_artists.dat",
                   "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416"),
            Source("kg.txt", f"{_MKR}/music/kg.txt",
                   "aa899f22a7a3b313e0baa22113fcd5fa040675fde44822152afed9900d33325f"),
            Source("item_index2entity_id.txt", f"{_MKR}/music/item_index2entity_id.txt",
                   "496475ddc39b0e15956c58b86d0566bce96bf51c7daaa49d66bc1b9fefaeef1a"),
        ),
        paper={"auc": 0.797, "acc": 0.752},
    ),
    "book": Entry(
        "Book-Crossing + Satori KG, as in MKR; every rating a positive",
        layouts=(
            ("BX-Book-Ratings.csv", "kg.txt", "item_index2entity_id.txt"),
            ("ratings_final.txt", "kg_final.txt"),
        ),
        sources=(
            Source("BX-Book-Ratings.csv", _BX, None, member="BX-Book-Ratings.csv"),
            Source("kg.txt", f"{_MKR}/book/kg.txt",
                   "7428883f6003d60c2fca567784aaf8d6b931f99c51ab85c93d07017ce1a24aac"),
            Source("item_index2entity_id.txt", f"{_MKR}/book/item_index2entity_id.txt",
                   "e77bbc7fd784c75436ee2df2b0c56d914b6aefc4bc428a27defd16cb9aaa953c"),
        ),
        paper={"auc": 0.734, "acc": 0.704},
    ),
    "movie": Entry(
        "MovieLens-1M + Satori KG, as in MKR; rating >= 4 positive, lower known negatives",
        layouts=(("ratings.dat", "kg.txt", "item_index2entity_id.txt"),),
        sources=(
            Source("ratings.dat", _ML1M, None, member="ml-1m/ratings.dat"),
            Source("kg.txt", f"{_MKR}/movie/kg.txt"),
            Source("item_index2entity_id.txt", f"{_MKR}/movie/item_index2entity_id.txt"),
            Source("movies.dat", _ML1M, None, member="ml-1m/movies.dat"),
            Source("users.dat", _ML1M, None, member="ml-1m/users.dat"),
        ),
        paper={"auc": 0.917, "acc": 0.843},
        optional=("movies.dat", "users.dat"),
    ),
    "movie-half": Entry(
        "MovieLens-1M users 1-2999 + the movie KG (the shared subset; derived from 'movie' "
        "when not found)",
        layouts=(("ratings.dat", "kg.txt", "item_index2entity_id.txt"),),
        paper={"auc": 0.917, "acc": 0.843, "note": "paper column is full MovieLens-1M"},
        optional=("movies.dat", "users.dat"),
    ),
    "ml-100k": Entry(
        "MovieLens-100K (ratings, timestamps, genres, demographics); no KG; rating >= 4 "
        "positive, lower known negatives",
        layouts=(("u.data",),),
        sources=(
            Source("u.data", _ML100K,
                   "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                   member="ml-100k/u.data"),
            Source("u.item", _ML100K,
                   "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                   member="ml-100k/u.item"),
            Source("u.user", _ML100K,
                   "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
                   member="ml-100k/u.user"),
            Source("u.genre", _ML100K,
                   "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
                   member="ml-100k/u.genre"),
        ),
        optional=("u.item", "u.user", "u.genre"),
    ),
    "ml-100k-kg": Entry(
        "MovieLens-100K in RecBole atomic form + Freebase KG (RecBole 1.2.1's example); "
        "rating >= 4 positive, lower known negatives; every item kept (unlinked ones get an "
        "entity of their own); the link, keyed in MovieLens-1M ids, re-keyed by titles "
        "(needs MovieLens-1M's movies.dat: next to the files, in $KGREC_DATA/ml-1m/, or "
        "downloaded)",
        layouts=(("ml-100k.inter", "ml-100k.kg", "ml-100k.link"),),
        hint="these files ship inside the RecBole 1.2.1 wheel (pip download recbole==1.2.1 "
             "--no-deps; unzip; folder recbole/dataset_example/ml-100k/): copy ml-100k.inter, "
             "ml-100k.kg, ml-100k.link (and ml-100k.item, ml-100k.user for features) there. "
             "sha256: .inter 4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff, "
             ".kg 200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779, "
             ".link 524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
        optional=("ml-100k.item", "ml-100k.user"),
    ),
    "amazon-beauty": Entry(
        "Amazon Beauty 5-core as processed for S3-Rec: one time-ordered sequence per user, "
        "item attributes; no KG; every event positive",
        layouts=(("Beauty.txt",),),
        sources=(
            Source("Beauty.txt", f"{_S3REC}/Beauty.txt",
                   "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
            Source("Beauty_item2attributes.json", f"{_S3REC}/Beauty_item2attributes.json",
                   "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4"),
        ),
        optional=("Beauty_item2attributes.json",),
    ),
    "amazon-sports": Entry(
        "Amazon Sports and Outdoors 5-core as processed for S3-Rec: one time-ordered sequence "
        "per user, item attributes; no KG; every event positive",
        layouts=(("Sports_and_Outdoors.txt",),),
        sources=(
            Source("Sports_and_Outdoors.txt", f"{_S3REC}/Sports_and_Outdoors.txt",
                   "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2"),
            Source("Sports_and_Outdoors_item2attributes.json",
                   f"{_S3REC}/Sports_and_Outdoors_item2attributes.json",
                   "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b"),
        ),
        optional=("Sports_and_Outdoors_item2attributes.json",),
    ),
}

_AMAZON = {"amazon-beauty": "Beauty", "amazon-sports": "Sports_and_Outdoors"}


def list_datasets() -> list[str]:
    """Names of the catalog's datasets."""
    return list(CATALOG)


def dataset_info(name: str) -> dict[str, Any]:
    """Description, accepted file layouts and paper figures of a dataset."""
    e = _entry(name)
    return {"name": name, "description": e.description, "layouts": e.layouts,
            "paper": e.paper, "sources": [s.url for s in e.sources]}


def _entry(name: str) -> Entry:
    if name not in CATALOG:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(CATALOG)}; or give a "
                       "folder of your own data: --data PATH, -d PATH, or a folder "
                       "$KGREC_DATA/<name>/")
    return CATALOG[name]


def cache_dir() -> Path:
    """``$KGREC_CACHE`` or ``~/.cache/kgrec``."""
    return Path(os.environ.get("KGREC_CACHE") or Path.home() / ".cache" / "kgrec")


def _roots(name: str) -> list[Path]:
    roots = []
    if os.environ.get("KGREC_DATA"):
        roots.append(Path(os.environ["KGREC_DATA"]) / name)
    roots.append(cache_dir() / "raw" / name)
    return roots


def locate(name: str) -> Path | None:
    """Folder holding a complete layout of ``name``'s files, or ``None``.

    ``synthetic`` needs no files and returns ``None``.
    """
    e = _entry(name)
    for root in _roots(name):
        for layout in e.layouts:
            if all((root / f).is_file() for f in layout):
                return root
        for layout in e.layouts:  # a layout's name taken by a folder: say so, don't download
            odd = [root / f for f in layout if (root / f).exists() and not (root / f).is_file()]
            if odd and all((root / f).exists() for f in layout):
                from kgrec.data.readers.table import check_file

                check_file(odd[0])
    return None


# --------------------------------------------------------------------------- download
def _fetch(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)

    def stream(f) -> None:
        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            from tqdm import tqdm

            with tqdm(total=total or None, unit="B", unit_scale=True,
                      desc=f"download {dest.name}", leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))

    atomic_write(dest, stream)


def download(name: str) -> Path:
    """Download ``name``'s original files into ``$KGREC_CACHE/raw/<name>/``; returns it.

    Verifies sha256 where the catalog knows it and records the others. Raises
    :class:`FileNotFoundError` with what to put where when the network is unreachable.
    """
    e = _entry(name)
    if not e.sources:
        raise FileNotFoundError(_missing_message(name))
    dest = cache_dir() / "raw" / name
    archives: dict[str, Path] = {}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for s in e.sources:
            _get(s, dest, archives)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise FileNotFoundError(f"{_missing_message(name)}\n(download failed: {exc})") from None
    return dest


def _get(s: Source, dest: Path, archives: dict[str, Path]) -> Path:
    """Download one source file into ``dest`` (a zip archive once per url, kept in
    ``archives``), checking its sha256 where known; a file already there is kept."""
    target = dest / s.filename
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    if s.member is None:
        _fetch(s.url, target)
    else:
        if s.url not in archives:
            archives[s.url] = cache_dir() / "downloads" / Path(s.url).name
            if not archives[s.url].is_file():
                _fetch(s.url, archives[s.url])
        with zipfile.ZipFile(archives[s.url]) as z, z.open(s.member) as src:
            atomic_write(target, lambda out, src=src: shutil.copyfileobj(src, out))
    if s.sha256 and file_sha256(target) != s.sha256:
        bad = target.with_suffix(target.suffix + ".bad")
        os.replace(target, bad)
        raise DataError(f"sha256 mismatch for {s.url} (expected {s.sha256}); "
                        f"kept as {bad.name}", path=target)
    return target


def _ml1m_movies(root: Path, link: str = "ml-100k.link") -> Path:
    """MovieLens-1M's ``movies.dat`` for re-keying RecBole's MovieLens-100K ``link``: found
    (next to the files, ``$KGREC_DATA/ml-1m/``, the cache) or downloaded into
    ``$KGREC_CACHE/raw/ml-1m/``; :class:`DataError` saying where to put it otherwise."""
    found = _ml1m_side_files("ml-100k-kg", root).get("movies.dat")
    if found is not None:
        return found
    try:
        source = next(s for s in CATALOG["movie"].sources if s.filename == "movies.dat")
        return _get(source, cache_dir() / "raw" / "ml-1m", {})
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            "this is RecBole's MovieLens-100K link, which keys its entities by MovieLens-1M "
            "movie ids; re-keying it by titles needs MovieLens-1M's movies.dat (from "
            f"{_ML1M}, member ml-1m/movies.dat) in {root}/ or $KGREC_DATA/ml-1m/, and the "
            f"download failed ({exc})", path=root / link) from None


def _missing_message(name: str) -> str:
    e = _entry(name)
    data = os.environ.get("KGREC_DATA")
    where = f"$KGREC_DATA/{name}/ (= {Path(data) / name})" if data else \
        f"{cache_dir() / 'raw' / name}/ (or set KGREC_DATA=<folder> and use <folder>/{name}/)"
    lines = [f"dataset {name!r} not found and could not be downloaded. Put these files in "
             f"{where}:"]
    for layout in e.layouts:
        lines.append("  " + " + ".join(layout))
    for s in e.sources:
        lines.append(f"  {s.filename}: from {s.url}" + (f" (member {s.member})" if s.member
                                                         else ""))
    if e.hint:
        lines.append(f"  {e.hint}")
    if name == "movie-half":
        lines.append("  or provide 'movie' (MovieLens-1M): movie-half is derived from it")
    return "\n".join(lines)


# --------------------------------------------------------------------------- conversion
def _cache_key(files: list[Path], seed: int) -> str:
    h = hashlib.sha256(f"v{CONVERSION_VERSION}:s{seed}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _ml1m_side_files(name: str, root: Path) -> dict[str, Path]:
    """MovieLens-1M ``movies.dat`` / ``users.dat`` for ``movie`` / ``movie-half``: next to
    the ratings, else in ``$KGREC_DATA/ml-1m/`` (optional; missing ones are skipped). For
    ``ml-100k-kg``, ``movies.dat`` (its link's re-keying), also from kgrec's own downloads."""
    if name not in ("movie", "movie-half", "ml-100k-kg"):
        return {}
    dirs = [root]
    if os.environ.get("KGREC_DATA"):
        dirs.append(Path(os.environ["KGREC_DATA"]) / "ml-1m")
    files = ("movies.dat", "users.dat")
    if name == "ml-100k-kg":
        dirs += [cache_dir() / "raw" / "ml-1m", cache_dir() / "raw" / "movie"]
        files = ("movies.dat",)
    out = {}
    for f in files:
        hit = next((d / f for d in dirs if (d / f).is_file()), None)
        if hit is not None:
            out[f] = hit
    return out


def _source_files(name: str, root: Path, layout: tuple[str, ...]) -> list[Path]:
    """Every file a conversion reads (the cache key hashes them)."""
    e = _entry(name)
    extra = [root / f for f in ("kg.txt", "item_index2entity_id.txt", *e.optional)
             if (root / f).is_file() and f not in layout]
    side = [p for p in _ml1m_side_files(name, root).values() if p.parent != root]
    return [root / f for f in layout] + extra + side


def _convert(name: str, root: Path, seed: int) -> Dataset:
    if name in ("music", "movie") or (name == "book" and (root / "BX-Book-Ratings.csv")
                                      .is_file()):
        ds = read_mkr_raw(root, name, seed=seed)
    elif name == "movie-half":
        ds = read_mkr_raw(root, "movie", name="movie-half", seed=seed)
    elif name == "ml-100k":
        return read_ml100k(root, name=name, seed=seed)
    elif name == "ml-100k-kg":
        ds = read_recbole_relinked(root, "ml-100k", threshold=4.0, seed=seed,
                                   unlinked_items="keep")
        ds.name = name
        return ds
    elif name in _AMAZON:
        base = _AMAZON[name]
        attrs = root / f"{base}_item2attributes.json"
        return read_amazon(root / f"{base}.txt", attrs if attrs.is_file() else None,
                           name=name, seed=seed)
    else:
        ds = read_mkr_final(root / "ratings_final.txt", root / "kg_final.txt", name=name,
                            links=root / "item_index2entity_id.txt"
                            if (root / "item_index2entity_id.txt").is_file() else None)
        _attach_raw_labels(ds, root)
    side = _ml1m_side_files(name, root)
    if side:
        attach_ml1m_features(ds, movies=side.get("movies.dat"), users=side.get("users.dat"))
    return ds


def read_recbole_relinked(root: Path, stem: str, **kwargs: Any) -> Dataset:
    """:func:`~kgrec.data.readers.read_recbole`, re-keying the link by titles where it is
    RecBole's ``ml-100k.link`` (keyed in MovieLens-1M ids; :mod:`kgrec.data.readers.relink`):
    needs ``<stem>.item`` (titles, years) and MovieLens-1M's ``movies.dat`` (found or
    downloaded, see :func:`_ml1m_movies`); ``meta["link"]`` records the counts."""
    from kgrec.data.readers.recbole import _atomic_columns
    from kgrec.data.readers.relink import is_recbole_ml100k_link, ml1m_titles, relink_by_title

    link_p, item_p = root / f"{stem}.link", root / f"{stem}.item"
    if not is_recbole_ml100k_link(link_p):
        return read_recbole(root, stem, **kwargs)
    _atomic_columns(root / f"{stem}.inter", ["user_id", "item_id"])  # its errors come first
    if not item_p.is_file():
        raise DataError(f"{link_p.name} is RecBole's MovieLens-100K link, keyed in MovieLens-1M "
                        f"ids; re-keying it by titles needs {item_p.name} (titles, years)",
                        path=item_p)
    movies = _ml1m_movies(root, link_p.name)
    link = _atomic_columns(link_p, ["item_id", "entity_id"])
    cols = _atomic_columns(item_p, ["item_id", "movie_title", "release_year"],
                           allow_empty=True)
    ref_ids, ref_titles, ref_years = ml1m_titles(movies)
    items, ents, stats = relink_by_title(
        link["item_id"], link["entity_id"], items=cols["item_id"], titles=cols["movie_title"],
        years=cols["release_year"], ref_ids=ref_ids, ref_titles=ref_titles,
        ref_years=ref_years)
    ds = read_recbole(root, stem, link=(items, ents), **kwargs)
    ds.source_checksums[movies.name] = file_sha256(movies)
    ds.meta["link"] = {"repaired": "RecBole's ml-100k.link keys MovieLens-1M ids: re-keyed "
                                   "to MovieLens-100K ids by titles (kgrec.data.readers."
                                   "relink)", **stats}
    return ds


def _attach_raw_labels(ds: Dataset, root: Path) -> None:
    """Recover raw entity/relation labels of MKR's processed KG from ``kg.txt`` when the
    raw graph re-indexes to exactly the processed one (it does for Book-Crossing)."""
    import numpy as np

    from kgrec.data.convert import mkr_convert_kg

    kg_raw, links = root / "kg.txt", root / "item_index2entity_id.txt"
    if not (kg_raw.is_file() and links.is_file()):
        return
    _, ent_raw = read_table(links, sep="\t", n_cols=2)
    h, r, t = read_table(kg_raw, sep="\t", n_cols=3)
    kg, entity_ids, relation_ids = mkr_convert_kg(ent_raw, h, r, t)
    if np.array_equal(kg, ds.kg) and len(entity_ids) == ds.n_entities:
        ds.entity_ids, ds.relation_ids = entity_ids, relation_ids
        ds.meta["labels"] = "recovered from kg.txt"


def _derive_movie_half(seed: int) -> Path:
    """Write ``$KGREC_CACHE/raw/movie-half/`` from the full MovieLens-1M files."""
    src = locate("movie") or download("movie")
    dest = cache_dir() / "raw" / "movie-half"
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("kg.txt", "item_index2entity_id.txt", "movies.dat", "users.dat"):
        if (src / f).is_file():
            shutil.copyfile(src / f, dest / f)
    kept = [line for line in (src / "ratings.dat").read_text("utf-8").splitlines(True)
            if line.strip() and int(line.split("::", 1)[0]) <= 2999]
    atomic_write_text(dest / "ratings.dat", "".join(kept))
    return dest


def _damaged(cached: Path, exc: Exception) -> None:
    """Remove a cache file that cannot be read, saying so in one line (logger ``kgrec``)."""
    import logging

    reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    logging.getLogger("kgrec").warning(
        "%s: damaged cache file (%s); rebuilding it from the source files", cached, reason)
    cached.unlink(missing_ok=True)


def cached_dataset(stem: str, files: list[Path], seed: int, build: Callable[[], Dataset], *,
                   refresh: bool = False) -> Dataset:
    """The dataset ``build()`` makes, cached under ``$KGREC_CACHE/converted/`` by ``stem``,
    ``seed`` and the ``files`` it reads (paths, sizes, times); a damaged cache file is
    rebuilt (one line logged), never trusted."""
    cached = cache_dir() / "converted" / f"{stem}-s{seed}-{_cache_key(files, seed)}.npz"
    if cached.is_file() and not refresh:
        try:
            return Dataset.from_npz(cached)
        except Exception as exc:
            _damaged(cached, exc)
    ds = build()
    ds.to_npz(cached)
    return ds


def load_dataset(name: str, *, seed: int = 0, refresh: bool = False,
                 download_missing: bool = True) -> Dataset:
    """Load a catalog dataset, converted the MKR way with negatives drawn under ``seed``.

    The first load validates and converts the source files and caches the result; later
    loads read the cache (well under a second). ``refresh`` converts again.
    """
    if name == "synthetic":
        import kgrec.data.convert as conv
        import kgrec.data.synthetic as syn
        from kgrec.data.synthetic import make_synthetic

        code = [Path(m.__file__) for m in (syn, conv)]  # a changed generator is regenerated
        return cached_dataset("synthetic", code, seed, lambda: make_synthetic(seed=seed),
                              refresh=refresh)
    e = _entry(name)
    root = locate(name)
    if root is None:
        if not download_missing:
            raise FileNotFoundError(_missing_message(name))
        root = _derive_movie_half(seed) if name == "movie-half" else download(name)
    layout = next(lay for lay in e.layouts if all((root / f).is_file() for f in lay))
    if name == "ml-100k-kg":
        from kgrec.data.readers.relink import is_recbole_ml100k_link

        if is_recbole_ml100k_link(root / "ml-100k.link"):
            _ml1m_movies(root)  # the link's repair reads it: there before the cache key
    files = _source_files(name, root, layout)

    def build() -> Dataset:
        ds = _convert(name, root, seed)
        ds.meta["source_dir"] = str(root)
        return ds

    return cached_dataset(name, files, seed, build, refresh=refresh)
