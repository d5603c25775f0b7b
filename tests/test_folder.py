"""``--data DIR``: a folder of one's own data in any known format, detected by content."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.data.dataset import DataError
from kgrec.data.folder import detect_format, load_folder, read_folder
from kgrec.experiments.run import RunConfig, train


@pytest.mark.parametrize("name, fmt", [("music", "mkr-raw"), ("book", "mkr-final"),
                                       ("ml-100k", "ml-100k"), ("amazon-beauty", "amazon"),
                                       ("ml-100k-kg", "recbole")])
def test_shared_folders_are_detected(data_dir, name, fmt):
    assert detect_format(data_dir / name)[0] == fmt


def test_recbole_folder_equals_the_catalog_reading(data_dir, tmp_path, monkeypatch):
    from kgrec.data.catalog import load_dataset

    monkeypatch.setenv("KGREC_DATA", str(data_dir))
    d = shutil.copytree(data_dir / "ml-100k-kg", tmp_path / "mine")
    mine, ref = load_folder(d), load_dataset("ml-100k-kg")
    assert mine.name == "mine" and mine.checksum == ref.checksum
    assert "160 not" in repr(mine) and "recbole" in repr(mine)  # unlinked items reported
    assert "re-keyed by titles" in repr(mine) and mine.meta["link"]["linked"] == 1522


def test_cli_trains_mkr_and_bpr_on_a_recbole_copy(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_DATA", str(data_dir))  # ml-1m/movies.dat re-keys the link
    d = shutil.copytree(data_dir / "ml-100k-kg", tmp_path / "mydata")
    for model in ("mkr", "bpr-mf"):
        out = tmp_path / model
        r = CliRunner().invoke(app, ["train", "--data", str(d), "-m", model, "--epochs", "1",
                                     "-q", "--no-topk", "--out", str(out)])
        assert r.exit_code == 0, r.output
        m = json.loads((out / "metrics.json").read_text())
        assert m["dataset"] == "mydata" and m["test"]["auc"] > 0.6
        run = json.loads((out / "config.json").read_text())["run"]
        assert run["data"] == str(d)


def _tables(d, inter: str, kg: str | None = None, links: str | None = None):
    d.mkdir(parents=True, exist_ok=True)
    (d / "interactions.csv").write_text(inter)
    if kg:
        (d / "kg.tsv").write_text(kg)
    if links:
        (d / "links.csv").write_text(links)
    return d


CLICKS = "".join(f"u{u},m{(u * 7 + k) % 40},{1 + (u + k) % 5},{k}\n"
                 for u in range(30) for k in range(12))


def test_csv_tables_with_kg_and_links(tmp_path):
    kg = "head\trelation\ttail\n" + "".join(f"e{i}\tgenre\tg{i % 4}\n" for i in range(40))
    links = "item,entity\n" + "".join(f"m{i},e{i}\n" for i in range(35))
    d = _tables(tmp_path / "t", "user_id,item_id,rating,timestamp\n" + CLICKS, kg, links)
    ds = read_folder(d)
    assert ds.meta["format"] == "tables" and ds.n_users == 30 and ds.n_items == 40
    assert len(ds.kg) == 40 and ds.meta["unlinked_items"] == 5
    assert ds.interactions.timestamp is not None and len(ds.interactions) == 360
    # ratings >= 4 are positives, MKR's way
    assert ds.n_positives == int(sum(1 + (u + k) % 5 >= 4 for u in range(30)
                                     for k in range(12)))
    res = train(RunConfig(data=str(d), model="bpr-mf", epochs=1, progress=False, plot=False,
                          out=str(tmp_path / "run")))
    assert res.metrics["dataset"] == "t"


def test_train_takes_a_dataset(tmp_path, tiny_dataset):
    res = train(RunConfig(model="bpr-mf", epochs=1, progress=False, plot=False,
                          out=str(tmp_path / "run")), dataset=tiny_dataset)
    assert res.metrics["dataset"] == tiny_dataset.name
    assert res.metrics["data_checksum"] == tiny_dataset.checksum


def test_bad_folders_name_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match="no data format recognised"):
        detect_format(_tables(tmp_path / "a", "x") and (tmp_path / "a" / "interactions.csv")
                      .rename(tmp_path / "a" / "notes.md") and tmp_path / "a")
    d = _tables(tmp_path / "b", "user,item,rating\na,m1,5\n\na,m2,five\n")
    with pytest.raises(DataError) as e:
        read_folder(d)
    assert e.value.line == 4 and "five" in str(e.value) and "interactions.csv" in str(e.value)
    d = _tables(tmp_path / "c", "user;item;rating\na;m1;5\n")
    with pytest.raises(DataError, match="wrong separator"):
        read_folder(d)
    d = _tables(tmp_path / "d", "uid2,item\na,m1\n")
    with pytest.raises(DataError, match="no user column"):
        read_folder(d)
    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "nowhere" in r.output


def test_dataset_prints_one_paragraph(tiny_dataset):
    text = repr(tiny_dataset)
    assert "\n" not in text and "users" in text and "triples" in text
    assert len(text) < 600
    assert np.asarray(tiny_dataset.ratings).size > 0


def test_dash_d_takes_a_folder_or_a_kgrec_data_subfolder(tmp_path, monkeypatch):
    from kgrec.experiments.run import dataset_folder

    d = _tables(tmp_path / "data" / "custom", "user,item\n" + "".join(
        f"u{u},m{(u * 3 + k) % 20}\n" for u in range(20) for k in range(6)))
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "data"))
    assert dataset_folder("custom") == tmp_path / "data" / "custom"
    assert dataset_folder(str(d)) == d and dataset_folder("music") is None
    assert dataset_folder("nowhere") is None
    for name in ("custom", str(d)):
        out = tmp_path / f"run-{len(name)}"
        r = CliRunner().invoke(app, ["train", "-d", name, "-m", "pop", "--protocol", "loo",
                                     "-q", "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert json.loads((out / "metrics.json").read_text())["dataset"] == "custom"
    r = CliRunner().invoke(app, ["train", "-d", "nowhere", "-q"])
    assert r.exit_code == 2 and "--data PATH" in r.output
