"""The matplotlib-free learning curve: tick values, a well-formed SVG with every series, and
``kgrec plot curve`` drawing the same record as a PNG."""

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from kgrec.utils.io import atomic_write_text
from kgrec.viz.svg import learning_curve_svg, nice_ticks

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("lo", "hi", "n", "integer", "want"), [
    (0.71, 0.80, 5, False, [0.7, 0.725, 0.75, 0.775, 0.8]),
    (0.0123, 0.0456, 5, False, [0.01, 0.02, 0.03, 0.04, 0.05]),
    (0, 9, 6, True, [0, 2, 4, 6, 8, 10]),
    (0, 3, 6, True, [0, 1, 2, 3]),
    (0.5, 0.5, 5, False, [0.45, 0.5, 0.55]),  # one value: a window around it
    (0.69, 0.31, 5, False, [0.3, 0.4, 0.5, 0.6, 0.7]),  # reversed bounds
])
def test_nice_ticks(lo, hi, n, integer, want):
    assert nice_ticks(lo, hi, n, integer=integer) == pytest.approx(want)


def _metrics(ranking=False):
    valid = ({"hr@10": 0.1, "ndcg@10": 0.05} if ranking else {"auc": 0.7, "acc": 0.65})
    hist = [{"epoch": e, "losses": {"rec": 0.7 - 0.05 * e, **({"kge": 0.3} if e % 2 == 0
                                                               else {})},
             "valid": {k: v + 0.01 * e for k, v in valid.items()}} for e in range(5)]
    test = {k: v + 0.03 for k, v in valid.items()}
    return {"model": "mkr", "dataset": "music <&>", "seed": 0, "history": hist,
            "best_epoch": 3, "test": test}


@pytest.mark.parametrize("ranking", [False, True])
def test_learning_curve_svg(tmp_path, ranking):
    path = learning_curve_svg(_metrics(ranking), tmp_path / "c.svg")
    root = ET.parse(path).getroot()  # well-formed XML, title escaped
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "mkr on music <&> (seed 0)" in texts
    want = (["valid hr@10", "valid ndcg@10", "test hr@10 0.1300"] if ranking
            else ["valid auc", "valid acc", "test auc 0.7300"])
    for label in ["rec loss", "kge loss", "best epoch 3", *want]:
        assert label in texts, label
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 4  # two losses, two validation metrics
    # kge trained on epochs 0, 2, 4 only: three points on its line
    assert [len(p.get("points").split()) for p in lines] == [3, 5, 5, 5]


def test_learning_curve_svg_empty_history(tmp_path):
    m = {"model": "mf", "dataset": "d", "seed": 1, "history": [], "best_epoch": -1, "test": {}}
    ET.parse(learning_curve_svg(m, tmp_path / "c.svg"))


def test_plot_curve_cli(tmp_path):
    import json

    from kgrec.cli import app

    run = tmp_path / "run"
    run.mkdir()
    atomic_write_text(run / "metrics.json", json.dumps(_metrics()))
    res = CliRunner().invoke(app, ["plot", "curve", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(app, ["plot", "curve", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not found" in res.output
