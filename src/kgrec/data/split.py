"""Evaluation protocols: how observed data become training rows and held-out queries.

* ``ctr`` — MKR's random 6:2:2 split of labelled CTR rows (:func:`random_split`, Wang et al.
  WWW'19), evaluated by AUC / accuracy on the rows and top-K over the test positives.
* ``loo`` — leave-one-out by time (SASRec, Kang & McAuley ICDM'18; S3-Rec, Zhou et al.
  CIKM'20): :func:`leave_one_out`.
* ``user-split`` — strong generalisation over held-out users (ComiRec, Cen et al. KDD'20):
  :func:`user_split`.
* ``cold-items`` — items never seen in training (cold-start items): :func:`cold_item_split`.

Ranking protocols return :class:`Queries`: a user id, the item history given at query time
(CSR, oldest first; also what the ranking masks) and the target items (CSR). Every
construction is vectorised (one :func:`numpy.lexsort` plus array arithmetic, no loop per
user): a split of Amazon-Sports (300k events, 35k users) takes a few tens of milliseconds.

Events are aligned arrays ``(user, item, timestamp)`` int64; where a source has no time the
timestamp is the event's file position, and ties in time keep the input order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from kgrec.data import dataset as _dataset

__all__ = [
    "PROTOCOLS",
    "Queries",
    "Split",
    "cold_item_split",
    "leave_one_out",
    "make_split",
    "random_split",
    "subsample",
    "user_split",
]

PROTOCOLS: tuple[str, ...] = ("ctr", "loo", "user-split", "cold-items")

_I64 = np.int64


def _ranges(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pos, offsets)``: every offset ``indptr[rows[p]] <= o < indptr[rows[p] + 1]``,
    paired with its position ``p`` in ``rows``; concatenated without a Python loop."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    pos = np.repeat(np.arange(len(rows), dtype=_I64), lens)
    offsets = np.arange(int(lens.sum()), dtype=_I64) + np.repeat(starts - (np.cumsum(lens) - lens),
                                                                 lens)
    return pos, offsets


def _indptr(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=_I64)
    np.cumsum(counts, out=out[1:])
    return out


@dataclass
class Queries:
    """Ranking queries: who asks, what they did before (the history), what they do next.

    Attributes:
        users: ``(q,)`` int64 user id of each query (sequential models ignore it).
        hist_indptr, hist_items: CSR history of each query, ``hist_items[hist_indptr[i]:
            hist_indptr[i + 1]]`` oldest first; given to the model at query time and, when
            :attr:`mask_history`, scored ``-inf`` in the ranking.
        tgt_indptr, tgt_items: CSR targets (relevant items) of each query.
        mask_history: whether rankings exclude the history items (a target that is also a
            history item is then unreachable, but still counts as relevant).
        candidates: ``(n_items,)`` bool, the items a ranking may return (None: every item).
            The ``cold-items`` protocol ranks its new items only: the shelf of new arrivals,
            where a model must place items it never saw clicked.
    """

    users: np.ndarray
    hist_indptr: np.ndarray
    hist_items: np.ndarray
    tgt_indptr: np.ndarray
    tgt_items: np.ndarray
    mask_history: bool = True
    candidates: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=_I64).reshape(-1)
        q = len(self.users)
        for name in ("hist", "tgt"):
            indptr = np.asarray(getattr(self, f"{name}_indptr"), dtype=_I64).reshape(-1)
            items = np.asarray(getattr(self, f"{name}_items"), dtype=_I64).reshape(-1)
            if len(indptr) != q + 1 or indptr[0] != 0 or indptr[-1] != len(items) or (
                    np.diff(indptr) < 0).any():
                raise ValueError(f"{name}_indptr must be a CSR pointer of {q} queries over "
                                 f"{len(items)} items")
            setattr(self, f"{name}_indptr", indptr)
            setattr(self, f"{name}_items", items)
        if self.candidates is not None:
            self.candidates = np.asarray(self.candidates, dtype=bool).reshape(-1)
            if not self.candidates.any():
                raise ValueError("candidates must mark at least one item")

    def with_candidates(self, candidates: np.ndarray | None) -> Queries:
        """The same queries ranking only ``candidates`` (``(n_items,)`` bool; None: all)."""
        return dataclasses.replace(self, candidates=candidates)

    @classmethod
    def from_history(cls, users: np.ndarray, hist_indptr: np.ndarray, hist_items: np.ndarray,
                     *, mask_history: bool = True) -> Queries:
        """Queries without targets (for :func:`~kgrec.eval.ranking.recommend_queries`)."""
        n = len(np.asarray(users).reshape(-1))
        return cls(users, hist_indptr, hist_items, np.zeros(n + 1, _I64), np.zeros(0, _I64),
                   mask_history)

    def __len__(self) -> int:
        return len(self.users)

    def _rows(self, rows: slice | np.ndarray | None) -> np.ndarray:
        idx = np.arange(len(self), dtype=_I64)
        return idx if rows is None else np.asarray(idx[rows], dtype=_I64).reshape(-1)

    def history_lengths(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Full history length of each query."""
        r = self._rows(rows)
        return self.hist_indptr[r + 1] - self.hist_indptr[r]

    def history(self, rows: slice | np.ndarray | None = None, max_len: int = 200) -> np.ndarray:
        """``(b, L)`` int64 histories of ``rows``: the most recent ``max_len`` items of each,
        oldest first, right-aligned and left-padded with ``-1``.

        ``L = min(max_len, longest history among rows)``, at least 1 (an all ``-1`` row is an
        empty history). A model with a fixed input length crops or pads on the left.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be positive, got {max_len}")
        r = self._rows(rows)
        ends = self.hist_indptr[r + 1]
        lens = np.minimum(ends - self.hist_indptr[r], max_len)
        width = max(1, int(lens.max(initial=0)))
        out = np.full((len(r), width), -1, dtype=_I64)
        pos = np.repeat(np.arange(len(r), dtype=_I64), lens)
        j = np.arange(int(lens.sum()), dtype=_I64) - np.repeat(np.cumsum(lens) - lens, lens)
        out[pos, width - lens[pos] + j] = self.hist_items[ends[pos] - lens[pos] + j]
        return out

    def history_pairs(self, rows: slice | np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, items)``: every (full) history item of ``rows[pos]``."""
        pos, off = _ranges(self.hist_indptr, self._rows(rows))
        return pos, self.hist_items[off]

    def target_pairs(self, rows: slice | np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, items)``: every target of ``rows[pos]``."""
        pos, off = _ranges(self.tgt_indptr, self._rows(rows))
        return pos, self.tgt_items[off]

    def subset(self, rows: slice | np.ndarray) -> Queries:
        """The queries ``rows`` (in that order), e.g. a seeded sample for quick evaluation."""
        r = self._rows(rows)
        hp, hi = self.history_pairs(r)
        tp, ti = self.target_pairs(r)
        return Queries(self.users[r], _indptr(np.bincount(hp, minlength=len(r))), hi,
                       _indptr(np.bincount(tp, minlength=len(r))), ti, self.mask_history,
                       self.candidates)

    def with_targets(self, keep: np.ndarray) -> Queries:
        """The same queries with only the targets whose item ``keep`` (``(n_items,)`` bool)
        marks: a slice of the evaluation (tail items, cold items). A query left without a
        target is kept (evaluation skips it)."""
        keep = np.asarray(keep, dtype=bool)
        pos, items = self.target_pairs()
        sel = keep[items]
        return Queries(self.users, self.hist_indptr, self.hist_items,
                       _indptr(np.bincount(pos[sel], minlength=len(self))), items[sel],
                       self.mask_history, self.candidates)

    def select_targets(self, keep: np.ndarray) -> Queries:
        """The same queries with only the targets ``keep`` (``(len(tgt_items),)`` bool, in
        :meth:`target_pairs` order) marks; a query left without a target is kept."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.tgt_items.shape:
            raise ValueError(f"keep must have one entry per target ({len(self.tgt_items)})")
        pos, items = self.target_pairs()
        return Queries(self.users, self.hist_indptr, self.hist_items,
                       _indptr(np.bincount(pos[keep], minlength=len(self))), items[keep],
                       self.mask_history, self.candidates)

    def rows(self) -> np.ndarray:
        """``(n, 3)`` rows ``(user, target, 1)``, one per target (for reference / CTR code)."""
        pos, items = self.target_pairs()
        return np.stack([self.users[pos], items, np.ones_like(items)], 1).astype(_I64)

    def sizes(self) -> dict[str, int]:
        return {"queries": len(self), "history": len(self.hist_items),
                "targets": len(self.tgt_items)}


