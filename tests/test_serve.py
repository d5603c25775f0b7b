"""``kgrec serve``: the HTTP endpoints on a free loopback port, errors as JSON 4xx."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from kgrec.experiments.run import RunConfig, train

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kgrec.retrieval.serve import create_app

    run = train(RunConfig(model="gru4rec", protocol="loo", epochs=1, progress=False,
                          plot=False, out=str(tmp_path_factory.mktemp("serve") / "run"))).run_dir
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port,
                                        log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and t.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(timeout=10)
    assert not t.is_alive()


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_endpoints(server):
    code, h = _call(f"{server}/health")
    assert code == 200 and h["status"] == "ok" and h["model"] == "gru4rec"
    code, r = _call(f"{server}/recommend?user=u0&k=5")
    assert code == 200 and len(r["items"]) == 5 and {"item", "title"} <= set(r["items"][0])
    code, r = _call(f"{server}/recommend", json.dumps({"history": ["i1", "i2"], "k": 3})
                    .encode())
    assert code == 200 and r["method"] == "history encoder" and len(r["items"]) == 3
    assert not {"i1", "i2"} & {x["item"] for x in r["items"]}
    code, r = _call(f"{server}/similar?item=i3&k=4")
    assert code == 200 and len(r["items"]) == 4
    code, _ = _call(f"{server}/docs".replace("/docs", "/openapi.json"))
    assert code == 200


@pytest.mark.parametrize("path, body, code, word", [
    ("/recommend?user=nobody", None, 404, "nobody"),
    ("/recommend?user=u0&k=0", None, 422, "k"),
    ("/recommend", b"{not json", 422, "json"),
    ("/recommend", b'{"history": ["zz9"]}', 404, "zz9"),
    ("/recommend", b'{"k": 3}', 422, "history"),
    ("/similar?item=zz9", None, 404, "zz9"),
])
def test_bad_requests_get_json_4xx(server, path, body, code, word):
    got, detail = _call(server + path, body)
    assert got == code and word in json.dumps(detail).lower()
    assert _call(f"{server}/health")[0] == 200  # still serving
