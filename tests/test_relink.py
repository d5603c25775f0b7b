"""Re-keying RecBole's ml-100k.link (MovieLens-1M ids) to MovieLens-100K ids by titles: the
matching rules by hand, and on the shared files that the repaired graph describes the right
films (RUCAIBox/RecSysDatasets issue 130)."""

import numpy as np
import pytest

from kgrec.data.readers.relink import is_recbole_ml100k_link, normalise_title, relink_by_title


def test_relink_by_title_rules():
    ref_ids = np.array([1, 2, 3, 4, 5, 6])
    ref_titles = np.array(["Toy Story", "Jumanji", "Star Wars: Episode IV - A New Hope",
                           "Star Wars: Episode V - The Empire Strikes Back", "Twelve Monkeys",
                           "Twelve Monkeys Again"])
    ref_years = np.array(["1995", "1995", "1977", "1980", "1995", "1995"])
    # the link is keyed by the reference ids; 4 has no entity
    keys, ents = np.array(["1", "2", "3", "5"]), np.array(["e_toy", "e_jum", "e_sw", "e_12"])
    items = np.array(["10", "11", "12", "13", "14", "15", "16"])
    titles = np.array(["Toy Story", "Jumanji", "Star Wars", "Empire Strikes Back, The",
                       "Toy Story", "Twelve", "Nowhere"])
    years = np.array(["1995", "1996", "1977", "1980", "1995", "1995", "1990"])
    it, en, stats = relink_by_title(keys, ents, items=items, titles=titles, years=years,
                                    ref_ids=ref_ids, ref_titles=ref_titles,
                                    ref_years=ref_years)
    # 10: exact; 11: wrong year; 12: contained; 13: article moved in front, matched but the
    # link lacks id 4; 14: exact (a duplicate film shares the entity); 15: two candidates
    assert dict(zip(it.tolist(), en.tolist(), strict=True)) == {
        "10": "e_toy", "12": "e_sw", "14": "e_toy"}
    assert stats["items"] == 7 and stats["matched"] == 4 and stats["linked"] == 3
    assert "Jumanji (1996)" in stats["unmatched"] and "Twelve (1995)" in stats["unmatched"]
    assert normalise_title("Usual Suspects, The") == "usualsuspectsthe"


@pytest.mark.realdata
def test_ml100k_kg_link_repaired_on_the_shared_files(data_dir, monkeypatch):
    from kgrec.data.catalog import load_dataset

    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    assert is_recbole_ml100k_link(data_dir / "ml-100k-kg" / "ml-100k.link")
    ds = load_dataset("ml-100k-kg")
    assert ds.meta["link"]["linked"] == 1522 and "movies.dat" in ds.source_checksums
    ent = {n: ds.entity_ids[ds.item_entity[i]] for i, n in enumerate(ds.item_names)}
    # RecBole's file links 50 (Star Wars here) to The Usual Suspects (1M id 50) and 313
    # (Titanic) to The Swan Princess (m.0b8l01); Titanic is 1M id 1721, beyond its keys
    assert ent["Star Wars"] == "m.0dtfn" and ent["Toy Story"] == "m.0dyb1"
    assert ent["Titanic"] != "m.0b8l01"
    # the graph's genres now agree with MovieLens' own: Freebase's Animation (m.0hcr)
    # films are animated films (39 of 42; before the repair 3 of 44)
    anim = ds.entity_ids.tolist().index("m.0hcr")
    heads = ds.kg[(ds.kg[:, 2] == anim) & (ds.relation_ids[ds.kg[:, 1]] == "film.film.genre"), 0]
    item_of = {e: i for i, e in enumerate(ds.item_entity)}
    films = [item_of[h] for h in heads if h in item_of]
    genre = ds.item_features.field("class")
    animated = [("Animation" in genre.labels(i)) for i in films]
    assert len(films) >= 30 and np.mean(animated) > 0.9


@pytest.mark.realdata
def test_relink_without_movies_dat_offline_says_what_to_put_where(data_dir, tmp_path,
                                                                   monkeypatch):
    import shutil
    import urllib.error

    from kgrec.data import catalog
    from kgrec.data.dataset import DataError
    from kgrec.data.folder import read_folder

    d = tmp_path / "mine"
    d.mkdir()
    for f in ("ml-100k.inter", "ml-100k.kg", "ml-100k.link", "ml-100k.item"):
        shutil.copy(data_dir / "ml-100k-kg" / f, d / f)
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "nothing"))

    def offline(url, dest):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(catalog, "_fetch", offline)
    with pytest.raises(DataError, match=r"ml-100k\.link.*movies\.dat.*offline"):
        read_folder(d)
    shutil.copy(data_dir / "ml-1m" / "movies.dat", d / "movies.dat")  # next to the files
    assert read_folder(d).meta["link"]["linked"] == 1522
