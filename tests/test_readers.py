"""Readers: MKR's conversion on a hand-made input, bad-input errors, RecBole round trip."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.data.dataset import DataError
from kgrec.data.readers import (
    from_dataframes,
    read_mkr_final,
    read_mkr_raw,
    read_recbole,
    read_table,
    write_recbole,
)

LINKS = "i0\te100\ni1\te101\ni2\te102\ni3\te103\n"
KG = "e102\tgenre\tg1\ne500\tgenre\tg1\ne100\tdirector\td1\ne101\tgenre\tg2\ne103\tgenre\tg1\n"
# MovieLens style: user::item::rating::time; >= 4 positive, lower known negatives.
RATINGS = "\n".join([
    "u10::i2::5::1", "u10::i1::2::2", "u10::i0::1::3",   # pos {2}, known neg {0,1}, free {3}
    "u3::x::5::4", "u3::i1::4::5", "u3::i3::3::6", "u3::i0::2::7",  # x unlinked; free {2}
    "u5::i0::3::8",                                       # no positive: dropped
]) + "\n"


def _write(d: Path, **files: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name.replace("__", ".")).write_text(text, encoding="utf-8", newline="")
    return d


def _movie_dir(tmp_path, ratings=RATINGS, kg=KG, links=LINKS):
    return _write(tmp_path / "movie", ratings__dat=ratings, kg__txt=kg,
                  item_index2entity_id__txt=links)


def test_mkr_conversion_exact_on_hand_made_input(tmp_path):
    ds = read_mkr_raw(_movie_dir(tmp_path), "movie", seed=3)
    # users in order of first positive; per user positives then the sampled negatives
    assert ds.ratings.tolist() == [[0, 2, 1], [0, 3, 0], [1, 1, 1], [1, 2, 0]]
    assert ds.known_negatives.tolist() == [[0, 0], [0, 1], [1, 0], [1, 3]]
    assert ds.user_ids.tolist() == ["u10", "u3"]
    # items take the first entity indices; non-item heads skipped; first-appearance order
    assert ds.kg.tolist() == [[2, 0, 4], [0, 1, 5], [1, 0, 6], [3, 0, 4]]
    assert ds.entity_ids.tolist() == ["e100", "e101", "e102", "e103", "g1", "d1", "g2"]
    assert ds.relation_ids.tolist() == ["genre", "director"]
    assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (2, 4, 7, 2)
    assert set(ds.source_checksums) == {"ratings.dat", "kg.txt", "item_index2entity_id.txt"}


def test_mkr_conversion_same_seed_same_rows(tmp_path):
    lines = [f"u{u}::i{i}::5::0" for u in range(6) for i in range(0, 8, 3)]
    links = "".join(f"i{i}\te{i}\n" for i in range(8))
    d = _movie_dir(tmp_path, ratings="\n".join(lines) + "\n", links=links,
                   kg="e1\tr\te2\n")
    a, b = read_mkr_raw(d, "movie", seed=1), read_mkr_raw(d, "movie", seed=1)
    c = read_mkr_raw(d, "movie", seed=2)
    assert a.checksum == b.checksum
    assert a.checksum != c.checksum
    neg = a.ratings[a.ratings[:, 2] == 0]
    pos = a.ratings[a.ratings[:, 2] == 1]
    assert len(neg) == len(pos)  # as many negatives as positives, never a touched item
    assert not set(map(tuple, neg[:, :2].tolist())) & set(map(tuple, pos[:, :2].tolist()))


def test_music_header_skipped_and_crlf(tmp_path):
    d = _write(tmp_path / "music",
               user_artists__dat="userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n",
               kg__txt="s51\tby\ts9\r\n", item_index2entity_id__txt="51\ts51\r\n52\ts52\r\n")
    ds = read_mkr_raw(d, "music")
    assert ds.ratings[ds.ratings[:, 2] == 1].tolist() == [[0, 0, 1], [0, 1, 1]]
    assert ds.kg.tolist() == [[0, 0, 2]] and ds.entity_ids[2] == "s9"


@pytest.mark.parametrize(
    "text, reason, line",
    [
        ("", "empty file", None),
        ("\n\n", "empty file", None),
        ("1,2,1\n3,4,0\n", "wrong separator", 1),
        ("1\t2\t1\n3\t4\t0\t9\n", "expected 3 fields", 2),
        ("1\t2\t1\n3\t4\n", "expected 3 fields", 2),
        ("1\t2\t1\n\n3\tx\t0\n", "field 2 is 'x', expected an integer", 3),
        ("1\t2\t1\n3\t4\t2.5\n", "field 3 is '2.5', expected an integer", 2),
        ("1\t2\t1\n3\t4\t7\n", "label is 7, expected 0 or 1", 2),
        ("1\t2\t1\n3\t-4\t1\n", "negative item index", 2),
    ],
)
def test_bad_ratings_final_names_file_line_reason(tmp_path, text, reason, line):
    r = tmp_path / "ratings_final.txt"
    r.write_text(text)
    kg = tmp_path / "kg_final.txt"
    kg.write_text("0\t0\t5\n")
    with pytest.raises(DataError) as e:
        read_mkr_final(r, kg, name="t", checksums=False)
    assert reason in str(e.value)
    assert e.value.path == str(r) and e.value.line == line
    assert str(e.value).startswith(str(r) + (f":{line}" if line else ""))


def test_missing_file_and_unknown_item(tmp_path):
    with pytest.raises(DataError, match="file not found") as e:
        read_table(tmp_path / "nope.txt", sep="\t", n_cols=3)
    assert e.value.path.endswith("nope.txt")
    r = tmp_path / "ratings_final.txt"
    r.write_text("0\t0\t1\n0\t9\t0\n")
    kg = tmp_path / "kg_final.txt"
    kg.write_text("0\t0\t5\n")
    links = tmp_path / "links.txt"
    links.write_text("a\tea\nb\teb\n")
    with pytest.raises(DataError, match=r"item index 9 but links\.txt lists only 2") as e:
        read_mkr_final(r, kg, name="t", links=links)
    assert e.value.line == 2


def test_empty_graph_and_malformed_kg(tmp_path):
    d = _movie_dir(tmp_path, kg="\n")
    with pytest.raises(DataError, match="empty") as e:
        read_mkr_raw(d, "movie")
    assert e.value.path.endswith("kg.txt")
    d = _movie_dir(tmp_path, kg="e100\tgenre\tg1\ne101 genre g2\n")
    with pytest.raises(DataError, match="expected 3 fields") as e:
        read_mkr_raw(d, "movie")
    assert e.value.line == 2


def test_no_positive_with_linked_item(tmp_path):
    d = _movie_dir(tmp_path, ratings="u1::i0::1::0\n")
    with pytest.raises(DataError, match="no positive"):
        read_mkr_raw(d, "movie")


def test_recbole_round_trip(tmp_path, tiny_dataset):
    paths = write_recbole(tiny_dataset, tmp_path / "rb")
    assert [p.name for p in paths] == ["synthetic.inter", "synthetic.kg", "synthetic.link"]
    assert paths[0].read_text().splitlines()[0] == "user_id:token\titem_id:token\tlabel:float"
    back = read_recbole(tmp_path / "rb", "synthetic")
    assert back.checksum == tiny_dataset.checksum
    assert back.entity_ids.tolist() == tiny_dataset.entity_ids.tolist()
    assert not list((tmp_path / "rb").glob("*.tmp"))


def test_recbole_ratings_converted_and_bad_header(tmp_path):
    d = tmp_path / "rb"
    d.mkdir()
    (d / "x.inter").write_text("user_id:token\titem_id:token\trating:float\n"
                               "a\tm1\t5\na\tm2\t1\nb\tm2\t4\n")
    (d / "x.kg").write_text("head_id:token\trelation_id:token\ttail_id:token\n"
                            "g1\tsub\tg0\nm1\tgenre\tg1\n")
    (d / "x.link").write_text("item_id:token\tentity_id:token\nm1\tm1\nm2\tm2\nm3\tm3\n")
    ds = read_recbole(d, "x", threshold=4)
    assert ds.n_users == 2 and ds.n_items == 3 and ds.n_positives == 2
    assert ds.known_negatives.tolist() == [[0, 1]]
    assert len(ds.kg) == 2  # non-item heads are kept here
    (d / "y.inter").write_text("user_id,item_id\na,m1\n")
    with pytest.raises(DataError, match="wrong separator") as e:
        read_recbole(d, "y")
    assert e.value.line == 1


def test_from_dataframes():
    inter = pd.DataFrame({"user": ["a", "a", "b"], "item": ["m1", "m2", "m1"],
                          "label": [1, 0, 1]})
    kg = pd.DataFrame({"head": ["m1", "m2"], "relation": ["genre", "genre"],
                       "tail": ["drama", "drama"]})
    ds = from_dataframes(inter, kg, label_col="label")
    assert ds.ratings.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert ds.kg.tolist() == [[0, 0, 2], [1, 0, 2]]
    with pytest.raises(DataError, match="lacks column"):
        from_dataframes(inter.drop(columns="item"), kg)
    bad = inter.assign(item=["m1", "zz", "m1"])
    links = pd.DataFrame({"item": ["m1", "m2"], "entity": ["m1", "m2"]})
    with pytest.raises(DataError, match="'zz' has no entity link") as e:
        from_dataframes(bad, kg, links, label_col="label")
    assert e.value.line == 2


def test_mkr_raw_and_final_fill_interactions(tmp_path):
    ds = read_mkr_raw(_movie_dir(tmp_path), "movie", seed=3)
    ev = ds.interactions  # rows of kept users on linked items, in file order
    assert ev.user.tolist() == [0, 0, 0, 1, 1, 1]
    assert ev.item.tolist() == [2, 1, 0, 1, 3, 0]
    assert ev.rating.tolist() == [5, 2, 1, 4, 3, 2]
    assert ev.timestamp.tolist() == [1, 2, 3, 5, 6, 7]
    r = tmp_path / "ratings_final.txt"
    r.write_text("0\t1\t1\n0\t2\t0\n1\t0\t1\n")
    kg = tmp_path / "kg_final.txt"
    kg.write_text("0\t0\t3\n")
    fin = read_mkr_final(r, kg, name="t", checksums=False)
    assert fin.interactions.item.tolist() == [1, 0]  # positives, file positions as time
    assert fin.interactions.timestamp.tolist() == [0, 2]
    assert np.isnan(fin.interactions.rating).all()
