"""Plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["learning_curve"]


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
    ax1.legend()
    ax1.grid(alpha=0.3)
    for key in ("auc", "acc"):
        ax2.plot(epochs, [h["valid"].get(key) for h in hist], marker="o", label=f"valid {key}")
    best = metrics.get("best_epoch")
    if best is not None and best >= 0:
        ax2.axvline(best, color="grey", ls="--", label=f"best epoch {best}")
    test = metrics.get("test") or {}
    if "auc" in test:
        ax2.scatter([best], [test["auc"]], color="red", zorder=3,
                    label=f"test auc {test['auc']:.4f}")
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
