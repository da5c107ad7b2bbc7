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

The bootstrap is vectorised through sufficient statistics: every MMSA metric is a
function of weighted sums of per-item quantities, so all resamples, strata and both models
come out of one ``counts @ item_statistics`` matrix product per chunk of resamples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from msabench import metrics
from msabench.errors import MsabenchError
from msabench.multiplicity import holm
from msabench.variance import Variance, decompose

__all__ = ["Variance", "decompose", "holm"]  # re-exported: callers compare models through this module

INF = float("inf")
NAN = float("nan")

# Per-item statistics (columns of the design matrix). Indicator columns are 0/1, so their
# weighted sums are integers and a float32 product is exact while sums stay below 2**24.
_IND_MODEL = {
    "mosi": ("TP1h", "TP0h", "PPh", "TP1n", "TP0n", "PPn", "C5", "C7"),
    "sims": ("TP1", "TP0", "PP", "C3", "C5"),
}
_IND_LABEL = {"mosi": ("Th", "K", "Tn"), "sims": ("T",)}
_CONT_MODEL = ("E", "P", "PP2", "PY")  # |err|, centred p, p^2, p*y
_CONT_LABEL = ("Y", "YY")  # centred y, y^2

_CHUNK = 1024  # resamples per matrix product: bounds memory at a few tens of MB
_COUNT_CHUNK = 512  # resamples drawn per call to the generator (fixed, so streams are reproducible)
_SMALL_PRODUCT = 2**23  # below this many multiply-adds a plain loop beats threaded BLAS
_CONST_RTOL = 1e-8  # a weighted variance this small relative to the raw moment is re-checked exactly


# ----------------------------------------------------------------------------- resampling


def resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Item-level bootstrap resamples as ``[R, n]`` multinomial counts (rows sum to ``n``).

    Counts, not index lists, because every metric is then a matrix product with the
    per-item statistics. Drawn as ``n`` uniform indices per row from
    ``np.random.default_rng(seed)`` and tallied, which is a Multinomial(n, 1/n) draw.
    """
    n, n_resamples = int(n), int(n_resamples)
    if n < 1:
        raise MsabenchError(f"stats: need at least one item to resample, got n={n}")
    if n_resamples < 1:
        raise MsabenchError(f"stats: n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, n), dtype=np.int32)
    for start in range(0, n_resamples, _COUNT_CHUNK):
        r = min(_COUNT_CHUNK, n_resamples - start)
        idx = rng.integers(0, n, size=(r, n), dtype=np.int64)
        idx += (np.arange(r, dtype=np.int64) * n)[:, None]
        out[start : start + r] = np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)
    return out


# ----------------------------------------------------------------------------- validation


def _matrix(x, what: str) -> np.ndarray:
    """A finite float64 [S, n] array (a 1-D input is one stratum)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MsabenchError(f"stats: {what} is not numeric ({exc})") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise MsabenchError(f"stats: {what} must be a non-empty [strata, items] array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MsabenchError(f"stats: {what} has {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def _same_shape(ref: np.ndarray, other: np.ndarray, what: str) -> None:
    if other.shape != ref.shape:
        raise MsabenchError(f"stats: {what} has shape {other.shape}, expected {ref.shape} (same strata and items)")


def _kind(kind: str) -> str:
    if kind not in metrics.METRICS:
        raise MsabenchError(f"stats: unknown kind {kind!r}; expected one of {sorted(metrics.METRICS)}")
    return kind


def _counts(counts, n: int) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != n:
        raise MsabenchError(f"stats: counts must have shape [resamples, {n}], got {np.shape(counts)}")
    if not np.issubdtype(c.dtype, np.number) or not np.isfinite(c).all() or (c < 0).any():
        raise MsabenchError("stats: counts must be finite non-negative numbers")
    return c


def seed_groups(seeds, n_strata: int) -> list[np.ndarray]:
    """Stratum indices of each seed, in order of first appearance."""
    s = np.asarray(seeds).ravel()
    if s.shape != (n_strata,):
        raise MsabenchError(f"stats: seeds must have one entry per stratum ({n_strata}), got shape {np.shape(seeds)}")
    _, first, inverse = np.unique(s, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == g) for g in order]


def _alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise MsabenchError(f"stats: alpha must be in (0, 1), got {alpha}")
    return alpha


# ----------------------------------------------------------------------------- per-item statistics


def _prepare(pred: np.ndarray, labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The values the metrics see: SIMS scores on clipped values, MOSI on raw ones."""
    if kind == "sims":
        return np.clip(pred, -1.0, 1.0), np.clip(labels, -1.0, 1.0)
    return pred, labels


def _label_features(y: np.ndarray, kind: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Label-only columns, computed once and shared by every model."""
    if kind == "mosi":
        ind = [y >= 0, y != 0, y > 0]
    else:
        ind = [y > 0]
    yc = y - y.mean(axis=1, keepdims=True)
    return ind, [yc, yc * yc]


def _model_features(p: np.ndarray, y: np.ndarray, kind: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-item 0/1 and continuous statistics of one model; see ``_finish`` for their use."""
    if kind == "mosi":
        th, ph = y >= 0, p >= 0
        keep, tn, pn = y != 0, y > 0, p > 0
        ind = [
            th & ph,
            ~th & ~ph,
            ph,
            keep & tn & pn,
            keep & ~tn & ~pn,
            keep & pn,
            np.round(np.clip(p, -2.0, 2.0)) == np.round(np.clip(y, -2.0, 2.0)),
            np.round(np.clip(p, -3.0, 3.0)) == np.round(np.clip(y, -3.0, 3.0)),
        ]
    else:  # values already clipped to [-1, 1]; bins are left-open, as in metrics.sims_bins
        t, q = y > 0, p > 0
        ind = [
            t & q,
            ~t & ~q,
            q,
            metrics.sims_bins(p, metrics.SIMS_EDGES_3) == metrics.sims_bins(y, metrics.SIMS_EDGES_3),
            metrics.sims_bins(p, metrics.SIMS_EDGES_5) == metrics.sims_bins(y, metrics.SIMS_EDGES_5),
        ]
    pc = p - p.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    return ind, [np.abs(p - y), pc, pc * pc, pc * yc]


def _design(blocks: list[list[np.ndarray]], dtype) -> np.ndarray:
    """Stack feature blocks ([S_b, n] each) into an [n, columns] matrix, feature-major."""
    cols = [f.reshape(-1, f.shape[-1]) for block in blocks for f in block]
    return np.ascontiguousarray(np.concatenate(cols, axis=0).T, dtype=dtype)


def _dot(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``c @ x``; small products skip BLAS, whose thread wake-up costs milliseconds per call."""
    if c.shape[0] * c.shape[1] * x.shape[1] < _SMALL_PRODUCT:
        return np.einsum("rn,nc->rc", c, x)
    return c @ x


def _binary_f1(tp1, tp0, sup1, pred1, total):
    """scikit-learn's weighted F1 for two classes from counts (classes ordered False, True).

    A class absent from both sides has support 0, so it carries weight 0 exactly as when
    scikit-learn leaves it out of the union of labels.
    """
    sup0, pred0 = total - sup1, total - pred1
    d1, d0 = sup1 + pred1, sup0 + pred0
    f1_1 = np.divide(2.0 * tp1, d1, out=np.zeros(np.broadcast(tp1, d1).shape), where=d1 > 0)
    f1_0 = np.divide(2.0 * tp0, d0, out=np.zeros(np.broadcast(tp0, d0).shape), where=d0 > 0)
    return (f1_0 * sup0 + f1_1 * sup1) / total


def _finish(kind: str, ind: dict, cont: dict, lab_ind: dict, lab_cont: dict, w: np.ndarray) -> dict:
    """Metrics ([r, S]) from the weighted sums of one model; ``w`` is [r, 1] total weight."""
    out = {}
    if kind == "mosi":
        out["Has0_acc_2"] = (ind["TP1h"] + ind["TP0h"]) / w
        out["Has0_F1_score"] = _binary_f1(ind["TP1h"], ind["TP0h"], lab_ind["Th"], ind["PPh"], w)
        k = lab_ind["K"]
        out["Non0_acc_2"] = (ind["TP1n"] + ind["TP0n"]) / k
        out["Non0_F1_score"] = _binary_f1(ind["TP1n"], ind["TP0n"], lab_ind["Tn"], ind["PPn"], k)
        none = np.broadcast_to(k == 0, out["Non0_acc_2"].shape)
        out["Non0_acc_2"] = np.where(none, NAN, out["Non0_acc_2"])
        out["Non0_F1_score"] = np.where(none, NAN, out["Non0_F1_score"])
        out["Mult_acc_5"] = ind["C5"] / w
        out["Mult_acc_7"] = ind["C7"] / w
    else:
        out["Mult_acc_2"] = (ind["TP1"] + ind["TP0"]) / w
        out["Mult_acc_3"] = ind["C3"] / w
        out["Mult_acc_5"] = ind["C5"] / w
        out["F1_score"] = _binary_f1(ind["TP1"], ind["TP0"], lab_ind["T"], ind["PP"], w)
    out["MAE"] = cont["E"] / w
    sp, spp, spy = cont["P"], cont["PP2"], cont["PY"]
    sy, syy = lab_cont["Y"], lab_cont["YY"]
    vp = spp - sp * sp / w
    vy = syy - sy * sy / w
    cov = spy - sp * sy / w
    denom = np.sqrt(np.maximum(vp, 0.0) * np.maximum(vy, 0.0))
    out["Corr"] = np.clip(cov / denom, -1.0, 1.0)
    # Near-zero variance is either a constant side (Corr undefined) or cancellation: such
    # cells are flagged here and settled exactly by _fix_corr.
    out["_corr_suspect"] = (vp <= _CONST_RTOL * spp) | (vy <= _CONST_RTOL * syy) | ~np.isfinite(out["Corr"])
    zero = np.broadcast_to(w == 0, out["MAE"].shape)  # an empty resample scores nan, as metrics does
    return {m: np.where(zero, NAN, out[m]) for m in metrics.METRICS[kind]} | {"_corr_suspect": out["_corr_suspect"]}


def _fix_corr(corr: np.ndarray, suspect: np.ndarray, counts: np.ndarray, p: np.ndarray, y: np.ndarray) -> None:
    """Recompute flagged Corr cells directly on the weighted items (vectorised over the cells).

    nan when a side is constant over the resampled items (as ``metrics.pearson``), else a
    two-pass weighted Pearson r, which does not suffer from the cancellation of the sums.
    """
    rows, strata = np.nonzero(suspect)
    if rows.size == 0:
        return
    w = counts[rows].astype(np.float64)  # [F, n]
    pv, yv = p[strata], y[strata]
    sel = w > 0
    big = np.where(sel, pv, -np.inf).max(1), np.where(sel, yv, -np.inf).max(1)
    small = np.where(sel, pv, np.inf).min(1), np.where(sel, yv, np.inf).min(1)
    const = (big[0] == small[0]) | (big[1] == small[1]) | ~sel.any(1)
    tot = w.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pc = pv - (w * pv).sum(1, keepdims=True) / tot
        yc = yv - (w * yv).sum(1, keepdims=True) / tot
        den = np.sqrt((w * pc * pc).sum(1) * (w * yc * yc).sum(1))
        r = np.clip((w * pc * yc).sum(1) / den, -1.0, 1.0)
    bad = const | (den == 0) | ~np.isfinite(den)
    corr[rows, strata] = np.where(bad, NAN, r)


def _multi_metrics(preds: Sequence[np.ndarray], labels: np.ndarray, kind: str, counts) -> list[dict]:
    """Per-stratum metrics of several models on the same resamples, one product per chunk.

    Returns, per model, {metric: [R, S]} ([1, S] with ``counts=None``, i.e. all weights 1).
    """
    n_strata, n = labels.shape
    preds = [_prepare(p, labels, kind) for p in preds]
    y = preds[0][1]
    ps = [p for p, _ in preds]
    # Labels are usually the same in every stratum: one column per statistic then suffices.
    lab_rows = y[:1] if (y == y[:1]).all() else y
    lab_ind, lab_cont = _label_features(lab_rows, kind)
    feats = [_model_features(p, y, kind) for p in ps]

    if counts is None:
        counts = np.ones((1, n), dtype=np.int32)
    counts = _counts(counts, n)
    n_res = counts.shape[0]
    integral = np.issubdtype(counts.dtype, np.integer) or bool((counts == np.round(counts)).all())
    exact32 = integral and float(counts.sum(1).max(initial=0)) < 2.0**24
    ind_dtype = np.float32 if exact32 else np.float64
    x_ind = _design([f[0] for f in feats] + [lab_ind], ind_dtype)
    x_cont = _design([f[1] for f in feats] + [lab_cont], np.float64)

    n_ind_m, n_cont_m = len(_IND_MODEL[kind]), len(_CONT_MODEL)
    n_lab = lab_rows.shape[0]
    results = [{m: np.empty((n_res, n_strata)) for m in metrics.METRICS[kind]} for _ in ps]
    for start in range(0, n_res, _CHUNK):
        c = counts[start : start + _CHUNK]
        r = c.shape[0]
        s_ind = _dot(c.astype(ind_dtype), x_ind).astype(np.float64)
        c64 = c.astype(np.float64)
        s_cont = _dot(c64, x_cont)
        w = c64.sum(1, keepdims=True)
        split_i = len(ps) * n_ind_m * n_strata
        split_c = len(ps) * n_cont_m * n_strata
        li = s_ind[:, split_i:].reshape(r, -1, n_lab)
        lc = s_cont[:, split_c:].reshape(r, -1, n_lab)
        lab_i = {name: li[:, j] for j, name in enumerate(_IND_LABEL[kind])}
        lab_c = {name: lc[:, j] for j, name in enumerate(_CONT_LABEL)}
        mi = s_ind[:, :split_i].reshape(r, len(ps), n_ind_m, n_strata)
        mc = s_cont[:, :split_c].reshape(r, len(ps), n_cont_m, n_strata)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, p in enumerate(ps):
                got = _finish(
                    kind,
                    {name: mi[:, k, j] for j, name in enumerate(_IND_MODEL[kind])},
                    {name: mc[:, k, j] for j, name in enumerate(_CONT_MODEL)},
                    lab_i,
                    lab_c,
                    w,
                )
                corr = np.array(got["Corr"])
                _fix_corr(corr, got.pop("_corr_suspect"), c, p, y)
                got["Corr"] = corr
                for m, v in got.items():
                    results[k][m][start : start + r] = v
    return results


def stratum_metrics(pred, labels, kind: str, counts=None) -> dict[str, np.ndarray]:
    """Per-stratum MMSA metrics, optionally on every bootstrap resample at once.

    ``counts=None`` gives ``{metric: [S]}``, equal to ``metrics.compute`` on each row.
    ``counts`` ``[R, n]`` gives ``{metric: [R, S]}``: the metric on each resample, the
    same resampled items in every stratum. Computed from weighted sums of per-item
    statistics (accuracy = counts @ correct / counts @ 1, F1 from per-class TP and
    predicted/true counts, Corr from centred moments), so no loop runs per resample.
    """
    kind = _kind(kind)
    p = _matrix(pred, "prediction")
    y = _matrix(labels, "label")
    _same_shape(p, y, "label")
    out = _multi_metrics([p], y, kind, counts)[0]
    if counts is None:
        return {m: v[0] for m, v in out.items()}
    return out


# ----------------------------------------------------------------------------- intervals


def t_quantile(q: float, df: float) -> float:
    """Student-t quantile (df = inf is the normal one); scipy.special is ~100x faster than sps.t."""
    return float(special.ndtri(q)) if math.isinf(df) else float(special.stdtrit(df, q))


def seed_means(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """[..., S] -> [..., k]: mean over the strata of each seed."""
    return np.stack([values[..., g].mean(axis=-1) for g in groups], axis=-1)


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
    kind = _kind(kind)
    alpha = _alpha(alpha)
    pa, pb, y = _matrix(a, "model A predictions"), _matrix(b, "model B predictions"), _matrix(labels, "labels")
    _same_shape(y, pa, "model A predictions")
    _same_shape(y, pb, "model B predictions")
    if int(n_resamples) < 2:
        raise MsabenchError(f"stats: n_resamples must be >= 2, got {n_resamples}")
    n_strata, n = y.shape
    groups = seed_groups(seeds, n_strata)
    k = len(groups)
    counts = resample_counts(n, n_resamples, seed)
    point_a, point_b = _multi_metrics([pa, pb], y, kind, None)
    boot_a, boot_b = _multi_metrics([pa, pb], y, kind, counts)

    out = {}
    for m in metrics.METRICS[kind]:
        va, vb = point_a[m][0], point_b[m][0]
        agg_a, agg_b = float(va.mean()), float(vb.mean())
        diff = agg_a - agg_b
        seed_a, seed_b = seed_means(va, groups), seed_means(vb, groups)
        bsa, bsb = seed_means(boot_a[m], groups), seed_means(boot_b[m], groups)  # [R, k]
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
    kind = _kind(kind)
    alpha = _alpha(alpha)
    if metric not in metrics.METRICS[kind]:
        raise MsabenchError(f"stats: unknown metric {metric!r} for {kind}; expected one of {list(metrics.METRICS[kind])}")
    p, y = _matrix(pred, "prediction"), _matrix(labels, "label")
    _same_shape(y, p, "prediction")
    if int(n_resamples) < 2:
        raise MsabenchError(f"stats: n_resamples must be >= 2, got {n_resamples}")
    n_strata, n = y.shape
    cond = list(np.asarray(conditions, dtype=object).ravel())
    if len(cond) != n_strata:
        raise MsabenchError(f"stats: conditions must have one entry per stratum ({n_strata}), got {len(cond)}")
    seeds = np.asarray(seeds).ravel()
    seed_groups(seeds, n_strata)  # validates the shape
    point = _multi_metrics([p], y, kind, None)[0][metric][0]
    boot = _multi_metrics([p], y, kind, resample_counts(n, n_resamples, seed))[0][metric]
    out = {}
    for c in dict.fromkeys(cond):
        idx = np.array([i for i, x in enumerate(cond) if x == c])
        groups = [idx[g] for g in seed_groups(seeds[idx], idx.size)]
        seed_vals = seed_means(point, groups)
        value = float(seed_vals.mean())
        lo, hi = decompose([seed_vals], [seed_means(boot, groups)]).interval(value, alpha)
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
    _same_shape(ac, bc, "b_correct")
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
    ea, eb = _matrix(a_err, "a_err"), _matrix(b_err, "b_err")
    _same_shape(ea, eb, "b_err")
    n_resamples = int(n_resamples)
    if n_resamples < 1:
        raise MsabenchError(f"stats: n_resamples must be >= 1, got {n_resamples}")
    d = (np.abs(ea) - np.abs(eb)).mean(axis=0)
    n = d.size
    t_obs = abs(float(d.sum()))
    tol = 1e-12 * float(np.abs(d).sum())  # sums equal in exact arithmetic count as ties
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, _CHUNK * 4):
        r = min(_CHUNK * 4, n_resamples - start)
        signs = rng.integers(0, 2, size=(r, n), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
        hits += int(np.count_nonzero(np.abs(signs @ d) >= t_obs - tol))
    return (1 + hits) / (n_resamples + 1)


def rank_rows(scores, lower_is_better: bool = False) -> np.ndarray:
    """Rank of each column within each row (1 = best; ties share the mean rank)."""
    s = _matrix(scores, "scores")
    return sps.rankdata(s if lower_is_better else -s, axis=1)


@dataclass(frozen=True)
class Friedman:
    """Friedman test over blocks (conditions) and Nemenyi critical difference of mean ranks."""

    statistic: float
    p: float
    mean_ranks: np.ndarray
    cd: float
    n_blocks: int
    n_models: int


def friedman_nemenyi(scores, lower_is_better: bool = False, alpha: float = 0.05) -> Friedman:
    """Rank several models across blocks (Demšar 2006): Friedman test plus Nemenyi CD.

    The blocks must be independent: data sets, not the conditions of one protocol (which
    share the test set and the trained models; the leaderboard shows their mean ranks
    without a test).

    Rank 1 is the best model in a block, ties get averaged ranks; two models whose mean
    ranks differ by more than cd = q_alpha sqrt(k(k+1)/(6N)) differ at level alpha, with
    q_alpha the studentized range quantile (df = inf) over sqrt(2).
    """
    alpha = _alpha(alpha)
    s = _matrix(scores, "scores")
    n_blocks, k = s.shape
    if k < 3:
        raise MsabenchError(f"stats: the Friedman test needs at least 3 models, got {k}")
    if n_blocks < 2:
        raise MsabenchError(f"stats: the Friedman test needs at least 2 blocks, got {n_blocks}")
    ranks = sps.rankdata(s if lower_is_better else -s, axis=1)
    res = sps.friedmanchisquare(*s.T)
    q = float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf)) / math.sqrt(2.0)
    cd = q * math.sqrt(k * (k + 1) / (6.0 * n_blocks))
    return Friedman(float(res.statistic), float(res.pvalue), ranks.mean(axis=0), cd, n_blocks, k)


def welch_from_stats(
    mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int, alpha: float = 0.05
) -> tuple[float, tuple[float, float], float, float]:
    """(diff, CI, p, df) of a Welch t-test from published mean, std (ddof=1) and seed count.

    For comparing with a paper that reports only "mean ± std over k seeds"; it sees the
    seed-level spread only, not the test-set sampling.
    """
    alpha = _alpha(alpha)
    if int(n_a) < 2 or int(n_b) < 2:
        raise MsabenchError(f"stats: Welch's test needs at least 2 seeds per model, got {n_a} and {n_b}")
    vals = [float(v) for v in (mean_a, std_a, mean_b, std_b)]
    if not all(math.isfinite(v) for v in vals) or vals[1] < 0 or vals[3] < 0:
        raise MsabenchError("stats: means must be finite and stds finite and non-negative")
    diff = vals[0] - vals[2]
    va, vb = vals[1] ** 2 / n_a, vals[3] ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff), (1.0 if diff == 0 else 0.0), INF
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    res = sps.ttest_ind_from_stats(vals[0], vals[1], int(n_a), vals[2], vals[3], int(n_b), equal_var=False)
    half = t_quantile(1.0 - alpha / 2.0, df) * se
    return diff, (diff - half, diff + half), float(res.pvalue), float(df)
