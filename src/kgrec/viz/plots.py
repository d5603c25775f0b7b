"""Plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["learning_curve", "lines_plot", "sensitivity_plot", "topk_curves_plot",
           "tune_history_plot", "tune_importance_plot"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(metrics: dict[str, Any], path: str | Path) -> Path:
    """Training losses per task and validation AUC/ACC per epoch, best epoch marked."""
    plt = _pyplot()
    hist = metrics["history"]
    epochs = [h["epoch"] for h in hist]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    tasks = sorted({k for h in hist for k in h["losses"]})
    for t in tasks:
        xs = [h["epoch"] for h in hist if t in h["losses"]]
        ys = [h["losses"][t] for h in hist if t in h["losses"]]
        ax1.plot(xs, ys, marker="o", label=f"{t} loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend()
    ax1.grid(alpha=0.3)
    from kgrec.viz.svg import valid_keys

    keys = valid_keys(hist)
    for key in keys:
        ax2.plot(epochs, [h["valid"].get(key) for h in hist], marker="o", label=f"valid {key}")
    best = metrics.get("best_epoch")
    if best is not None and best >= 0:
        ax2.axvline(best, color="grey", ls="--", label=f"best epoch {best}")
    test = metrics.get("test") or {}
    if keys and keys[0] in test:
        ax2.scatter([best], [test[keys[0]]], color="red", zorder=3,
                    label=f"test {keys[0]} {test[keys[0]]:.4f}")
    ax2.set_xlabel("epoch")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{metrics.get('model')} on {metrics.get('dataset')} (seed {metrics.get('seed')})")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _style(i: int, name: str) -> dict[str, Any]:
    """Distinct colour and line style for up to 20 series; the reference (MKR) drawn bold."""
    import matplotlib

    colors = matplotlib.colormaps["tab20"].colors
    if name == "mkr":
        return {"color": "black", "ls": "-", "lw": 2.6}
    return {"color": colors[(2 * i) % 20 + (i // 10) % 2], "ls": ("-", "--", ":")[i // 7 % 3],
            "lw": 1.3}


def topk_curves_plot(curves: dict[str, dict[str, Any]], path: str | Path, *,
                     title: str = "") -> Path:
    """Precision@K and Recall@K against K, one line per model (``curves[model]`` holds
    ``ks``, ``precision`` and ``recall`` lists)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("precision", "recall"), strict=True):
        for i, (model, c) in enumerate(curves.items()):
            ax.plot(c["ks"], c[metric], marker=".", label=model, **_style(i, model))
        ax.set_xscale("log")
        ax.set_xlabel("K")
        ax.set_ylabel(f"{metric.capitalize()}@K")
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    return _save(fig, path)


def lines_plot(series: dict[str, list[float]], xs: list[float], path: str | Path, *,
               xlabel: str, ylabel: str, title: str = "") -> Path:
    """One line per entry of ``series`` over ``xs``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(xs, ys, marker="o", label=name, **_style(i, name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def sensitivity_plot(panels: dict[str, tuple[list[float], list[float]]], path: str | Path, *,
                     title: str = "") -> Path:
    """One panel per swept parameter: ``panels[name] = (values, metric)``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (name, (xs, ys)) in zip(axes[0], panels.items(), strict=True):
        ax.plot(xs, ys, marker="o")
        ax.set_xlabel(name)
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def tune_history_plot(values: list[tuple[int, float]], pruned: list[int], metric: str,
                      maximize: bool, path: str | Path) -> Path:
    """A search's history: each complete trial's validation metric, the best so far, and
    where trials were pruned."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    xs = [n for n, _ in values]
    ys = [v for _, v in values]
    ax.scatter(xs, ys, s=18, label="complete trial")
    best, run = [], None
    for v in ys:
        run = v if run is None else (max(run, v) if maximize else min(run, v))
        best.append(run)
    ax.step(xs, best, where="post", color="red", label="best so far")
    if pruned and ys:
        lo = min(ys)
        ax.scatter(pruned, [lo] * len(pruned), marker="x", color="grey",
                   label=f"pruned ({len(pruned)})")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def tune_importance_plot(importances: dict[str, float], path: str | Path) -> Path:
    """Horizontal bars of fANOVA parameter importances (they sum to 1)."""
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (share of the metric's variance)")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
