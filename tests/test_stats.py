"""msabench.stats against independent computations: metrics.compute on repeated data,
scikit-learn, scipy (bootstrap, binomtest, friedmanchisquare, ttest_ind), exact
enumeration and literal implementations of each test's definition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score

from msabench import metrics as M
from msabench import resampling as R
from msabench import stats as St
from msabench.variance import LEVELS, Variance, kappa, null_tail
from msabench.errors import MsabenchError

SIMS_SPECIAL = np.array([-1.5, -1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 1.5])


def same(x, y, tol=1e-12):
    """Equal within tol, nan equal to nan."""
    x, y = float(x), float(y)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= tol


def mosi_data(rng, n_strata, n):
    """Ties, zero labels, exact .5 values (round half to even), out-of-range values."""
    y = rng.choice(np.arange(-3.6, 3.61, 0.2).round(1), size=n)
    y[rng.random(n) < 0.15] = 0.0
    y[:4] = [2.5, -2.5, 0.5, 3.4]
    y = np.tile(y, (n_strata, 1))
    p = rng.normal(y, 1.2).round(1)
    p[:, 4:8] = [0.0, 1.5, -0.5, -3.5]
    p[0, 8:12] = p[0, 12:16]  # ties between items
    return p, y


def sims_data(rng, n_strata, n):
    y = rng.choice(SIMS_SPECIAL, size=n)
    y[n // 2 :] = rng.uniform(-1.2, 1.2, n - n // 2).round(1)
    y = np.tile(y, (n_strata, 1))
    p = rng.choice(SIMS_SPECIAL, size=(n_strata, n))
    p[:, n // 3 :] = rng.uniform(-1.3, 1.3, (n_strata, n - n // 3)).round(2)
    return p, y


DATA = {"mosi": mosi_data, "sims": sims_data}


# ------------------------------------------------------------------------ stratum_metrics


@pytest.mark.parametrize("kind", ["mosi", "sims"])
def test_stratum_metrics_equals_compute_per_stratum(kind):
    rng = np.random.default_rng(0)
    p, y = DATA[kind](rng, 5, 120)
    y = y.copy()
    y[1] = rng.permutation(y[1])  # labels differing across strata
    y[2] = 0.0  # Non0 undefined; Corr undefined (constant label)
    p[3] = 0.7  # constant prediction: Corr undefined
    p[4] = np.abs(p[4]) + 0.1  # a single predicted class for the binary metrics
    y[4] = np.abs(y[4])
    got = R.stratum_metrics(p, y, kind)
    assert list(got) == list(M.METRICS[kind])
    for s in range(p.shape[0]):
        ref = M.compute(p[s], y[s], kind)
        for m, v in ref.items():
            assert got[m].shape == (p.shape[0],)
            assert same(got[m][s], v), (kind, s, m, got[m][s], v)
    assert np.isnan(got["Corr"][2]) and np.isnan(got["Corr"][3])
    if kind == "mosi":
        assert np.isnan(got["Non0_acc_2"][2])


@pytest.mark.parametrize("kind", ["mosi", "sims"])
def test_stratum_metrics_on_resamples_equals_brute_force(kind):
    rng = np.random.default_rng(1)
    n = 60
    p, y = DATA[kind](rng, 3, n)
    counts = R.resample_counts(n, 40, seed=3)
    extra = np.zeros((4, n), dtype=counts.dtype)
    extra[0, 5] = n  # one item only: Corr undefined
    extra[1, [0, 1]] = 7  # two items
    zero_label = np.flatnonzero(y[0] == 0)
    if zero_label.size:
        extra[2, zero_label] = 3  # only zero labels: Non0 undefined
    else:
        extra[2, 0] = 1
    extra[3] = 1 + (np.arange(n) % 3)  # uneven weights whose total is not n
    counts = np.vstack([counts, extra])
    got = R.stratum_metrics(p, y, kind, counts=counts)
    assert got["MAE"].shape == (counts.shape[0], 3)
    pc, yc = (np.clip(p, -1, 1), np.clip(y, -1, 1)) if kind == "sims" else (p, y)
    f1_name = "F1_score" if kind == "sims" else "Has0_F1_score"
    for r in range(counts.shape[0]):
        for s in range(3):
            pr, yr = np.repeat(p[s], counts[r]), np.repeat(y[s], counts[r])
            ref = M.compute(pr, yr, kind)
            for m, v in ref.items():
                assert same(got[m][r, s], v), (kind, r, s, m, got[m][r, s], v)
        if r < 40:  # random rows: also against scikit-learn and scipy directly
            s = r % 3
            pr, yr = np.repeat(pc[s], counts[r]), np.repeat(yc[s], counts[r])
            if kind == "sims":
                sk = f1_score(yr > 0, pr > 0, average="weighted")
            else:
                sk = f1_score(yr >= 0, pr >= 0, average="weighted")
            assert same(got[f1_name][r, s], sk)
            assert same(got["Corr"][r, s], sps.pearsonr(pr, yr).statistic, 1e-12)
    assert np.isnan(got["Corr"][40]).all()


def test_resample_counts_is_a_multinomial_bootstrap():
    c = R.resample_counts(50, 4000, seed=7)
    assert c.shape == (4000, 50) and np.issubdtype(c.dtype, np.integer)
    assert (c.sum(1) == 50).all() and (c >= 0).all()
    assert np.array_equal(c, R.resample_counts(50, 4000, seed=7))
    assert not np.array_equal(c, R.resample_counts(50, 4000, seed=8))
    # Multinomial(n, 1/n): each count has mean 1 and variance 1 - 1/n; items uncorrelated.
    assert abs(c.mean() - 1.0) < 1e-12
    assert abs(c.var(axis=0).mean() - (1 - 1 / 50)) < 0.03
    assert abs(np.corrcoef(c[:, 0], c[:, 1])[0, 1] + 1 / 49) < 0.05
    # Rows are distinct draws, and the first rows do not depend on how many are asked for.
    assert np.array_equal(R.resample_counts(50, 10, seed=7), c[:10])


def test_stratum_metrics_rejects_bad_input():
    with pytest.raises(MsabenchError):
        R.stratum_metrics(np.zeros((2, 3)), np.zeros((2, 4)), "mosi")
    with pytest.raises(MsabenchError):
        R.stratum_metrics(np.zeros((2, 3)), np.zeros((2, 3)), "mosei")
    with pytest.raises(MsabenchError):
        R.stratum_metrics(np.zeros((2, 3)), np.zeros((2, 3)), "mosi", counts=np.ones((4, 5)))
    with pytest.raises(MsabenchError):
        R.stratum_metrics(np.array([[0.0, np.nan]]), np.zeros((1, 2)), "mosi")


# ------------------------------------------------------------------------ paired_bootstrap


def models(rng, n_seeds, n_cond, n, shift=0.0):
    """Two models on the same items: strata ordered seed-major."""
    y = np.tile(rng.uniform(-3, 3, n).round(1), (n_seeds * n_cond, 1))
    a = y + rng.normal(0, 1.0, y.shape)
    b = y + rng.normal(shift, 1.0, y.shape)
    seeds = np.repeat(np.arange(n_seeds) + 11, n_cond)
    return a, b, y, seeds


@pytest.mark.parametrize("kind", ["mosi", "sims"])
def test_model_against_itself(kind):
    rng = np.random.default_rng(2)
    for n_seeds in (1, 3):
        a, _, y, seeds = models(rng, n_seeds, 2, 80)
        if kind == "sims":
            a, y = a / 3, y / 3
        res = St.paired_bootstrap(a, a.copy(), y, seeds, kind, n_resamples=300)
        assert list(res) == list(M.METRICS[kind])
        for c in res.values():
            assert c.diff == 0 and c.p == 1.0 and c.p_items == 1.0 and c.better == ""
            assert c.ci_diff[0] <= 0 <= c.ci_diff[1]
            assert c.ci_a == c.ci_b and c.ci_a[0] <= c.a <= c.ci_a[1]


def test_swapping_models_negates_diff_and_keeps_p():
    rng = np.random.default_rng(3)
    a, b, y, seeds = models(rng, 3, 2, 100, shift=0.2)
    ab = St.paired_bootstrap(a, b, y, seeds, "mosi", n_resamples=500, seed=5)
    ba = St.paired_bootstrap(b, a, y, seeds, "mosi", n_resamples=500, seed=5)
    for m in M.MOSI_METRICS:
        x, z = ab[m], ba[m]
        assert x.diff == pytest.approx(-z.diff, abs=1e-15)
        assert x.p == pytest.approx(z.p, rel=1e-9) and x.p_items == pytest.approx(z.p_items, rel=1e-9)
        assert x.se == pytest.approx(z.se, rel=1e-9)
        assert x.ci_diff[0] == pytest.approx(-z.ci_diff[1]) and x.ci_a == z.ci_b
        assert {x.better, z.better} == ({"a", "b"} if x.diff else {""})


def test_one_seed_mae_se_matches_scipy_bootstrap():
    rng = np.random.default_rng(4)
    a, b, y, seeds = models(rng, 1, 1, 300, shift=0.1)
    res = St.paired_bootstrap(a, b, y, seeds, "mosi", n_resamples=5000, seed=1)["MAE"]
    d = np.abs(a[0] - y[0]) - np.abs(b[0] - y[0])
    ref = sps.bootstrap((d,), np.mean, n_resamples=5000, rng=np.random.default_rng(9)).standard_error
    assert res.se_items == pytest.approx(ref, rel=0.10)
    assert res.diff == pytest.approx(d.mean(), abs=1e-12)
    # One seed: no seed term, normal CI, p is the centred bootstrap p.
    assert math.isnan(res.se_seeds) and res.se == res.se_items and res.df == math.inf
    assert res.p == res.p_items
    z = sps.norm.ppf(0.975)
    assert res.ci_diff == pytest.approx((res.diff - z * res.se, res.diff + z * res.se))
    assert math.isnan(res.seed_a[1]) and res.n_seeds == 1 and res.n_items == 300
    # The centred p, recomputed from the same resamples by hand.
    counts = R.resample_counts(300, 5000, seed=1)
    boot = counts @ d / 300
    p_ref = (1 + np.sum(np.abs(boot - d.mean()) >= abs(d.mean()))) / 5001
    assert res.p_items == pytest.approx(p_ref)
    assert res.se_items == pytest.approx(np.std(boot, ddof=1), rel=1e-9)


def test_several_seeds_variance_terms_match_independent_computation():
    rng = np.random.default_rng(5)
    n_seeds, n_cond = 4, 3
    a, b, y, seeds = models(rng, n_seeds, n_cond, 150, shift=0.05)
    a[seeds == 12] += 1.0  # training noise: one seed is off
    res = St.paired_bootstrap(a, b, y, seeds, "mosi", n_resamples=800, seed=2)
    counts = R.resample_counts(150, 800, seed=2)
    for m in ("Has0_acc_2", "Mult_acc_7", "MAE", "Corr"):
        per_a = np.array([M.compute(a[s], y[s])[m] for s in range(len(seeds))])
        per_b = np.array([M.compute(b[s], y[s])[m] for s in range(len(seeds))])
        sa = per_a.reshape(n_seeds, n_cond).mean(1)
        sb = per_b.reshape(n_seeds, n_cond).mean(1)
        c = res[m]
        assert c.a == pytest.approx(per_a.mean(), abs=1e-12) and c.b == pytest.approx(per_b.mean(), abs=1e-12)
        assert c.se_seeds == pytest.approx(np.std(sa - sb, ddof=1) / math.sqrt(n_seeds), rel=1e-9)
        assert c.seed_a == pytest.approx((sa.mean(), np.std(sa, ddof=1)))
        # the bootstrap replicates themselves, brute force on a few resamples
        boot_a = np.array([[M.compute(np.repeat(a[s], counts[r]), np.repeat(y[s], counts[r]))[m]
                            for s in range(len(seeds))] for r in range(5)]).mean(1)
        got_a = R.stratum_metrics(a, y, "mosi", counts=counts[:5])[m].mean(1)
        assert got_a == pytest.approx(boot_a, abs=1e-12)
        # the variance terms, from the brute-force bootstrap of every stratum (all 800 resamples)
        full_a = R.stratum_metrics(a, y, "mosi", counts=counts)[m].reshape(800, n_seeds, n_cond).mean(2)
        full_b = R.stratum_metrics(b, y, "mosi", counts=counts)[m].reshape(800, n_seeds, n_cond).mean(2)
        d = full_a - full_b
        items = max(0.0, (n_seeds * np.var(d.mean(1), ddof=1) - np.var(d, axis=0, ddof=1).mean()) / (n_seeds - 1))
        seeds_var = np.var(sa - sb, ddof=1) / n_seeds
        assert c.se_items ** 2 == pytest.approx(items, rel=1e-9, abs=1e-15)
        assert c.se == pytest.approx(math.sqrt(items + seeds_var)) and c.df == n_seeds - 1
        # p: the smallest grid level whose kappa-inflated test rejects, the tail integrated independently
        t = abs(c.diff) / c.se
        from scipy.integrate import quad

        def tail_at(level, t=t, items=items, seeds_var=seeds_var):
            kap = kappa(float(n_seeds - 1), level)
            lam = kap * seeds_var / (kap * seeds_var + items) if items > 0 else 1.0

            def integrand(w):
                return 2 * sps.norm.sf(t * math.sqrt(lam * w / (n_seeds - 1) + 1 - lam)) * sps.chi2.pdf(w, n_seeds - 1)

            return quad(integrand, 0, np.inf, limit=200)[0]

        cells = list(LEVELS) + [1.0]
        ref = 1.0
        for lo_, hi_ in zip(cells[:-1], cells[1:]):
            tl = tail_at(lo_)
            if tl < hi_:
                ref = max(lo_, tl)
                break
        assert c.p == pytest.approx(ref, abs=2e-6)
        crit = c.variance.critical(0.05)
        assert c.ci_diff == pytest.approx((c.diff - crit * c.se, c.diff + crit * c.se))
    assert res["MAE"].better == "b" and res["Has0_acc_2"].diff < 0  # A is worse
    assert res["Has0_acc_2"].better == "b"


def test_better_respects_lower_is_better():
    rng = np.random.default_rng(6)
    a, b, y, seeds = models(rng, 1, 1, 200)
    b = y + 3 * (b - y)  # B much worse
    res = St.paired_bootstrap(a, b, y, seeds, "mosi", n_resamples=200)
    assert res["MAE"].diff < 0 and res["MAE"].better == "a"
    assert res["Mult_acc_7"].diff > 0 and res["Mult_acc_7"].better == "a"
    assert res["MAE"].p < 0.01


def test_condition_intervals():
    rng = np.random.default_rng(7)
    a, _, y, seeds = models(rng, 3, 2, 120)
    conds = np.tile(["0.0", "0.5"], 3)
    got = St.condition_intervals(a, y, conds, seeds, "mosi", "MAE", n_resamples=600, seed=4)
    assert list(got) == ["0.0", "0.5"]
    counts = R.resample_counts(120, 600, seed=4)
    for c in ["0.0", "0.5"]:
        idx = np.flatnonzero(conds == c)
        per = np.array([M.mae(a[s], y[s]) for s in idx])
        boot = np.stack([counts @ np.abs(a[s] - y[s]) / 120 for s in idx], 1)  # [R, seeds]
        items = max(0.0, (3 * np.var(boot.mean(1), ddof=1) - np.var(boot, axis=0, ddof=1).mean()) / 2)
        var = St.Variance(np.var(per, ddof=1) / 3, items, 2.0)
        value, lo, hi = got[c]
        assert value == pytest.approx(per.mean())
        half = var.critical(0.05) * math.sqrt(var.seeds + items)
        assert (lo, hi) == pytest.approx((value - half, value + half))
        assert sps.norm.ppf(0.975) * var.se < half <= sps.t.ppf(1 - 0.049 / 2, 2) * var.se + 1e-12
    one = St.condition_intervals(a[:2], y[:2], conds[:2], seeds[:2], "mosi", "MAE", n_resamples=600, seed=4)
    boot = counts @ np.abs(a[0] - y[0]) / 120
    assert one["0.0"][2] - one["0.0"][0] == pytest.approx(sps.norm.ppf(0.975) * np.std(boot, ddof=1))
    with pytest.raises(MsabenchError):
        St.condition_intervals(a, y, conds, seeds, "mosi", "F1_score")


def test_paired_bootstrap_rejects_mismatched_inputs():
    a = np.zeros((2, 5))
    with pytest.raises(MsabenchError):
        St.paired_bootstrap(a, np.zeros((2, 4)), a, [0, 1], "mosi")
    with pytest.raises(MsabenchError):
        St.paired_bootstrap(a, a, a, [0, 1, 2], "mosi")


def test_null_calibration():
    """Two models from the same distribution, with a per-seed training shift: p < 0.05 at
    most 5% of the time (+3 MC SEs), while the item-only p, blind to seeds, over-rejects."""
    rng = np.random.default_rng(8)
    reps, n, n_seeds, n_cond = 200, 60, 3, 2
    seeds = np.repeat(np.arange(n_seeds), n_cond)
    rej = {"MAE": 0, "Has0_acc_2": 0}
    rej_items = 0
    for i in range(reps):
        y = np.tile(rng.uniform(-3, 3, n), (n_seeds * n_cond, 1))
        shift_a = np.repeat(rng.normal(0, 0.4, n_seeds), n_cond)[:, None]
        shift_b = np.repeat(rng.normal(0, 0.4, n_seeds), n_cond)[:, None]
        a = y + shift_a + rng.normal(0, 1, y.shape)
        b = y + shift_b + rng.normal(0, 1, y.shape)
        res = St.paired_bootstrap(a, b, y, seeds, "mosi", n_resamples=300, seed=i)
        for m in rej:
            rej[m] += res[m].p < 0.05
        rej_items += res["MAE"].p_items < 0.05
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    for m, r in rej.items():
        assert r / reps <= limit, (m, r / reps)
    assert rej_items / reps > limit  # the seed term is what keeps the test honest


# ------------------------------------------------------------------------ mcnemar, signflip


def test_mcnemar_one_stratum_is_exact_mcnemar():
    # 2x2 table: both right 30, A only 9, B only 3, both wrong 8.
    a = np.array([1] * 30 + [1] * 9 + [0] * 3 + [0] * 8, dtype=bool)
    b = np.array([1] * 30 + [0] * 9 + [1] * 3 + [0] * 8, dtype=bool)
    perm = np.random.default_rng(0).permutation(a.size)
    n_a, n_b, p = St.mcnemar(a[perm], b[perm])
    assert (n_a, n_b) == (9, 3)
    assert p == pytest.approx(sps.binomtest(9, 12, 0.5).pvalue, rel=1e-12)
    assert p == pytest.approx(2 * sum(math.comb(12, j) for j in range(4)) / 2**12, rel=1e-12)
    assert St.mcnemar(a, a) == (0, 0, 1.0)


def test_mcnemar_several_strata_is_item_sign_test():
    rng = np.random.default_rng(1)
    a = rng.random((6, 70)) < 0.7
    b = rng.random((6, 70)) < 0.6
    n_a = n_b = 0
    for i in range(70):  # literal definition, item by item
        wins = int(a[:, i].sum()) - int(b[:, i].sum())
        n_a += wins > 0
        n_b += wins < 0
    got = St.mcnemar(a, b)
    assert got[:2] == (n_a, n_b)
    assert got[2] == pytest.approx(sps.binomtest(n_a, n_a + n_b).pvalue)


def exact_signflip(d):
    """p over all 2^n sign patterns, ties counted (d is integer-valued here, so sums are exact)."""
    t = abs(d.sum())
    hits = sum(abs(np.dot(s, d)) >= t - 1e-9 for s in itertools.product((-1, 1), repeat=d.size))
    return hits / 2**d.size


@pytest.mark.parametrize("n", [5, 9, 12])
def test_signflip_against_exact_enumeration(n):
    rng = np.random.default_rng(n)
    # Integer absolute errors over 2 strata: d has ties and exact sums, so ties matter.
    ea = rng.integers(0, 6, (2, n)).astype(float)
    eb = rng.integers(0, 5, (2, n)).astype(float) * -1.0  # signs of errors must not matter
    d = np.abs(ea).mean(0) - np.abs(eb).mean(0)
    exact = exact_signflip(d * 2)  # *2 keeps the half-integers integral
    R = 20000
    got = St.signflip(ea, eb, n_resamples=R, seed=3)
    assert abs(got - exact) <= 4 * math.sqrt(exact * (1 - exact) / R) + 2 / R, (got, exact)


def test_signflip_continuous_and_degenerate():
    rng = np.random.default_rng(4)
    n = 10
    ea, eb = rng.normal(0, 1, n), rng.normal(0, 1.3, n)
    d = np.abs(ea) - np.abs(eb)
    t = abs(d.sum())
    exact = np.mean([abs(np.dot(s, d)) >= t * (1 - 1e-12) for s in itertools.product((-1, 1), repeat=n)])
    got = St.signflip(ea, eb, n_resamples=20000, seed=0)
    assert abs(got - exact) <= 4 * math.sqrt(exact * (1 - exact) / 20000) + 2 / 20000
    assert St.signflip(ea, ea) == 1.0
    assert St.signflip(np.full(40, 2.0), np.full(40, 0.5), n_resamples=999) == pytest.approx(1 / 1000)


# ------------------------------------------------------------------------ holm, friedman, welch, mde


def holm_bruteforce(p):
    """Definition: adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)), nans ignored."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.size, np.nan)
    idx = [i for i in range(p.size) if not np.isnan(p[i])]
    order = sorted(idx, key=lambda i: p[i])
    m = len(order)
    for rank, i in enumerate(order, start=1):
        out[i] = max(min(1.0, (m - j + 1) * p[order[j - 1]]) for j in range(1, rank + 1))
    return out


