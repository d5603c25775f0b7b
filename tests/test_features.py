"""FeatureTable (CSR fields, padding, npz), sequences() order and ties, kg_item_features,
Dataset npz round trip of the new fields; all by hand."""

import numpy as np
import pytest

from kgrec.data.dataset import DataError, Dataset, Interactions
from kgrec.data.features import FeatureField, FeatureTable, kg_item_features, tower_features
from kgrec.data.sequences import user_sequences


def _table() -> FeatureTable:
    t = FeatureTable(3)
    # row 0: b, a; row 1: none; row 2: c, a (a repeated pair is dropped)
    t.add("tag", [0, 0, 2, 2, 2], ["b", "a", "c", "a", "a"])
    t.add("year", [2, 0], ["2001", "1999"], multi=False)
    return t


def test_feature_field_csr_and_padding():
    t = _table()
    f = t.field("tag")
    assert f.vocab.tolist() == ["a", "b", "c"]
    assert f.indptr.tolist() == [0, 2, 2, 4] and f.values.tolist() == [1, 0, 2, 0]
    assert f.labels(0) == ["b", "a"] and f.labels(1) == []
    assert t.fields == ("tag", "year") and t.n_rows == 3 and t.n_values("tag") == 3
    assert t.padded("tag", 3).tolist() == [[1, 0, -1], [-1, -1, -1], [2, 0, -1]]
    assert t.padded("tag", 1).tolist() == [[1], [-1], [2]]  # truncation keeps the first
    assert t.padded("tag").shape == (3, 2) and t.padded("tag").dtype == np.int64
    assert t.padded("year", 1).tolist() == [[0], [-1], [1]]
    with pytest.raises(KeyError, match="no feature field 'nope'"):
        t.field("nope")


def test_vocab_numeric_order_fixed_vocab_and_single_valued_check():
    t = FeatureTable(2).add("age", [0, 1], ["10", "9"], multi=False)
    assert t.field("age").vocab.tolist() == ["9", "10"]
    t.add("g", [1, 0], ["x", "z"], vocab=["z", "y", "x"])
    assert t.padded("g", 1).tolist() == [[0], [2]] and t.n_values("g") == 3
    with pytest.raises(ValueError, match="several values"):
        FeatureTable(1).add("age", [0, 0], ["1", "2"], multi=False)
    with pytest.raises(ValueError, match="rows"):
        FeatureTable(2).set("x", FeatureField([0, 0], [], []))


def test_add_column_splits_and_skips_empty():
    t = FeatureTable(3).add_column("genre", [2, -1, 0], ["A|B", "C", ""], sep="|")
    assert t.field("genre").labels(2) == ["A", "B"] and t.field("genre").labels(0) == []
    assert t.field("genre").vocab.tolist() == ["A", "B"]


def test_feature_table_dict_and_npz_round_trip(tmp_path):
    t = _table()
    back = FeatureTable.from_dict(t.to_dict("x."), "x.")
    assert back == t and back.fields == t.fields
    t.to_npz(tmp_path / "f.npz")
    again = FeatureTable.from_npz(tmp_path / "f.npz")
    assert again == t and again.field("year").multi is False
    assert not list(tmp_path.glob("*.tmp"))


def test_user_sequences_time_order_and_stable_ties():
    user = [1, 0, 1, 0, 1]
    item = [10, 11, 12, 13, 14]
    ts = [5, 3, 5, 1, 2]
    indptr, items, times = user_sequences(user, item, ts, 3)
    assert indptr.tolist() == [0, 2, 5, 5]  # user 2 has no event
    assert items.tolist() == [13, 11, 14, 10, 12]  # tie at t=5 keeps file order (10, 12)
    assert times.tolist() == [1, 3, 2, 5, 5]


