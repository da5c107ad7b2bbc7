"""The MMSA metrics (``metricsTop.py``), reproduced exactly in plain numpy.

Numbers are only comparable across papers when every repository scores the same way,
so each function below follows MMSA's current definition to the letter. Weighted F1 takes
``(y_true, y_pred)`` in scikit-learn's order, as current MMSA does; old MMSA versions and
forks copied from them (MulT, TFR-Net, early LNLN) pass the arguments swapped, which
changes weighted F1, so numbers from those cannot be compared with these. Values keep full float precision;
MMSA rounds to 4 decimals for display only. A metric that is undefined on the given
samples (no samples, a constant side for Corr, only zero labels for Non0) is ``nan``
rather than a number that looks meaningful.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from msabench.data import registry
from msabench.errors import MsabenchError

MOSI_METRICS = (
    "Has0_acc_2",
    "Has0_F1_score",
    "Non0_acc_2",
    "Non0_F1_score",
    "Mult_acc_5",
    "Mult_acc_7",
    "MAE",
    "Corr",
)
SIMS_METRICS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")

METRICS: dict[str, tuple[str, ...]] = {"mosi": MOSI_METRICS, "sims": SIMS_METRICS}
LOWER_IS_BETTER = frozenset({"MAE"})

# Interior bin edges of MMSA's SIMS classes; a value on an edge belongs to the lower bin.
SIMS_EDGES_2 = (0.0,)
SIMS_EDGES_3 = (-0.1, 0.1)
SIMS_EDGES_5 = (-0.7, -0.1, 0.1, 0.7)

NAN = float("nan")


def accuracy(a: np.ndarray, b: np.ndarray) -> float:
    """Exact-match rate; nan on no samples instead of numpy's 0/0 warning."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0:
        return NAN
    return float(np.count_nonzero(a == b) / a.size)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(y_true, y_pred, average="weighted")`` without sklearn.

    Classes are the union of both sides; a class's F1 is 2TP / (2TP + FP + FN), which is
    2TP / (support + predicted), and is weighted by its support in ``y_true`` (so the
    argument order matters, which is why it is fixed here).
    """
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    n = y_true.size
    if n == 0:
        return NAN
    classes, inverse = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    t, p = inverse[:n], inverse[n:]
    k = classes.size
    support = np.bincount(t, minlength=k)
    predicted = np.bincount(p, minlength=k)
    tp = np.bincount(t[t == p], minlength=k)
    denom = support + predicted  # == 2TP + FP + FN
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(np.dot(f1, support) / n)


def has0_acc2(p: np.ndarray, y: np.ndarray) -> float:
    """Binary accuracy counting a 0 label as positive, over all samples."""
    return accuracy(np.asarray(y) >= 0, np.asarray(p) >= 0)


def has0_f1(p: np.ndarray, y: np.ndarray) -> float:
    """Weighted F1 of the Has0 split (0 counts as positive)."""
    return weighted_f1(np.asarray(y) >= 0, np.asarray(p) >= 0)


def _non0(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p), np.asarray(y)
    keep = y != 0
    return y[keep] > 0, p[keep] > 0


def non0_acc2(p: np.ndarray, y: np.ndarray) -> float:
    """Binary accuracy over samples with a non-zero label only (nan if there are none)."""
    truth, pred = _non0(p, y)
    return accuracy(truth, pred)


def non0_f1(p: np.ndarray, y: np.ndarray) -> float:
    """Weighted F1 over samples with a non-zero label only (nan if there are none)."""
    truth, pred = _non0(p, y)
    return weighted_f1(truth, pred)


def mult_acc(p: np.ndarray, y: np.ndarray, clip: float) -> float:
    """MOSI-style multi-class accuracy: clip to [-clip, clip], round half to even, match.

    clip=3 gives Mult_acc_7, clip=2 gives Mult_acc_5.
    """
    p = np.round(np.clip(np.asarray(p, dtype=float), -clip, clip))
    y = np.round(np.clip(np.asarray(y, dtype=float), -clip, clip))
    return accuracy(p, y)


def sims_bins(x: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin index per value; intervals are left-open, so an edge value goes to the lower bin.

    This matches MMSA's ``(ms[i], ms[i+1]]`` masks for values already clipped to [-1, 1].
    """
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(x, dtype=float), side="left")


def sims_acc(p: np.ndarray, y: np.ndarray, edges: tuple[float, ...]) -> float:
    """SIMS multi-class accuracy on clipped values binned by ``edges``."""
    p = np.clip(np.asarray(p, dtype=float), -1.0, 1.0)
    y = np.clip(np.asarray(y, dtype=float), -1.0, 1.0)
    return accuracy(sims_bins(p, edges), sims_bins(y, edges))


def sims_f1(p: np.ndarray, y: np.ndarray) -> float:
    """Weighted F1 on SIMS's two classes (0 is negative), on clipped values."""
    p = np.clip(np.asarray(p, dtype=float), -1.0, 1.0)
    y = np.clip(np.asarray(y, dtype=float), -1.0, 1.0)
    return weighted_f1(sims_bins(y, SIMS_EDGES_2), sims_bins(p, SIMS_EDGES_2))


def mae(p: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error; nan on no samples."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    if p.size == 0:
        return NAN
    return float(np.mean(np.abs(p - y)))


def pearson(p: np.ndarray, y: np.ndarray) -> float:
    """Pearson r as ``np.corrcoef`` gives it, but nan (not a warning) when a side is constant."""
    p, y = np.ravel(np.asarray(p, dtype=float)), np.ravel(np.asarray(y, dtype=float))
    if p.size == 0 or np.all(p == p[0]) or np.all(y == y[0]):
        return NAN
    pc, yc = p - p.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(pc, pc)) * float(np.dot(yc, yc)))
    if denom == 0.0 or not math.isfinite(denom):
        return NAN
    return float(np.clip(np.dot(pc, yc) / denom, -1.0, 1.0))


