"""The benchmark scripts' shared helpers (benchmarks/_cli.py) that hold no model code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _cli import scratch_cwd


def test_scratch_cwd_temporary_is_removed_and_cwd_restored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with scratch_cwd(None, prefix="kgrec-test-") as work:
        assert work.is_absolute() and work.name.startswith("kgrec-test-")
        assert Path.cwd() == work
        Path("log").mkdir()  # what RecBole does
        (work / "log" / "x.txt").write_text("x")
    assert Path.cwd() == tmp_path
    assert not work.exists()


def test_scratch_cwd_given_folder_is_created_and_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with scratch_cwd("scratch/inner", prefix="unused-") as work:
        assert work == (tmp_path / "scratch" / "inner").resolve()
        Path("kept.txt").write_text("k")
    assert Path.cwd() == tmp_path
    assert (tmp_path / "scratch" / "inner" / "kept.txt").read_text() == "k"


def test_scratch_cwd_restores_cwd_after_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), scratch_cwd(None, prefix="kgrec-test-") as work:
        raise RuntimeError("boom")
    assert Path.cwd() == tmp_path
    assert not work.exists()
