"""Vectorised samplers: interaction negatives and corrupted KG triples.

No Python loop runs per interaction: candidates are drawn in bulk, checked against sorted
int64 keys with ``np.searchsorted``, and deduplicated with ``np.unique``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PairSet", "bernoulli_head_prob", "corrupt_triples", "group_ranks", "sample_negatives",
           "unique_sorted"]


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array (a sort beats numpy's hash-based unique here)."""
    keys = np.sort(np.asarray(keys, dtype=np.int64))
    if len(keys) == 0:
        return keys
    return keys[np.r_[True, keys[1:] != keys[:-1]]]


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct key, in increasing index order."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    first = order[np.r_[True, k[1:] != k[:-1]]] if len(k) else order
    return np.sort(first)


class PairSet:
    """An immutable set of ``(row, col)`` integer pairs with vectorised membership tests."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_cols: int):
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        self.n_cols = int(n_cols)
        self.keys = unique_sorted(rows * self.n_cols + cols)

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Boolean mask: is ``(rows[k], cols[k])`` in the set?"""
        q = np.asarray(rows, dtype=np.int64) * self.n_cols + np.asarray(cols, dtype=np.int64)
        if len(self.keys) == 0:
            return np.zeros(q.shape, dtype=bool)
        pos = np.searchsorted(self.keys, q)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == q

    def row_counts(self, n_rows: int, cols: np.ndarray | None = None) -> np.ndarray:
        """Number of pairs in each row ``0..n_rows-1`` (only those whose column ``cols``,
        a boolean mask over the columns, holds, when given)."""
        rows = self.keys // self.n_cols
        if cols is not None:
            rows = rows[np.asarray(cols, dtype=bool)[self.keys % self.n_cols]]
        return np.bincount(rows, minlength=n_rows)[:n_rows]

    def union(self, rows: np.ndarray, cols: np.ndarray) -> PairSet:
        out = PairSet.__new__(PairSet)
        out.n_cols = self.n_cols
        extra = np.asarray(rows, dtype=np.int64) * self.n_cols + np.asarray(cols, dtype=np.int64)
        out.keys = unique_sorted(np.concatenate([self.keys, extra]))
        return out