def holm_rejects(p, alpha):
    """Holm's step-down procedure as stated: reject while p_(i) <= alpha / (m - i + 1)."""
    ok = [i for i in range(len(p)) if not np.isnan(p[i])]
    order = sorted(ok, key=lambda i: p[i])
    rejected = set()
    for i, k in enumerate(order):
        if p[k] <= alpha / (len(order) - i):
            rejected.add(k)
        else:
            break
    return rejected


def test_holm_against_definition():
    rng = np.random.default_rng(0)
    for trial in range(200):
        m = int(rng.integers(1, 12))
        p = rng.random(m) ** 3
        if trial % 3 == 0:
            p[rng.random(m) < 0.3] = np.nan
        if trial % 5 == 0 and m > 2:
            p[1] = p[0]  # ties
        got = St.holm(p)
        ref = holm_bruteforce(p)
        assert np.allclose(got, ref, rtol=1e-12, equal_nan=True)
        assert np.all(np.isnan(got) == np.isnan(p))
        for alpha in (0.01, 0.05, 0.2):
            assert set(np.flatnonzero(got <= alpha)) == holm_rejects(p, alpha)
    assert St.holm([]).size == 0
    assert St.holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_welch_from_stats_matches_ttest_on_raw_samples():
    from msabench.claims import Welch

    rng = np.random.default_rng(2)
    xa, xb = rng.normal(0.8, 0.02, 5), rng.normal(0.78, 0.05, 3)
    diff, welch = Welch.from_stats(xa.mean(), xa.std(ddof=1), 5, xb.mean(), xb.std(ddof=1), 3)
    ref = sps.ttest_ind(xa, xb, equal_var=False)
    assert diff == pytest.approx(xa.mean() - xb.mean())
    assert welch.p_value(diff) == pytest.approx(ref.pvalue) and welch.df == pytest.approx(ref.df)
    assert welch.interval(diff, 0.05) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    with pytest.raises(MsabenchError):
        Welch.from_stats(0.8, 0.01, 1, 0.7, 0.01, 3)


