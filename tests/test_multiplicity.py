"""Closed testing of "among the best" and the level that decides each verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from msabench.multiplicity import best_set, holm, holm_levels


def _brute(p: np.ndarray, alpha: float) -> np.ndarray:
    """Reject H_i (i is among the best) when every set S containing i is rejected by Bonferroni over |S|(m-1)."""
    m = p.shape[0]
    off = np.where(np.eye(m, dtype=bool), np.inf, p)
    q = off.min(axis=0)
    worse = np.zeros(m, bool)
    for i in range(m):
        worse[i] = all(min(q[list(s)]) <= alpha / (len(s) * (m - 1))
                       for r in range(1, m + 1) for s in itertools.combinations(range(m), r) if i in s)
    return worse


def test_best_set_is_the_closed_test():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(2, 7))
        p = rng.uniform(0, 1, (m, m)) ** rng.uniform(1, 8)
        got = best_set(p, 0.05)
        assert (got.worse == _brute(p, 0.05)).all()
        assert ((got.p_adj <= 0.05) == got.worse).all()
        q = np.where(np.eye(m, dtype=bool), np.inf, p).min(axis=0)
        assert ((q <= got.level) == got.worse).all()  # each row decided at its level
        for i in range(m):  # the level is the largest q_i still declared worse, the others' q fixed
            column = p[:, i] / q[i] if q[i] > 0 else p[:, i]
            for x, expect in ((got.level[i], True), (got.level[i] * 1.0001, False)):
                moved = p.copy()
                moved[:, i] = column * x if q[i] > 0 else np.maximum(p[:, i], x)
                assert _brute(moved, 0.05)[i] == expect or got.level[i] >= 0.05 / (m - 1), (i, x)


def test_family_wise_error_under_the_complete_null():
    """All models equal: P(any model called worse) <= alpha, at 3 and 8 models (z tests, known variance)."""
    rng = np.random.default_rng(1)
    for m in (3, 8):
        reps, bad = 3000, 0
        for _ in range(reps):
            x = rng.normal(size=m)
            z = (x[:, None] - x[None, :]) / np.sqrt(2.0)  # z[j, i]: j better than i
            bad += best_set(sps.norm.sf(z), 0.05).worse.any()
        assert bad <= sps.binom.ppf(0.999, reps, 0.05), m


def test_a_clearly_worse_model_is_worse_and_its_level_decides():
    x = np.array([0.0, -0.1, -8.0, 0.2])
    z = (x[:, None] - x[None, :]) / np.sqrt(2.0)
    got = best_set(sps.norm.sf(z), 0.05)
    assert got.worse.tolist() == [False, False, True, False] and got.rival[2] == 3
    q = sps.norm.sf(z)[3, 2]
    assert q <= got.level[2] and got.level[2] == pytest.approx(0.05 / 3 / 4)  # all 4 tied: 4 x (m - 1) tests
    assert got.level[0] < sps.norm.sf(z)[3, 0] and got.level[0] == pytest.approx(0.05 / 3 / 3)  # sets with 2 fall


def test_holm_levels_decide_exactly_as_holm():
    """p <= its level exactly when Holm rejects, whatever the others, early stops and ties included."""
    p = np.array([0.03, 0.04])
    assert holm(p).tolist() == pytest.approx([0.06, 0.06])
    assert holm_levels(p, 0.05).tolist() == pytest.approx([0.025, 0.025])  # neither interval excludes 0
    rng = np.random.default_rng(3)
    for _ in range(2000):
        m = int(rng.integers(1, 7))
        raw = rng.uniform(0, 1, m) ** rng.uniform(1, 6)
        if rng.uniform() < 0.2:
            raw[rng.integers(m)] = raw[0]  # ties
        levels = holm_levels(raw, 0.05)
        assert ((raw <= levels) == (holm(raw) <= 0.05)).all(), raw
        assert ((levels >= 0.05 / m - 1e-15) & (levels <= 0.05)).all()
    assert np.isnan(holm_levels([0.01, np.nan], 0.05)[1]) and holm_levels([0.01, np.nan], 0.05)[0] == 0.05
