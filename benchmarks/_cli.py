"""Shared by the benchmark scripts: run one ``kgrec`` CLI command in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def run_cli(args: list[str], out: Path) -> dict:
    """Run ``kgrec <args>`` through this interpreter (same environment, even when the console
    script is not on PATH) and return the run's ``metrics.json`` plus the process wall time."""
    argv = [sys.executable, "-m", "kgrec.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    m = json.loads((out / "metrics.json").read_text())
    m["process_wall_seconds"] = wall
    return m
