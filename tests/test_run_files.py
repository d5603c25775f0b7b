"""Run directories keep what was written: no silent overwrite, readable files, incomplete runs
named as such, no empty folder from a failed start, and ``--resume`` after ``kill -9`` reaching
the uninterrupted run's figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from kgrec.cli import app

TRAIN = ["train", "-m", "bpr-mf", "--epochs", "2", "-q", "--threads", "1"]


def _invoke(args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r


def test_finished_run_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    assert _invoke([*TRAIN, "--out", out]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = _invoke([*TRAIN, "--seed", "1", "--out", out])
    assert r.exit_code == 2 and "finished run" in r.output and "--force" in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    r = _invoke([*TRAIN, "--seed", "1", "--out", out, "--force"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1


def test_interrupted_run_points_to_resume(tmp_path):
    out = tmp_path / "run"
    assert _invoke([*TRAIN, "--out", out]).exit_code == 0
    (out / "metrics.json").unlink()  # as a killed run leaves it
    r = _invoke([*TRAIN, "--out", out])
    assert r.exit_code == 2 and "--resume" in r.output and "interrupted" in r.output
    r = _invoke(["evaluate", out, "--no-topk"])
    assert r.exit_code == 0, r.output
    assert "did not finish" in r.output and "--resume" in r.output


def test_every_run_file_is_world_readable(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert _invoke([*TRAIN, "--out", out]).exit_code == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert "checkpoint.pt" in modes and set(modes.values()) == {0o644}, modes


def test_failed_start_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data" / "book"
    data.mkdir(parents=True)
    (data / "ratings_final.txt").write_text("0\t0\t1\n1\tx\t0\n")
    (data / "kg_final.txt").write_text("0\t0\t1\n")
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "data"))
    r = _invoke(["train", "-d", "book", "-m", "bpr-mf", "-q"])
    assert r.exit_code == 2 and "ratings_final.txt:2" in r.output
    assert not (tmp_path / "runs").exists()
    r = _invoke(["train", "-d", "book", "-m", "bpr-mf", "-q", "--out", tmp_path / "r"])
    assert r.exit_code == 2 and not (tmp_path / "r").exists()


def test_resume_after_kill_9_matches_uninterrupted(tmp_path):
    """A run killed with SIGKILL mid-training, resumed with ``--resume``, ends with the
    figures of the same run left alone."""
    args = ["train", "-m", "mkr", "--epochs", "12", "--seed", "3", "-q", "--threads", "1",
            "--no-topk"]
    full = tmp_path / "full"
    assert _invoke([*args, "--out", full]).exit_code == 0
    part = tmp_path / "part"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kgrec", *args, "--out", str(part)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt, deadline = part / "checkpoint.pt", time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:]
    assert not (part / "metrics.json").exists(), "the run finished before it was killed"
    r = _invoke(["train", "--resume", part, "-q"])
    assert r.exit_code == 0, r.output
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert len(b["history"]) == 12 and b["best_epoch"] == a["best_epoch"]
    assert b["test"]["auc"] == pytest.approx(a["test"]["auc"], abs=1e-6)
    assert b["test"]["acc"] == pytest.approx(a["test"]["acc"], abs=1e-6)
