"""Bad input never gets past the door: a corpus of a user's mistakes, each of which must give a
clear error naming the file and line, or the argument, and never a traceback.

Every case is a function returning what it ran: a CLI call (exit code 2, the message on one
line naming the culprit, no exception besides the exit) or a Python call (a ``ValueError``
subclass, usually :class:`~kgrec.data.dataset.DataError`, whose message names the culprit).
Cases that are *handled* (a BOM, CRLF, duplicate triples) check the correct result instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.data.readers import (
    from_dataframes,
    read_amazon,
    read_mkr_final,
    read_mkr_raw,
    read_recbole,
    read_table,
)

CASES: dict[str, Callable] = {}


def case(fn: Callable) -> Callable:
    CASES[fn.__name__] = fn
    return fn


class Cli:
    """A CLI call: ``kgrec ARGS`` must exit 2 with every one of ``names`` in its message."""

    def __init__(self, args: list[str], *names: str, code: int = 2):
        self.args, self.names, self.code = [str(a) for a in args], names, code


class Py:
    """A Python call that must raise a ValueError whose message holds every one of
    ``names`` (``line``: and the DataError's line is this)."""

    def __init__(self, fn: Callable, *names: str, line: int | None = None,
                 exc: type = ValueError):
        self.fn, self.names, self.line, self.exc = fn, names, line, exc


def _w(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _final(d: Path, ratings: str | bytes, kg: str | bytes = "0\t0\t3\n1\t0\t3\n2\t1\t4\n"):
    """A ``book`` folder in MKR's processed format under ``d`` (``$KGREC_DATA``)."""
    r = _w(d / "book" / "ratings_final.txt", ratings)
    k = _w(d / "book" / "kg_final.txt", kg)
    return r, k


GOOD_RATINGS = "".join(f"{u}\t{i}\t{int((u + i) % 3 != 0)}\n" for u in range(6) for i in range(3))


def _recbole(d: Path, inter: str | bytes, kg: str | None = None, link: str | None = None) -> Path:
    _w(d / "x.inter", inter)
    _w(d / "x.kg", kg or "head_id:token\trelation_id:token\ttail_id:token\n"
                        "m1\tgenre\tg1\nm2\tgenre\tg1\n")
    _w(d / "x.link", link or "item_id:token\tentity_id:token\nm1\tm1\nm2\tm2\n")
    return d


INTER_HEAD = "user_id:token\titem_id:token\tlabel:float\n"


# ------------------------------------------------------------------ MKR's processed files
@case
def final_blank_line_then_bad_label(tmp):
    r, k = _final(tmp, "0\t0\t1\n\n1\t1\t7\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:3", "label is 7",
              line=3)


@case
def final_blank_lines_then_negative_index(tmp):
    r, k = _final(tmp, "0\t0\t1\n\n\n1\t-1\t0\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:4", "negative item",
              line=4)


@case
def final_id_2_pow_63(tmp):
    r, k = _final(tmp, f"0\t0\t1\n{2**63}\t1\t0\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:2", "too large",
              line=2)


@case
def final_sparse_huge_id(tmp):
    r, k = _final(tmp, "0\t0\t1\n1\t1\t0\n1000000000000\t1\t1\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:3", "user",
              line=3)


@case
def final_sparse_huge_id_cli(tmp):
    _final(tmp, "0\t0\t1\n1\t1\t0\n1000000000000\t1\t1\n")
    return Cli(["train", "-d", "book", "-m", "bpr-mf"], "ratings_final.txt:3")


@case
def final_kg_is_a_directory(tmp):
    r = _w(tmp / "ratings_final.txt", GOOD_RATINGS)
    (tmp / "kg_final.txt").mkdir()
    return Py(lambda: read_mkr_final(r, tmp / "kg_final.txt", name="t"), "kg_final.txt",
              "a directory")


@case
def final_kg_empty(tmp):
    r, k = _final(tmp, GOOD_RATINGS, "")
    return Py(lambda: read_mkr_final(r, k, name="t"), "kg_final.txt", "empty")


@case
def final_comma_separated(tmp):
    r, k = _final(tmp, "0,0,1\n1,1,0\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:1", "separator",
              line=1)


@case
def final_latin1_byte(tmp):
    r, k = _final(tmp, b"0\t0\t1\n1\t1\t0\n1\t\xe9\t0\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:3", "utf-8", line=3)


@case
def final_nan_field(tmp):
    r, k = _final(tmp, "0\t0\t1\n1\tnan\t0\n")
    return Py(lambda: read_mkr_final(r, k, name="t"), "ratings_final.txt:2", "integer",
              line=2)


@case
def final_single_item_cli(tmp):
    _final(tmp, "0\t0\t1\n1\t0\t0\n2\t0\t1\n")
    return Cli(["train", "-d", "book", "-m", "bpr-mf"], "ratings_final.txt", "item")


@case
def final_single_user_cli(tmp):
    _final(tmp, "0\t0\t1\n0\t1\t0\n0\t2\t1\n")
    return Cli(["train", "-d", "book", "-m", "bpr-mf"], "ratings_final.txt", "user")


@case
def final_bom_and_crlf_read_identically(tmp):
    r, k = _final(tmp, GOOD_RATINGS)
    r2 = _w(tmp / "b" / "ratings_final.txt",
            b"\xef\xbb\xbf" + GOOD_RATINGS.replace("\n", "\r\n").encode())
    a, b = read_mkr_final(r, k, name="t"), read_mkr_final(r2, k, name="t")
    assert np.array_equal(a.ratings, b.ratings)


# ------------------------------------------------------------------ MKR's raw files
LINKS = "i0\te0\ni1\te1\ni2\te2\n"
RAW = "u1::i0::5::1\nu1::i1::1::2\nu2::i1::5::3\nu2::i2::2::4\nu3::i2::5::5\nu3::i0::1::6\n"


@case
def raw_kg_all_triples_unusable(tmp):
    d = tmp / "movie"
    _w(d / "ratings.dat", RAW)
    _w(d / "item_index2entity_id.txt", LINKS)
    _w(d / "kg.txt", "x1\tgenre\tx2\nx3\tgenre\tx4\n")  # no triple touches an item
    return Py(lambda: read_mkr_raw(d, "movie"), "kg.txt", "usable")


@case
def raw_kg_is_a_directory_cli(tmp):
    d = tmp / "movie"
    _w(d / "ratings.dat", RAW)
    _w(d / "item_index2entity_id.txt", LINKS)
    (d / "kg.txt").mkdir()
    return Cli(["train", "-d", "movie", "-m", "bpr-mf"], "kg.txt", "directory")


@case
def raw_ratings_wrong_separator(tmp):
    d = tmp / "movie"
    _w(d / "ratings.dat", RAW.replace("::", ","))
    _w(d / "item_index2entity_id.txt", LINKS)
    _w(d / "kg.txt", "e0\tgenre\tg\n")
    return Py(lambda: read_mkr_raw(d, "movie"), "ratings.dat:1", "separator", line=1)


@case
def raw_duplicate_item_link(tmp):
    d = tmp / "movie"
    _w(d / "ratings.dat", RAW)
    _w(d / "item_index2entity_id.txt", LINKS + "i0\te9\n")
    _w(d / "kg.txt", "e0\tgenre\tg\n")
    return Py(lambda: read_mkr_raw(d, "movie"), "item_index2entity_id.txt:4", "i0", line=4)


# ------------------------------------------------------------------ RecBole atomic files
@case
def recbole_latin1_in_header(tmp):
    d = _recbole(tmp, b"user_id:token\titem_\xe9d:token\tlabel:float\na\tm1\t1\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:1", "utf-8", line=1)


@case
def recbole_latin1_in_data_counts_header(tmp):
    d = _recbole(tmp, (INTER_HEAD + "a\tm1\t1\nb\tm\xe92\t0\n").encode("latin-1"))
    return Py(lambda: read_recbole(d, "x"), "x.inter:3", "utf-8", line=3)


@case
def recbole_bad_value_counts_header(tmp):
    d = _recbole(tmp, INTER_HEAD + "a\tm1\t1\nb\tm2\tyes\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:3", "yes", line=3)


@case
def recbole_blank_line_then_short_line(tmp):
    d = _recbole(tmp, INTER_HEAD + "a\tm1\t1\n\nb\tm2\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:4", "expected 3 fields", line=4)


@case
def recbole_bad_label_counts_header(tmp):
    d = _recbole(tmp, INTER_HEAD + "a\tm1\t1\nb\tm2\t3\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:3", "label", line=3)


@case
def recbole_latin1_cli(tmp):
    d = tmp / "ml-100k-kg"
    _w(d / "ml-100k.inter", (INTER_HEAD + "a\tm1\t1\nb\tm\xe92\t0\n").encode("latin-1"))
    _w(d / "ml-100k.kg", "head_id:token\trelation_id:token\ttail_id:token\nm1\tg\tx\n")
    _w(d / "ml-100k.link", "item_id:token\tentity_id:token\nm1\tm1\n")
    return Cli(["train", "-d", "ml-100k-kg", "-m", "bpr-mf"], "ml-100k.inter:3", "utf-8")


@case
def amazon_bad_line_cli(tmp):
    _w(tmp / "amazon-beauty" / "Beauty.txt", "1 2 3 4\n2 5 x 6\n")
    return Cli(["train", "-d", "amazon-beauty", "-m", "pop", "--protocol", "loo"],
               "Beauty.txt:2", "'x'")


@case
def recbole_header_type_typo(tmp):
    d = _recbole(tmp, "user_id:token\titem_id:token\tlabel:flaot\na\tm1\t1\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:1", "flaot", line=1)


@case
def recbole_bom_in_header_read(tmp):
    d = _recbole(tmp, ("\ufeff" + INTER_HEAD + "a\tm1\t1\nb\tm2\t0\na\tm2\t0\nb\tm1\t1\n"))
    ds = read_recbole(d, "x")
    assert ds.n_users == 2 and ds.n_positives == 2


@case
def recbole_missing_column(tmp):
    d = _recbole(tmp, "user_id:token\tlabel:float\na\t1\n")
    return Py(lambda: read_recbole(d, "x"), "x.inter:1", "item_id", line=1)


@case
def recbole_kg_header_only(tmp):
    d = _recbole(tmp, INTER_HEAD + "a\tm1\t1\nb\tm2\t0\n",
                 kg="head_id:token\trelation_id:token\ttail_id:token\n")
    return Py(lambda: read_recbole(d, "x"), "x.kg", "empty")


# ------------------------------------------------------------------ DataFrames
KG_DF = pd.DataFrame({"head": ["m1", "m2"], "relation": ["genre", "genre"],
                      "tail": ["drama", "drama"]})


@case
def frame_rating_is_a_word(tmp):
    inter = pd.DataFrame({"user": ["a", "a", "b"], "item": ["m1", "m2", "m1"],
                          "rating": [5, "five", 3]})
    return Py(lambda: from_dataframes(inter, KG_DF, rating_col="rating", threshold=4),
              "rating", "'five'", line=2)


@case
def frame_rating_nan(tmp):
    inter = pd.DataFrame({"user": ["a", "a", "b"], "item": ["m1", "m2", "m1"],
                          "rating": [5.0, float("nan"), 3.0]})
    return Py(lambda: from_dataframes(inter, KG_DF, rating_col="rating", threshold=4),
              "rating", "NaN", line=2)


@case
def frame_label_nan(tmp):
    inter = pd.DataFrame({"user": ["a", "a", "b"], "item": ["m1", "m2", "m1"],
                          "label": [1, None, 0]})
    return Py(lambda: from_dataframes(inter, KG_DF, label_col="label"), "label", line=2)


@case
def frame_user_missing(tmp):
    inter = pd.DataFrame({"user": ["a", None, "b"], "item": ["m1", "m2", "m1"]})
    return Py(lambda: from_dataframes(inter, KG_DF), "user", "missing", line=2)


@case
def frame_empty(tmp):
    inter = pd.DataFrame({"user": [], "item": []})
    return Py(lambda: from_dataframes(inter, KG_DF), "interactions", "empty")


# ------------------------------------------------------------------ triples and sequences
@case
def triples_duplicates_do_not_leak(tmp):
    from kgrec.data.kg_split import split_triples

    rng = np.random.default_rng(0)
    kg = rng.integers(0, 30, size=(200, 3))
    kg[:, 1] %= 3
    kg = np.r_[kg, kg[:60]]  # 60 duplicates
    s = split_triples(kg, seed=0)
    train = {tuple(t) for t in s.train.tolist()}
    held = [tuple(t) for t in np.r_[s.valid, s.test].tolist()]
    assert not train & set(held) and len(held) == len(set(held))


@case
def triples_file_two_fields_cli(tmp):
    f = _w(tmp / "t.tsv", "a\tr\tb\nc\td\n")
    return Cli(["kge", "train", "--triples", f, "-q"], "t.tsv:2", "expected 3 fields")


@case
def triples_file_one_triple_repeated_cli(tmp):
    f = _w(tmp / "t.tsv", "a\tr\tb\n" * 50)
    return Cli(["kge", "train", "--triples", f, "-q"], "t.tsv", "too few")


@case
def triples_file_missing_cli(tmp):
    return Cli(["kge", "train", "--triples", tmp / "nope.tsv", "-q"], "nope.tsv", "not found")


@case
def amazon_bad_sequence_line(tmp):
    f = _w(tmp / "Beauty.txt", "1 2 3 4\n2 5 x 6\n")
    return Py(lambda: read_amazon(f, None, name="b"), "Beauty.txt:2", "x", line=2)


@case
def amazon_huge_id(tmp):
    f = _w(tmp / "Beauty.txt", "1 2 3 4\n2 5 " + "9" * 25 + " 6\n")
    return Py(lambda: read_amazon(f, None, name="b"), "Beauty.txt:2", "too large", line=2)


@case
def amazon_bad_attribute_json(tmp):
    f = _w(tmp / "Beauty.txt", "1 2 3 4\n2 5 3 6\n3 2 5\n")
    a = _w(tmp / "Beauty_item2attributes.json", '{"2": [1, 2], "3": [1,\n')
    return Py(lambda: read_amazon(f, a, name="b"), "Beauty_item2attributes.json", "JSON")


@case
def movielens_bad_rating(tmp):
    from kgrec.data.readers import read_ml100k

    _w(tmp / "u.data", "1\t2\t5\t881250949\n\n1\t3\tfive\t881250950\n")
    return Py(lambda: read_ml100k(tmp, name="m"), "u.data:3", "five", line=3)


@case
def table_directory_named_like_file(tmp):
    (tmp / "kg.txt").mkdir()
    return Py(lambda: read_table(tmp / "kg.txt", sep="\t", n_cols=3), "kg.txt", "directory")


# ------------------------------------------------------------------ arguments
def _train(*more):
    return ["train", "-q", "--epochs", "1", *more]


@case
def arg_set_lr_not_a_number(tmp):
    return Cli(_train("-m", "mkr", "--set", "lr_rs=abc"), "lr_rs", "abc")


@case
def arg_set_negative_dim(tmp):
    return Cli(_train("-m", "mkr", "--set", "dim=-3"), "dim", ">= 1")


@case
def arg_set_unknown_key(tmp):
    return Cli(_train("-m", "bpr-mf", "--set", "dimm=8"), "dimm")


@case
def arg_set_without_equals(tmp):
    return Cli(_train("-m", "bpr-mf", "--set", "dim"), "--set")


@case
def arg_negative_seed(tmp):
    return Cli(_train("--seed", "-1"), "--seed", "-1")


@case
def arg_negative_epochs(tmp):
    return Cli(["train", "-q", "--epochs", "-1"], "--epochs", "-1")


@case
def arg_zero_epochs(tmp):
    return Cli(["train", "-q", "--epochs", "0"], "--epochs")


@case
def arg_train_ratio_above_one(tmp):
    return Cli(_train("--train-ratio", "1.5"), "--train-ratio", "1.5")


@case
def arg_train_ratio_zero(tmp):
    return Cli(_train("--train-ratio", "0"), "--train-ratio")


@case
def arg_kg_ratio_negative(tmp):
    return Cli(_train("--kg-ratio", "-0.5"), "--kg-ratio")


@case
def arg_ks_zero(tmp):
    return Cli(_train("--protocol", "loo", "-m", "pop", "--ks", "0,20"), "--ks")


@case
def arg_ks_not_numbers(tmp):
    return Cli(_train("--protocol", "loo", "-m", "pop", "--ks", "ten"), "--ks", "ten")


@case
def arg_unknown_protocol(tmp):
    return Cli(_train("--protocol", "lo"), "--protocol", "lo")


@case
def arg_unknown_monitor(tmp):
    return Cli(_train("--monitor", "aucc"), "--monitor", "aucc")


@case
def arg_unknown_negatives(tmp):
    return Cli(_train("--negatives", "random"), "--negatives", "random")


@case
def arg_unknown_negative_sampling(tmp):
    return Cli(_train("--negative-sampling", "hard"), "--negative-sampling", "hard")


@case
def arg_max_user_below_min_user(tmp):
    return Cli(_train("--min-user", "50", "--max-user", "10"), "--max-user")


@case
def arg_bad_device(tmp):
    return Cli(_train("--device", "gpu0"), "--device", "gpu0")


@case
def arg_zero_patience(tmp):
    return Cli(_train("--patience", "0"), "--patience")


@case
def arg_zero_threads(tmp):
    return Cli(_train("--threads", "0"), "--threads")


@case
def arg_negative_clip_norm(tmp):
    return Cli(_train("--clip-norm", "-1"), "--clip-norm")


@case
def arg_zero_topk_users(tmp):
    return Cli(_train("--topk-users", "0"), "--topk-users")


@case
def arg_unknown_model(tmp):
    return Cli(_train("-m", "mkrr"), "mkrr")


@case
def arg_unknown_dataset(tmp):
    return Cli(_train("-d", "musik"), "musik")


@case
def arg_out_is_a_file(tmp):
    f = _w(tmp / "taken", "x")
    return Cli(_train("--out", f), "--out", "taken")


@case
def arg_kge_negative_dim(tmp):
    f = _w(tmp / "t.tsv", "a\tr\tb\nb\tr\tc\n")
    return Cli(["kge", "train", "--triples", f, "-q", "--set", "dim=-3"], "dim")


@case
def arg_kge_unknown_model(tmp):
    return Cli(["kge", "train", "-m", "transx", "-q"], "transx")


@case
def arg_kge_negative_epochs(tmp):
    return Cli(["kge", "train", "--epochs", "-2", "-q"], "--epochs")


@case
def arg_evaluate_missing_run(tmp):
    return Cli(["evaluate", tmp / "nowhere"], "nowhere")


@case
def arg_evaluate_corrupt_config(tmp):
    for name in ("checkpoint.pt", "artifact.npz", "metrics.json"):
        _w(tmp / "run" / name, "x")
    _w(tmp / "run" / "config.json", '{"run": {"model": ')
    return Cli(["evaluate", tmp / "run"], "config.json:1", "not valid JSON")


@case
def arg_resume_corrupt_config(tmp):
    _w(tmp / "run" / "config.json", "not json")
    _w(tmp / "run" / "checkpoint.pt", "x")
    return Cli(["train", "--resume", tmp / "run"], "config.json")


@case
def arg_recommend_missing_run(tmp):
    return Cli(["recommend", tmp / "nowhere", "-u", "1"], "nowhere")


@case
def arg_recommend_zero_k(tmp):
    return Cli(["recommend", tmp / "nowhere", "-u", "1", "-k", "0"], "-k", ">= 1")


@case
def arg_evaluate_zero_n(tmp):
    return Cli(["evaluate", tmp / "nowhere", "--n", "0"], "--n")


@case
def arg_evaluate_unknown_index(tmp):
    return Cli(["evaluate", tmp / "nowhere", "--lambdas", "0", "--index", "annoy"], "--index",
               "annoy")


@case
def arg_evaluate_lambdas_not_numbers(tmp):
    return Cli(["evaluate", tmp / "nowhere", "--lambdas", "0,high"], "--lambdas", "high")


@case
def arg_benchmark_zero_workers(tmp):
    return Cli(["benchmark", "--workers", "0"], "--workers")


@case
def arg_benchmark_ratios_not_numbers(tmp):
    return Cli(["benchmark", "--sparse-ratios", "0.1,half"], "--sparse-ratios", "half")


@case
def arg_tsne_one_item(tmp):
    return Cli(["plot", "tsne", tmp / "nowhere", "--items", "1"], "--items")


# ------------------------------------------------------------------ the runner
@pytest.fixture
def env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("KGREC_DATA", str(data))
    monkeypatch.chdir(tmp_path)  # runs/ of a failed run would land here
    return data


def _one_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, env):
    spec = CASES[name](env)
    if spec is None:  # handled: the case checked the correct result itself
        return
    if isinstance(spec, Cli):
        r = CliRunner().invoke(app, spec.args)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            import traceback

            raise AssertionError("traceback instead of an error:\n" + "".join(
                traceback.format_exception(r.exception)))
        assert r.exit_code == spec.code, r.output
        msg = _one_line(r.output)
        assert msg.startswith("error: ") or "Error" in r.output, r.output
        for n in spec.names:
            assert n in r.output, f"{n!r} not in {r.output!r}"
        assert "Traceback" not in r.output
        return
    with pytest.raises(spec.exc) as e:
        spec.fn()
    msg = str(e.value)
    assert "\n" not in msg.strip(), msg
    for n in spec.names:
        assert n in msg, f"{n!r} not in {msg!r}"
    if spec.line is not None:
        assert getattr(e.value, "line", None) == spec.line, msg


def test_corpus_size():
    assert len(CASES) >= 40
