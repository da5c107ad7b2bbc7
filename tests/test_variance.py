"""The kappa-calibrated paired test: its size, its coherence, ties, and the board's pool."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.integrate import quad

from msabench.variance import LEVELS, Variance, critical_value, kappa, null_tail, prior


def _size(lam: float, kap: float, nu: float, level: float) -> float:
    """P(reject) at true retraining share lam, integrated over the chi-square law by scipy's quad."""

    def integrand(w):
        est = kap * lam * w
        share = 1.0 if 1.0 - lam == 0 else est / (est + 1.0 - lam)
        c = critical_value(share, level, nu)
        return 2.0 * sps.norm.sf(c * math.sqrt(lam * w + 1.0 - lam)) * sps.chi2.pdf(w * nu, nu) * nu

    return quad(integrand, 0.0, 1.0, limit=200, points=[1e-6, 1e-3, 0.1])[0] + quad(integrand, 1.0, np.inf, limit=200)[0]


@pytest.mark.parametrize("nu,level", [(1.0, 0.05), (2.0, 0.05), (2.0, 0.01)])
def test_kappa_makes_the_worst_case_size_the_level(nu, level):
    kap = kappa(nu, level)
    assert 1.0 < kap < math.inf
    lams = 1.0 / (1.0 + np.exp(-np.linspace(-4.0, 12.0, 25)))
    sizes = np.array([_size(lam, kap, nu, level) for lam in lams])
    assert sizes.max() <= level * 1.003  # valid at every share (0.1% tolerance of the solver, and quad's error)
    assert sizes.max() >= level * 0.97  # and not far from it: kappa is the smallest that works
    smaller = np.array([_size(lam, kap / 3.0, nu, level) for lam in lams])
    assert smaller.max() > level * 1.01  # a third of kappa breaks the level somewhere


def test_kappa_shrinks_with_degrees_of_freedom_and_grows_at_small_levels():
    at = [kappa(nu, 0.05) for nu in (1.0, 2.0, 4.0, 9.0, 60.0)]
    assert all(x > y for x, y in zip(at, at[1:])) and at[-1] < 1.2
    assert kappa(2.0, 0.001) > kappa(2.0, 0.01) > kappa(2.0, 0.05)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_size_by_simulation(k):
    """Under the null, at any retraining share, p <= 0.05 at most 5% of the time (binomial bound)."""
    rng = np.random.default_rng(k)
    nu = k - 1
    for lam in (0.1, 0.75, 0.99):
        z = rng.normal(size=3000)
        w = rng.chisquare(nu, 3000) / nu
        p = np.array([Variance(lam * wi, 1.0 - lam, float(nu)).p_value(zi) for zi, wi in zip(z, w)])
        assert (p <= 0.05).sum() <= sps.binom.ppf(0.999, 3000, 0.05), (k, lam)
        assert (p <= 0.01).sum() <= sps.binom.ppf(0.999, 3000, 0.01), (k, lam)


def test_p_value_critical_value_and_interval_agree():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(300):
        nu = float(rng.choice([1.0, 2.0, 4.0, 9.0, 30.5]))
        v = Variance(float(rng.exponential(1e-4)), float(rng.exponential(1e-4)), nu)
        diff = float(rng.normal(0.0, 3.0 * v.se))
        p = v.p_value(diff)
        for level in (*rng.choice(LEVELS, 3), float(rng.uniform(1e-4, 0.3))):
            lo, hi = v.interval(diff, float(level))
            if abs(p - level) < 1e-9:
                continue
            assert (p <= level) == (lo > 0 or hi < 0), (v, diff, p, level)
            assert (p <= level) == (abs(diff) / v.se > v.critical(float(level)))
            checked += 1
    assert checked > 1000


def test_ties_take_retraining_share_one():
    """Equal seed-level differences (var 0) with differing predictions: Student's t on the item se, not the normal."""
    v = Variance(0.0, 0.0025, 2.0)
    assert v.p_value(0.1) == pytest.approx(2 * sps.t.sf(2.0, 2))
    assert Variance(0.0, 0.0, 2.0).p_value(0.0) == 1.0 and Variance(0.0, 0.0, 2.0).p_value(0.1) == 0.0
    assert float(null_tail(2.0, 1.0, 2.0)) == pytest.approx(2 * sps.t.sf(2.0, 2))


def _board(rng, sds, k):
    return {f"m{i}": rng.normal(0.0, sd, k) for i, sd in enumerate(sds)}


def test_prior_fades_when_models_disagree():
    rng = np.random.default_rng(3)
    same = prior(_board(rng, [0.01] * 40, 3))
    assert same is not None and same.s2 == pytest.approx(2 * 0.01**2, rel=0.3)  # a pair's: twice one model's
    spread = prior(_board(rng, np.geomspace(0.001, 0.1, 40), 3))
    assert spread is None or spread.df < min(3, same.df)  # a 1:100 spread: little or no pooling
    assert prior(_board(rng, [0.01] * 3, 3)) is None  # too few models
    assert prior(_board(rng, [0.01] * 6, 1)) is None  # one seed: nothing to pool


