"""Tests of the evaluation protocols (kgrec.data.split) against per-user Python references."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kgrec.data.dataset import Split as BaseSplit
from kgrec.data.split import (
    Queries,
    Split,
    make_split,
    random_split,
    subsample,
)


def rows20() -> np.ndarray:
    return np.stack([np.arange(20), np.arange(20) * 3, np.arange(20) % 2], 1)


def test_random_split_and_subsample_rows_frozen() -> None:
    # Rows given by the original implementation: published results depend on them.
    s = random_split(rows20(), seed=7)
    assert s.train[:, 0].tolist() == [0, 1, 2, 4, 5, 6, 7, 9, 11, 17, 18, 19]
    assert s.valid[:, 0].tolist() == [3, 8, 12, 13]
    assert s.test[:, 0].tolist() == [10, 14, 15, 16]
    assert subsample(rows20(), 0.3, seed=3)[:, 0].tolist() == [3, 8, 12, 13, 16, 18]
    assert isinstance(s, BaseSplit) and s.protocol == "ctr" and s.valid_queries is None
    assert s.sizes() == {"train": 12, "valid": 4, "test": 4}
    c = make_split("ctr", ratings=rows20(), seed=7)
    for a, b in zip((c.train, c.valid, c.test), (s.train, s.valid, s.test), strict=True):
        np.testing.assert_array_equal(a, b)


def events_from(seqs: dict[int, list[tuple[int, int]]]) -> tuple[np.ndarray, ...]:
    """Aligned arrays from ``user -> [(item, time), ...]``, interleaved across users."""
    flat = [(u, i, t) for u, evs in seqs.items() for i, t in evs]
    flat = flat[::2] + flat[1::2]  # not grouped by user, to exercise the sort
    a = np.array(flat, dtype=np.int64).reshape(-1, 3)
    return a[:, 0], a[:, 1], a[:, 2]


def csr_lists(indptr: np.ndarray, items: np.ndarray) -> list[list[int]]:
    return [items[indptr[i] : indptr[i + 1]].tolist() for i in range(len(indptr) - 1)]


def test_loo_hand_example() -> None:
    # user 0: times 5, 1, 3, 3 (tie: input order) -> sequence 11, 12, 13, 10
    # user 1: two events (too short: training only); user 2: none; user 3: repeats item 4.
    seqs = {0: [(10, 5), (11, 1), (12, 3), (13, 3)], 1: [(1, 0), (2, 1)],
            3: [(4, 0), (5, 1), (4, 2)]}
    u, i, t = events_from(seqs)
    s = make_split("loo", events_user=u, events_item=i, events_time=t, n_users=4, n_items=14)
    assert s.protocol == "loo"
    assert csr_lists(*s.train_sequences) == [[11, 12], [1, 2], [], [4]]
    v, te = s.valid_queries, s.test_queries
    assert v.users.tolist() == te.users.tolist() == [0, 3]
    assert csr_lists(v.hist_indptr, v.hist_items) == [[11, 12], [4]]
    assert csr_lists(v.tgt_indptr, v.tgt_items) == [[13], [5]]
    assert csr_lists(te.hist_indptr, te.hist_items) == [[11, 12, 13], [4, 5]]
    assert csr_lists(te.tgt_indptr, te.tgt_items) == [[10], [4]]  # 4 repeats a history item
    assert v.mask_history and te.mask_history
    assert s.train.tolist() == [[0, 11, 1], [0, 12, 1], [1, 1, 1], [1, 2, 1], [3, 4, 1]]
    assert s.test.tolist() == [[0, 10, 1], [3, 4, 1]]
    assert s.sizes() == {"train": 5, "valid": 2, "test": 2, "valid_queries": 2,
                         "test_queries": 2}
    # No time: file order.
    s2 = make_split("loo", events_user=np.zeros(3, np.int64), events_item=np.array([2, 0, 1]),
                    n_users=1, n_items=3)
    assert s2.test_queries.tgt_items.tolist() == [1]


def random_events(seed: int, n_users: int = 60, n_items: int = 40, n: int = 700
                  ) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, 50, n))


def sequences_ref(u: np.ndarray, i: np.ndarray, t: np.ndarray, n_users: int
                  ) -> list[list[int]]:
    seq: list[list[tuple[int, int, int]]] = [[] for _ in range(n_users)]
    for k, (uu, ii, tt) in enumerate(zip(u.tolist(), i.tolist(), t.tolist(), strict=True)):
        seq[uu].append((tt, k, ii))
    return [[e[2] for e in sorted(s)] for s in seq]


@pytest.mark.parametrize("seed", range(3))
def test_loo_matches_reference(seed: int) -> None:
    n_users, n_items = 60, 40
    u, i, t = random_events(seed)
    s = make_split("loo", events_user=u, events_item=i, events_time=t, n_users=n_users,
                   n_items=n_items)
    seqs = sequences_ref(u, i, t, n_users)
    users = [x for x in range(n_users) if len(seqs[x]) >= 3]
    assert s.test_queries.users.tolist() == users
    assert csr_lists(*s.train_sequences) == [q[:-2] if len(q) >= 3 else q for q in seqs]
    te = s.test_queries
    assert csr_lists(te.hist_indptr, te.hist_items) == [seqs[x][:-1] for x in users]
    assert te.tgt_items.tolist() == [seqs[x][-1] for x in users]
    assert s.valid_queries.tgt_items.tolist() == [seqs[x][-2] for x in users]
    assert len(s.train) + len(s.valid) + len(s.test) == len(u)


@pytest.mark.parametrize("seed", range(3))
def test_user_split_matches_reference(seed: int) -> None:
    n_users, n_items = 60, 40
    u, i, t = random_events(seed, n=500)
    u[u == 5] = 6  # user 5 has no event: never shuffled in
    s = make_split("user-split", events_user=u, events_item=i, events_time=t, n_users=n_users,
                   n_items=n_items, seed=seed)
    again = make_split("user-split", events_user=u, events_item=i, events_time=t,
                       n_users=n_users, n_items=n_items, seed=seed)
    np.testing.assert_array_equal(s.test_queries.users, again.test_queries.users)
    seqs = sequences_ref(u, i, t, n_users)
    active = [x for x in range(n_users) if seqs[x]]
    train_users = sorted(set(s.train[:, 0].tolist()))
    vq, tq = s.valid_queries, s.test_queries
    assert len(train_users) == int(0.8 * len(active))
    assert not set(train_users) & (set(vq.users.tolist()) | set(tq.users.tolist()))
    assert not set(vq.users.tolist()) & set(tq.users.tolist())
    # Training sequences: the training users' whole sequences, nobody else's.
    assert csr_lists(*s.train_sequences) == [seqs[x] if x in train_users else []
                                             for x in range(n_users)]
    for q in (vq, tq):
        assert not q.mask_history
        assert all(len(seqs[x]) >= 2 for x in q.users.tolist())
        for j, x in enumerate(q.users.tolist()):
            k = max(1, int(len(seqs[x]) * 0.8))
            assert q.hist_items[q.hist_indptr[j] : q.hist_indptr[j + 1]].tolist() == seqs[x][:k]
            tg = q.tgt_items[q.tgt_indptr[j] : q.tgt_indptr[j + 1]].tolist()
            assert tg == sorted(set(seqs[x][k:]))
    held = set(range(n_users)) - set(train_users) - {5}
    dropped = held - set(vq.users.tolist()) - set(tq.users.tolist())
    assert all(len(seqs[x]) == 1 for x in dropped)
    assert len(vq) + len(tq) + len(dropped) == len(active) - len(train_users)
    masked = make_split("user-split", events_user=u, events_item=i, events_time=t,
                        n_users=n_users, n_items=n_items, seed=seed, mask_history=True)
    assert masked.test_queries.mask_history


@pytest.mark.parametrize("seed", range(3))
def test_cold_items(seed: int) -> None:
    n_users, n_items = 60, 40
    u, i, t = random_events(seed)
    i[i == 39] = 38  # item 39 has no event: never drawn cold
    s = make_split("cold-items", events_user=u, events_item=i, events_time=t,
                   n_users=n_users, n_items=n_items, seed=seed)
    active = np.unique(i)
    cold = set(np.union1d(s.valid_queries.tgt_items, s.test_queries.tgt_items).tolist())
    train_items = set(s.train[:, 1].tolist())
    assert len(cold) == int(0.1 * len(active))
    assert not cold & train_items and cold | train_items == set(active.tolist())
    seqs = sequences_ref(u, i, t, n_users)
    assert csr_lists(*s.train_sequences) == [[x for x in q if x not in cold] for q in seqs]
    vq, tq = s.valid_queries, s.test_queries
    assert len(vq) == (len(vq) + len(tq)) // 2
    assert not set(vq.users.tolist()) & set(tq.users.tolist())
    expected_users = sorted(x for x in range(n_users)
                            if set(seqs[x]) & cold and set(seqs[x]) - cold)
    assert sorted(vq.users.tolist() + tq.users.tolist()) == expected_users
    for q in (vq, tq):
        assert q.mask_history
        # the queries rank the cold items only (the new-item shelf)
        assert set(np.flatnonzero(q.candidates).tolist()) == cold
        for j, x in enumerate(q.users.tolist()):
            assert q.hist_items[q.hist_indptr[j] : q.hist_indptr[j + 1]].tolist() == [
                y for y in seqs[x] if y not in cold]
            assert q.tgt_items[q.tgt_indptr[j] : q.tgt_indptr[j + 1]].tolist() == sorted(
                set(seqs[x]) & cold)


def test_queries_history_padding_and_subset() -> None:
    q = Queries(users=[7, 8, 9], hist_indptr=[0, 3, 3, 4], hist_items=[1, 2, 3, 4],
                tgt_indptr=[0, 1, 2, 2], tgt_items=[5, 6])
    assert len(q) == 3
    np.testing.assert_array_equal(q.history(), [[1, 2, 3], [-1, -1, -1], [-1, -1, 4]])
    np.testing.assert_array_equal(q.history(slice(0, 3), max_len=2), [[2, 3], [-1, -1], [-1, 4]])
    np.testing.assert_array_equal(q.history(np.array([2, 0]), 5), [[-1, -1, 4], [1, 2, 3]])
    np.testing.assert_array_equal(q.history(np.array([1]), 5), [[-1]])  # at least one column
    assert q.history().dtype == np.int64
    sub = q.subset(np.array([2, 0]))
    assert sub.users.tolist() == [9, 7]
    assert csr_lists(sub.hist_indptr, sub.hist_items) == [[4], [1, 2, 3]]
    assert csr_lists(sub.tgt_indptr, sub.tgt_items) == [[], [5]]
    assert q.rows().tolist() == [[7, 5, 1], [8, 6, 1]]
    assert q.sizes() == {"queries": 3, "history": 4, "targets": 2}
    with pytest.raises(ValueError, match="CSR"):
        Queries([1], [0, 2], [1], [0, 0], [])
    empty = Queries.from_history([1, 2], [0, 1, 1], [3])
    assert len(empty) == 2 and len(empty.tgt_items) == 0


def test_make_split_errors() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        make_split("nope", ratings=rows20())
    with pytest.raises(ValueError, match="needs"):
        make_split("loo", ratings=rows20())
    with pytest.raises(ValueError, match="item ids"):
        make_split("loo", events_user=np.zeros(2, np.int64), events_item=np.array([0, 5]),
                   n_users=1, n_items=3)
    with pytest.raises(ValueError, match="mask_history"):
        make_split("loo", events_user=np.zeros(2, np.int64), events_item=np.zeros(2, np.int64),
                   n_users=1, n_items=1, mask_history=True)


def test_split_speed_sports_sized() -> None:
    # Amazon-Sports: ~300k events, 35.6k users, 18.4k items. Well under a second each.
    rng = np.random.default_rng(0)
    n, n_users, n_items = 300_000, 35_598, 18_357
    u, i, t = rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, 10**9, n)
    for protocol in ("loo", "user-split", "cold-items"):
        t0 = time.perf_counter()
        s = make_split(protocol, events_user=u, events_item=i, events_time=t, n_users=n_users,
                       n_items=n_items)
        assert time.perf_counter() - t0 < 1.0, protocol
        assert isinstance(s, Split) and len(s.test_queries) > 0
