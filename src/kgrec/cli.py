"""``kgrec``: the command line. Every command is a thin call into the library."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Knowledge-graph-enhanced and multi-task recommendation (MKR and friends).",
)


def _version(value: bool) -> None:
    if value:
        from kgrec import __version__

        typer.echo(f"kgrec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Knowledge-graph-enhanced and multi-task recommendation (MKR and friends)."""


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _at_least(value: int, lo: int, flag: str) -> None:
    """Exit 2 naming ``flag`` unless ``value >= lo``."""
    if value < lo:
        _fail(f"{flag}: must be >= {lo}, got {value}")


_SLICE_TEXT = {"diverse": "test targets of a category new to the user's last 10 items"}


def _print_metrics(m: dict[str, Any]) -> None:
    test, valid = m.get("test") or {}, m.get("valid") or {}
    typer.echo(f"\n{m.get('model')} on {m.get('dataset')} (seed {m.get('seed')}), "
               f"best epoch {m.get('best_epoch')}")
    for name, d in (("valid", valid), ("test", test)):
        if d and "auc" in d:
            typer.echo(f"  {name:5s}  AUC {d['auc']:.4f}  ACC {d['acc']:.4f}  "
                       f"F1 {d['f1']:.4f}  logloss {d['logloss']:.4f}")
        elif d:  # a ranking protocol
            ks = sorted({int(k.split("@")[1]) for k in d if k.startswith("ndcg@")})
            typer.echo(f"  {name:5s}  " + "  ".join(
                f"R@{k} {d[f'recall@{k}']:.4f} HR@{k} {d[f'hr@{k}']:.4f} "
                f"NDCG@{k} {d[f'ndcg@{k}']:.4f}" for k in ks)
                + (f"  MRR@{ks[-1]} {d[f'mrr@{ks[-1]}']:.4f}" if ks else ""))
    for name, d in (m.get("test_slices") or {}).items():
        if d.get("n_queries"):
            ks = sorted({int(k.split("@")[1]) for k in d if k.startswith("ndcg@")})
            typer.echo(f"  {name:5s}  " + "  ".join(
                f"R@{k} {d[f'recall@{k}']:.4f} NDCG@{k} {d[f'ndcg@{k}']:.4f}" for k in ks)
                + f"  ({_SLICE_TEXT.get(name, f'test targets on {name} items')}, "
                  f"{d['n_queries']} queries; random "
                  f"R@{ks[-1]} {d[f'random_recall@{ks[-1]}']:.4f})")
    topk = m.get("test_topk")
    if topk:
        ks = [k for k in (10, 20, 50) if f"recall@{k}" in topk]
        typer.echo("  top-K  " + "  ".join(
            f"R@{k} {topk[f'recall@{k}']:.4f} NDCG@{k} {topk[f'ndcg@{k}']:.4f}" for k in ks))
    if m.get("data_summary"):
        typer.echo(f"  data   {m['data_summary']}")
    t = m.get("timings")
    if t:
        typer.echo(f"  time   {t['seconds_per_epoch']:.2f} s/epoch, {t['total_seconds']:.1f} s "
                   f"total, peak memory {t['peak_rss_mb']:.0f} MB")