def _pooled_board_trials(rng, draw_sds, reps, level, gain=0.0, k=3, m=8, items=0.006**2):
    """Boards of m models with true seed SDs from `draw_sds`; the pair of the two largest SDs tested with
    the pooled variance and with its own seeds. Returns (pooled rejections, own rejections, trials)."""
    pooled = own = n = 0
    for _ in range(reps):
        sds = draw_sds(rng, m)
        seeds = {f"m{i}": rng.normal(0.0, sd, k) for i, sd in enumerate(sds)}
        pr = prior(seeds)
        a, b = (f"m{i}" for i in np.argsort(sds)[-2:])
        d = seeds[a] - seeds[b]
        v = Variance(float(np.var(d, ddof=1)) / k, items, float(k - 1))
        observed = float(d.mean() + rng.normal(0.0, math.sqrt(items))) + gain
        moderated = v.moderated(pr, k) if pr is not None and not {a, b} & set(pr.outliers) else v
        pooled += moderated.p_value(observed) <= level
        own += v.p_value(observed) <= level
        n += 1
    return pooled, own, n


def _iqr_spread(rng, m):  # models' seed SDs with quartiles 0.008 and 0.020, as the committed runs show
    return np.exp(rng.normal(math.log(0.0126), math.log(0.020 / 0.008) / (2 * 0.6745), m))


def _one_to_four(rng, m):
    return np.exp(rng.uniform(math.log(0.0059), math.log(0.0236), m))


@pytest.mark.parametrize("draw", [_iqr_spread, _one_to_four])
def test_pooled_test_holds_its_level_for_the_noisiest_pair(draw):
    """Shrinking towards the board's variance underestimates the noisiest pair's; the pooled test is
    calibrated for pairs up to the prior's upper quantile, so even the pair of the two largest true SDs
    of 8 models keeps the level."""
    rng = np.random.default_rng(4)
    pooled, _, n = _pooled_board_trials(rng, draw, 400, 0.05)
    assert pooled <= sps.binom.ppf(0.99, n, 0.05), (pooled, n)


def test_pool_buys_power_where_closed_testing_needs_it():
    """At the small levels a 15-model board's closed testing decides at, 2 df of a pair's own seeds detect
    almost nothing; the board's degrees of freedom do."""
    rng = np.random.default_rng(5)
    pooled, own, n = _pooled_board_trials(rng, lambda r, m: np.full(m, 0.0118), 150, 0.002, gain=0.06)
    assert pooled > own + 0.2 * n, (pooled, own, n)


def test_pooled_calibration_holds_at_its_worst_pair_and_not_beyond():
    """Direct Monte Carlo of the moderated statistic for a pair `ratio` times the board's centre."""
    from msabench.variance import calibrate_pooled, critical_value, grid_df

    rng = np.random.default_rng(6)
    nu, d0, centre_df, ratio, level, n = 2.0, 14.0, 7.0, 2.0, 0.05, 200_000
    scale, kap = calibrate_pooled(nu, d0, centre_df, ratio, level)
    df = grid_df(nu + d0)

    def size(r, lam):
        u = rng.chisquare(centre_df, n) / centre_df
        w = rng.chisquare(nu, n) / nu
        est = scale * lam * (d0 * u / r + nu * w) / (d0 + nu)  # the scaled moderated retraining part
        share = kap * est / (kap * est + 1.0 - lam)
        grid, where = np.unique(np.round(share, 3), return_inverse=True)
        crit = np.array([critical_value(float(s), level, df) for s in grid])[where]
        return np.mean(np.abs(rng.normal(size=n)) > crit * np.sqrt(est + 1.0 - lam))

    for lam in (0.3, 0.8, 0.99):
        assert size(ratio, lam) <= level + 3 * math.sqrt(level * 0.95 / n)
    assert size(4 * ratio, 0.99) > level + 5 * math.sqrt(level * 0.95 / n)  # beyond it: too liberal


def test_pool_is_declined_where_it_would_widen_the_boards_intervals():
    """With a prior of 1 df (the models' seed variances disagree wildly) the calibration for the noisiest
    pairs widens the typical interval more than the pool's degrees of freedom narrow it; with more it pays."""
    from msabench.variance import Prior, Variance

    def width(pr, x):  # interval widths of pairs whose own estimate is x times the centre
        pooled = pr.variance(1.0, 0.0, pr.nu).critical(0.0125) * np.sqrt((pr.df + pr.nu * x) / (pr.df + pr.nu))
        return pooled, Variance(1.0, 0.0, pr.nu).critical(0.0125) * np.sqrt(x)

    rng = np.random.default_rng(7)
    for df, expect in ((1.0, False), (2.0, True), (8.0, True)):
        ratio = df / float(sps.chi2.ppf(0.1, df))
        pr = Prior(1.0, df, 9, 36, 2.0, 7.0, ratio)
        x = (df / rng.chisquare(df, 200_000)) * rng.chisquare(2.0, 200_000) / 2.0  # true spread x own noise
        pooled, own = width(pr, x)
        assert pr.helps(0.0125) is expect
        assert (float(np.mean(np.log(pooled / own))) < 0) is expect  # Monte Carlo agrees with the quadrature
    wild = prior(_board(rng, np.geomspace(0.002, 0.06, 9), 3))  # 1:30 spread, as MMSA's models on SIMS
    assert wild is None or wild.df >= 2
