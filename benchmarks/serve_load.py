"""Load test of ``kgrec serve`` on the loopback: N requests at concurrency C, throughput and
latency percentiles, and the status codes of malformed requests.

The server runs in its own process (``python -m kgrec.cli serve RUN --port P``); the client is
this process, C threads each with a keep-alive HTTP connection, so both share the machine.
The mix: 80% ``GET /recommend?user=U`` for random known users, 10% ``POST /recommend`` with a
random 5-item history, 10% ``GET /similar``. Then a fixed set of malformed requests, each of
which must get a 4xx. Writes ``benchmarks/results/serve_load.{md,json}``.

Usage::

    KGREC_DATA=../shared/datasets python benchmarks/serve_load.py      # 10,000 requests, C=32
    python benchmarks/serve_load.py --run runs/my-run --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_RUN = ["train", "-d", "movie-half", "-m", "gru4rec", "--protocol", "loo", "--epochs",
               "3", "-q", "--threads", "1"]

MALFORMED = [  # (method, path, body, what)
    ("GET", "/recommend?user=no-such-user", None, "unknown user"),
    ("GET", "/recommend?user=1&k=0", None, "k = 0"),
    ("GET", "/recommend?user=1&k=abc", None, "k not a number"),
    ("GET", "/recommend", None, "no user"),
    ("POST", "/recommend", b"not json", "body not JSON"),
    ("POST", "/recommend", b'{"history": "1,2"}', "history not a list"),
    ("POST", "/recommend", b'{"history": ["no-such-item"]}', "unknown item in history"),
    ("POST", "/recommend", b'{"history": ["1"], "k": 100000}', "k too large"),
    ("GET", "/similar?item=no-such-item", None, "unknown item"),
    ("GET", "/nowhere", None, "unknown path"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(conn: http.client.HTTPConnection, method: str, path: str,
             body: bytes | None) -> int:
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/serve-load")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="serve_load")
    a = ap.parse_args()
    run = Path(a.run)
    if not (run / "metrics.json").is_file():
        if not os.environ.get("KGREC_DATA"):
            sys.exit("set KGREC_DATA (to train the default run) or pass --run RUN")
        subprocess.run([sys.executable, "-m", "kgrec.cli", *DEFAULT_RUN, "--out", str(run),
                        "--force"], check=True)
    sys.path.insert(0, str(HERE.parent / "src"))
    import kgrec

    art = kgrec.load(run)
    users, items = art.user_labels, art.item_labels
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "kgrec.cli", "serve", str(run), "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                if _request(c, "GET", "/health", None) == 200:
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(server.stderr.read().decode()[-2000:]) from None
                time.sleep(0.2)
        rng = np.random.default_rng(a.seed)
        kinds = rng.choice(3, size=a.requests, p=[0.8, 0.1, 0.1])
        picks_u = rng.integers(0, len(users), a.requests)
        picks_i = rng.integers(0, len(items), (a.requests, 5))
        lat = np.zeros(a.requests)
        status = np.zeros(a.requests, np.int64)
        counter = iter(range(a.requests))
        lock = threading.Lock()

        def worker() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while True:
                with lock:
                    j = next(counter, None)
                if j is None:
                    return
                if kinds[j] == 0:
                    req = ("GET", f"/recommend?user={users[picks_u[j]]}&k=10", None)
                elif kinds[j] == 1:
                    hist = json.dumps({"history": [str(items[t]) for t in picks_i[j]],
                                       "k": 10}).encode()
                    req = ("POST", "/recommend", hist)
                else:
                    req = ("GET", f"/similar?item={items[picks_i[j, 0]]}&k=10", None)
                t0 = time.perf_counter()
                try:
                    status[j] = _request(conn, *req)
                except (OSError, http.client.HTTPException):
                    status[j] = -1
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                lat[j] = time.perf_counter() - t0

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        bad = {what: _request(conn, m, p, b) for m, p, b, what in MALFORMED}
        alive = _request(conn, "GET", "/health", None) == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = lat * 1000
    res = {
        "run": str(run), "model": art.config["run"]["model"], "dataset": art.data.name,
        "requests": a.requests, "concurrency": a.concurrency, "seed": a.seed,
        "wall_seconds": wall, "requests_per_second": a.requests / wall,
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                       "p99": float(np.percentile(ms, 99)), "max": float(ms.max())},
        "status_counts": {str(k): int(v) for k, v in zip(*np.unique(status, return_counts=True),
                                                         strict=True)},
        "n_5xx": int((status >= 500).sum()), "n_failed": int((status < 0).sum()),
        "malformed": bad, "malformed_all_4xx": all(400 <= v < 500 for v in bad.values()),
        "alive_after": alive,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (client and server share "
                   f"it; load average {os.getloadavg()[0]:.1f} at the end)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/serve_load.py" + (
            f" --requests {a.requests}" if a.requests != 10_000 else "")
        + (f" --concurrency {a.concurrency}" if a.concurrency != 32 else ""),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        "# `kgrec serve` under load (loopback)", "",
        f"Command: `KGREC_DATA=../shared/datasets {res['command']}`; {res['date']}; "
        f"{res['machine']}. Run: `kgrec {' '.join(DEFAULT_RUN)}` ({res['model']} on "
        f"{res['dataset']}). Mix: 80% GET /recommend, 10% POST /recommend (5-item history), "
        "10% GET /similar; k = 10; keep-alive connections.", "",
        "| requests | concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms | 5xx | failed |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {a.requests} | {a.concurrency} | {res['requests_per_second']:.0f} | "
        f"{res['latency_ms']['p50']:.1f} | {res['latency_ms']['p90']:.1f} | "
        f"{res['latency_ms']['p99']:.1f} | {res['latency_ms']['max']:.1f} | {res['n_5xx']} | "
        f"{res['n_failed']} |", "",
        "Malformed requests (each must be a 4xx with a JSON detail):", "",
        "| request | status |", "|---|---|",
        *[f"| {what} | {code} |" for what, code in bad.items()], "",
        f"Server alive afterwards: {'yes' if alive else 'NO'}.",
    ]
    (RESULTS / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
