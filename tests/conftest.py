import os
from pathlib import Path

import pytest

from kgrec.data.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``$KGREC_DATA`` if set and present, else ``../shared/datasets`` beside the repo."""
    env = os.environ.get("KGREC_DATA")
    for p in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "datasets"]:
        if p.is_dir():
            return p
    return None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never write to the user's cache; one cache per session keeps conversions cheap."""
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path_factory.getbasetemp() / "kgrec-cache"))


@pytest.fixture(scope="session")
def tiny_dataset():
    return make_synthetic(seed=0, n_users=60, n_items=80, n_topics=4, n_creators=10,
                          clicks_mean=8)


@pytest.fixture(scope="session")
def data_dir():
    p = shared_data()
    if p is None:
        pytest.skip("shared datasets not found (set KGREC_DATA)")
    return p
