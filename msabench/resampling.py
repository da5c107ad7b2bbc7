"""Every MMSA metric per stratum, on the data and on item-bootstrap resamples, in one pass.

Data model: predictions are ``[S, n]`` arrays, one row per stratum (a (seed, condition)
pair), the same ``n`` items in the same order in every row; ``labels`` is ``[S, n]`` too
and ``seeds`` (``[S]``) says which training seed each row belongs to.

The bootstrap is vectorised through sufficient statistics: every MMSA metric is a
function of weighted sums of per-item quantities, so all resamples, strata and models
come out of one ``counts @ item_statistics`` matrix product per chunk of resamples. A
resample is a vector of item counts (`resample_counts`), the same items in every stratum
and for every model, so pairing is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msabench import metrics
from msabench.errors import MsabenchError

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


def matrix(x, what: str) -> np.ndarray:
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


def same_shape(ref: np.ndarray, other: np.ndarray, what: str) -> None:
    if other.shape != ref.shape:
        raise MsabenchError(f"stats: {what} has shape {other.shape}, expected {ref.shape} (same strata and items)")


def check_kind(kind: str) -> str:
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


def check_alpha(alpha: float) -> float:
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


def _flat(x: np.ndarray) -> np.ndarray:
    """[S]: the stratum's values are all equal, so they are in every resample of it."""
    return x.max(1) == x.min(1)


def _fix_corr(corr: np.ndarray, suspect: np.ndarray, counts: np.ndarray, p: np.ndarray, y: np.ndarray,
              flat: np.ndarray) -> None:
    """Recompute flagged Corr cells directly on the weighted items (vectorised over the cells).

    nan when a side is constant over the resampled items (as ``metrics.pearson``), else a
    two-pass weighted Pearson r, which does not suffer from the cancellation of the sums.
    `flat` [S]: a side is constant over the whole stratum (``_flat``), so those cells are nan
    with no work (the constant floor on a board flags every cell of every resample).
    """
    corr[suspect & flat[None, :]] = NAN
    rows, strata = np.nonzero(suspect & ~flat[None, :])
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


def multi_metrics(preds: Sequence[np.ndarray], labels: np.ndarray, kind: str, counts) -> list[dict]:
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
    y_flat = _flat(y)
    flats = [_flat(p) | y_flat for p in ps]  # per model, once: the same in every chunk of resamples

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
                _fix_corr(corr, got.pop("_corr_suspect"), c, p, y, flats[k])
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
    kind = check_kind(kind)
    p = matrix(pred, "prediction")
    y = matrix(labels, "label")
    same_shape(p, y, "label")
    out = multi_metrics([p], y, kind, counts)[0]
    if counts is None:
        return {m: v[0] for m, v in out.items()}
    return out


def seed_means(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """[..., S] -> [..., k]: mean over the strata of each seed."""
    return np.stack([values[..., g].mean(axis=-1) for g in groups], axis=-1)


def seed_values(preds: dict, labels: np.ndarray, kind: str, metric: str, groups: list[np.ndarray],
                counts=None) -> dict:
    """{model: [k]} (or [R, k] with `counts`): each model's `metric` per seed, mean over its strata."""
    return {m: seed_means(stratum_metrics(p, labels, kind, counts)[metric], groups) for m, p in preds.items()}
