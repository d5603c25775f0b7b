"""KG ablations: does the graph really help? (MKR-style studies of the KG's contribution.)

* :func:`subsample_kg` keeps a random share of the triples (the "KG size ratio" study);
* :func:`shuffle_tails` permutes the tails within each relation: the graph keeps its size,
  relation types and degree distribution of tails, but the facts become noise. A model that
  does as well on the shuffled graph gets nothing from the facts themselves.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shuffle_tails", "subsample_kg"]


def subsample_kg(kg: np.ndarray, ratio: float, *, seed: int = 0) -> np.ndarray:
    """A random ``ratio`` share of the triples (order kept)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"kg_ratio must be in [0, 1], got {ratio}")
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    if ratio >= 1.0:
        return kg
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(kg))[: round(ratio * len(kg))])
    return kg[keep]


def shuffle_tails(kg: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """The triples with their tails permuted among the triples of the same relation."""
    kg = np.array(kg, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    # sort by (relation, random key): each relation's block gets a random order of its tails
    order = np.lexsort((rng.random(len(kg)), kg[:, 1]))
    by_rel = np.argsort(kg[:, 1], kind="stable")
    kg[by_rel, 2] = kg[order, 2]
    return kg
