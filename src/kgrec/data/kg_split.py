"""Train / validation / test split of KG triples for link prediction.

A held-out triple whose head, tail or relation never occurs in training cannot be ranked
meaningfully (its embedding is never trained), so the split moves such triples to training:
for every entity or relation that would only occur in held-out triples, the first held-out
triple (in the seeded random order) that mentions it goes to training. One pass suffices,
since the moved triples then cover every such entity and relation. Vectorised, deterministic
per seed.
"""

from __future__ import annotations

import numpy as np

from kgrec.data.dataset import Split

__all__ = ["split_triples"]


def _first_uncovered(values: np.ndarray, slots: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Smallest slot of each value that is not ``covered`` (``covered`` indexed by value)."""
    miss = ~covered[values]
    v, s = values[miss], slots[miss]
    if len(v) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((s, v))
    v, s = v[order], s[order]
    return s[np.r_[True, v[1:] != v[:-1]]]


def split_triples(
    kg: np.ndarray,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
) -> Split:
    """Random split of ``(head, relation, tail)`` triples into train / valid / test.

    ``int(n * ratios[1])`` and ``int(n * ratios[2])`` triples are drawn for validation and
    test, then every entity and relation of a held-out triple is guaranteed to appear in
    training (see the module docstring), so the held-out parts may end up a little smaller.
    Each part keeps the original row order. Repeated triples are kept once (their first
    row), so no held-out triple is also a training triple.

    Returns:
        a :class:`~kgrec.data.dataset.Split` of ``(n_k, 3)`` int64 arrays.
    """
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    if len(kg):  # a repeated triple would sit in training and in a held-out part at once
        _, first = np.unique(kg, axis=0, return_index=True)
        if len(first) < len(kg):
            kg = kg[np.sort(first)]
    n = len(kg)
    n_valid, n_test = int(n * ratios[1]), int(n * ratios[2])
    perm = np.random.default_rng(seed).permutation(n)
    part = np.zeros(n, dtype=np.int8)  # 0 train, 1 valid, 2 test
    part[perm[:n_valid]] = 1
    part[perm[n_valid:n_valid + n_test]] = 2
    if n:
        n_ent = int(max(kg[:, 0].max(), kg[:, 2].max())) + 1
        n_rel = int(kg[:, 1].max()) + 1
        rank = np.empty(n, np.int64)
        rank[perm] = np.arange(n)  # priority: position in the seeded permutation
        for _ in range(3):  # one pass moves enough; the loop only re-checks
            train = part == 0
            ent_cov = np.zeros(n_ent, bool)
            ent_cov[kg[train, 0]] = True
            ent_cov[kg[train, 2]] = True
            rel_cov = np.zeros(n_rel, bool)
            rel_cov[kg[train, 1]] = True
            held = np.flatnonzero(~train)
            held = held[np.argsort(rank[held])]
            slots = np.arange(len(held))
            move = np.r_[
                _first_uncovered(np.r_[kg[held, 0], kg[held, 2]], np.r_[slots, slots], ent_cov),
                _first_uncovered(kg[held, 1], slots, rel_cov),
            ]
            if len(move) == 0:
                break
            part[held[move]] = 0
    return Split(train=kg[part == 0], valid=kg[part == 1], test=kg[part == 2])