def _toy(**kw) -> Dataset:
    # entities 0 e_a, 1 e_b, 2 e_c (items' entities), 3 g1, 4 g2, 5 d1
    kg = [[0, 0, 3], [1, 0, 3], [1, 0, 4], [0, 1, 5], [3, 2, 4]]
    return Dataset(
        name="toy", ratings=[[0, 0, 1], [0, 2, 0], [1, 1, 1]], kg=kg, n_users=2, n_items=3,
        n_entities=6, n_relations=3, item_entity=[1, 0, 2],
        entity_ids=np.array(["e_a", "e_b", "e_c", "g1", "g2", "d1"]),
        relation_ids=np.array(["genre", "director", "sub"]), **kw)


def test_kg_item_features_on_toy_kg():
    t = kg_item_features(_toy())
    assert t.fields == ("genre", "director", "sub") and t.n_rows == 3
    g = t.field("genre")
    assert [g.labels(i) for i in range(3)] == [["g1", "g2"], ["g1"], []]
    assert t.padded("genre", 2).tolist() == [[0, 1], [0, -1], [-1, -1]]
    assert [t.field("director").labels(i) for i in range(3)] == [[], ["d1"], []]
    assert t.n_values("sub") == 0  # heads are never item entities


def test_drop_rare_values_and_tower_features_min_value_items():
    f = _table().field("tag")  # a: rows 0 and 2; b: row 0; c: row 2
    g = f.drop_rare(2)
    assert g.vocab.tolist() == ["a"] and g.indptr.tolist() == [0, 1, 1, 2]
    assert [g.labels(i) for i in range(3)] == [["a"], [], ["a"]]
    assert f.drop_rare(1) is f and f.drop_rare(3).vocab.tolist() == []
    # toy KG: g1 on items 0 and 1, g2 on item 0 only, d1 on item 1 only
    items, _ = tower_features(_toy(), min_value_items=2, min_coverage=0.0)
    assert items.fields == ("item_id", "kg:genre")  # director's only value is rare
    assert [items.field("kg:genre").labels(i) for i in range(3)] == [["g1"], ["g1"], []]
    items, _ = tower_features(_toy(), min_coverage=0.0)
    assert "kg:director" in items.fields and items.field("kg:genre").labels(0) == ["g1", "g2"]


def test_dataset_sequences_checksums_and_npz_round_trip(tmp_path):
    plain = _toy()
    ev = Interactions([1, 0, 1, 0], [2, 0, 1, 1], [4.0, np.nan, 5.0, 3.0], [9, 7, 9, 3])
    users = FeatureTable(2).add("gender", [0, 1], ["F", "M"], multi=False)
    ds = _toy(interactions=ev, item_features=kg_item_features(plain), user_features=users)
    assert ds.checksum == plain.checksum  # the old definition ignores the new fields
    sums = ds.checksums()
    assert set(sums) == {"ctr", "interactions", "item_features", "user_features"}
    assert sums["ctr"] == ds.checksum and set(plain.checksums()) == {"ctr"}
    indptr, items, times = ds.sequences()
    assert indptr.tolist() == [0, 2, 4]
    assert items.tolist() == [1, 0, 2, 1] and times.tolist() == [3, 7, 9, 9]
    s = ds.stats()
    assert s["events"] == 4 and s["avg_sequence"] == 2.0 and s["interactions"] == 3
    assert s["features"] == ["item:genre", "item:director", "item:sub", "user:gender"]
    ds.to_npz(tmp_path / "d.npz")
    back = Dataset.from_npz(tmp_path / "d.npz")
    assert back.checksums() == sums
    np.testing.assert_array_equal(back.interactions.rating, ev.rating)
    assert back.item_features == ds.item_features and back.user_features.fields == ("gender",)
    plain.to_npz(tmp_path / "p.npz")
    p = Dataset.from_npz(tmp_path / "p.npz")
    assert p.interactions is None and p.item_features is None
    with pytest.raises(ValueError, match="no observed interactions"):
        p.sequences()


def test_dataset_rejects_misaligned_new_fields():
    with pytest.raises(DataError, match="interaction item index out of range"):
        _toy(interactions=Interactions.build([0], [3]))
    with pytest.raises(DataError, match="lengths differ"):
        Interactions([0, 1], [0], [1.0], [0])
    with pytest.raises(DataError, match="user_features has 3 rows for 2 users"):
        _toy(user_features=FeatureTable(3))