def group_ranks(groups: np.ndarray) -> np.ndarray:
    """Position of each entry within its group (input sorted by group): 0, 1, ... per group."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


def _first_k_per_group(groups: np.ndarray, k_per_group: np.ndarray) -> np.ndarray:
    """Mask keeping the first ``k_per_group[g]`` entries of each group (input sorted by group)."""
    if len(groups) == 0:
        return np.zeros(0, dtype=bool)
    return group_ranks(groups) < k_per_group[groups]


def sample_negatives(
    users: np.ndarray,
    counts: np.ndarray,
    n_items: int,
    exclude: PairSet,
    rng: np.random.Generator,
    *,
    max_rounds: int = 8,
    item_p: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``counts[k]`` distinct items for ``users[k]`` uniformly among items not in ``exclude``
    (or, with ``item_p``, with probability proportional to ``item_p`` among them); with
    ``candidates`` (a boolean mask over the items) only among those items.

    Sampling is without replacement within a user (the first distinct valid draws of an i.i.d.
    uniform stream, which is uniform sampling without replacement). A user who has fewer
    candidates than requested receives all of them.

    Args:
        users: distinct user indices.
        counts: how many negatives each user needs.
        n_items: size of the item vocabulary.
        exclude: pairs ``(user, item)`` that may never be drawn (positives, known negatives).
        rng: numpy random generator (the seed makes the draw repeatable).

    Returns:
        ``(user, item)`` arrays, grouped by user in the order of ``users``, each user's items in
        draw order.
    """
    users = np.asarray(users, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if len(users) != len(counts):
        raise ValueError("users and counts must have the same length")
    if len(np.unique(users)) != len(users):
        raise ValueError("users must be distinct")
    n_rows = int(users.max()) + 1 if len(users) else 0
    n_cand = n_items
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        n_cand = int(candidates.sum())
        p = np.ones(n_items) if item_p is None else np.asarray(item_p, np.float64)
        p = np.where(candidates, p, 0.0)
        item_p = p / p.sum() if p.sum() > 0 else None
        if item_p is None:  # no candidate at all: nothing can be drawn
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
    excluded = (exclude.row_counts(max(n_rows, 1), candidates)[users] if len(users)
                else np.zeros(0, np.int64))
    available = np.maximum(n_cand - excluded, 0)
    need = np.minimum(counts, available)
    slot = np.arange(len(users))  # position of each user in the output order

    out_slot: list[np.ndarray] = []
    out_item: list[np.ndarray] = []
    taken = PairSet(np.zeros(0, np.int64), np.zeros(0, np.int64), n_items)
    remaining = need.copy()
    for _ in range(max_rounds):
        active = np.flatnonzero(remaining > 0)
        if len(active) == 0:
            break
        frac = available[active] / max(n_cand, 1)
        # Enough draws that, with high probability, each user completes in this round.
        m = np.ceil(remaining[active] / np.maximum(frac, 1e-3) * 2.0 + 8).astype(np.int64)
        if m.sum() > 50_000_000:  # keep memory bounded; the exact path below takes the rest
            break
        s = np.repeat(active, m)
        items = (rng.integers(0, n_items, size=len(s)) if item_p is None
                 else rng.choice(n_items, size=len(s), p=item_p))
        u = users[s]
        ok = ~exclude.contains(u, items) & ~taken.contains(u, items)
        s, items = s[ok], items[ok]
        # first occurrence of each (slot, item) in draw order
        key = s * n_items + items
        first = first_occurrence(key)
        s, items = s[first], items[first]
        order = np.argsort(s, kind="stable")
        s, items = s[order], items[order]
        keep = _first_k_per_group(s, remaining)
        s, items = s[keep], items[keep]
        out_slot.append(s)
        out_item.append(items)
        taken = taken.union(users[s], items)
        remaining -= np.bincount(s, minlength=len(users))

    rest = np.flatnonzero(remaining > 0)
    if len(rest):  # exact fallback: random keys over the whole item row, in small blocks
        for block in np.array_split(rest, max(1, len(rest) * n_items // 4_000_000 + 1)):
            if len(block) == 0:
                continue
            keys = rng.random((len(block), n_items))
            if item_p is not None:  # exponential race: without replacement, prop. to item_p
                with np.errstate(divide="ignore"):
                    keys = -np.log(keys) / item_p[None, :]
            rr = np.repeat(users[block], n_items)
            cc = np.tile(np.arange(n_items), len(block))
            bad = (exclude.contains(rr, cc) | taken.contains(rr, cc)).reshape(len(block), n_items)
            keys[bad] = np.inf
            order = np.argsort(keys, axis=1, kind="stable")
            for j, b in enumerate(block):  # one iteration per *user* left over, not per pair
                out_slot.append(np.full(remaining[b], b, dtype=np.int64))
                out_item.append(order[j, : remaining[b]].astype(np.int64))
            remaining[block] = 0

    if not out_slot:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = np.concatenate(out_slot)
    items = np.concatenate(out_item)
    order = np.argsort(s, kind="stable")  # rounds appended in draw order: stable keeps it
    s, items = s[order], items[order]
    return users[slot[s]], items


def bernoulli_head_prob(triples: np.ndarray, n_relations: int) -> np.ndarray:
    """'bern' probability of corrupting the head, per relation (Wang et al., TransH, AAAI'14).

    p_r = tph / (tph + hpt), with tph the mean number of tails per head and hpt the mean number
    of heads per tail of relation r: 1-N relations corrupt the head more often, N-1 the tail.
    """
    triples = np.asarray(triples, dtype=np.int64)
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    n_pairs_hr = np.bincount(r[np.unique(np.c_[r, h], axis=0, return_index=True)[1]],
                             minlength=n_relations)
    n_pairs_rt = np.bincount(r[np.unique(np.c_[r, t], axis=0, return_index=True)[1]],
                             minlength=n_relations)
    n_triples = np.bincount(r, minlength=n_relations)
    tph = n_triples / np.maximum(n_pairs_hr, 1)
    hpt = n_triples / np.maximum(n_pairs_rt, 1)
    p = np.where(n_triples > 0, tph / np.maximum(tph + hpt, 1e-12), 0.5)
    return p.astype(np.float64)


def corrupt_triples(
    triples: np.ndarray,
    n_entities: int,
    rng: np.random.Generator,
    *,
    head_prob: float | np.ndarray = 0.5,
    n_relations: int | None = None,
    filter_true: bool = True,
    max_rounds: int = 10,
) -> np.ndarray:
    """One corrupted triple per input triple: the head or the tail replaced by a random entity.

    Args:
        triples: ``(m, 3)`` ``(head, relation, tail)``.
        head_prob: probability of replacing the head; a scalar ('unif' with 0.5) or one value
            per relation (see :func:`bernoulli_head_prob`).
        filter_true: redraw corruptions that happen to be true triples (up to ``max_rounds``).

    Returns:
        ``(m, 3)`` corrupted triples aligned with the input.
    """
    triples = np.asarray(triples, dtype=np.int64)
    m = len(triples)
    p = np.asarray(head_prob, dtype=np.float64)
    p_row = p[triples[:, 1]] if p.ndim else np.full(m, float(p))
    out = triples.copy()
    corrupt_head = rng.random(m) < p_row
    redo = np.arange(m)
    if filter_true:
        nr = int(n_relations if n_relations is not None else triples[:, 1].max() + 1)
        true_keys = unique_sorted((triples[:, 0] * nr + triples[:, 1]) * n_entities + triples[:, 2])
    for _ in range(max_rounds):
        ent = rng.integers(0, n_entities, size=len(redo))
        ch = corrupt_head[redo]
        out[redo[ch], 0] = ent[ch]
        out[redo[~ch], 2] = ent[~ch]
        if not filter_true:
            break
        k = (out[redo, 0] * nr + out[redo, 1]) * n_entities + out[redo, 2]
        pos = np.minimum(np.searchsorted(true_keys, k), len(true_keys) - 1)
        redo = redo[true_keys[pos] == k]
        if len(redo) == 0:
            break
    return out


#: how fresh negatives are drawn (the course slides' three strategies)
NEGATIVE_SAMPLING = ("uniform", "popularity", "low-ratings")


def training_rows(
    train: np.ndarray,
    *,
    mode: str = "fixed",
    n_items: int | None = None,
    exclude: PairSet | None = None,
    seed: int = 0,
    sampling: str = "uniform",
    low_ratings: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
):
    """The RS task's rows per epoch.

    ``fixed``: the converted training rows, every epoch (MKR's protocol, comparable with the
    paper). ``resample``: the training positives plus, each epoch, as many fresh negatives per
    user from items outside ``exclude`` (all the user's known items), drawn by ``sampling``:
    ``uniform`` over those items; ``popularity``: proportional to the items' number of
    training positives (+1; hard negatives, as popular items a user skipped); ``low-ratings``:
    first the user's known low ratings (``low_ratings``, ``(k, 2)`` user-item pairs; a random
    subset each epoch where there are more than needed), then uniform for the rest.
    ``candidates`` (a boolean mask over the items): fresh negatives come from these items only
    (the cold-items protocol keeps its held-out items out of training, negatives included).

    Returns ``epoch -> (n, 3)`` rows.
    """
    train = np.asarray(train, dtype=np.int64)
    if mode == "fixed":
        return lambda epoch: train
    if mode != "resample":
        raise ValueError(f"negatives mode must be 'fixed' or 'resample', got {mode!r}")
    if sampling not in NEGATIVE_SAMPLING:
        raise ValueError(f"negative sampling must be one of {', '.join(NEGATIVE_SAMPLING)}, "
                         f"got {sampling!r}")
    if n_items is None or exclude is None:
        raise ValueError("resample mode needs n_items and exclude")
    pos = train[train[:, 2] == 1]
    users, counts = np.unique(pos[:, 0], return_counts=True)
    item_p = None
    if sampling == "popularity":
        item_p = np.bincount(pos[:, 1], minlength=n_items).astype(np.float64) + 1.0
        item_p /= item_p.sum()
    low = None
    if sampling == "low-ratings" and low_ratings is not None and len(low_ratings):
        low = np.asarray(low_ratings, np.int64).reshape(-1, 2)
        low = low[np.isin(low[:, 0], users)]
        if candidates is not None:
            low = low[np.asarray(candidates, dtype=bool)[low[:, 1]]]

    def rows(epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch])
        need, ex, parts = counts, exclude, []
        if low is not None and len(low):
            # a random order of the known low ratings, then each user's first `count` of them
            order = np.lexsort((rng.random(len(low)), low[:, 0]))
            lu, li = low[order, 0], low[order, 1]
            take = _first_k_per_group(np.searchsorted(users, lu), counts)
            lu, li = lu[take], li[take]
            parts.append(np.c_[lu, li, np.zeros(len(lu), np.int64)])
            need = counts - np.bincount(np.searchsorted(users, lu), minlength=len(users))
            ex = exclude.union(lu, li)
        su, si = sample_negatives(users, need, n_items, ex, rng, item_p=item_p,
                                  candidates=candidates)
        parts.append(np.c_[su, si, np.zeros(len(su), np.int64)])
        return np.concatenate([pos, *parts])

    return rows
