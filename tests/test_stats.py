import math

import numpy as np
import pytest
from scipy import stats

from kgrec.eval.stats import mean_std, paired_ttest, relative_diff


def test_paired_ttest_by_hand_and_against_scipy():
    a = [0.80, 0.82, 0.81]
    b = [0.79, 0.80, 0.80]
    # d = [0.01, 0.02, 0.01]: mean 0.04/3, sd = sqrt(((1/3)^2*2 + (2/3)^2) * 1e-4 / 2)
    d_mean = 0.04 / 3
    sd = math.sqrt(((0.01 - d_mean) ** 2 * 2 + (0.02 - d_mean) ** 2) / 2)
    t_hand = d_mean / (sd / math.sqrt(3))
    t, p = paired_ttest(a, b)
    assert t == pytest.approx(t_hand)
    assert t == pytest.approx(4.0)
    ref = stats.ttest_rel(a, b)
    assert p == pytest.approx(ref.pvalue)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=7), rng.normal(size=7)
    assert paired_ttest(x, y) == pytest.approx(tuple(stats.ttest_rel(x, y))[:2])


def test_paired_ttest_degenerate_cases():
    assert all(math.isnan(v) for v in paired_ttest([0.5], [0.4]))
    assert paired_ttest([0.5, 0.6], [0.5, 0.6]) == (0.0, 1.0)
    t, p = paired_ttest([0.6, 0.7], [0.5, 0.6])  # a constant, non-zero difference
    assert t == math.inf and p == 0.0


def test_mean_std_and_relative_diff():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    assert relative_diff(0.8, 0.5) == pytest.approx(0.6)
    assert math.isnan(relative_diff(1.0, 0.0))