def _as_array(x, what: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MsabenchError(f"metrics: {what} is not numeric ({exc})") from None


LIMIT = 1e6  # no score or label beyond this is a sentiment value


def compute(pred, label, kind: str = "mosi") -> dict[str, float]:
    """All metrics of one family, in the family's order, as plain floats.

    Inputs are checked here because a silent broadcast or a stray nan would yield a
    plausible but wrong score.
    """
    if kind not in METRICS:
        raise MsabenchError(f"metrics: unknown kind {kind!r}; expected one of {sorted(METRICS)}")
    p, y = _as_array(pred, "prediction"), _as_array(label, "label")
    if p.shape != y.shape:
        raise MsabenchError(
            f"metrics: prediction shape {p.shape} differs from label shape {y.shape}"
        )
    p, y = p.ravel(), y.ravel()
    for what, arr in (("prediction", p), ("label", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise MsabenchError(
                f"metrics: {what} has {int(bad.sum())} non-finite value(s), first at index {i} ({arr[i]})"
            )
        big = np.abs(arr) > LIMIT
        if big.any():  # sums of squares would overflow to inf and give nan metrics
            i = int(np.argmax(big))
            raise MsabenchError(f"metrics: {what} has {int(big.sum())} value(s) beyond +-{LIMIT:g}, first at index "
                                f"{i} ({arr[i]:g}); sentiment scores lie in [-3, 3]")
    if kind == "mosi":
        return {
            "Has0_acc_2": has0_acc2(p, y),
            "Has0_F1_score": has0_f1(p, y),
            "Non0_acc_2": non0_acc2(p, y),
            "Non0_F1_score": non0_f1(p, y),
            "Mult_acc_5": mult_acc(p, y, 2.0),
            "Mult_acc_7": mult_acc(p, y, 3.0),
            "MAE": mae(p, y),
            "Corr": pearson(p, y),
        }
    pc, yc = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)
    return {
        "Mult_acc_2": sims_acc(pc, yc, SIMS_EDGES_2),
        "Mult_acc_3": sims_acc(pc, yc, SIMS_EDGES_3),
        "Mult_acc_5": sims_acc(pc, yc, SIMS_EDGES_5),
        "F1_score": sims_f1(pc, yc),
        "MAE": mae(pc, yc),
        "Corr": pearson(pc, yc),
    }


LABEL_RANGE = registry.LABEL_RANGE  # the datasets' annotation scales, per metric family


def score_csv(path, kind: str | None = None) -> dict[str, float]:
    """Score a CSV with ``prediction`` and ``label`` columns (kind defaults to "mosi").

    Every problem names the file and the line, so a broken submission is fixed in one go.
    """
    kind = "mosi" if kind is None else kind
    if kind not in METRICS:
        raise MsabenchError(f"{path}: unknown kind {kind!r}; expected one of {sorted(METRICS)}")
    path = Path(path)
    preds: list[float] = []
    labels: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise MsabenchError(f"{path}: file is empty (expected a header with 'prediction' and 'label')")
            names = [h.strip() for h in header]
            cols = {}
            for col in ("prediction", "label"):
                if col not in names:
                    raise MsabenchError(f"{path}: line 1: missing column {col!r} (header has {names})")
                cols[col] = names.index(col)
            for row in reader:
                if not row:  # blank line
                    continue
                line = reader.line_num
                values = []
                for col in ("prediction", "label"):
                    j = cols[col]
                    if j >= len(row):
                        raise MsabenchError(f"{path}: line {line}, column {col!r}: value is missing")
                    raw = row[j]
                    try:
                        v = float(raw)
                    except ValueError:
                        raise MsabenchError(
                            f"{path}: line {line}, column {col!r}: {raw!r} is not a number"
                        ) from None
                    if not math.isfinite(v):
                        raise MsabenchError(f"{path}: line {line}, column {col!r}: {raw!r} is not finite")
                    values.append(v)
                low, high = LABEL_RANGE[kind]
                if not low <= values[1] <= high:
                    raise MsabenchError(f"{path}: line {line}, column 'label': {row[cols['label']]!r} is outside "
                                        f"the {kind} label range [{low:g}, {high:g}] (--kind {kind})")
                preds.append(values[0])
                labels.append(values[1])
    except FileNotFoundError:
        raise MsabenchError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise MsabenchError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise MsabenchError(f"{path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise MsabenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not preds:
        raise MsabenchError(f"{path}: no data rows after the header")
    return compute(np.array(preds), np.array(labels), kind)


def by_condition(pred: np.ndarray, label: np.ndarray, cond: np.ndarray, conditions: list[tuple[str, float]],
                 kind: str, aggregation: tuple[str, ...] = ("mean",)) -> dict:
    """Per-condition metrics and their aggregates: the mean over conditions and the trapezoid area
    over their levels (missing rates), as `{"conditions": {name: {...}}, "aggregate": {...}}`."""
    per = {name: compute(pred[cond == name], label[cond == name], kind) for name, _ in conditions}
    names = METRICS[kind]
    agg = {}
    if "mean" in aggregation:
        agg["mean"] = {m: float(np.mean([per[c][m] for c in per])) for m in names}
    if "area" in aggregation:
        levels = np.array([level for _, level in conditions], dtype=np.float64)
        order = np.argsort(levels, kind="stable")
        agg["area"] = {m: float(np.trapezoid(np.array([per[conditions[i][0]][m] for i in order]), levels[order]))
                       for m in names}
    return {"conditions": per, "aggregate": agg}