@dataclass
class Split(_dataset.Split):
    """A :class:`kgrec.data.dataset.Split` (rows ``(user, item, label)``) plus what ranking
    protocols need. For ranking protocols ``train`` holds the training events as rows
    ``(user, item, 1)`` (user-major, time order, repeats kept) and ``valid`` / ``test`` the
    rows ``(user, target, 1)`` of the queries, for reference.

    Attributes:
        protocol: one of :data:`PROTOCOLS`.
        train_sequences: ``(indptr, items)`` CSR over ``n_users``: each user's training items
            in time order (None for ``ctr``).
        valid_queries, test_queries: the ranking queries (None for ``ctr``).
    """

    protocol: str = "ctr"
    train_sequences: tuple[np.ndarray, np.ndarray] | None = None
    valid_queries: Queries | None = None
    test_queries: Queries | None = None

    def sizes(self) -> dict[str, int]:
        out = super().sizes()
        if self.valid_queries is not None:
            out["valid_queries"] = len(self.valid_queries)
        if self.test_queries is not None:
            out["test_queries"] = len(self.test_queries)
        return out


def random_split(
    ratings: np.ndarray, *, ratios: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> Split:
    """Random row split as MKR's ``dataset_split``: ``int(n * r)`` rows each for validation and
    test, the rest for training. Rows keep their original order inside each part.

    The same ``seed`` gives the same rows.
    """
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    ratings = np.asarray(ratings)
    n = len(ratings)
    n_valid = int(n * ratios[1])
    n_test = int(n * ratios[2])
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.sort(perm[:n_valid])
    test = np.sort(perm[n_valid : n_valid + n_test])
    train = np.sort(perm[n_valid + n_test :])
    return Split(train=ratings[train], valid=ratings[valid], test=ratings[test])


def subsample(rows: np.ndarray, ratio: float, *, seed: int = 0) -> np.ndarray:
    """Keep a random ``ratio`` of the rows (order preserved): the sparse-training experiments."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    n = len(rows)
    k = round(n * ratio)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[:k])
    return rows[keep]


# --------------------------------------------------------------------------- ranking protocols


@dataclass
class _Events:
    """Events sorted by (user, time, input position), with each user's CSR pointer."""

    user: np.ndarray
    item: np.ndarray
    indptr: np.ndarray  # (n_users + 1,)
    n_users: int
    n_items: int

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, time: np.ndarray | None, n_users: int,
              n_items: int) -> _Events:
        user = np.asarray(user, dtype=_I64).reshape(-1)
        item = np.asarray(item, dtype=_I64).reshape(-1)
        n = len(user)
        time = np.arange(n, dtype=_I64) if time is None else np.asarray(time).reshape(-1)
        if len(item) != n or len(time) != n:
            raise ValueError(f"events_user, events_item and events_time lengths differ "
                             f"({n}, {len(item)}, {len(time)})")
        if n and (user.min() < 0 or user.max() >= n_users):
            raise ValueError(f"event user ids must lie in [0, {n_users})")
        if n and (item.min() < 0 or item.max() >= n_items):
            raise ValueError(f"event item ids must lie in [0, {n_items})")
        order = np.lexsort((np.arange(n), time, user))  # last key first: user, time, position
        return cls(user[order], item[order], _indptr(np.bincount(user, minlength=n_users)),
                   int(n_users), int(n_items))

    def position(self) -> np.ndarray:
        """0-based position of each event in its user's sequence."""
        return np.arange(len(self.user), dtype=_I64) - np.repeat(self.indptr[:-1], self.counts)


