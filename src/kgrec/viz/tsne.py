"""t-SNE of a run's item vectors coloured by category, with one user's interest vectors among
them (van der Maaten & Hinton, JMLR 2008; the picture of ComiRec's Figure 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["tsne_plot"]


def tsne_plot(item_vectors: np.ndarray, categories: np.ndarray | None,
              category_labels: np.ndarray | None, path: str | Path, *,
              user_vectors: np.ndarray | None = None, user_label: str = "",
              max_items: int = 3000, top_categories: int = 10, seed: int = 0,
              title: str = "") -> Path:
    """Embed a seeded sample of ``max_items`` item vectors (and the user's ``K`` interest
    vectors, fitted together so they land among the items) in 2-D with scikit-learn's t-SNE
    (cosine metric, since the scores are inner products), colour the ``top_categories`` most
    frequent categories of the sample, write a PNG atomically; returns its path."""
    from sklearn.manifold import TSNE

    from kgrec.viz.plots import _pyplot, _save

    items = np.asarray(item_vectors, dtype=np.float32)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(items), min(max_items, len(items)), replace=False))
    users = (np.zeros((0, items.shape[1]), np.float32) if user_vectors is None
             else np.asarray(user_vectors, dtype=np.float32).reshape(-1, items.shape[1]))
    x = np.concatenate([items[idx], users])
    xy = TSNE(n_components=2, metric="cosine", init="pca", random_state=seed,
              perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))).fit_transform(x)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    pts, upts = xy[:len(idx)], xy[len(idx):]
    cats = categories[idx] if categories is not None else np.full(len(idx), -1)
    valid = cats[cats >= 0]
    top = np.argsort(-np.bincount(valid))[:top_categories] if len(valid) else []
    other = ~np.isin(cats, top)
    ax.scatter(pts[other, 0], pts[other, 1], s=4, c="lightgrey", label="other")
    cmap = plt.get_cmap("tab10")
    for n, c in enumerate(top):
        sel = cats == c
        name = str(category_labels[c]) if category_labels is not None else str(c)
        ax.scatter(pts[sel, 0], pts[sel, 1], s=5, color=cmap(n % 10), label=name)
    if len(upts):
        ax.scatter(upts[:, 0], upts[:, 1], s=120, marker="*", c="black", edgecolors="white",
                   label=f"interests of user {user_label}".strip())
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=8, loc="best")
    ax.set_title(title or f"t-SNE of {len(idx)} item vectors")
    fig.tight_layout()
    return _save(fig, path)