def test_mde_from_the_noncentral_t():
    # With no item term the test is Student's t_df on the seeds: its MDE is the noncentral t's.
    e = Variance(0.0, 1.0, math.inf).mde(0.05)
    assert sps.norm.sf(1.959964 - e) + sps.norm.cdf(-1.959964 - e) == pytest.approx(0.8, abs=1e-7)
    for df in (2, 5, 30):
        d, crit = Variance(1.0, 0.0, float(df)).mde(0.05), sps.t.ppf(0.975, df)
        assert sps.nct.sf(crit, df, d) + sps.nct.cdf(-crit, df, d) == pytest.approx(0.8, abs=1e-3)
    # the shortcut (t_.975 + t_.8) * se falls short of 80% power at 2 df: 0.77
    short = sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)
    assert sps.nct.sf(sps.t.ppf(0.975, 2), 2, short) < 0.78 and Variance(1.0, 0.0, 2.0).mde(0.05) > short


# ------------------------------------------------------------------------ the test under its own null

def test_variance_tail_spans_normal_to_t_and_inverts():
    from scipy.stats import norm, t as student

    for lam, ref in ((0.0, lambda x: 2 * norm.sf(x)), (1.0, lambda x: 2 * student.sf(x, 2))):
        assert float(null_tail(2.5, lam, 2.0)) == pytest.approx(ref(2.5), rel=1e-9)
    tails = [float(null_tail(2.5, lam, 2.0)) for lam in np.linspace(0, 1, 11)]
    assert np.all(np.diff(tails) > 0)  # heavier with the retraining share
    v = Variance(0.0004, 0.0025, 2.0)
    lo, hi = v.interval(0.1, 0.05)
    # the interval is the set of values the test does not reject at 0.05: its ends sit on the boundary
    assert v.p_value(0.1 - lo) == pytest.approx(0.05, abs=1e-9) and v.p_value(hi - 0.1) == pytest.approx(0.05, abs=1e-9)
    assert Variance(0.0, 0.0025, math.inf).p_value(0.1) == pytest.approx(2 * sps.norm.sf(2.0))  # no retraining noise
    assert Variance(0.0025, 0.0, 4.0).p_value(0.1) == pytest.approx(2 * sps.t.sf(2.0, 4))  # all of it retraining


