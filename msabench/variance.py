"""The test behind every verdict: a difference measured over k training seeds and n test items.

A model's score is one draw of two random things: which training run (seed) and which test
items. The variance of a mean (or a paired difference) over k seeds and n items has a
retraining term, estimated from the k seed-level values with nu = k - 1 degrees of freedom,
and a test-set term, estimated from hundreds of items by the bootstrap and treated as known
(`decompose`).

The statistic T = D / sqrt(seeds + items) is not t-distributed: its null law depends on the
unknown share lambda of the retraining term in the true variance,
P(|T| > t) = E_W[2 Phi(-t sqrt(lambda W + 1 - lambda))], W ~ chi2_nu / nu, which grows with
lambda (lambda = 1 is Student's t_nu, lambda = 0 the normal). Plugging in the estimated
share rejects too often at 2-3 seeds; a worst case over lambda wastes the items. The test
here inflates the estimated retraining variance by a constant kappa(nu, level) before
estimating the share, kappa solved so that the worst-case size over every true lambda is
the level (to within 0.1% of it: as lambda -> 1 the size approaches the level from above by
amounts that vanish, so no finite kappa makes the supremum exact). kappa is found by
integrating over the chi-square law of W (Gauss-Legendre in its probability scale) and
cached; at level 0.05 it is about 406, 16.4, 3.6 and 1.67 at k = 2, 3, 5 and 10.

kappa depends on the level (smaller levels need a larger one), so each test uses the kappa
of a grid level (`LEVELS`, the 1-2-2.5-5 series) at or below its own level: rejection
regions are nested, and the p-value is the smallest level at which the test rejects.
p-value, critical value and interval all come from the same `null_tail`, so they never
disagree.

Many models on one protocol and seeds have retraining variances of the same order. `Prior`
pools the pairs' seed-level variances in the manner of Smyth's (2004) moderated t: a scaled
inverse chi-square prior whose degrees of freedom are estimated from the spread of the
pairs' variances (pooling fades when the pairs disagree), capped at what the board's seeds
can carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special
from scipy import stats as sps
from numpy.polynomial.legendre import leggauss

from msabench.errors import MsabenchError

INF = float("inf")
NAN = float("nan")

LEVELS = tuple(sorted({round(m * 10.0**e, 12) for e in range(-6, 0) for m in (1.0, 2.0, 2.5, 5.0)} | {0.5}))
SIZE_TOLERANCE = 1e-3  # the worst-case size is the level times (1 + this)
_DF_GRID = (*range(1, 31), 40, 50, 60, 80, 100, 150, 200, 300, 500)


# ----------------------------------------------------------------------------- the null law of T


@lru_cache(maxsize=128)
def chi2_nodes(nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(W)], W ~ chi2_nu / nu: Gauss-Legendre panels in W's probability
    scale, geometrically finer towards 0 and 1 where the quantile function is singular."""
    edges = np.concatenate([[0.0], np.geomspace(1e-14, 0.5, 24), 1.0 - np.geomspace(0.5, 1e-14, 24)[1:], [1.0]])
    x, w = leggauss(8)
    lo, hi = edges[:-1, None], edges[1:, None]
    u = ((hi - lo) / 2.0 * x + (hi + lo) / 2.0).ravel()
    weights = ((hi - lo) / 2.0 * w).ravel()
    return sps.chi2.ppf(u, nu) / nu, weights


def null_tail(t, lam: float, nu: float) -> np.ndarray:
    """P(|T| >= t) under the null when the retraining share of the true variance is `lam`."""
    t = np.abs(np.asarray(t, dtype=np.float64))
    if lam <= 0.0 or math.isinf(nu):
        return 2.0 * special.ndtr(-t)
    if lam >= 1.0:
        return 2.0 * special.stdtr(nu, -t)
    w, weights = chi2_nodes(float(nu))
    return (2.0 * special.ndtr(-t[..., None] * np.sqrt(lam * w + 1.0 - lam)) * weights).sum(axis=-1)


def critical_value(lam: float, level: float, nu: float) -> float:
    """|t| with null_tail(t, lam, nu) = level (two-sided)."""
    lo = float(special.ndtri(1.0 - level / 2.0))
    if lam <= 0.0 or math.isinf(nu):
        return lo
    hi = float(special.stdtrit(nu, 1.0 - level / 2.0))
    if lam >= 1.0:
        return hi

    def excess(c):
        return float(null_tail(c, lam, nu)) - level

    if excess(lo) <= 0.0:
        return lo
    if excess(hi) >= 0.0:
        return hi
    return float(optimize.brentq(excess, lo, hi, xtol=1e-12, rtol=1e-12))


