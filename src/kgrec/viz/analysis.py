"""The plots of ``kgrec analyze`` (:mod:`kgrec.experiments.analyze`); each writes one PNG
atomically and returns its file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["activity", "counts", "long_tail", "qq", "ratings", "relations"]


def _fig(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 3.6)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                        squeeze=False)


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    from kgrec.utils.io import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    return Path(path).name


def _loglog_hist(ax, c: np.ndarray, what: str) -> None:
    c = c[c > 0]
    bins = np.unique(np.logspace(0, np.log10(max(c.max(), 2)), 40).astype(int))
    ax.hist(c, bins=bins, color="#4c72b0")
    ax.set(xscale="log", yscale="log", xlabel=f"interactions per {what}",
           ylabel=f"{what}s")


def counts(per_user: np.ndarray, per_item: np.ndarray, path: Path) -> str:
    fig, ax = _fig(2)
    _loglog_hist(ax[0, 0], per_user, "user")
    _loglog_hist(ax[0, 1], per_item, "item")
    return _save(fig, path)


def long_tail(frac: np.ndarray, share: np.ndarray, path: Path) -> str:
    fig, ax = _fig()
    ax = ax[0, 0]
    ax.plot(frac * 100, share * 100, color="#c44e52")
    ax.plot([0, 100], [0, 100], ":", color="grey", label="every item equal")
    ax.set(xlabel="top x% of items (by interactions)", ylabel="% of interactions",
           title="long tail")
    ax.legend()
    return _save(fig, path)


def ratings(values: np.ndarray, counts: np.ndarray, path: Path) -> str:
    fig, ax = _fig()
    ax = ax[0, 0]
    if len(values) <= 20:
        ax.bar([f"{v:g}" for v in values], counts, color="#55a868")
    else:
        ax.hist(np.repeat(values, counts), bins=40, color="#55a868")
    ax.set(xlabel="rating", ylabel="events", title="rating distribution")
    return _save(fig, path)


def qq(groups: list[np.ndarray], labels: list[str], path: Path) -> str:
    """Q-Q plot of each group's standardised ratings against normal quantiles."""
    from scipy import stats as st

    cols = min(len(groups), 2)
    rows = int(np.ceil(len(groups) / cols))
    fig, ax = _fig(cols, rows, (4.2, 3.6))
    for k, (g, lab) in enumerate(zip(groups, labels, strict=True)):
        a = ax[k // cols, k % cols]
        z = (g - g.mean()) / (g.std() or 1.0)
        (osm, osr), _ = st.probplot(z, dist="norm")
        jitter = np.random.default_rng(k).normal(0, 0.03, len(osr))  # discrete ratings
        a.plot(osm, osr + jitter, ".", ms=2, alpha=0.5)
        a.plot([-3, 3], [-3, 3], "-", color="grey", lw=1)
        a.set(title=lab[:40], xlabel="normal quantiles", ylabel="standardised ratings")
    for k in range(len(groups), rows * cols):
        ax[k // cols, k % cols].axis("off")
    return _save(fig, path)


def activity(times: np.ndarray, path: Path) -> str:
    t = times.astype(np.int64)
    if t.max() > 10**11:
        t = t // 10**9
    months = t.astype("datetime64[s]").astype("datetime64[M]")
    u, c = np.unique(months, return_counts=True)
    fig, ax = _fig(1, 1, (7.0, 3.4))
    ax[0, 0].plot(u.astype("datetime64[D]").astype(object), c, marker=".", color="#8172b2")
    ax[0, 0].set(yscale="log", xlabel="month", ylabel="events", title="activity over time")
    return _save(fig, path)


def relations(names: np.ndarray, counts: np.ndarray, path: Path) -> str:
    order = np.argsort(-counts, kind="stable")[:25]
    fig, ax = _fig(1, 1, (7.0, 0.3 * len(order) + 1.2))
    ax[0, 0].barh([str(names[r])[-40:] for r in order][::-1], counts[order][::-1],
                  color="#dd8452")
    ax[0, 0].set(xlabel="triples", title="KG relations")
    return _save(fig, path)
