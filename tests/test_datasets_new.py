"""New readers (MovieLens-100K, RecBole with features, Amazon S3-Rec) on hand-made files with
exact expected arrays, their bad-input errors, and the new catalog entries on real data."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.data.catalog import load_dataset
from kgrec.data.dataset import DataError
from kgrec.data.readers import (
    from_dataframes,
    read_amazon,
    read_ml100k,
    read_recbole,
)


def _write(d: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_bytes(text.encode(encoding))
    return d


def _flags(*on: int) -> str:
    return "|".join("1" if g in on else "0" for g in range(19))


U_DATA = "3\t10\t5\t300\n1\t10\t2\t100\n1\t20\t4\t50\n2\t30\t1\t10\n"
U_ITEM = (f"10|Toy Story (1995)|01-Jan-1995||http://x|{_flags(3, 4, 5)}\n"
          f"20|GoldenEye (1995)|01-Jan-1995||http://x|{_flags(1, 2, 16)}\n"
          f"30|unknown||||{_flags(0)}\n"
          f"40|Cité des enfants perdus, La (1995)|01-Jan-1995||http://x|{_flags(8)}\n")
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"


def _ml100k(tmp_path, **over):
    files = {"u.data": U_DATA, "u.item": U_ITEM, "u.user": U_USER, **over}
    return _write(tmp_path / "ml-100k", files, encoding="latin-1")


def test_ml100k_exact(tmp_path):
    ds = read_ml100k(_ml100k(tmp_path), seed=1)
    assert ds.user_ids.tolist() == ["1", "2", "3"]  # every user, by id (user 2: no positive)
    assert ds.item_ids.tolist() == ["10", "20", "30", "40"]  # 40: in u.item only
    ev = ds.interactions
    assert ev.user.tolist() == [2, 0, 0, 1] and ev.item.tolist() == [0, 0, 1, 2]
    assert ev.rating.tolist() == [5, 2, 4, 1] and ev.timestamp.tolist() == [300, 100, 50, 10]
    assert ds.ratings[ds.ratings[:, 2] == 1].tolist() == [[0, 1, 1], [2, 0, 1]]
    assert ds.known_negatives.tolist() == [[0, 0], [1, 2]]
    neg = ds.ratings[ds.ratings[:, 2] == 0]
    assert neg[:, 0].tolist() == [0, 2]  # one sampled negative per positive
    assert neg[0, 1] in (2, 3) and neg[1, 1] in (1, 2, 3)  # never a touched item
    assert len(ds.kg) == 0 and ds.n_relations == 0 and ds.n_entities == 4
    assert ds.item_entity.tolist() == [0, 1, 2, 3]
    f = ds.item_features
    assert f.fields == ("genre", "year", "title")
    assert f.n_values("genre") == 19 and f.field("genre").labels(0) == [
        "Animation", "Children's", "Comedy"]
    assert f.field("genre").labels(2) == ["unknown"]
    assert [f.field("year").labels(i) for i in range(4)] == [["1995"], ["1995"], [], ["1995"]]
    assert f.field("title").labels(3) == ["cité", "des", "enfants", "perdus", "la"]
    u = ds.user_features
    assert u.fields == ("age", "gender", "occupation")
    assert u.field("age").vocab.tolist() == ["23", "24", "53"]
    assert u.padded("age", 1).ravel().tolist() == [1, 2, 0]
    indptr, items, times = ds.sequences()
    assert indptr.tolist() == [0, 2, 3, 4] and items.tolist() == [1, 0, 2, 0]
    assert times.tolist() == [50, 100, 10, 300]
    assert set(ds.source_checksums) == {"u.data", "u.item", "u.user"}


@pytest.mark.parametrize("files, name, line, reason", [
    ({"u.data": "1\t10\t5\t1\n1\t20\tx\t2\n"}, "u.data", 2, "field 3 is 'x', expected an integer"),
    ({"u.data": "1\t10\t5\t1\n1 20 4 2\n"}, "u.data", 2, "expected 4 fields"),
    ({"u.item": U_ITEM + "50|Short|01-Jan-1995||u|0|1\n"}, "u.item", 5, "expected 24 fields"),
    ({"u.item": U_ITEM.replace("|0|0|0|1|1|1", "|0|0|0|1|2|1", 1)}, "u.item", 1,
     "genre flag (field 10) is 2"),
    ({"u.user": U_USER + "3|40|F|other|1\n"}, "u.user", 4, "duplicate id '3'"),
])
def test_ml100k_bad_input(tmp_path, files, name, line, reason):
    d = _ml100k(tmp_path, **files)
    with pytest.raises(DataError) as e:
        read_ml100k(d)
    assert reason in str(e.value)
    assert e.value.path == str(d / name) and e.value.line == line


RB = {
    "x.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
               "2\t7\t5\t30\n1\t7\t3\t20\n1\t8\t4\t10\n2\t9\t4\t40\n",
    "x.link": "item_id:token\tentity_id:token\n7\tm.a\n8\tm.b\n",
    "x.kg": "head_id:token\trelation_id:token\ttail_id:token\n"
            "m.a\tfilm.genre\tm.g\nm.x\tfilm.actor\tm.a\nm.b\tfilm.genre\tm.g\n",
    "x.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
              "7\tToy Story\t1995\tAnimation Comedy\n8\tHeat\t1995\tAction\n"
              "9\tBabe\t\tDrama\n10\tExtra\t1996\tDrama\n",
    "x.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
              "1\t24\tM\ttech\t85711\n2\t53\tF\tother\t94043\n",
}


def test_recbole_keep_unlinked_items_timestamps_features(tmp_path):
    d = _write(tmp_path / "rb", RB)
    ds = read_recbole(d, "x", threshold=4, unlinked_items="keep", seed=0)
    assert ds.item_ids.tolist() == ["7", "8", "9", "10"] and ds.user_ids.tolist() == ["1", "2"]
    assert ds.entity_ids.tolist() == ["m.a", "m.b", "m.g", "m.x", "item:9", "item:10"]
    assert ds.item_entity.tolist() == [0, 1, 4, 5]
    assert ds.relation_ids.tolist() == ["film.genre", "film.actor"]
    assert ds.kg.tolist() == [[0, 0, 2], [3, 1, 0], [1, 0, 2]]
    ev = ds.interactions
    assert ev.user.tolist() == [1, 0, 0, 1] and ev.item.tolist() == [0, 0, 1, 2]
    assert ev.rating.tolist() == [5, 3, 4, 4] and ev.timestamp.tolist() == [30, 20, 10, 40]
    assert ds.ratings[ds.ratings[:, 2] == 1].tolist() == [[0, 1, 1], [1, 0, 1], [1, 2, 1]]
    assert ds.known_negatives.tolist() == [[0, 0]]
    indptr, items, _ = ds.sequences()
    assert indptr.tolist() == [0, 2, 4] and items.tolist() == [1, 0, 0, 2]
    f = ds.item_features
    assert f.fields == ("movie_title", "release_year", "class")
    assert f.field("class").labels(0) == ["Animation", "Comedy"]
    assert f.field("release_year").labels(2) == []  # empty token
    assert ds.user_features.field("gender").labels(1) == ["F"]
    assert "x.item" in ds.source_checksums and "x.user" in ds.source_checksums
    dropped = read_recbole(d, "x", threshold=4)  # default: linked items only (MKR)
    assert dropped.item_ids.tolist() == ["7", "8"] and len(dropped.interactions) == 3


def test_recbole_bad_feature_file(tmp_path):
    d = _write(tmp_path / "rb", {**RB, "x.user": RB["x.user"] + "1\t30\tM\tx\t1\n"})
    with pytest.raises(DataError, match="duplicate user_id '1'") as e:
        read_recbole(d, "x", threshold=4)
    assert e.value.line == 4 and e.value.path.endswith("x.user")


SEQ = "1 1 2 3\n2 4 2\n3 2 5 1 2\n"
ATTR = '{"1": [10, 11], "2": [11],\n "5": [12], "6": [10]}'


def test_amazon_exact(tmp_path):
    d = _write(tmp_path / "am", {"S.txt": SEQ, "S_item2attributes.json": ATTR})
    ds = read_amazon(d / "S.txt", d / "S_item2attributes.json", name="s", seed=0)
    assert ds.user_ids.tolist() == ["1", "2", "3"]
    assert ds.item_ids.tolist() == ["1", "2", "3", "4", "5", "6"]  # 6: attributes only
    ev = ds.interactions
    assert ev.user.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert ev.item.tolist() == [0, 1, 2, 3, 1, 1, 4, 0, 1]
    assert ev.timestamp.tolist() == list(range(9)) and np.isnan(ev.rating).all()
    pos = ds.ratings[ds.ratings[:, 2] == 1]
    assert pos.tolist() == [[0, 0, 1], [0, 1, 1], [0, 2, 1], [1, 1, 1], [1, 3, 1],
                            [2, 0, 1], [2, 1, 1], [2, 4, 1]]  # repeated (user, item) once
    neg = ds.ratings[ds.ratings[:, 2] == 0]
    assert sorted(neg[neg[:, 0] == 0, 1].tolist()) == [3, 4, 5]  # the only untouched items
    assert sorted(neg[neg[:, 0] == 2, 1].tolist()) == [2, 3, 5]
    assert (neg[:, 0] == 1).sum() == 2 and len(ds.known_negatives) == 0
    indptr, items, _ = ds.sequences()
    assert indptr.tolist() == [0, 3, 5, 9] and items.tolist() == ev.item.tolist()
    f = ds.item_features
    assert f.fields == ("attribute",) and f.field("attribute").vocab.tolist() == ["10", "11",
                                                                                  "12"]
    assert f.padded("attribute", 2).tolist() == [[0, 1], [1, -1], [-1, -1], [-1, -1],
                                                 [2, -1], [0, -1]]
    assert len(ds.kg) == 0 and ds.item_entity.tolist() == list(range(6))


@pytest.mark.parametrize("text, line, reason", [
    ("1 1 2\n2 x 3\n", 2, "item id 'x' is not an integer"),
    ("1 1 2\nu2 3\n", 2, "user id 'u2' is not an integer"),
    ("1 1.5\n", 1, "item id '1.5' is not an integer"),
    ("1 1 2\n2\n", 2, "user 2 has no items"),
    ("1 1\n\n1 2\n", 3, "user 1 already has a line"),
    ("\n\n", None, "empty file"),
])
def test_amazon_bad_sequences(tmp_path, text, line, reason):
    p = tmp_path / "S.txt"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_amazon(p, name="s")
    assert reason in str(e.value) and e.value.line == line and e.value.path == str(p)
    assert str(e.value).startswith(f"{p}:{line}: " if line else f"{p}: ")


@pytest.mark.parametrize("text, line, reason", [
    ('{"1": [1,\n 2,,]}', 2, "bad JSON"),
    ('{"1": [1],\n"2": 3}', 2, "attributes of item 2 are not a list"),
    ('{"1": [1],\n"2": ["a"]}', 2, "attribute 'a' of item 2 is not an integer"),
    ('{"x1": [1]}', 1, "item id 'x1' is not an integer"),
    ("[1, 2]", 1, "expected a JSON object"),
])
def test_amazon_bad_attributes(tmp_path, text, line, reason):
    (tmp_path / "S.txt").write_text(SEQ)
    p = tmp_path / "A.json"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_amazon(tmp_path / "S.txt", p, name="s")
    assert reason in str(e.value) and e.value.line == line and e.value.path == str(p)


def test_missing_files_named(tmp_path):
    with pytest.raises(DataError, match="file not found") as e:
        read_amazon(tmp_path / "nope.txt", name="s")
    assert e.value.path == str(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="file not found") as e:
        read_ml100k(tmp_path)
    assert e.value.path == str(tmp_path / "u.data")


def test_from_dataframes_timestamps():
    inter = pd.DataFrame({"user": ["a", "a", "b", "a"], "item": ["m1", "m2", "m1", "m3"],
                          "stars": [5, 4, 2, 5],
                          "t": pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-02",
                                               "2020-01-01"])})
    kg = pd.DataFrame({"head": ["m1", "m2", "m3"], "relation": ["genre"] * 3,
                       "tail": ["drama"] * 3})
    ds = from_dataframes(inter, kg, rating_col="stars", threshold=4, timestamp_col="t")
    ev = ds.interactions  # user b has no positive: dropped, as in MKR
    assert ev.user.tolist() == [0, 0, 0] and ev.item.tolist() == [0, 1, 2]
    assert ev.rating.tolist() == [5, 4, 5]
    _, items, _ = ds.sequences()
    assert items.tolist() == [1, 2, 0]  # by time, the tie on 2020-01-01 in row order
    labelled = from_dataframes(inter.assign(y=[1, 0, 1, 1]), kg, label_col="y")
    assert labelled.interactions.item.tolist() == [0, 0, 2]  # the positive rows
    assert labelled.interactions.timestamp.tolist() == [0, 2, 3]  # row positions
    with pytest.raises(DataError, match="timestamp 'soon' is not a number") as e:
        from_dataframes(inter.assign(t=["1", "2", "soon", "4"]), kg, timestamp_col="t")
    assert e.value.line == 3


# --------------------------------------------------------------------------- real data
NEW_SIZES = {  # users, items, events (README of the shared datasets)
    "amazon-beauty": (22363, 12101, 198502),
    "amazon-sports": (35598, 18357, 296337),
    "ml-100k": (943, 1682, 100000),
    "ml-100k-kg": (943, 1682, 100000),
}
# Dataset.checksum before interactions / features were added (must never change)
MKR_CHECKSUMS = {
    "music": "78265c1b59270fcf679dadbff22450e795aa21c128d394714f4c5f6419b72bb7",
    "book": "94ca1d3e9831d3aa5f0fe974a0103829518ed4265bc14323764547dd80b8a8a6",
    "movie-half": "d19c671b4a108457ec6c53a9b43b7bdf9185c851e43982e5013a8729fba10afa",
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(NEW_SIZES))
def test_new_real_datasets(name, data_dir, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    ds = load_dataset(name)
    users, items, events = NEW_SIZES[name]
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (users, items, events)
    assert ds.n_positives * 2 == len(ds.ratings)
    indptr, seq_items, _ = ds.sequences()
    assert len(indptr) == users + 1 and len(seq_items) == events
    assert (np.diff(indptr) > 0).all()
    if name == "ml-100k-kg":
        assert len(ds.kg) == 91631 and ds.n_relations > 17
        assert (ds.entity_ids[ds.item_entity] != "").all()
        assert {"class", "movie_title"} <= set(ds.item_features.fields)
    elif name == "ml-100k":
        assert ds.item_features.fields == ("genre", "year", "title")
        assert ds.user_features.fields == ("age", "gender", "occupation")
        assert len(np.unique(ds.interactions.timestamp)) > 1000
    else:
        assert len(ds.kg) == 0 and ds.item_features.fields == ("attribute",)
        assert (np.diff(ds.item_features.field("attribute").indptr) > 0).all()
    t = time.perf_counter()
    again = load_dataset(name)
    assert time.perf_counter() - t < 0.5
    assert again.checksums() == ds.checksums()


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(MKR_CHECKSUMS))
def test_mkr_checksums_unchanged_and_events(name, data_dir, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    ds = load_dataset(name)
    assert ds.checksum == MKR_CHECKSUMS[name]
    assert ds.checksums()["ctr"] == ds.checksum
    ev = ds.interactions
    assert len(ev) >= ds.n_positives
    if name == "movie-half":  # ratings.dat times; ml-1m/movies.dat, users.dat as features
        assert len(np.unique(ev.timestamp)) > 1000 and ev.timestamp.min() > 9e8
        assert set(np.unique(ev.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
        assert ds.item_features.fields == ("genre", "year", "title")
        assert ds.user_features.fields == ("gender", "age", "occupation")
        assert ds.item_features.field("genre").labels(0)  # every linked movie has genres
    else:
        assert ev.timestamp.tolist() == sorted(ev.timestamp.tolist())  # file order
