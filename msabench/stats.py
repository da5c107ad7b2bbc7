"""Paired statistics for comparing two models scored on identical test items.

Data model: predictions are ``[S, n]`` arrays, one row per stratum (a (seed, condition)
pair), the same ``n`` items in the same order in every row; ``labels`` is ``[S, n]`` too
and ``seeds`` (``[S]``) says which training seed each row belongs to. A metric's headline
("aggregate") value is the mean over strata of the per-stratum metric, which for balanced
strata is the mean over seeds of the mean over conditions.

Two sources of uncertainty matter when a leaderboard says "A beats B":

* the test set is a sample of items (handled by an item-level bootstrap that resamples
  the same items in every stratum and for both models, so the pairing is kept), and
* the models are a sample of training runs (handled by the spread of the seed-level
  differences).

The metrics per stratum and resample come from `resampling`; the variance and the test from
`variance`; corrections over several tests from `multiplicity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from msabench import metrics, resampling
from msabench.errors import MsabenchError
from msabench.multiplicity import holm
from msabench.variance import Variance, decompose

__all__ = ["Variance", "decompose", "holm"]  # re-exported: callers compare models through this module

INF = float("inf")
NAN = float("nan")
_SIGNFLIP_CHUNK = 4096  # sign vectors per matrix product

# ----------------------------------------------------------------------------- intervals


def t_quantile(q: float, df: float) -> float:
    """Student-t quantile (df = inf is the normal one); scipy.special is ~100x faster than sps.t."""
    return float(special.ndtri(q)) if math.isinf(df) else float(special.stdtrit(df, q))


@dataclass(frozen=True)
class Comparison:
    """Model A vs model B on one metric (diff = a - b in the metric's own units)."""

    metric: str
    a: float
    b: float
    diff: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    ci_diff: tuple[float, float]
    se_items: float
    se_seeds: float
    se: float
    df: float
    p: float
    p_items: float
    seed_a: tuple[float, float]
    seed_b: tuple[float, float]
    n_items: int
    n_seeds: int
    n_resamples: int
    better: str
    variance: Variance | None = None  # for intervals and detectable effects at other levels (Holm)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1)) if x.size > 1 else NAN


def paired_bootstrap(
    a, b, labels, seeds, kind: str, n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05,
    priors: dict | None = None,
) -> dict[str, Comparison]:
    """Compare two models metric by metric, accounting for test items and training seeds.

    Why two variance terms: resampling items treats the trained models as fixed, so it
    answers "would A still beat B on another test set drawn like this one?" but not "would
    A still beat B if both were retrained?". The variance of the observed difference has a
    retraining part and a test-set part; `decompose` estimates both without counting their
    interaction twice, from the seed-by-seed differences, and `variance.Variance` turns them
    into a test that holds its level at 2-5 seeds whatever the share of each part. Without the
    retraining part, a model compared with itself retrained is called "significantly"
    different far more often than alpha; with a Welch-Satterthwaite df estimated from 2-3
    seeds, still too often (the calibration benchmark measures both). `df` reports the
    retraining term's degrees of freedom (k - 1, or more with a pool).

    `priors` ({metric: variance.Prior}): a board's pooled retraining variance, which replaces
    the pair's own estimate by the moderated one (and gives one seed a retraining term).
    With one seed and no prior there is no seed term: CIs use the normal approximation with the
    item bootstrap's se and p is the centred item-bootstrap p, (1 + #{|d*_r - d| >= |d|}) / (R + 1).
    Resamples on which a metric is undefined (no non-zero label, a constant side for Corr)
    are dropped for that metric; ``n_resamples`` reports how many were used.
    """
    kind = resampling.check_kind(kind)
    alpha = resampling.check_alpha(alpha)
    pa, pb, y = resampling.matrix(a, "model A predictions"), resampling.matrix(b, "model B predictions"), resampling.matrix(labels, "labels")
    resampling.same_shape(y, pa, "model A predictions")
    resampling.same_shape(y, pb, "model B predictions")
    if int(n_resamples) < 2:
        raise MsabenchError(f"stats: n_resamples must be >= 2, got {n_resamples}")
    n_strata, n = y.shape
    groups = resampling.seed_groups(seeds, n_strata)
    k = len(groups)
    counts = resampling.resample_counts(n, n_resamples, seed)
    point_a, point_b = resampling.multi_metrics([pa, pb], y, kind, None)
    boot_a, boot_b = resampling.multi_metrics([pa, pb], y, kind, counts)

    out = {}
    for m in metrics.METRICS[kind]:
        va, vb = point_a[m][0], point_b[m][0]
        agg_a, agg_b = float(va.mean()), float(vb.mean())
        diff = agg_a - agg_b
        seed_a, seed_b = resampling.seed_means(va, groups), resampling.seed_means(vb, groups)
        bsa, bsb = resampling.seed_means(boot_a[m], groups), resampling.seed_means(boot_b[m], groups)  # [R, k]
        ci_a = decompose([seed_a], [bsa]).interval(agg_a, alpha)
        ci_b = decompose([seed_b], [bsb]).interval(agg_b, alpha)
        var = decompose([seed_a, seed_b], [bsa, bsb])
        if priors and priors.get(m) is not None:
            var = var.moderated(priors[m], k)
        se, df, ci_diff = var.se, var.nu, var.interval(diff, alpha)
        se_items = math.sqrt(var.items) if math.isfinite(var.items) else NAN
        se_seeds = math.sqrt(var.seeds) if (k > 1 or var.pooled) and math.isfinite(var.seeds) else NAN
        bd = boot_a[m].mean(axis=1) - boot_b[m].mean(axis=1)
        used = bd[np.isfinite(bd)]
        if math.isfinite(diff) and used.size:
            # Ties in exact arithmetic (e.g. d* = 0 for an accuracy) must not hinge on rounding.
            hits = np.count_nonzero(np.abs(used - diff) >= abs(diff) * (1.0 - 1e-9))
            p_items = float((1 + hits) / (used.size + 1))
        else:
            p_items = NAN
        p = p_items if k == 1 and not var.pooled else var.p_value(diff)
        if not math.isfinite(diff) or diff == 0:
            better = ""
        else:
            better = "a" if (diff < 0) == (m in metrics.LOWER_IS_BETTER) else "b"
        out[m] = Comparison(
            metric=m,
            a=agg_a,
            b=agg_b,
            diff=diff,
            ci_a=ci_a,
            ci_b=ci_b,
            ci_diff=ci_diff,
            se_items=se_items,
            se_seeds=se_seeds,
            se=se,
            df=df,
            p=p,
            p_items=p_items,
            seed_a=_mean_std(seed_a),
            seed_b=_mean_std(seed_b),
            n_items=n,
            n_seeds=k,
            n_resamples=int(used.size),
            better=better,
            variance=var,
        )
    return out


def condition_intervals(
    pred, labels, conditions, seeds, kind: str, metric: str, n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict[str, tuple[float, float, float]]:
    """Per-condition (value, lo, hi) of one model's metric, for CI bands on a curve.

    The value is the mean over seeds of the condition's per-seed metric; the interval is
    built as in ``paired_bootstrap`` (`decompose` for one model: t with k - 1 df; normal
    with one seed). The same ``seed`` gives the same resamples as ``paired_bootstrap``.
    """
    kind = resampling.check_kind(kind)
    alpha = resampling.check_alpha(alpha)
    if metric not in metrics.METRICS[kind]:
        raise MsabenchError(f"stats: unknown metric {metric!r} for {kind}; expected one of {list(metrics.METRICS[kind])}")
    p, y = resampling.matrix(pred, "prediction"), resampling.matrix(labels, "label")
    resampling.same_shape(y, p, "prediction")
    if int(n_resamples) < 2:
        raise MsabenchError(f"stats: n_resamples must be >= 2, got {n_resamples}")
    n_strata, n = y.shape
    cond = list(np.asarray(conditions, dtype=object).ravel())
    if len(cond) != n_strata:
        raise MsabenchError(f"stats: conditions must have one entry per stratum ({n_strata}), got {len(cond)}")
    seeds = np.asarray(seeds).ravel()
    resampling.seed_groups(seeds, n_strata)  # validates the shape
    point = resampling.multi_metrics([p], y, kind, None)[0][metric][0]
    boot = resampling.multi_metrics([p], y, kind, resampling.resample_counts(n, n_resamples, seed))[0][metric]
    out = {}
    for c in dict.fromkeys(cond):
        idx = np.array([i for i, x in enumerate(cond) if x == c])
        groups = [idx[g] for g in resampling.seed_groups(seeds[idx], idx.size)]
        seed_vals = resampling.seed_means(point, groups)
        value = float(seed_vals.mean())
        lo, hi = decompose([seed_vals], [resampling.seed_means(boot, groups)]).interval(value, alpha)
        out[c] = (value, lo, hi)
    return out


# ----------------------------------------------------------------------------- other tests


def _bool_matrix(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise MsabenchError(f"stats: {what} must be a non-empty [strata, items] array, got shape {np.shape(x)}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise MsabenchError(f"stats: {what} must be boolean (correct / incorrect per item)")
    return arr.astype(bool)


def mcnemar(a_correct, b_correct) -> tuple[int, int, float]:
    """Exact McNemar test, generalised to several strata without treating them as independent.

    Strata share items, so each item is one paired observation: wins = (#strata where A
    is right) - (#strata where B is right); items with wins > 0 favour A, < 0 favour B,
    and an exact two-sided binomial (sign) test compares the two counts. With one stratum
    this is the exact McNemar test. p = 1 when no item is discordant.
    """
    ac, bc = _bool_matrix(a_correct, "a_correct"), _bool_matrix(b_correct, "b_correct")
    resampling.same_shape(ac, bc, "b_correct")
    wins = ac.sum(axis=0, dtype=np.int64) - bc.sum(axis=0, dtype=np.int64)
    n_a, n_b = int((wins > 0).sum()), int((wins < 0).sum())
    if n_a + n_b == 0:
        return n_a, n_b, 1.0
    return n_a, n_b, float(min(1.0, sps.binomtest(n_a, n_a + n_b, 0.5).pvalue))


def signflip(a_err, b_err, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Paired sign-flip permutation test on per-item absolute-error differences.

    Under the null that A and B are exchangeable on each item, the item's difference
    d_i = mean over strata of (|a_err| - |b_err|) is symmetric about 0, so random sign
    flips give its null distribution. Inputs are errors (pred - label) or absolute errors,
    [S, n] or [n]. p = (1 + #{|T*| >= |T|}) / (R + 1) with T = sum_i d_i.
    """
    ea, eb = resampling.matrix(a_err, "a_err"), resampling.matrix(b_err, "b_err")
    resampling.same_shape(ea, eb, "b_err")
    n_resamples = int(n_resamples)
    if n_resamples < 1:
        raise MsabenchError(f"stats: n_resamples must be >= 1, got {n_resamples}")
    d = (np.abs(ea) - np.abs(eb)).mean(axis=0)
    n = d.size
    t_obs = abs(float(d.sum()))
    tol = 1e-12 * float(np.abs(d).sum())  # sums equal in exact arithmetic count as ties
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, _SIGNFLIP_CHUNK):
        r = min(_SIGNFLIP_CHUNK, n_resamples - start)
        signs = rng.integers(0, 2, size=(r, n), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
        hits += int(np.count_nonzero(np.abs(signs @ d) >= t_obs - tol))
    return (1 + hits) / (n_resamples + 1)


def rank_rows(scores, lower_is_better: bool = False) -> np.ndarray:
    """Rank of each column within each row (1 = best; ties share the mean rank)."""
    s = resampling.matrix(scores, "scores")
    return sps.rankdata(s if lower_is_better else -s, axis=1)
