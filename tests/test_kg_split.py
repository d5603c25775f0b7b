import numpy as np
import pytest

from kgrec.data.kg_split import split_triples


def _graph(seed=0, n=3000, n_e=1500, n_r=7):
    rng = np.random.default_rng(seed)
    # a skewed graph: many entities occur once or twice
    h = np.minimum(rng.zipf(1.6, n) - 1, n_e - 1)
    t = rng.integers(0, n_e, n)
    r = np.minimum(rng.zipf(2.0, n) - 1, n_r - 1)
    kg = np.c_[h, r, t]
    return kg[np.sort(np.unique(kg, axis=0, return_index=True)[1])]  # distinct, random order


def _rows(a):
    return sorted(map(tuple, a.tolist()))


def test_every_held_out_entity_and_relation_is_in_train():
    kg = _graph()
    s = split_triples(kg, seed=0)
    assert _rows(np.r_[s.train, s.valid, s.test]) == _rows(kg)
    seen_e = set(s.train[:, 0]) | set(s.train[:, 2])
    seen_r = set(s.train[:, 1])
    for part in (s.valid, s.test):
        assert set(part[:, 0]) <= seen_e and set(part[:, 2]) <= seen_e
        assert set(part[:, 1]) <= seen_r
    # something had to move, but most held-out triples stay held out
    held, drawn = len(s.valid) + len(s.test), 2 * int(len(kg) * 0.1)
    assert 0.6 * drawn < held < drawn


def test_deterministic_per_seed_and_order_kept():
    kg = _graph()
    a, b, c = (split_triples(kg, seed=s) for s in (3, 3, 4))
    for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.test, c.test)
    # rows keep their original order inside each part
    pos = {tuple(row): k for k, row in enumerate(kg.tolist())}
    idx = [pos[tuple(row)] for row in a.test.tolist()]
    assert idx == sorted(idx)


def test_dense_graph_keeps_exact_sizes_and_moves_only_what_is_needed():
    rng = np.random.default_rng(1)
    kg = np.unique(np.c_[rng.integers(0, 20, 2000), rng.integers(0, 2, 2000),
                         rng.integers(0, 20, 2000)], axis=0)
    s = split_triples(kg, (0.7, 0.2, 0.1), seed=0)
    assert len(s.valid) == int(len(kg) * 0.2) and len(s.test) == int(len(kg) * 0.1)
    # repeated triples are kept once, so none is both trained on and held out: here both
    # unique triples are needed in training to cover their entities
    dup = np.array([[0, 0, 1], [0, 0, 1], [2, 1, 3], [2, 1, 3]])
    for seed in range(5):
        s = split_triples(dup, (0.0, 0.5, 0.5), seed=seed)
        assert _rows(s.train) == [(0, 0, 1), (2, 1, 3)]
        assert len(s.valid) == len(s.test) == 0


def test_bad_ratios():
    with pytest.raises(ValueError, match="ratios"):
        split_triples(_graph(), (0.5, 0.2, 0.2))
    empty = split_triples(np.zeros((0, 3), np.int64))
    assert empty.sizes() == {"train": 0, "valid": 0, "test": 0}
