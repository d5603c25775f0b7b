import numpy as np
import pytest

from kgrec.data.sampling import (
    PairSet,
    bernoulli_head_prob,
    corrupt_triples,
    sample_negatives,
    training_rows,
)
from kgrec.data.split import random_split, subsample


def test_pairset_membership():
    s = PairSet(np.array([0, 0, 2]), np.array([1, 3, 0]), 5)
    assert s.contains(np.array([0, 0, 2, 1]), np.array([1, 2, 0, 1])).tolist() == [
        True, False, True, False]
    assert s.row_counts(3).tolist() == [2, 0, 1]


def test_negatives_exclude_distinct_counts_and_determinism():
    rng = np.random.default_rng(0)
    n_users, n_items = 200, 50
    pu, pi = rng.integers(0, n_users, 3000), rng.integers(0, n_items, 3000)
    excl = PairSet(pu, pi, n_items)
    users = np.arange(n_users)
    counts = np.minimum(excl.row_counts(n_users), n_items - excl.row_counts(n_users))
    u, i = sample_negatives(users, counts, n_items, excl, np.random.default_rng(1))
    assert not excl.contains(u, i).any()
    assert np.bincount(u, minlength=n_users).tolist() == counts.tolist()
    assert len(np.unique(u * n_items + i)) == len(u)  # without replacement
    assert (np.diff(u) >= 0).all()  # grouped by user in input order
    _u2, i2 = sample_negatives(users, counts, n_items, excl, np.random.default_rng(1))
    assert np.array_equal(i, i2)
    _, i3 = sample_negatives(users, counts, n_items, excl, np.random.default_rng(2))
    assert not np.array_equal(i, i3)


def test_negatives_uniform_over_candidates():
    # one user, items 0..9, items 0 and 1 excluded: 8 candidates, 1 draw each time
    excl = PairSet(np.array([0, 0]), np.array([0, 1]), 10)
    rng = np.random.default_rng(0)
    draws = np.concatenate([
        sample_negatives(np.array([0]), np.array([1]), 10, excl, rng)[1] for _ in range(4000)
    ])
    freq = np.bincount(draws, minlength=10)
    assert freq[:2].sum() == 0
    # chi-square with 7 dof: 99.9% quantile is 24.3
    expected = 4000 / 8
    assert ((freq[2:] - expected) ** 2 / expected).sum() < 24.3


def test_negatives_user_with_few_candidates_gets_all():
    excl = PairSet(np.zeros(7, np.int64), np.arange(7), 10)
    _u, i = sample_negatives(np.array([0]), np.array([7]), 10, excl, np.random.default_rng(0))
    assert sorted(i.tolist()) == [7, 8, 9]


def test_corrupt_triples_one_side_and_filtered():
    rng = np.random.default_rng(0)
    kg = np.c_[rng.integers(0, 20, 300), rng.integers(0, 3, 300), rng.integers(0, 20, 300)]
    out = corrupt_triples(kg, 20, np.random.default_rng(1), n_relations=3)
    changed = (out != kg)
    assert not changed[:, 1].any()
    assert not (changed[:, 0] & changed[:, 2]).any()
    true = PairSet(kg[:, 0] * 3 + kg[:, 1], kg[:, 2], 20)
    assert not true.contains(out[:, 0] * 3 + out[:, 1], out[:, 2]).any()


def test_bernoulli_probabilities_on_toy_graph():
    # relation 0 is 1-N: head 0 has tails 1..4 (tph 4, hpt 1) -> p(head) = 4/5
    # relation 1 is N-1: heads 5..7 all point to 8 (tph 1, hpt 3) -> p(head) = 1/4
    kg = np.array([[0, 0, t] for t in range(1, 5)] + [[h, 1, 8] for h in range(5, 8)])
    p = bernoulli_head_prob(kg, 2)
    assert p == pytest.approx([0.8, 0.25])
    out = corrupt_triples(np.repeat(kg[:1], 10000, 0), 50, np.random.default_rng(0),
                          head_prob=p, n_relations=2, filter_true=False)
    assert abs((out[:, 0] != 0).mean() - 0.8 * 49 / 50) < 0.02


def test_training_rows_resample():
    train = np.array([[0, 1, 1], [0, 2, 1], [0, 5, 0], [1, 3, 1], [1, 7, 0]])
    excl = PairSet(np.array([0, 0, 1, 0]), np.array([1, 2, 3, 4]), 10)
    rows = training_rows(train, mode="resample", n_items=10, exclude=excl, seed=0)
    r0, r1 = rows(0), rows(1)
    for r in (r0, r1):
        pos, neg = r[r[:, 2] == 1], r[r[:, 2] == 0]
        assert pos.tolist() == [[0, 1, 1], [0, 2, 1], [1, 3, 1]]
        assert np.bincount(neg[:, 0]).tolist() == [2, 1]
        assert not excl.contains(neg[:, 0], neg[:, 1]).any()
    assert np.array_equal(rows(0), r0)
    assert training_rows(train)(3) is train or np.array_equal(training_rows(train)(3), train)