def _crossed(rng, k, n, seed_sd, item_sd, inter_sd, n_boot=400):
    """Seed-level values and item-bootstrap values of a paired difference under a crossed random-effects null."""
    x = rng.normal(0, item_sd, n)[None, :] + rng.normal(0, seed_sd, (k, 1)) + rng.normal(0, inter_sd, (k, n))
    counts = R.resample_counts(n, n_boot, int(rng.integers(1 << 30)))
    return x.mean(1), (counts @ x.T) / n, x.mean()


def test_decompose_is_unbiased_and_the_old_sum_double_counts():
    """Before: se_items^2 + var(d_s)/k counted the seed x item interaction twice (up to 2x the variance)."""
    rng = np.random.default_rng(7)
    k, n, reps = 3, 200, 600
    est, old, means = [], [], []
    for _ in range(reps):
        seed_vals, boot, mean = _crossed(rng, k, n, 0.02, 0.3, 1.0)
        var = St.decompose([seed_vals], [boot])
        est.append(var.seeds + var.items)
        old.append(np.var(boot.mean(1), ddof=1) + np.var(seed_vals, ddof=1) / k)
        means.append(mean)
    truth = 0.02**2 / k + 0.3**2 / n + 1.0 / (k * n)
    assert np.mean(est) == pytest.approx(truth, rel=0.1)
    assert np.var(means, ddof=1) == pytest.approx(truth, rel=0.15)
    assert np.mean(old) > 1.5 * truth