def _rows(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    return np.stack([user, item, np.ones_like(item)], 1).astype(_I64).reshape(-1, 3)


def _sequences(user: np.ndarray, item: np.ndarray, n_users: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """CSR over users of user-major sorted ``(user, item)`` events."""
    return _indptr(np.bincount(user, minlength=n_users)), item.copy()


def _unique_targets(q: np.ndarray, item: np.ndarray, n_queries: int, n_items: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicated CSR targets of query ``q[j]`` (items sorted within a query)."""
    keys = np.unique(q * n_items + item)
    return _indptr(np.bincount(keys // n_items, minlength=n_queries)), keys % n_items


def leave_one_out(events_user: np.ndarray, events_item: np.ndarray,
                  events_time: np.ndarray | None, *, n_users: int, n_items: int) -> Split:
    """Leave-one-out by time: SASRec (Kang & McAuley, ICDM'18) and S3-Rec (Zhou et al.,
    CIKM'20).

    Each user's events in time order (stable on ties): the last is the test target, the
    second-last the validation target, the rest training. Validation queries give the
    training sequence as history; test queries the training sequence plus the validation
    item. Rankings are over all items with the query's history masked, as S3-Rec's full-sort
    evaluation masks the training matrix: a target that repeats a history item is then
    unreachable, yet the query counts (hit 0) in every mean.

    Users with fewer than 3 events go to training whole and get no query, as SASRec's
    ``data_partition`` (S3-Rec's data are 5-core, so the case does not arise there; RecBole
    does the same). Deterministic: no seed.
    """
    ev = _Events.build(events_user, events_item, events_time, n_users, n_items)
    c = ev.counts
    qusers = np.flatnonzero(c >= 3).astype(_I64)
    role = np.zeros(len(ev.user), dtype=np.int8)  # 0 train, 1 valid, 2 test
    test_idx = ev.indptr[qusers + 1] - 1
    role[test_idx] = 2
    role[test_idx - 1] = 1
    in_query = (c >= 3)[ev.user]
    train = role == 0
    nq = len(qusers)
    ones = np.arange(nq + 1, dtype=_I64)
    valid_q = Queries(qusers, _indptr(c[qusers] - 2), ev.item[train & in_query],
                      ones, ev.item[test_idx - 1])
    test_q = Queries(qusers, _indptr(c[qusers] - 1), ev.item[(role < 2) & in_query],
                     ones.copy(), ev.item[test_idx])
    return Split(train=_rows(ev.user[train], ev.item[train]), valid=valid_q.rows(),
                 test=test_q.rows(), protocol="loo",
                 train_sequences=_sequences(ev.user[train], ev.item[train], n_users),
                 valid_queries=valid_q, test_queries=test_q)


def user_split(events_user: np.ndarray, events_item: np.ndarray,
               events_time: np.ndarray | None, *, n_users: int, n_items: int, seed: int = 0,
               ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
               history_ratio: float = 0.8, mask_history: bool = False) -> Split:
    """Held-out users, as ComiRec (Cen et al., KDD'20).

    The users with at least one event are shuffled with ``seed`` and cut
    ``[:int(0.8 n)]`` / ``[int(0.8 n):int(0.9 n)]`` / rest into train / valid / test users
    (ComiRec's cut). Training rows and sequences come from the training users only, whole.
    A validation / test user with ``m >= 2`` events (time order) is a query whose history is
    the first ``k = int(m * history_ratio)`` events (at least one) and whose targets are the
    remaining events' items; users with a single event have nothing to hold out and are
    dropped (their events are not trained on either).

    As ComiRec, the history is *not* masked by default (its Faiss search ranks all items) and
    a target may also be a history item. Targets are deduplicated: ComiRec divides recall by
    the length of the raw target list, so our recall differs from its code only for users who
    repeat an item within the held-out 20%. ``mask_history=True`` masks the history instead
    (targets inside it then become unreachable but still count).

    Id-based models know nothing of held-out users: this protocol is for models that encode
    the history (``uses_history``).
    """
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    if not 0 < history_ratio < 1:
        raise ValueError(f"history_ratio must be in (0, 1), got {history_ratio}")
    ev = _Events.build(events_user, events_item, events_time, n_users, n_items)
    c = ev.counts
    active = np.flatnonzero(c > 0).astype(_I64)
    perm = np.random.default_rng(seed).permutation(active)
    n = len(active)
    cut1, cut2 = int(n * ratios[0]), int(n * (ratios[0] + ratios[1]))
    part = np.full(n_users, -1, dtype=np.int8)
    part[perm[:cut1]], part[perm[cut1:cut2]], part[perm[cut2:]] = 0, 1, 2
    ev_part = part[ev.user]
    train = ev_part == 0
    pos = ev.position()
    k_hist = np.maximum(1, (c * history_ratio).astype(_I64))  # int(m * 0.8) as ComiRec

    def queries(p: int) -> Queries:
        qusers = np.flatnonzero((part == p) & (c >= 2)).astype(_I64)
        qid = np.full(n_users, -1, dtype=_I64)
        qid[qusers] = np.arange(len(qusers))
        sel = qid[ev.user] >= 0
        is_hist = sel & (pos < k_hist[ev.user])
        is_tgt = sel & ~is_hist
        t_indptr, t_items = _unique_targets(qid[ev.user[is_tgt]], ev.item[is_tgt], len(qusers),
                                            n_items)
        return Queries(qusers, _indptr(k_hist[qusers]), ev.item[is_hist], t_indptr, t_items,
                       mask_history)

    valid_q, test_q = queries(1), queries(2)
    return Split(train=_rows(ev.user[train], ev.item[train]), valid=valid_q.rows(),
                 test=test_q.rows(), protocol="user-split",
                 train_sequences=_sequences(ev.user[train], ev.item[train], n_users),
                 valid_queries=valid_q, test_queries=test_q)


def cold_item_split(events_user: np.ndarray, events_item: np.ndarray,
                    events_time: np.ndarray | None, *, n_users: int, n_items: int,
                    seed: int = 0, cold_ratio: float = 0.1) -> Split:
    """Cold-start items: ``int(cold_ratio * m)`` of the ``m`` items that have events, drawn
    with ``seed``, are never seen in training.

    Every event on a cold item is removed from training. The users with events on cold items
    *and* at least one training event (nothing is known of the others) are split half / half
    (seeded; the smaller half is validation) into validation and test queries: history = the
    user's training items (time order, masked in the ranking), targets = the user's cold
    items (deduplicated). The queries rank the cold items only
    (:attr:`Queries.candidates`): the shelf of new arrivals, where a model that knows nothing
    of an item but its id ranks at random, and only content (KG, features) can place one,
    which is what the protocol measures. (Ranked among all items, the cold targets lose to
    the warm items for every model; the run reports that ranking as the ``all_items`` slice.)
    """
    if not 0 < cold_ratio < 1:
        raise ValueError(f"cold_ratio must be in (0, 1), got {cold_ratio}")
    ev = _Events.build(events_user, events_item, events_time, n_users, n_items)
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.bincount(ev.item, minlength=n_items) > 0)
    cold = rng.permutation(active)[: int(cold_ratio * len(active))]
    is_cold = np.zeros(n_items, dtype=bool)
    is_cold[cold] = True
    ev_cold = is_cold[ev.item]
    train = ~ev_cold
    seq_indptr, seq_items = _sequences(ev.user[train], ev.item[train], n_users)
    has_train = np.diff(seq_indptr) > 0
    cand = np.unique(ev.user[ev_cold])
    cand = cand[has_train[cand]]
    order = rng.permutation(len(cand))
    half = len(cand) // 2
    parts = (np.sort(cand[order[:half]]), np.sort(cand[order[half:]]))

    def queries(qusers: np.ndarray) -> Queries:
        qid = np.full(n_users, -1, dtype=_I64)
        qid[qusers] = np.arange(len(qusers))
        tgt = ev_cold & (qid[ev.user] >= 0)
        t_indptr, t_items = _unique_targets(qid[ev.user[tgt]], ev.item[tgt], len(qusers),
                                            n_items)
        _, off = _ranges(seq_indptr, qusers)
        return Queries(qusers.astype(_I64), _indptr(np.diff(seq_indptr)[qusers]),
                       seq_items[off], t_indptr, t_items, True, is_cold)

    valid_q, test_q = queries(parts[0]), queries(parts[1])
    return Split(train=_rows(ev.user[train], ev.item[train]), valid=valid_q.rows(),
                 test=test_q.rows(), protocol="cold-items",
                 train_sequences=(seq_indptr, seq_items), valid_queries=valid_q,
                 test_queries=test_q)


def make_split(
    protocol: str,
    *,
    ratings: np.ndarray | None = None,
    events_user: np.ndarray | None = None,
    events_item: np.ndarray | None = None,
    events_time: np.ndarray | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    seed: int = 0,
    ratios: tuple[float, float, float] | None = None,
    history_ratio: float = 0.8,
    cold_ratio: float = 0.1,
    mask_history: bool | None = None,
) -> Split:
    """The split of an evaluation protocol (one of :data:`PROTOCOLS`).

    Args:
        protocol: ``ctr`` (:func:`random_split` of ``ratings``, 6:2:2), ``loo``
            (:func:`leave_one_out`), ``user-split`` (:func:`user_split`) or ``cold-items``
            (:func:`cold_item_split`).
        ratings: ``(n, 3)`` CTR rows ``(user, item, label)``; ``ctr`` only.
        events_user, events_item, events_time: the observed events (ranking protocols);
            ``events_time`` None means file order.
        n_users, n_items: vocabulary sizes (ranking protocols).
        seed: seeds ``ctr``, ``user-split`` and ``cold-items`` (``loo`` is deterministic).
        ratios: ``ctr``'s (default 0.6, 0.2, 0.2) or ``user-split``'s user ratios (default
            0.8, 0.1, 0.1).
        history_ratio: ``user-split``'s share of a held-out user's events given as history.
        cold_ratio: ``cold-items``' share of items held out.
        mask_history: ``user-split`` only (default False, as ComiRec); ``loo`` and
            ``cold-items`` always mask.
    """
    if protocol == "ctr":
        if ratings is None:
            raise ValueError("protocol 'ctr' needs ratings")
        return random_split(ratings, ratios=ratios or (0.6, 0.2, 0.2), seed=seed)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if events_user is None or events_item is None or n_users is None or n_items is None:
        raise ValueError(f"protocol {protocol!r} needs events_user, events_item, n_users and "
                         "n_items")
    if mask_history is not None and protocol != "user-split":
        raise ValueError("mask_history applies to protocol 'user-split' only")
    ev = (events_user, events_item, events_time)
    if protocol == "loo":
        return leave_one_out(*ev, n_users=n_users, n_items=n_items)
    if protocol == "user-split":
        return user_split(*ev, n_users=n_users, n_items=n_items, seed=seed,
                          ratios=ratios or (0.8, 0.1, 0.1), history_ratio=history_ratio,
                          mask_history=bool(mask_history))
    return cold_item_split(*ev, n_users=n_users, n_items=n_items, seed=seed,
                           cold_ratio=cold_ratio)