@app.command()
def train(
    dataset: str = typer.Option("synthetic", "--dataset", "-d",
                                help="catalog name: synthetic, music, book, movie, movie-half"),
    model: str = typer.Option("mkr", "--model", "-m", help="a name from `kgrec models`"),
    seed: int = typer.Option(0, help="seeds conversion negatives, split, init, shuffling"),
    epochs: int | None = typer.Option(None, help="default: the preset's"),
    out: Path | None = typer.Option(None, help="run directory (default runs/...)"),
    negatives: str | None = typer.Option(
        None, help="fixed (paper) or resample (every epoch); default: the preset's (a tuned "
                   "section may say resample), else fixed"),
    train_ratio: float = typer.Option(1.0, help="share of training rows kept (sparse runs)"),
    kg_ratio: float = typer.Option(1.0, help="share of KG triples kept (KG-size ablation)"),
    kg_shuffle: bool = typer.Option(False, help="shuffle KG tails within each relation"),
    set_: list[str] = typer.Option([], "--set", help="model parameter KEY=VALUE (repeatable)"),
    tuned: bool = typer.Option(
        False, "--tuned", help="start from the dataset's tuned preset ([<dataset>.tuned], "
                               "found by kgrec tune on validation) instead of the paper's"),
    topk: bool = typer.Option(True, help="full-ranking top-K evaluation on test"),
    topk_users: int | None = typer.Option(None, help="rank for at most N sampled test users"),
    threads: int | None = typer.Option(None, help="torch threads (default 1)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    protocol: str = typer.Option(
        "ctr", help="ctr (6:2:2, sampled negatives, AUC), loo (leave-one-out full ranking), "
                    "user-split (ComiRec held-out users), cold-items"),
    ks: str = typer.Option("10,20,50", help="cut-offs of recall/ndcg/hr/mrr@K (ranking)"),
    monitor: str | None = typer.Option(
        None, help="validation metric that picks the epoch (default auc, or ndcg@<min K>)"),
    device: str = typer.Option("auto", help="auto (CUDA where available), cpu, cuda, cuda:N"),
    optimizer: str | None = typer.Option(
        None, help="adam, adamw, adagrad or sgd for every task (default: the model's)"),
    lr_schedule: str = typer.Option("none", help="none, step or cosine (per epoch)"),
    clip_norm: float | None = typer.Option(None, help="clip gradients to this L2 norm"),
    patience: int | None = typer.Option(
        None, help="stop after N epochs without a better validation metric"),
    resume: Path | None = typer.Option(
        None, help="continue an interrupted run directory from its checkpoint (its own "
                   "settings; --epochs, --device and -q may change)"),
    force: bool = typer.Option(False, "--force",
                               help="overwrite the finished or interrupted run in --out"),
    data: Path | None = typer.Option(
        None, "--data", help="a folder of your own data, any format kgrec reads (RecBole, "
                             "MKR, MovieLens, Amazon, CSV/TSV/Parquet tables), detected by "
                             "content; instead of -d"),
    min_user: int | None = typer.Option(
        None, help="keep users with at least this many interactions (kgrec analyze's filter)"),
    max_user: int | None = typer.Option(None, help="keep users with at most this many"),
    negative_sampling: str = typer.Option(
        "uniform", help="fresh negatives (ranking protocols, --negatives resample): uniform, "
                        "popularity or low-ratings (known low ratings first)"),
) -> None:
    """Train a model on a dataset (default: MKR on the built-in synthetic dataset).

    Several processes: ``torchrun --standalone --nproc_per_node 2 -m kgrec train ...``.
    """
    from kgrec.data.dataset import DataError
    from kgrec.experiments.run import RunConfig, resume_config
    from kgrec.experiments.run import train as run_train

    try:
        if resume is not None:
            more: dict[str, Any] = {"device": device, "progress": not quiet}
            if epochs is not None:
                more["epochs"] = epochs
            cfg = resume_config(resume, **more)
        else:
            cut_offs = _ints(ks, "--ks")
            cfg = RunConfig(dataset=dataset, model=model, seed=seed, epochs=epochs,
                            negatives=negatives, train_ratio=train_ratio, kg_ratio=kg_ratio,
                            kg_shuffle=kg_shuffle, params=_parse_sets(set_), tuned=tuned,
                            topk=topk, topk_users=topk_users, out=str(out) if out else None,
                            threads=threads, progress=not quiet, protocol=protocol,
                            monitor=monitor, device=device, optimizer=optimizer,
                            lr_schedule=lr_schedule, clip_norm=clip_norm, patience=patience,
                            ks=cut_offs, force=force,
                            data=str(data) if data is not None else None,
                            min_user=min_user, max_user=max_user,
                            negative_sampling=negative_sampling)
        res = run_train(cfg)
    except (DataError, KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    _print_metrics(res.metrics)
    typer.echo(f"  run    {res.run_dir}/ (metrics.json, config.json, checkpoint.pt, "
               "learning_curve.svg)")


@app.command()
def tune(
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="catalog name or folder"),
    model: str = typer.Option("mkr", "--model", "-m", help="a name from `kgrec models`"),
    trials: int = typer.Option(20, help="finished trials the study should hold (resumes)"),
    metric: str | None = typer.Option(
        None, help="validation metric: auc, logloss ... (ctr) or ndcg@K, recall@K ... "
                   "(ranking protocols); default the run's monitor"),
    workers: int = typer.Option(1, help="processes running trials at once"),
    out: Path | None = typer.Option(None, help="output folder (default runs/tune/D-M)"),
    seed: int = typer.Option(0, help="the runs' seed (split, init); the sampler's too"),
    epochs: int | None = typer.Option(None, help="epochs per trial (default: the preset's)"),
    protocol: str = typer.Option("ctr", help="ctr, loo, user-split or cold-items"),
    negatives: str = typer.Option("fixed", help="training negatives of every trial: fixed "
                                                "(paper) or resample (every epoch; the tuned "
                                                "section then says so)"),
    ks: str = typer.Option("10,20,50", help="cut-offs of the ranking metrics"),
    patience: int | None = typer.Option(None, help="stop a trial after N epochs without gain"),
    prune: bool = typer.Option(True, help="median pruning of unpromising trials"),
    keep_runs: bool = typer.Option(False, help="keep every trial's run directory"),
    set_: list[str] = typer.Option([], "--set", help="fixed model parameter KEY=VALUE"),
    data: Path | None = typer.Option(None, "--data", help="a folder of your own data"),
) -> None:
    """Tune a model's hyper-parameters on the validation split (Optuna TPE + pruning).

    The test split is never scored. Writes best.toml (a preset section), report.md,
    history.png and importance.png into --out; a second call resumes the study.
    """
    from kgrec.data.dataset import DataError
    from kgrec.experiments.run import RunConfig
    from kgrec.experiments.tune import TuneConfig
    from kgrec.experiments.tune import tune as run_tune

    try:
        base = RunConfig(dataset=dataset, model=model, seed=seed, epochs=epochs,
                         protocol=protocol, negatives=negatives, ks=_ints(ks, "--ks"),
                         patience=patience,
                         params=_parse_sets(set_), progress=False,
                         data=str(data) if data is not None else None)
        if data is not None and dataset == "synthetic":
            base.dataset = data.resolve().name
        res = run_tune(base, TuneConfig(trials=trials, metric=metric, workers=workers,
                                        seed=seed, out=str(out) if out else None,
                                        prune=prune, keep_runs=keep_runs))
    except (DataError, KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    typer.echo(f"best validation {res['metric']} {res['best_value']:.4f} (trial "
               f"{res['best_trial']}; {res['complete']} complete, {res['pruned']} pruned)")
    for k, v in res["best_params"].items():
        typer.echo(f"  {k} = {v}")
    typer.echo(f"  train with: {res['command']}")
    typer.echo(f"  wrote {res['out']}/ (best.toml, report.md, history.png, importance.png)")


def _table(res: dict[str, dict[str, float]], first: str, columns: list[str],
           as_json: bool) -> None:
    """Print ``{row: {column: value}}`` as JSON or as an aligned table (counts without
    decimals, the rest with four)."""
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    width = [max(len(c), 9) for c in columns]
    typer.echo(f"{first:>7s}  " + "  ".join(f"{c:>{w}s}" for c, w in zip(columns, width,
                                                                        strict=True)))
    for row, d in res.items():
        cells = [f"{d[c]:{w}.0f}" if c == "qps" else f"{d[c]:{w}.4f}"
                 for c, w in zip(columns, width, strict=True)]
        typer.echo(f"{row:>7s}  " + "  ".join(cells))


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    topk: bool = typer.Option(True, help="also the full-ranking top-K metrics"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    lambdas: str | None = typer.Option(
        None, help="ComiRec's diversity-aware aggregation on the test queries for these "
                   "lambdas, e.g. 0,0.05,0.1,0.2 (models with user/item vectors)"),
    n: int = typer.Option(50, help="items per query for --lambdas and --ann"),
    index: str = typer.Option("exact", help="exact, or faiss flat / ivf / hnsw (--lambdas)"),
    ann: bool = typer.Option(False, "--ann", help="faiss flat / IVF / HNSW against exact "
                                                 "search: overlap@N, recall@N, queries/s"),
) -> None:
    """Re-evaluate a run's best checkpoint on its validation and test splits.

    A KG-embedding run: filtered link prediction on its triples, which must be the run's."""
    from kgrec.experiments.run import evaluate_run

    _at_least(n, 1, "--n")
    if index not in ("exact", "flat", "ivf", "hnsw"):
        _fail(f"--index: expected exact, flat, ivf or hnsw, got {index!r}")
    from kgrec.data.dataset import DataError
    from kgrec.experiments.kge_run import evaluate_kge_run, is_kge_run

    try:
        kge = is_kge_run(run_dir)
        if kge:
            res = evaluate_kge_run(run_dir)
    except (DataError, FileNotFoundError, KeyError, ValueError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    if kge:
        if as_json:
            typer.echo(json.dumps(res, indent=2))
            return
        typer.echo(f"{res['model']} on {res['dataset']} (checkpoint), filtered link prediction")
        for name in ("valid", "test"):
            d = res[name]
            typer.echo(f"  {name:5s}  MRR {d['mrr']:.4f}  MR {d['mr']:.1f}  Hits@1 "
                       f"{d['hits@1']:.4f}  Hits@3 {d['hits@3']:.4f}  Hits@10 "
                       f"{d['hits@10']:.4f}  ({d['n']} triples)")
        return
    try:
        if ann:
            from kgrec.experiments.run import evaluate_run_ann

            res = evaluate_run_ann(run_dir, n=n)
            _table(res, "index", [f"overlap@{n}", f"recall@{n}", "qps", "build_seconds"],
                   as_json)
            return
        if lambdas is not None:
            from kgrec.experiments.run import evaluate_run_diversity

            res = evaluate_run_diversity(run_dir, _floats(lambdas, "--lambdas"), n=n,
                                         index=index)
            _table(res, "lambda", [f"recall@{n}", f"ndcg@{n}", f"hr@{n}", f"diversity@{n}"],
                   as_json)
            return
        res = evaluate_run(run_dir, topk=topk)
    except (FileNotFoundError, RuntimeError, KeyError, ValueError, NotImplementedError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    meta = json.loads((run_dir / "config.json").read_text())["run"]
    if res.get("incomplete"):
        typer.secho(f"note: {res['incomplete']}", fg=typer.colors.YELLOW, err=True)
    _print_metrics({**res, "model": meta["model"], "dataset": meta["dataset"],
                    "seed": meta["seed"], "best_epoch": "(checkpoint)"})


@app.command()
def recommend(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    users: list[str] = typer.Option([], "--user", "-u", help="raw user id (repeatable)"),
    history: str | None = typer.Option(
        None, "--history", help="raw item ids i1,i2,... (oldest first) of a user not in "
                                "training"),
    similar: str | None = typer.Option(None, "--similar", help="items like this raw item id"),
    k: int = typer.Option(10, "-k", help="items per user"),
    include_seen: bool = typer.Option(False, help="also recommend items the user has seen"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Top-K items for users, a new user's history, or like an item.

    Raw ids in, raw ids and titles out; no data needed (--user, --history or --similar)."""
    import kgrec

    _at_least(k, 1, "-k")
    asked = [bool(users), history is not None, similar is not None]
    if sum(asked) != 1:
        _fail("give exactly one of --user (repeatable), --history or --similar")
    try:
        art = kgrec.load(run_dir)
        if users:
            recs = art.recommend(users, k, exclude_seen=not include_seen)
            out = {u: (r, "the trained model") for u, r in zip(users, recs, strict=True)}
        elif history is not None:
            items, how = art.recommend_history(_csv(history), k,
                                               exclude_seen=not include_seen)
            out = {f"history {history}": (items, how)}
        else:
            items, how = art.similar(similar, k)
            out = {f"like {similar}": (items, how)}
        named = {q: [(i, n) for i, n in zip(r, art.names_of(r), strict=True)]
                 for q, (r, _) in out.items()}
    except (FileNotFoundError, KeyError, ValueError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    if as_json:
        typer.echo(json.dumps({q: {"method": out[q][1],
                                   "items": [{"item": i, "title": n or None} for i, n in rs]}
                               for q, rs in named.items()}, indent=2))
        return
    for q, rs in named.items():
        typer.echo(f"{q} ({out[q][1]}):" if not users else f"user {q}:")
        for rank, (i, n) in enumerate(rs, start=1):
            typer.echo(f"  {rank:3d}  {i}" + (f"  {n}" if n else ""))


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    out: Path = typer.Option(..., "--out", help="folder for the vectors, labels and index"),
    index: str = typer.Option("flat", help="faiss index: flat (exact), ivf or hnsw"),
    k: int = typer.Option(50, "-k", help="K of the ANN recall@K check against exact search"),
) -> None:
    """Export item and user vectors with raw ids, and a faiss index.

    Vectors as .npy with .tsv labels (index, raw id, title), the items' faiss index, and the
    index's ANN recall@K against exact search."""
    _at_least(k, 1, "-k")
    from kgrec.retrieval.export import export_run

    try:
        m = export_run(run_dir, out, index=index, k=k)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    recall = next(v for key, v in m.items() if key.startswith("ann_recall@"))
    typer.echo(f"wrote {out}/: {m['n_items']} item and {m['n_users']} user vectors "
               f"(dim {m['dim']}" + (f", {m['interests']} interests" if m["interests"] > 1
                                     else "") + f"), {', '.join(m['files'])}")
    typer.echo(f"{index} index: ANN recall@{min(k, m['n_items'])} {recall:.4f} against exact "
               f"search on {m['checked_users']} users; built in "
               f"{m['index_build_seconds']:.2f} s")


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
) -> None:
    """Serve a run over HTTP (FastAPI + uvicorn).

    GET /health, GET /recommend?user=U&k=10, POST /recommend {"history": [...], "k": 10},
    GET /similar?item=I&k=10; OpenAPI docs at /docs."""
    if not 0 < port < 65536:
        _fail(f"--port: expected 1-65535, got {port}")
    try:
        from kgrec.retrieval.serve import create_app

        application = create_app(run_dir)
    except ImportError as exc:
        _fail(f"{exc}; install the server with pip install fastapi uvicorn")
        return
    except (FileNotFoundError, KeyError, ValueError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    import uvicorn

    typer.echo(f"serving {run_dir} on http://{host}:{port} (docs at /docs); Ctrl-C stops")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
def analyze(
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="catalog name"),
    data: Path | None = typer.Option(None, "--data", help="or a folder of your own data"),
    out: Path = typer.Option(..., "--out", help="folder for report.md, PNGs, stats.json"),
    min_user: int = typer.Option(30, help="user filter: at least this many interactions"),
    max_user: int = typer.Option(1000, help="user filter: at most this many (0: no bound)"),
) -> None:
    """Analyse a dataset into a report with plots.

    Counts per user and item (log-log), the user filter, long tail, ratings and Q-Q plots
    with Levene's test, most-rated items, activity over time, KG coverage."""
    if (dataset is None) == (data is None):
        _fail("give one of -d NAME or --data PATH")
    _at_least(min_user, 0, "--min-user")
    _at_least(max_user, 0, "--max-user")
    if max_user and max_user < min_user:
        _fail(f"--max-user ({max_user}) is below --min-user ({min_user})")
    from kgrec.data.dataset import DataError
    from kgrec.experiments.analyze import analyze as run_analysis

    try:
        if data is not None:
            from kgrec.data.folder import load_folder

            ds = load_folder(data)
        else:
            from kgrec.data.catalog import load_dataset

            ds = load_dataset(dataset)
        s = run_analysis(ds, out, min_user=min_user or None, max_user=max_user or None)
    except (DataError, KeyError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    f = s["user_filter"]
    typer.echo(f"{s['dataset']}: {s['events']:,} events, {s['users']:,} users, "
               f"{s['items']:,} items, sparsity {s['sparsity']:.4f}")
    typer.echo(f"user filter {f['min']}-{f['max']}: {f['users_after']:,} of "
               f"{f['users_before']:,} users kept ({f['events_after']:,} events)")
    if "levene" in s:
        lv = s["levene"]
        typer.echo(f"Levene (median) over {lv['items']} items: W {lv['statistic']:.2f}, "
                   f"p {lv['p_value']:.3g}")
    typer.echo(f"wrote {out}/report.md, stats.json, {', '.join(s['files'].values())}")


@app.command()
def datasets(
    stats: bool = typer.Option(True, help="load each available dataset to show its sizes"),
) -> None:
    """List the named datasets, where they are found, and their statistics."""
    from kgrec.data import catalog

    header = f"{'name':14s} {'users':>7s} {'items':>7s} {'events':>8s} {'ctr rows':>9s} " \
             f"{'entities':>8s} {'rels':>5s} {'triples':>8s}  source"
    typer.echo(header)
    for name in catalog.list_datasets():
        where = "generated" if name == "synthetic" else catalog.locate(name)
        row = f"{name:14s}"
        if stats and where is not None:
            try:
                s = catalog.load_dataset(name).stats()
                row += (f" {s['users']:7d} {s['items']:7d} {s.get('events', 0):8d} "
                        f"{s['interactions']:9d} {s['entities']:8d} {s['relations']:5d} "
                        f"{s['triples']:8d}")
            except Exception as exc:  # show the problem, keep listing
                row += f"  error: {exc}"
        else:
            row += " " * 59
        typer.echo(f"{row}  {where if where is not None else 'not found (will download)'}")
        typer.echo(f"{'':14s} {catalog.dataset_info(name)['description']}")


@app.command()
def models() -> None:
    """List every model, by family.

    Recommenders train with `kgrec train -m NAME`, KG embeddings with `kgrec kge train -m
    NAME`."""
    from kgrec.config import tuned_datasets
    from kgrec.models import ALIASES, MODELS, REGISTRY, is_variant

    families = {"kg": "knowledge-graph recommenders", "cf": "interaction-only baselines",
                "seq": "sequential recall (encode the item history; --protocol loo|user-split)",
                "retrieval": "retrieval from item vectors (--protocol loo; two-tower also "
                             "cold-items, m2grl / item2vec also user-split)",
                "kge": "KG embeddings (kgrec kge train)"}
    for fam, title in families.items():
        typer.echo(f"{title}:")
        for name, spec in REGISTRY.items():
            if spec.family == fam:
                tuned = (tuned_datasets(name) if name in MODELS and not is_variant(name)
                         else [])
                more = f" [--tuned: {', '.join(tuned)}]" if tuned else ""
                typer.echo(f"  {name:11s} {spec.description}{more}")
    typer.echo("aliases: " + ", ".join(f"{a} = {n}" for a, n in ALIASES.items()))


plot_app = typer.Typer(no_args_is_help=True, help="Pictures of a trained run.")
app.add_typer(plot_app, name="plot")


@plot_app.command("tsne")
def plot_tsne(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    user: str | None = typer.Option(None, "--user", "-u",
                                    help="raw user id whose interest vectors are drawn"),
    out: Path | None = typer.Option(None, help="PNG path (default RUN/tsne.png)"),
    items: int = typer.Option(3000, help="items sampled for the plot"),
    seed: int = typer.Option(0, help="seeds the item sample and t-SNE"),
) -> None:
    """t-SNE of a run's item vectors coloured by category, with a user's interests."""
    _at_least(items, 2, "--items")
    _at_least(seed, 0, "--seed")
    import kgrec
    from kgrec.viz.tsne import tsne_plot

    try:
        art = kgrec.load(run_dir)
        import numpy as np
        import torch

        with torch.no_grad():
            vectors = art.model.item_vectors().cpu().numpy()
            user_vecs = None
            if user is not None:
                u = art.user_index([user])
                indptr, seen = art.seen
                hist = seen[indptr[u[0]]:indptr[u[0] + 1]]  # oldest first: one history row
                row = hist.reshape(1, -1) if len(hist) else np.full((1, 1), -1)
                user_vecs = art.model.user_vectors(torch.from_numpy(u),
                                                   torch.from_numpy(row)).numpy()
        path = tsne_plot(vectors, art.item_category, art.category_labels,
                         out or Path(run_dir) / "tsne.png", user_vectors=user_vecs,
                         user_label=user or "", max_items=items, seed=seed,
                         title=f"{art.config['run']['model']} on {art.data.name}: item vectors")
    except (FileNotFoundError, KeyError, ValueError, NotImplementedError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    typer.echo(f"wrote {path}")


@plot_app.command("curve")
def plot_curve(
    run_dir: Path = typer.Argument(..., help="a directory written by `kgrec train`"),
    out: Path | None = typer.Option(None, help="PNG path (default RUN/learning_curve.png)"),
) -> None:
    """A run's learning curve as a PNG (matplotlib); every run already writes it as SVG."""
    from kgrec.utils.io import read_json

    try:
        metrics = read_json(Path(run_dir) / "metrics.json")
    except (FileNotFoundError, ValueError) as exc:
        _fail(f"{exc} (a finished `kgrec train` run directory is needed)")
        return
    from kgrec.viz.plots import learning_curve

    path = learning_curve(metrics, out or Path(run_dir) / "learning_curve.png")
    typer.echo(f"wrote {path}")


kge_app = typer.Typer(
    no_args_is_help=True,
    help="Knowledge-graph embeddings (TransE, TransH, TransR, TransD, Bilinear, DistMult): "
         "train, evaluate by filtered link prediction, export the vectors.",
)
app.add_typer(kge_app, name="kge")


@kge_app.command("train")
def kge_train(
    dataset: str = typer.Option("music", "--dataset", "-d",
                                help="catalog dataset whose KG is embedded"),
    model: str = typer.Option("transe", "--model", "-m",
                              help="transe, transh, transr, transd, bilinear, distmult"),
    seed: int = typer.Option(0, help="seeds init, shuffling and negatives"),
    split_seed: int = typer.Option(0, help="seeds the 8:1:1 triple split"),
    epochs: int | None = typer.Option(None, help="default: the model's"),
    out: Path | None = typer.Option(None, help="run directory (default runs/kge-...)"),
    set_: list[str] = typer.Option([], "--set", help="KGEConfig field KEY=VALUE (repeatable)"),
    triples: Path | None = typer.Option(
        None, "--triples", help="head<TAB>relation<TAB>tail file to embed instead of a dataset"),
    threads: int | None = typer.Option(None, help="torch threads (default 1)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    device: str = typer.Option("auto", help="auto (CUDA where available), cpu, cuda, cuda:N"),
    force: bool = typer.Option(False, "--force", help="overwrite the run in --out"),
) -> None:
    """Train a KG embedding model; report filtered link prediction; export the embeddings."""
    from kgrec.data.dataset import DataError
    from kgrec.experiments.kge_run import KGERunConfig, train_kge

    cfg = KGERunConfig(dataset=dataset, model=model, seed=seed, split_seed=split_seed,
                       epochs=epochs,
                       params=_parse_sets(set_), out=str(out) if out else None,
                       triples_file=str(triples) if triples else None, progress=not quiet,
                       threads=threads, device=device, force=force)
    try:
        res = train_kge(cfg)
    except (DataError, KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    m = res.metrics
    typer.echo(f"\n{m['model']} on {m['dataset']} (seed {m['seed']}), best epoch "
               f"{m['best_epoch']}, filtered link prediction")
    for name in ("valid", "test"):
        d = m[name]
        typer.echo(f"  {name:5s}  MRR {d['mrr']:.4f}  MR {d['mr']:.1f}  Hits@1 {d['hits@1']:.4f}"
                   f"  Hits@3 {d['hits@3']:.4f}  Hits@10 {d['hits@10']:.4f}  ({d['n']} triples)")
    t = m["timings"]
    n_ep = max(len(m["history"]), 1)
    typer.echo(f"  time   {t['seconds_per_epoch']:.2f} s/epoch training + "
               f"{t['eval_seconds'] / n_ep:.2f} s/epoch validation, {t['total_seconds']:.1f} s "
               f"total, peak memory {t['peak_rss_mb']:.0f} MB")
    typer.echo(f"  run    {res.run_dir}/ (metrics.json, config.json, checkpoint.pt, "
               "entity_embeddings.npy, relation_embeddings.npy, entities.tsv, relations.tsv)")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str, flag: str) -> tuple[int, ...]:
    """Comma-separated integers of option ``flag``; the error names the option."""
    try:
        return tuple(int(t) for t in _csv(text))
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _cli_floats(text: str, flag: str) -> list[float]:
    """:func:`_floats`, exiting 2 with the option named."""
    try:
        return _floats(text, flag)
    except ValueError as exc:
        _fail(str(exc))
        return []


def _floats(text: str, flag: str) -> list[float]:
    """Comma-separated numbers of option ``flag``; the error names the option."""
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _benchmark_command(datasets, models, seeds, sections, quick, workers, negatives, name,
                       sparse_models, kg_models, kg_seeds, sparse_ratios, kg_ratios,
                       cold: dict[str, Any] | None = None) -> str:
    parts = ["kgrec benchmark", f"--datasets {datasets}", f"--models {models}",
             f"--seeds {seeds}", f"--sections {sections}"]
    parts += ["--quick"] if quick else []
    parts += [f"--workers {workers}"] if workers != 1 else []
    parts += [f"--negatives {negatives}"] if negatives else []
    parts += [f"--name {name}"] if name else []
    parts += [f"--sparse-models {sparse_models}"] if sparse_models else []
    parts += [f"--kg-models {kg_models}"] if kg_models else []
    parts += [f"--kg-seeds {kg_seeds}"] if kg_seeds is not None else []
    parts += [f"--sparse-ratios {sparse_ratios}"] if sparse_ratios else []
    parts += [f"--kg-ratios {kg_ratios}"] if kg_ratios else []
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in (cold or {}).items()
              if v is not None]
    return " ".join(parts)


@app.command()
def benchmark(
    datasets: str = typer.Option("music", "--datasets", "-d", help="comma-separated"),
    models: str = typer.Option("all", "--models", "-m",
                               help="comma-separated, or 'all' (the MKR paper's table)"),
    seeds: int = typer.Option(5, help="seeds 0..N-1 per model (ctr section)"),
    sections: str = typer.Option("ctr,sparse,kg,sensitivity",
                                 help="any of ctr, sparse, kg, sensitivity, cold"),
    quick: bool = typer.Option(False, "--quick",
                               help="smoke-test size: 2 seeds, 3 epochs, few settings"),
    workers: int = typer.Option(1, help="parallel runs (one torch thread each when > 1)"),
    negatives: str | None = typer.Option(
        None, help="fixed (paper) or resample; default: fixed, or with --tuned the tuned "
                   "section's"),
    topk_users: int = typer.Option(2000, help="top-K ranking for at most N test users per run"),
    out_dir: Path = typer.Option(Path("benchmarks/results"), help="report folder"),
    runs_dir: Path = typer.Option(Path("runs/benchmark"),
                                  help="run directories and the resume log"),
    name: str | None = typer.Option(None, help="report name (default benchmark_<datasets>)"),
    fresh: bool = typer.Option(False, help="ignore finished runs of an earlier invocation"),
    tuned: bool = typer.Option(False, "--tuned",
                               help="run each model with its tuned values on the dataset "
                                    "where it has them (kgrec models lists them)"),
    sparse_models: str | None = typer.Option(None, help="models of the sparse section"),
    kg_models: str | None = typer.Option(None, help="models of the KG ablations"),
    kg_seeds: int | None = typer.Option(None, help="seeds of the KG ablations"),
    sparse_ratios: str | None = typer.Option(None, help="training ratios, e.g. 0.1,0.5,1"),
    kg_ratios: str | None = typer.Option(None, help="KG size ratios, e.g. 0.1,0.5"),
    cold_models: str | None = typer.Option(None, help="KG models of the cold section"),
    cold_baselines: str | None = typer.Option(None,
                                              help="interaction-only models of the cold section"),
    cold_seeds: int | None = typer.Option(None, help="seeds of the cold section"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Reproduce the MKR paper's comparison.

    CTR table with t-tests, top-K curves, sparse training, KG ablations and MKR's
    sensitivity; writes markdown + PNG into --out-dir."""
    from kgrec.data.dataset import DataError
    from kgrec.experiments.benchmark import DEFAULT_MODELS, BenchmarkConfig, run_benchmark

    _at_least(seeds, 1, "--seeds")
    _at_least(workers, 1, "--workers")
    _at_least(topk_users, 0, "--topk-users")
    kw: dict[str, Any] = {}
    if sparse_models:
        kw["sparse_models"] = _csv(sparse_models)
    if kg_models:
        kw["kg_models"] = _csv(kg_models)
    if kg_seeds is not None:
        kw["kg_seeds"] = kg_seeds
    if sparse_ratios:
        kw["sparse_ratios"] = _cli_floats(sparse_ratios, "--sparse-ratios")
    if kg_ratios:
        kw["kg_ratios"] = _cli_floats(kg_ratios, "--kg-ratios")
    if cold_models:
        kw["cold_models"] = _csv(cold_models)
    if cold_baselines:
        kw["cold_baselines"] = _csv(cold_baselines)
    if cold_seeds is not None:
        kw["cold_seeds"] = cold_seeds
    try:
        cfg = BenchmarkConfig(
            datasets=_csv(datasets),
            models=list(DEFAULT_MODELS) if models == "all" else _csv(models),
            seeds=seeds, sections=_csv(sections), quick=quick, workers=workers,
            negatives=negatives, topk_users=topk_users or None, out_dir=str(out_dir),
            runs_dir=str(runs_dir), name=name, tuned=tuned,
            fresh=fresh, command=_benchmark_command(datasets, models, seeds, sections, quick,
                                                    workers, negatives, name, sparse_models,
                                                    kg_models, kg_seeds, sparse_ratios,
                                                    kg_ratios,
                                                    {"cold_models": cold_models,
                                                     "cold_baselines": cold_baselines,
                                                     "cold_seeds": cold_seeds})
            + (" --tuned" if tuned else ""), **kw)
        res = run_benchmark(cfg, progress=not quiet, log=typer.echo)
    except (DataError, KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return
    typer.echo(f"report: {Path(cfg.out_dir) / cfg.name}.md ({len(res['runs'])} runs; plots: "
               f"{', '.join(res['plots']) or 'none'})")


@kge_app.command("models")
def kge_models() -> None:
    """List the KG embedding models."""
    from kgrec.models.registry import KGE_SPECS

    for name, spec in KGE_SPECS.items():
        typer.echo(f"{name:10s} {spec.description}")


def main() -> None:
    """Console-script entry point.

    A command that loaded torch ends the process with ``os._exit`` once its output is
    flushed: the interpreter's teardown of torch's modules costs ~0.4 s, a tenth of a whole
    MKR run on Last.FM. Every file a command writes is closed (atomically renamed) before it
    returns, so nothing is lost; ``atexit`` hooks do not run.
    """
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # pragma: no cover
        code = 130
    if "torch" not in sys.modules:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): print it, status 1
        print(code, file=sys.stderr)
        code = 1
    import contextlib
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to show
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