def _logit_grid(n: int) -> np.ndarray:
    return np.linspace(-36.0, 36.0, n)


def _solve_kappa(w: np.ndarray, weights: np.ndarray, nu: float, level: float) -> float:
    """The kappa whose worst-case size over the retraining share is `level`, when the estimated
    retraining variance is the true one times a draw from (w, weights) and critical values come
    from the null law with `nu` degrees of freedom."""
    z = _logit_grid(161)
    from scipy.interpolate import PchipInterpolator

    crit = PchipInterpolator(z, [critical_value(float(1.0 / (1.0 + math.exp(-x))), level, nu) for x in z])
    zs = np.linspace(-10.0, 28.0, 381)
    lam = (1.0 / (1.0 + np.exp(-zs)))[:, None]
    true_spread = np.sqrt(lam * w + 1.0 - lam)

    def worst(log_kappa: float) -> float:
        est = math.exp(log_kappa) * lam * w  # inflated estimate of the retraining part, items = 1 - lam
        with np.errstate(divide="ignore"):
            logit = np.clip(np.log(est) - np.log(1.0 - lam), -36.0, 36.0)
        return float((2.0 * special.ndtr(-crit(logit) * true_spread) * weights).sum(axis=-1).max())

    target = level * (1.0 + SIZE_TOLERANCE)
    if worst(0.0) <= target:
        return 1.0
    if worst(40.0) > target:
        return INF
    return math.exp(optimize.brentq(lambda x: worst(x) - target, 0.0, 40.0, xtol=1e-4))


@lru_cache(maxsize=512)
def kappa(nu: float, level: float) -> float:
    """The inflation of the estimated retraining variance that makes the worst-case size `level`.

    inf when no finite value does (then the test is Student's t_nu on the full standard
    error, valid for every share); 1 when no inflation is needed (many degrees of freedom).
    """
    nu, level = float(nu), float(level)
    if math.isinf(nu):
        return 1.0
    w, weights = chi2_nodes(nu)
    return _solve_kappa(w, weights, nu, level)


