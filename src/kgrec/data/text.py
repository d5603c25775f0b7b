"""Item "titles" for DKN (Wang et al., WWW'18): a token sequence per item, each token a word
and, where known, the KG entity the word is linked to.

DKN's KCNN reads a news title word by word with an aligned entity channel (the Satori entity
each word was linked to). The MKR paper runs DKN on its recommendation datasets, where the
inputs are built here:

* ``movie`` / ``movie-half``: the MovieLens-1M titles of ``movies.dat``
  (``MovieID::Title::Genres``, Latin-1), found in ``$KGREC_DATA/ml-1m/``, the catalog's raw
  cache (``$KGREC_CACHE/raw/ml-1m/``, ``raw/movie/``, ``raw/movie-half/``) or inside a
  downloaded ``ml-1m.zip``. Titles are lower-cased and split on non-word characters (the
  year is kept as a token). Satori's word-level links are not available, so **every word of
  a title is linked to the item's own entity** (the one link that is known). Items whose id
  has no title fall back to KG tokens (below).
* ``music``, ``book``, ``synthetic`` and any other dataset, or MovieLens without
  ``movies.dat`` (with a warning): **no titles exist**, so an item's token sequence is built
  from the KG: the item's own entity first, then up to ``max_len - 1`` of its one-hop
  neighbour entities (either edge direction, deduplicated, in a seeded random order). Each
  token is the "word" ``e:<entity label>`` and is linked to that entity.

Token index 0 pads both tables; entity indices are shifted by one (``entity_ids == e + 1``
for entity ``e``, 0 = padding / no entity).
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from kgrec.data.dataset import DataError, Dataset

__all__ = ["MOVIE_DATASETS", "find_movies_dat", "item_tokens", "read_movie_titles",
           "tokenize"]

MOVIE_DATASETS = ("movie", "movie-half")
PAD = "<pad>"
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(title: str) -> list[str]:
    """Lower-cased word tokens of a title (``\\w+`` runs; punctuation dropped)."""
    return _WORD.findall(title.lower())


def find_movies_dat() -> Path | zipfile.Path | None:
    """Where MovieLens-1M's ``movies.dat`` is, or None. Looks in ``$KGREC_DATA/ml-1m``,
    ``$KGREC_DATA/movie``, ``$KGREC_DATA/movie-half``, the same folders under
    ``$KGREC_CACHE/raw/`` and, last, the downloaded ``$KGREC_CACHE/downloads/ml-1m.zip``."""
    from kgrec.data.catalog import cache_dir

    roots = []
    if os.environ.get("KGREC_DATA"):
        roots.append(Path(os.environ["KGREC_DATA"]))
    roots.append(cache_dir() / "raw")
    for root in roots:
        for sub in ("ml-1m", "movie", "movie-half"):
            if (root / sub / "movies.dat").is_file():
                return root / sub / "movies.dat"
    archive = cache_dir() / "downloads" / "ml-1m.zip"
    if archive.is_file():
        try:
            member = zipfile.Path(archive, "ml-1m/movies.dat")
            if member.is_file():
                return member
        except (zipfile.BadZipFile, OSError):
            return None
    return None


def read_movie_titles(path: str | Path | zipfile.Path) -> dict[str, str]:
    """``{movie id: title}`` from a ``movies.dat`` (``MovieID::Title::Genres``, Latin-1).

    Raises:
        DataError: a non-empty line without three ``::`` fields (file and line named).
    """
    if isinstance(path, zipfile.Path):
        text = path.read_bytes().decode("latin-1")
    else:
        text = Path(path).read_bytes().decode("latin-1")
    titles: dict[str, str] = {}
    for n, line in enumerate(io.StringIO(text), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise DataError(f"expected 'MovieID::Title::Genres', got {len(parts)} field(s)",
                            path=str(path), line=n)
        titles[parts[0].strip()] = parts[1].strip()
    return titles


def _kg_tokens(ds: Dataset, items: np.ndarray, max_len: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(len(items), max_len)`` entity indices (-1 = padding): each item's entity, then up to
    ``max_len - 1`` one-hop neighbours (both directions, deduplicated, seeded random order)."""
    n_ent = max(ds.n_entities, 1)
    ent = ds.item_entity[items]
    out = np.full((len(items), max_len), -1, dtype=np.int64)
    out[:, 0] = ent
    if max_len == 1 or len(ds.kg) == 0:
        return out, ent
    kg = ds.kg
    src = np.r_[kg[:, 0], kg[:, 2]]
    dst = np.r_[kg[:, 2], kg[:, 0]]
    keep = src != dst
    pairs = np.unique(src[keep] * n_ent + dst[keep])  # deduplicated (entity, neighbour)
    pairs = pairs[np.random.default_rng(seed).permutation(len(pairs))]
    pairs = pairs[np.argsort(pairs // n_ent, kind="stable")]
    src, dst = pairs // n_ent, pairs % n_ent
    starts = np.searchsorted(src, np.arange(n_ent))
    rank = np.arange(len(src)) - starts[src]
    sel = rank < max_len - 1
    src, dst, rank = src[sel], dst[sel], rank[sel]
    # rows of `items` per entity (several items may share one entity)
    order = np.argsort(ent, kind="stable")
    lo = np.searchsorted(ent[order], src, side="left")
    hi = np.searchsorted(ent[order], src, side="right")
    counts = hi - lo
    rep = np.repeat(np.arange(len(src)), counts)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = order[lo[rep] + offs]
    out[rows, 1 + rank[rep]] = dst[rep]
    return out, ent


def item_tokens(ds: Dataset, max_len: int, *, seed: int = 0,
                movies: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Token sequence of every item: DKN's title input (see the module docstring).

    Args:
        ds: the dataset.
        max_len: tokens per item (DKN's ``max_title_length``); longer titles are cut.
        seed: order of the KG neighbours in KG-built sequences.
        movies: an explicit ``movies.dat`` (only read for MovieLens datasets); default: found
            by :func:`find_movies_dat`.

    Returns:
        ``(word_ids, entity_ids, vocab)``: two ``(n_items, max_len)`` int64 arrays, 0 =
        padding; ``entity_ids`` holds entity index + 1 (0: padding or no linked entity);
        ``vocab[w]`` is the token of word id ``w`` (``vocab[0] == "<pad>"``).

    Raises:
        ValueError: ``max_len < 1``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    n_items = ds.n_items
    titled = np.zeros(n_items, dtype=bool)
    words: list[list[str]] = [[] for _ in range(n_items)]
    if ds.name in MOVIE_DATASETS:
        path = Path(movies) if movies is not None else find_movies_dat()
        if path is None or (isinstance(path, Path) and not path.is_file()):
            warnings.warn(f"{ds.name}: MovieLens movies.dat not found (looked in "
                          "$KGREC_DATA/ml-1m and the kgrec cache); DKN falls back to KG "
                          "tokens", stacklevel=2)
        elif ds.item_ids is None:
            warnings.warn(f"{ds.name}: no raw item ids to match titles; DKN falls back to KG "
                          "tokens", stacklevel=2)
        else:
            titles = read_movie_titles(path)
            for i, raw in enumerate(np.asarray(ds.item_ids, dtype=str)):
                toks = tokenize(titles.get(raw, ""))[:max_len]
                if toks:
                    words[i] = toks
                    titled[i] = True
            if not titled.all():
                warnings.warn(f"{ds.name}: {int((~titled).sum())} item(s) without a title use "
                              "KG tokens", stacklevel=2)

    word_ids = np.zeros((n_items, max_len), dtype=np.int64)
    entity_ids = np.zeros((n_items, max_len), dtype=np.int64)
    vocab = [PAD]
    index: dict[str, int] = {}

    titled_rows = np.flatnonzero(titled)
    if len(titled_rows):
        tokens = [t for i in titled_rows for t in words[i]]
        lengths = np.array([len(words[i]) for i in titled_rows])
        uniq, inv = np.unique(np.array(tokens, dtype=str), return_inverse=True)
        for t in uniq:
            index[f"w:{t}"] = len(vocab)
            vocab.append(f"w:{t}")
        ids = np.array([index[f"w:{t}"] for t in uniq], dtype=np.int64)[inv]
        rows = np.repeat(titled_rows, lengths)
        cols = np.arange(len(tokens)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        word_ids[rows, cols] = ids
        # every word of a title is linked to the item's own entity (the only known link)
        entity_ids[rows, cols] = ds.item_entity[rows] + 1

    kg_rows = np.flatnonzero(~titled)
    if len(kg_rows):
        ents, _ = _kg_tokens(ds, kg_rows, max_len, seed)
        used = np.unique(ents[ents >= 0])
        labels = (np.asarray(ds.entity_ids, dtype=str)[used] if ds.entity_ids is not None
                  else used.astype(str))
        word_of = np.zeros(max(ds.n_entities, 1), dtype=np.int64)
        for e, lab in zip(used.tolist(), labels.tolist(), strict=True):
            word_of[e] = len(vocab)
            vocab.append(f"e:{lab}")
        real = ents >= 0
        w = np.zeros_like(ents)
        w[real] = word_of[ents[real]]
        word_ids[kg_rows] = w
        entity_ids[kg_rows] = np.where(real, ents + 1, 0)
    return word_ids, entity_ids, vocab