@pytest.mark.parametrize("k", [2, 3])
def test_false_positive_rate_at_few_seeds(k):
    """A model against itself retrained, with a nonzero item effect: the rejection count stays within the exact
    binomial bound of alpha; the previous df (Welch-Satterthwaite from k - 1 values) exceeded it."""
    rng = np.random.default_rng(100 + k)
    n, reps = 250, 300
    y = np.clip(rng.normal(0, 1.5, n), -3, 3).round(1)
    yy = np.tile(y, (k, 1))
    new = old = 0
    for r in range(reps):
        g = rng.normal(0, 0.8, n)
        a = y + g + rng.normal(0, 0.3, n) + rng.normal(0, 0.1, (k, 1)) + rng.normal(0, 0.3, (k, n))
        b = y + g + rng.normal(0, 0.3, n) + rng.normal(0, 0.1, (k, 1)) + rng.normal(0, 0.3, (k, n))
        c = St.paired_bootstrap(a, b, yy, np.arange(k), "mosi", n_resamples=100, seed=r)["MAE"]
        new += c.p < 0.05
        counts = R.resample_counts(n, 100, r)  # the same resamples as the call above
        boot = (R.stratum_metrics(a, yy, "mosi", counts)["MAE"] - R.stratum_metrics(b, yy, "mosi", counts)["MAE"])
        se_old2 = np.var(boot.mean(1), ddof=1) + c.se_seeds**2
        df = se_old2**2 * (k - 1) / c.se_seeds**4
        old += 2 * sps.t.sf(abs(c.diff) / math.sqrt(se_old2), df) < 0.05
    bound = int(sps.binom.isf(0.01, reps, 0.05))
    assert new <= bound, (new, bound)
    assert old > new