@lru_cache(maxsize=256)
def _pooled_nodes(nu: float, d0: float, centre_df: float, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of Z = (d0 U / ratio + nu W) / (d0 + nu), U ~ chi2_centre_df / centre_df, W ~ chi2_nu / nu:
    a moderated estimate over the true variance of a pair whose variance is `ratio` times the
    board's centre, the centre itself estimated with `centre_df` degrees of freedom. Same
    probability positions as `_nodes`, quantiles found by bisection on Z's distribution function."""
    u_nodes, u_weights = chi2_nodes(centre_df)
    if nu == 0:  # one seed: the pool alone
        return u_nodes / ratio, u_weights
    w_ref, weights = chi2_nodes(nu)
    probs = sps.chi2.cdf(w_ref * nu, nu)  # the probability positions of the nodes
    lo, hi = np.full(probs.shape, -80.0), np.full(probs.shape, 12.0)
    shift = d0 * u_nodes / ratio

    upper = probs > 0.5

    def go_up(z):  # Z's quantile at each node's probability lies above z: P(Z > z) for the upper nodes, P(Z <= z) below
        x = np.maximum(np.exp(z)[:, None] * (d0 + nu) - shift[None, :], 0.0)
        # special's chi-square ufuncs are what sps.chi2.cdf/sf evaluate for x >= 0 and nu > 0, without their
        # argument handling; each node needs one of the two tails (a board's pooled calibrations: 70 rounds each)
        out = np.empty(z.shape, dtype=bool)
        out[upper] = (special.chdtrc(nu, x[upper]) * u_weights).sum(axis=1) > 1.0 - probs[upper]
        out[~upper] = (special.chdtr(nu, x[~upper]) * u_weights).sum(axis=1) < probs[~upper]
        return out

    for _ in range(70):
        mid = (lo + hi) / 2.0
        up = go_up(mid)
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return np.exp((lo + hi) / 2.0), weights


@lru_cache(maxsize=512)
def calibrate_pooled(nu: float, d0: float, centre_df: float, ratio: float, level: float) -> tuple[float, float]:
    """(scale, kappa) for a moderated retraining variance (`Variance.moderated`), calibrated at the
    worst pair the prior allows: one whose true variance is `ratio` times the board's centre
    (quieter pairs are tested conservatively). Shrinking towards the centre underestimates that
    pair's variance, which no share can repair when the retraining part is all there is, so the
    moderated estimate is first multiplied by `scale` (the test is then valid at share 1 with
    nu + d0 degrees of freedom), then kappa handles the shares in between."""
    df = grid_df(nu + d0)
    z, weights = _pooled_nodes(float(nu), float(d0), float(centre_df), float(ratio))
    t = float(special.stdtrit(df, 1.0 - level / 2.0))
    target = level * (1.0 + SIZE_TOLERANCE / 4.0)  # room for kappa's own tolerance

    def size_all_retraining(log_scale: float) -> float:
        return float((2.0 * special.ndtr(-t * np.sqrt(math.exp(log_scale) * z)) * weights).sum())

    if size_all_retraining(0.0) <= target:
        scale = 1.0
    else:
        hi = 1.0
        while size_all_retraining(hi) > target:
            hi *= 2.0
        scale = math.exp(optimize.brentq(lambda x: size_all_retraining(x) - target, 0.0, hi, xtol=1e-6))
    return scale, _solve_kappa(scale * z, weights, df, float(level))


def grid_level(level: float) -> float:
    """The largest grid level at or below `level` (the smallest grid level below it all)."""
    below = [g for g in LEVELS if g <= level * (1.0 + 1e-12)]
    return below[-1] if below else LEVELS[0]


def grid_df(nu: float) -> float:
    """Degrees of freedom rounded down to the grid kappa is solved on (fewer is conservative)."""
    if math.isinf(nu):
        return INF
    below = [d for d in _DF_GRID if d <= nu + 1e-9]
    if not below:
        raise MsabenchError(f"stats: the retraining term needs at least 1 degree of freedom, got {nu}")
    return float(below[-1]) if nu < 1000 else INF


# ----------------------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Variance:
    """The variance of a mean (or paired difference) over k seeds and n items, and the test on it.

    `seeds` is the retraining term (variance of the seed-level values / k), estimated with `nu`
    degrees of freedom (k - 1, or more when pooled over a board; inf: none, one seed and no
    pool); `items` the test-set term, treated as known. `pooled` says where a pooled
    retraining term came from ("" when the pair's own seeds gave it).
    """

    seeds: float
    items: float
    nu: float
    pooled: str = ""
    pool: tuple[float, float, float, float] | None = None  # (own nu, d0, centre df, ratio): `moderated`

    @property
    def se(self) -> float:
        v = self.seeds + self.items
        return math.sqrt(v) if math.isfinite(v) and v >= 0 else NAN

    @property
    def _df(self) -> float:
        return grid_df(self.nu)

    def _calibration(self, level: float) -> tuple[float, float]:
        """(scale of the retraining estimate, kappa) of the grid level at or below `level`."""
        g = grid_level(level)
        if self.pool is None:
            return 1.0, kappa(self._df, g)
        return calibrate_pooled(*self.pool, g)

    def share(self, level: float) -> float:
        """The retraining share the test at `level` assumes: inflated by the kappa of the grid level at or
        below `level` (larger than `level`'s own, so valid at `level`); 1 for ties."""
        if math.isinf(self._df):
            return 0.0
        if self.items <= 0.0:
            return 1.0
        if self.seeds <= 0.0:
            return 1.0  # equal seed-level differences: nothing says the retraining part is small
        scale, k = self._calibration(level)
        return 1.0 if math.isinf(k) else k * scale * self.seeds / (k * scale * self.seeds + self.items)

    def _stretch(self, level: float) -> float:
        """The standard error the test at `level` uses over `se` (above 1 only for a pooled estimate)."""
        if self.pool is None or math.isinf(self._df):
            return 1.0
        scale = self._calibration(level)[0]
        return math.sqrt((scale * self.seeds + self.items) / (self.seeds + self.items))

    def critical(self, level: float) -> float:
        """|T| = |diff| / se beyond which the test at `level` (two-sided) rejects."""
        return critical_value(self.share(level), min(level, 1.0), self._df) * self._stretch(level)

    def _tail(self, t: float, level: float) -> float:
        return float(null_tail(t / self._stretch(level), self.share(level), self._df))

    def p_value(self, diff: float) -> float:
        """Two-sided: the smallest level at which the test rejects `diff` = 0."""
        se = self.se
        if not (math.isfinite(diff) and math.isfinite(se)):
            return NAN
        if se == 0:
            return 1.0 if diff == 0 else 0.0
        t = abs(diff) / se
        if math.isinf(self._df):
            return float(min(1.0, 2.0 * special.ndtr(-t)))

        # Rejection at level a (grid cell [g_i, g_i+1)) <=> tail_i(t) < a; cells are nested, so the
        # lowest cell that rejects somewhere inside it gives the p-value. Binary search over cells.
        def rejects_in(i: int) -> bool:
            upper = LEVELS[i + 1] if i + 1 < len(LEVELS) else 1.0 + 1e-12
            return self._tail(t, LEVELS[i]) < upper

        if not rejects_in(len(LEVELS) - 1):
            return 1.0
        lo, hi = -1, len(LEVELS) - 1  # rejects_in(hi) holds; cells below lo + 1 are unknown
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if rejects_in(mid):
                hi = mid
            else:
                lo = mid
        tail = self._tail(t, LEVELS[hi])
        return float(min(1.0, tail if hi == 0 else max(LEVELS[hi], tail)))

    def p_greater(self, diff: float) -> float:
        """One-sided p for 'the true difference is > 0' (half the two-sided p on its side)."""
        p = self.p_value(diff)
        if not math.isfinite(p):
            return NAN
        return p / 2.0 if diff > 0 else 1.0 - p / 2.0

    def interval(self, point: float, level: float) -> tuple[float, float]:
        """The true differences this test does not reject at `level` (two-sided)."""
        if not (math.isfinite(point) and math.isfinite(self.se)):
            return (NAN, NAN)
        half = self.critical(level) * self.se
        return (point - half, point + half)

    def mde(self, level: float, power: float = 0.8) -> float:
        """Smallest true |difference| rejected at `level` with probability `power`, variances as estimated."""
        se, c = self.se, self.critical(level)
        if not (math.isfinite(se) and math.isfinite(c)):
            return NAN
        if se == 0:
            return 0.0
        lam = self.seeds / (self.seeds + self.items)
        w, weights = chi2_nodes(self._df) if 0 < lam and math.isfinite(self._df) else (np.ones(1), np.ones(1))
        spread = np.sqrt(lam * w + 1.0 - lam)  # the estimated se relative to the true one

        def reject(delta):
            return float(((special.ndtr(delta - c * spread) + special.ndtr(-delta - c * spread)) * weights).sum())

        hi = c + 4.0
        while reject(hi) < power:
            hi *= 2.0
        return optimize.brentq(lambda d: reject(d) - power, 0.0, hi, xtol=1e-8) * se

    def moderated(self, prior: "Prior", k: int) -> "Variance":
        """This pair's retraining term shrunk towards the board's (Smyth 2004), with the prior's df added;
        its test calibrated for the noisiest pair the prior allows (`calibrate_pooled`)."""
        if prior is None or not math.isfinite(self.items):
            return self
        own_nu = 0.0 if math.isinf(self.nu) else self.nu
        own = self.seeds * k if own_nu > 0 else 0.0  # variance of one seed's difference
        s2 = (prior.df * prior.s2 + own_nu * own) / (prior.df + own_nu)
        return prior.variance(s2 / k, self.items, own_nu)


def decompose(seed_vals: Sequence[np.ndarray], boot_seed: Sequence[np.ndarray]) -> Variance:
    """Unbiased variance of a mean (one model) or paired difference (two) over seeds and items.

    `seed_vals`: one [k] array of seed-level values per model (for two, A and B trained
    with the same seeds: the difference is taken seed by seed, so whatever the seeds share
    between the models, and unequal retraining variances, are accounted for); `boot_seed`:
    the matching [R, k] item-bootstrap values, the same items resampled in every seed and
    for both models.

    The model (crossed random effects; Searle, Casella & McCulloch 1992, ch. 4; on
    retraining seeds in ML benchmarks, Bouthillier et al. 2021): a per-item score is
    mu + seed effect + item effect + seed x item interaction, and the variance of the mean
    over k seeds and n items is s2_seed/k + s2_item/n + s2_inter/(k n).
    - var(seed-level values)/k estimates s2_seed/k + s2_inter/(k n) (the interaction
      averages over the n items of a seed), with k - 1 degrees of freedom;
    - the item bootstrap of the seed-averaged value estimates s2_item/n + s2_inter/(k n),
      within one seed s2_item/n + s2_inter/n, so (k * boot_var(mean over seeds) -
      mean_s boot_var(seed s)) / (k - 1) estimates s2_item/n alone (the ANOVA moment
      estimator; adding the two raw terms would count the interaction twice). Clipped at 0.
    With one seed there is no retraining term: the item bootstrap alone, normal reference.
    """
    vals = [np.asarray(v, dtype=np.float64) for v in seed_vals]
    boots = [np.asarray(b, dtype=np.float64) for b in boot_seed]
    k = vals[0].size
    d = vals[0] - vals[1] if len(vals) == 2 else vals[0]
    diff_boot = boots[0] - boots[1] if len(boots) == 2 else boots[0]  # [R, k]
    diff_boot = diff_boot[np.all(np.isfinite(diff_boot), axis=1)]
    if diff_boot.shape[0] < 2 or not np.all(np.isfinite(d)):
        return Variance(NAN, NAN, INF)
    var_mean = float(np.var(diff_boot.mean(axis=1), ddof=1))
    if k == 1:
        return Variance(0.0, var_mean, INF)
    var_within = float(np.mean(np.var(diff_boot, axis=0, ddof=1)))
    items = max(0.0, (k * var_mean - var_within) / (k - 1))
    return Variance(float(np.var(d, ddof=1)) / k, items, float(k - 1))


# ----------------------------------------------------------------------------- a board's pool


@dataclass(frozen=True)
class Prior:
    """The board's retraining variance of one seed's paired difference: s2 with df degrees of freedom."""

    s2: float
    df: float
    n_models: int
    n_pairs: int
    nu: float  # each pair's own degrees of freedom
    centre_df: float = INF  # how well s2 itself is known
    ratio: float = 1.0  # the noisiest pair the test is calibrated for, as a multiple of s2
    outliers: tuple[str, ...] = ()  # models whose own variance the pool does not describe

    def variance(self, seeds: float, items: float, own_nu: float) -> "Variance":
        """A pooled retraining term `seeds` (moderated by this prior, from `own_nu` df of the pair's own)
        with its test calibrated by `calibrate_pooled`."""
        return Variance(seeds, items, self.df + own_nu, self.label, (own_nu, self.df, self.centre_df, self.ratio))

    def helps(self, level: float) -> bool:
        """Whether pooling narrows the board's intervals at two-sided `level`, as a geometric mean over
        the pairs the prior describes (retraining share 1, the centre taken as known).

        A pair whose own estimate is x times the centre (x ~ F(nu, df)) has an interval of width
        critical * sqrt(x) from its own seeds and critical' * sqrt(scale (df + nu x) / (df + nu)) pooled:
        quiet pairs are pulled up towards the centre and scaled for the noisiest ones, which only
        enough prior degrees of freedom repay.
        """
        own = Variance(1.0, 0.0, self.nu).critical(level)
        pooled = self.variance(1.0, 0.0, self.nu)
        x = sps.f.ppf((np.arange(400) + 0.5) / 400, self.nu, self.df)
        shrink = 0.5 * float(np.mean(np.log((self.df + self.nu * x) / ((self.df + self.nu) * x))))
        return math.log(pooled.critical(level)) + shrink < math.log(own)

    @property
    def label(self) -> str:
        out = f"; not pooled: {', '.join(self.outliers)}" if self.outliers else ""
        return (f"pooled over {self.n_models} models ({self.n_pairs} pairs, prior df {self.df:g}, "
                f"calibrated for pairs up to {self.ratio:.1f}x the board's variance{out})")


MIN_MODELS = 4  # a pool needs at least this many models on the same seeds
POOL_QUANTILE = 0.1  # the pooled test holds its level for pairs up to the prior's upper 1 - this quantile


def _centre_df(nu: float, d0: float, n: int) -> float:
    """Degrees of freedom of a chi-square whose log varies as much as the median of n models' log
    variances does (asymptotic variance of a median: pi/2 times the mean's), rounded down to the grid."""
    target = math.pi / 2.0 * (float(special.polygamma(1, nu / 2.0)) + float(special.polygamma(1, d0 / 2.0))) / n
    df = float(optimize.brentq(lambda d: float(special.polygamma(1, d / 2.0)) - target, 1e-3, 1e7))
    return grid_df(max(df, 1.0))


def _log_f_quantiles(nu: float, d0: float, q: np.ndarray) -> np.ndarray:
    return np.log(sps.f.ppf(q, nu, d0)) if math.isfinite(d0) else np.log(sps.chi2.ppf(q, nu) / nu)


def prior(values: dict[str, Sequence[float]], min_models: int = MIN_MODELS, alpha: float = 0.05) -> Prior | None:
    """The board's prior for the retraining variance of a pair's seed-by-seed difference.

    `values`: per model, its seed-level metric values on the same seeds in the same order.
    Under Smyth's (2004) model a model's seed variance s2 (k - 1 df) is s0^2 F(k - 1, d0):
    d0 says how far the models' true variances differ (small: they disagree, and pooling
    fades; inf: they are equal). d0 is fitted to the interquartile range of the models'
    log s2 and the prior's centre to their median (quantiles, not moments: one nearly
    deterministic model, or one that retrains wildly, would otherwise set d0 for the whole
    board); the models' variances are independent, where pairs that share a model are not.
    Models whose seeds give identical values (constant predictors) take no part. d0 is capped
    at (models - 1)(k - 1): the pool cannot know more than the board's seeds hold. The scale
    of a pair's variance is the pairs' (log-)average, on the same F law. A model above the
    prior's 99% predictive bound is an outlier: pairs with it keep their own estimate
    (`Prior.outliers`). None with fewer than `min_models` models or 2 seeds, and None when pooling
    would widen the board's intervals on average (`Prior.helps`) at the level of closed testing's
    first step, 2 * `alpha` / (models - 1) two-sided: with d0 near 1 the calibration for the noisiest
    pairs costs more than the pool's degrees of freedom give. The choice reads the models' variances
    only, never their differences, so each test keeps its level.
    """
    names = [m for m, v in values.items() if np.all(np.isfinite(np.asarray(v, dtype=np.float64)))]
    if len(names) < min_models:
        return None
    x = np.array([np.asarray(values[m], dtype=np.float64) for m in names])
    k = x.shape[1]
    if k < 2:
        return None
    nu = float(k - 1)
    own = np.var(x, axis=1, ddof=1)
    varying = own > 0
    i, j = np.triu_indices(len(names), 1)
    pairs = np.var(x[i] - x[j], axis=1, ddof=1)
    pairs = pairs[pairs > 0]
    if varying.sum() < 4 or pairs.size < 3:
        return None
    logs = np.log(own[varying])
    quart = np.array([0.25, 0.5, 0.75])
    iqr = float(np.subtract(*np.percentile(logs, [75, 25])))
    cap = (len(names) - 1) * nu

    def spread(d0):
        lo, _, hi = _log_f_quantiles(nu, d0, quart)
        return hi - lo

    if iqr <= spread(cap):
        d0 = cap
    elif iqr >= spread(1e-3):
        d0 = 1e-3
    else:
        d0 = float(optimize.brentq(lambda d: spread(d) - iqr, 1e-3, cap, xtol=1e-6))
    if d0 < 1.0:
        return None  # the models' variances disagree too much to pool
    d0 = grid_df(d0)  # rounded down: less pooling, and a small cache
    centre = float(np.median(logs)) - float(_log_f_quantiles(nu, d0, np.array([0.5]))[0])
    bound = math.exp(centre + float(_log_f_quantiles(nu, d0, np.array([0.99]))[0]))
    outliers = tuple(m for m, v in zip(names, own) if v > bound)
    pair_centre = float(np.median(np.log(pairs))) - float(_log_f_quantiles(nu, d0, np.array([0.5]))[0])
    ratio = d0 / float(sps.chi2.ppf(POOL_QUANTILE, d0))
    pooled = Prior(math.exp(pair_centre), d0, len(names), int(pairs.size), nu,
                   _centre_df(nu, d0, int(varying.sum())), ratio, outliers)
    return pooled if pooled.helps(min(1.0, 2.0 * alpha / (len(names) - 1))) else None
