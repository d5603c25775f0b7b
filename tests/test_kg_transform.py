import numpy as np
import pytest

from kgrec.data.kg_transform import shuffle_tails, subsample_kg


def _kg():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, 50, 200), rng.integers(0, 4, 200),
                     rng.integers(0, 50, 200)], 1)


def test_shuffle_tails_keeps_heads_relations_and_tail_multiset_per_relation():
    kg = _kg()
    s = shuffle_tails(kg, seed=3)
    assert np.array_equal(s[:, :2], kg[:, :2])
    for r in range(4):
        assert sorted(s[kg[:, 1] == r, 2]) == sorted(kg[kg[:, 1] == r, 2])
    assert (s[:, 2] != kg[:, 2]).mean() > 0.5  # the facts are actually destroyed
    assert np.array_equal(s, shuffle_tails(kg, seed=3))
    assert np.array_equal(kg, _kg())  # input untouched


def test_subsample_kg():
    kg = _kg()
    half = subsample_kg(kg, 0.5, seed=1)
    assert len(half) == 100
    # a subset, in the original order
    keys = kg[:, 0] * 10**6 + kg[:, 1] * 10**3 + kg[:, 2]
    assert np.isin(half[:, 0] * 10**6 + half[:, 1] * 10**3 + half[:, 2], keys).all()
    assert len(subsample_kg(kg, 0.0)) == 0
    assert subsample_kg(kg, 1.0) is not None and len(subsample_kg(kg, 1.0)) == 200
    with pytest.raises(ValueError):
        subsample_kg(kg, 1.5)


def test_run_applies_kg_ablations():
    from kgrec.experiments.run import RunConfig, prepare_data

    full, _ = prepare_data(RunConfig(dataset="synthetic"))
    none, _ = prepare_data(RunConfig(dataset="synthetic", kg_ratio=0.0))
    shuf, _ = prepare_data(RunConfig(dataset="synthetic", kg_shuffle=True))
    assert len(none.kg) == 0 and len(shuf.kg) == len(full.kg)
    assert np.array_equal(none.ratings, full.ratings)
    assert len({full.checksum, none.checksum, shuf.checksum}) == 3
