"""Closed testing of "among the best" and the level that decides each verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from msabench.multiplicity import best_set, decision_level, holm


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
    assert q <= got.level[2] and got.level[2] == pytest.approx(0.05 * q / got.p_adj[2])


def test_decision_level_makes_intervals_agree_with_holm():
    p = np.array([0.03, 0.04])
    adj = holm(p)
    assert adj.tolist() == pytest.approx([0.06, 0.06])
    for raw, a in zip(p, adj):
        level = decision_level(raw, a, 0.05)
        assert (raw <= level) == (a <= 0.05)  # neither is significant, so neither interval excludes 0
    assert decision_level(0.0, 0.0, 0.05, m=4) == pytest.approx(0.0125)
