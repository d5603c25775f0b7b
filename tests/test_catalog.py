"""Catalog: real-data sizes, the converted cache, downloads with checksums, offline message."""

import shutil
import time
import urllib.error

import numpy as np
import pytest

from kgrec.data import catalog
from kgrec.data.catalog import Source, load_dataset

# Sizes after MKR's conversion (music and book agree with the MKR paper's Table 1).
SIZES = {
    "music": (1872, 3846, 42346, 9366, 60, 15518),
    "book": (17386, 14910, 136313, 24039, 10, 19793),
    "movie-half": (2999, 2347, 365614, 6729, 7, 20195),
}


@pytest.mark.parametrize("name", list(SIZES))
def test_real_dataset_sizes_and_cache(name, data_dir, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    ds = load_dataset(name)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"], s["entities"], s["relations"],
            s["triples"]) == SIZES[name]
    assert ds.n_positives * 2 == len(ds.ratings) or name == "book"  # book: 1 row missing
    t = time.perf_counter()
    again = load_dataset(name)
    assert time.perf_counter() - t < 0.5
    assert again.checksum == ds.checksum
    assert again.source_checksums == ds.source_checksums and ds.source_checksums


def test_book_recovers_raw_labels(data_dir, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    ds = load_dataset("book")
    assert ds.item_ids[0] == "0002005018"  # ISBNs, first line of item_index2entity_id.txt
    assert ds.entity_ids is not None and ds.relation_ids is not None
    assert len(ds.relation_ids) == 10 and ds.relation_ids[0].startswith("book.")


def test_seed_changes_only_sampled_negatives(data_dir, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    a, b = load_dataset("music", seed=0), load_dataset("music", seed=1)
    pos = a.ratings[:, 2] == 1
    assert np.array_equal(a.ratings[pos], b.ratings[b.ratings[:, 2] == 1])
    assert not np.array_equal(a.ratings[~pos], b.ratings[b.ratings[:, 2] == 0])


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch, tiny_dataset, caplog):
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "c"))
    a = load_dataset("synthetic", seed=5)
    (npz,) = (tmp_path / "c" / "converted").glob("synthetic-s5-*.npz")
    npz.write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="kgrec"):
        assert load_dataset("synthetic", seed=5).checksum == a.checksum
    (rec,) = caplog.records  # one line, naming the file and saying why
    assert npz.name in rec.getMessage() and "damaged cache" in rec.getMessage()
    assert "\n" not in rec.getMessage()


def _local_music_sources(data_dir, sha_of_kg=None):
    base = (data_dir / "music").resolve()
    out = []
    for s in catalog.CATALOG["music"].sources:
        sha = sha_of_kg if (sha_of_kg and s.filename == "kg.txt") else s.sha256
        out.append(Source(s.filename, (base / s.filename).as_uri(), sha))
    return tuple(out)


def test_download_verifies_checksums(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "cache"))
    entry = catalog.CATALOG["music"]
    monkeypatch.setitem(catalog.CATALOG, "music", catalog.Entry(
        entry.description, entry.layouts, _local_music_sources(data_dir)))
    assert catalog.locate("music") is None
    ds = load_dataset("music")
    assert ds.n_users == SIZES["music"][0]
    assert catalog.locate("music") == tmp_path / "cache" / "raw" / "music"

    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setitem(catalog.CATALOG, "music", catalog.Entry(
        entry.description, entry.layouts, _local_music_sources(data_dir, "0" * 64)))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_dataset("music")
    assert not (tmp_path / "cache" / "raw" / "music" / "kg.txt").exists()


def test_offline_message_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "data"))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(catalog.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("music")
    msg = str(e.value)
    assert str(tmp_path / "data" / "music") in msg
    assert "user_artists.dat" in msg and "hwwang55/MKR" in msg and "no network" in msg
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_new_entries_listed_and_ml100k_kg_offline_hint(tmp_path, monkeypatch):
    names = catalog.list_datasets()
    assert {"ml-100k", "ml-100k-kg", "amazon-beauty", "amazon-sports"} <= set(names)
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("ml-100k-kg")
    msg = str(e.value)
    assert "ml-100k.inter" in msg and "RecBole" in msg and str(tmp_path / "data") in msg


def test_download_amazon_and_ml100k_zip_members(data_dir, tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "cache"))
    src = (data_dir / "amazon-beauty").resolve()
    e = catalog.CATALOG["amazon-beauty"]
    local = tuple(Source(s.filename, (src / s.filename).as_uri(), s.sha256) for s in e.sources)
    monkeypatch.setitem(catalog.CATALOG, "amazon-beauty", catalog.Entry(
        e.description, e.layouts, local, optional=e.optional))
    assert catalog.download("amazon-beauty") == tmp_path / "cache" / "raw" / "amazon-beauty"
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in ("u.data", "u.item", "u.user", "u.genre"):
            z.write(data_dir / "ml-100k" / f, f"ml-100k/{f}")
    e = catalog.CATALOG["ml-100k"]
    local = tuple(Source(s.filename, archive.as_uri(), s.sha256, member=s.member)
                  for s in e.sources)
    monkeypatch.setitem(catalog.CATALOG, "ml-100k", catalog.Entry(
        e.description, e.layouts, local, optional=e.optional))
    ds = load_dataset("ml-100k")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (943, 1682, 100000)
    assert ds.item_features is not None and ds.user_features is not None