def test_random_split_proportions_disjoint_deterministic():
    rows = np.c_[np.arange(1003), np.arange(1003) % 7, np.arange(1003) % 2]
    sp = random_split(rows, seed=3)
    assert (len(sp.valid), len(sp.test)) == (200, 200) and len(sp.train) == 603
    ids = np.concatenate([sp.train[:, 0], sp.valid[:, 0], sp.test[:, 0]])
    assert sorted(ids.tolist()) == list(range(1003))
    assert np.array_equal(random_split(rows, seed=3).test, sp.test)
    assert not np.array_equal(random_split(rows, seed=4).test, sp.test)
    assert len(subsample(sp.train, 0.1, seed=0)) == 60
    with pytest.raises(ValueError):
        random_split(rows, ratios=(0.5, 0.5, 0.5))


def test_popularity_sampling_follows_item_p():
    from kgrec.data.sampling import PairSet, sample_negatives

    n_items, n_users = 6, 20000
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    users = np.arange(n_users)
    excl = PairSet(users, np.zeros(n_users, np.int64), n_items)  # item 0 seen by everyone
    want = p[1:] / p[1:].sum()
    for rounds in (8, 0):  # the draw rounds, and the exact exponential-race fallback
        _, items = sample_negatives(users, np.ones(n_users, np.int64), n_items, excl,
                                    np.random.default_rng(0), item_p=p, max_rounds=rounds)
        assert not (items == 0).any()
        freq = np.bincount(items, minlength=n_items)[1:] / n_users
        np.testing.assert_allclose(freq, want, atol=0.015)


def test_low_ratings_first_then_uniform():
    from kgrec.data.sampling import PairSet, training_rows

    train = np.array([[0, 0, 1], [0, 1, 1], [0, 2, 1], [1, 3, 1]])
    low = np.array([[0, 5], [0, 6], [1, 7], [2, 8]])  # user 2 has no positive: ignored
    excl = PairSet(train[:, 0], train[:, 1], 10)
    rows = training_rows(train, mode="resample", n_items=10, exclude=excl, seed=0,
                         sampling="low-ratings", low_ratings=low)(0)
    neg = rows[rows[:, 2] == 0]
    u0 = set(neg[neg[:, 0] == 0, 1].tolist())
    assert len(u0) == 3 and {5, 6} <= u0 and not u0 & {0, 1, 2}
    assert neg[neg[:, 0] == 1, 1].tolist() == [7]
    assert 2 not in neg[:, 0]


def test_held_out_low_ratings_are_not_trained_on(tmp_path, tiny_dataset):
    import dataclasses

    from kgrec.experiments.run import RunConfig, _train_low_ratings, prepare_data

    ds = tiny_dataset
    cfg = RunConfig(protocol="loo")
    _, split = prepare_data(cfg, ds)
    q = split.test_queries
    pos, items = q.target_pairs()
    held = np.c_[q.users[pos], items][:5]
    ds2 = dataclasses.replace(ds, known_negatives=np.r_[held, [[0, 1]]])
    kept = _train_low_ratings(ds2, split)
    assert not {tuple(r) for r in held.tolist()} & {tuple(r) for r in kept.tolist()}


def test_negatives_only_from_candidate_items():
    """With ``candidates``, negatives come from those items only (cold items stay out of
    training), still distinct per user and outside ``exclude``; a user short of candidates
    gets all there are."""
    from kgrec.data.sampling import PairSet, sample_negatives, training_rows

    n_items = 30
    cand = np.zeros(n_items, bool)
    cand[:12] = True
    excl = PairSet(np.array([0, 0, 1]), np.array([0, 1, 2]), n_items)
    users, counts = np.array([0, 1, 2]), np.array([5, 11, 40])
    for item_p in (None, np.linspace(1, 2, n_items)):
        su, si = sample_negatives(users, counts, n_items, excl, np.random.default_rng(3),
                                  item_p=item_p, candidates=cand)
        assert cand[si].all() and not excl.contains(su, si).any()
        assert np.bincount(su, minlength=3).tolist() == [5, 11, 12]  # user 2: all 12
        for u in range(3):
            assert len(set(si[su == u])) == (su == u).sum()
    train = np.array([[0, 0, 1], [0, 1, 1], [1, 2, 1], [1, 3, 1]])
    rows = training_rows(train, mode="resample", n_items=n_items, exclude=excl, seed=0,
                         sampling="low-ratings", candidates=cand,
                         low_ratings=np.array([[0, 20], [1, 5]]))(0)
    neg = rows[rows[:, 2] == 0]
    assert len(neg) == 4 and cand[neg[:, 1]].all()  # the low rating on cold item 20 is not
    assert [1, 5] in neg[:, :2].tolist()  # the one on item 5 is
