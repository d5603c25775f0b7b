"""An HTTP server for a trained run (``kgrec serve RUN``), on FastAPI + uvicorn.

Endpoints (OpenAPI docs at ``/docs``):

* ``GET /health``: the run's model, dataset and sizes;
* ``GET /recommend?user=U&k=10``: a known user's top ``k`` unseen items;
* ``POST /recommend`` with ``{"history": ["i1", ...], "k": 10}``: a user not in training,
  from the raw ids of their items (oldest first), and the method used (see
  :meth:`~kgrec.retrieval.artifact.Artifact.recommend_history`);
* ``GET /similar?item=I&k=10``: items like ``I``.

Items come back as ``{"item": raw id, "title": title or null}``. An unknown id is a 404 and a
malformed request a 422, each with a JSON ``detail`` naming the problem; any other failure of
a request is a 500 with its reason, and the server goes on serving.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["HistoryQuery", "create_app", "serve"]

MAX_K = 1000


class HistoryQuery(BaseModel):
    """The body of ``POST /recommend``."""

    history: list[str] = Field(..., description="raw item ids, oldest first",
                               max_length=10_000)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True


def create_app(run_dir: str | Path):
    """The FastAPI application serving the run in ``run_dir`` (loaded once)."""
    import torch
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.responses import JSONResponse

    from kgrec import __version__
    from kgrec.retrieval.artifact import load

    art = load(run_dir)
    run = art.config["run"]
    torch.set_num_threads(1)  # many small requests: threads would only contend
    app = FastAPI(title=f"kgrec {run['model']} on {art.data.name}", version=__version__,
                  description="Recommendations from a trained kgrec run.")

    def items(raw: list[str]) -> list[dict[str, Any]]:
        return [{"item": i, "title": n or None}
                for i, n in zip(raw, art.names_of(raw), strict=True)]

    def unknown(exc: KeyError) -> HTTPException:
        return HTTPException(status_code=404, detail=str(exc.args[0]))

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:  # never die on one
        return JSONResponse(status_code=500,
                            content={"detail": f"{type(exc).__name__}: {exc}"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": run["model"], "dataset": art.data.name,
                "protocol": run.get("protocol"), "n_users": art.n_users,
                "n_items": art.n_items, "run": str(art.run_dir), "kgrec": __version__}

    @app.get("/recommend")
    def recommend(user: str = Query(..., description="raw user id"),
                  k: int = Query(10, ge=1, le=MAX_K),
                  exclude_seen: bool = True) -> dict[str, Any]:
        try:
            (recs,) = art.recommend([user], k, exclude_seen=exclude_seen)
        except KeyError as exc:
            raise unknown(exc) from None
        return {"user": user, "method": "the trained model", "items": items(recs)}

    @app.post("/recommend")
    def recommend_history(q: HistoryQuery = Body(...)) -> dict[str, Any]:
        try:
            recs, how = art.recommend_history(q.history, q.k, exclude_seen=q.exclude_seen)
        except KeyError as exc:
            raise unknown(exc) from None
        return {"history": q.history, "method": how, "items": items(recs)}

    @app.get("/similar")
    def similar(item: str = Query(..., description="raw item id"),
                k: int = Query(10, ge=1, le=MAX_K)) -> dict[str, Any]:
        try:
            recs, how = art.similar(item, k)
        except KeyError as exc:
            raise unknown(exc) from None
        return {"item": item, "method": how, "items": items(recs)}

    return app


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning") -> None:
    """Serve ``run_dir`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(run_dir), host=host, port=port, log_level=log_level)
