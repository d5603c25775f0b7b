"""Repairing an item-to-entity link keyed in another catalogue's ids, by titles.

RecBole's ``ml-100k.link`` (the example dataset of RecBole 1.2.1, from KB4Rec; Zhao et al.,
Data Intelligence 2019) keys its Freebase entities by **MovieLens-1M** movie ids, while its
``ml-100k.inter`` / ``.item`` use **MovieLens-100K** ids (RUCAIBox/RecSysDatasets issue 130).
The two id spaces agree only by chance (id 1 is Toy Story in both): id 50 is *Star Wars* in
100K but *The Usual Suspects* in 1M, id 313 *Titanic* but *The Swan Princess*. Read as it is,
the link hangs almost every film on another film's facts: of the 44 films whose KG genre is
Freebase's *Animation*, 3 are animated in MovieLens' own genres (39 of 42 once re-keyed).

:func:`relink_by_title` maps each item to the other catalogue's id through its title and
year (MovieLens writes titles the same way in both), then takes that id's entity from the
link. Items the other catalogue lacks, or whose id the link does not hold, are left
unlinked.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kgrec.data.readers.movielens import _YEAR
from kgrec.data.readers.table import read_table
from kgrec.utils.lazy import pd

__all__ = ["RECBOLE_ML100K_LINK_SHA256", "is_recbole_ml100k_link", "ml1m_titles",
           "normalise_title", "relink_by_title"]

#: sha256 of RecBole 1.2.1's ``ml-100k.link`` (``recbole/dataset_example/ml-100k/``), whose
#: keys are MovieLens-1M movie ids
RECBOLE_ML100K_LINK_SHA256 = "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948"

_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|Le|La|L'|Il|Das|Der|Die|El)$", re.IGNORECASE)


def is_recbole_ml100k_link(path: str | Path) -> bool:
    """Whether ``path`` is RecBole's ``ml-100k.link`` byte for byte (the one to re-key; a
    link of your own is read as it is)."""
    from kgrec.data.readers.table import file_sha256

    p = Path(path)
    return p.is_file() and file_sha256(p) == RECBOLE_ML100K_LINK_SHA256


def normalise_title(title: str) -> str:
    """Lower-case letters and digits only: ``"Usual Suspects, The"`` -> ``usualsuspectsthe``."""
    return re.sub(r"[^a-z0-9]", "", str(title).lower())


def ml1m_titles(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, titles, years)`` of MovieLens-1M's ``movies.dat`` (``Title (Year)`` split;
    year ``""`` where the title has none)."""
    ids, raw, _ = read_table(Path(path), sep="::", n_cols=3, int_cols=(0,), encoding="latin-1")
    t = pd.Series(np.asarray(raw, dtype=str))
    years = t.str.extract(_YEAR, expand=False).fillna("")
    titles = t.str.replace(r"\s*" + _YEAR, "", regex=True)
    return (np.asarray(ids, np.int64), titles.to_numpy(dtype=str), years.to_numpy(dtype=str))


def relink_by_title(link_keys: np.ndarray, link_entities: np.ndarray, *,
                    items: np.ndarray, titles: np.ndarray, years: np.ndarray,
                    ref_ids: np.ndarray, ref_titles: np.ndarray, ref_years: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The ``(item, entity)`` pairs of a link whose keys are ``ref_ids`` (another catalogue's
    ids), re-keyed to ``items`` through titles and years.

    An item matches the reference movie of the same year whose normalised title
    (:func:`normalise_title`) equals its own; failing that, the one reference movie of that
    year whose title contains its title (``Star Wars`` in ``Star Wars: Episode IV - A New
    Hope``; several candidates: no match), a trailing article also tried in front
    (``Empire Strikes Back, The`` in ``Star Wars: Episode V - The Empire Strikes Back``).
    Returns the items, their entities and counts
    (``items``, ``matched``, ``linked``, ``unmatched``: a few unmatched titles).
    """
    keys = np.asarray(link_keys).astype(str)
    ents = np.asarray(link_entities).astype(str)
    entity_of = dict(zip(keys, ents, strict=True))
    ref_norm = np.array([normalise_title(t) for t in ref_titles], dtype=object)
    ref_years = np.asarray(ref_years).astype(str)
    exact = {f"{n}|{y}": str(i) for n, y, i in zip(ref_norm, ref_years, ref_ids,
                                                               strict=True)}
    by_year: dict[str, list[int]] = {}
    for k, y in enumerate(ref_years):
        by_year.setdefault(y, []).append(k)
    out_items, out_ents, unmatched = [], [], []
    matched = 0
    for item, title, year in zip(np.asarray(items).astype(str), titles,
                                 np.asarray(years).astype(str), strict=True):
        n = normalise_title(title)
        ref = exact.get(f"{n}|{year}")
        if ref is None and n:
            m = _ARTICLE.match(str(title).strip())
            for form in (n, normalise_title(f"{m.group(2)} {m.group(1)}") if m else None):
                hits = [k for k in by_year.get(year, ()) if form and form in ref_norm[k]]
                if len(hits) == 1:
                    ref = str(ref_ids[hits[0]])
                    break
        if ref is None:
            unmatched.append(f"{title} ({year})")
            continue
        matched += 1
        if ref in entity_of:
            out_items.append(item)
            out_ents.append(entity_of[ref])
    stats = {"items": len(items), "matched": matched, "linked": len(out_items),
             "unmatched": unmatched[:10]}
    return np.asarray(out_items, dtype=str), np.asarray(out_ents, dtype=str), stats
