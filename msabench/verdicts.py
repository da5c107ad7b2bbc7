"""Which models are not shown worse than the best, with the interval that decides each verdict.

A board ranks models on one protocol and the seeds they share. "vs #1 with Holm" takes #1
from the same data it then tests against, which inflates the family-wise error once a
board has more than a few models; here every model is tested against every other
(`multiplicity.best_set`, closed testing), so the "worse" verdicts keep their error rate at
alpha whoever is truly best.

Every pair's test is `variance.Variance`'s on the paired difference (item bootstrap with
the same resampled items for every model, plus the retraining variance of the pair's
seed-by-seed differences, k - 1 degrees of freedom). With `pool` (the default) and at
least `variance.MIN_MODELS` models whose seeds vary, each pair's retraining variance is
moderated by the board's (`variance.prior`, Smyth 2004) and its test calibrated for the
noisiest pairs the board's spread allows (`variance.calibrate_pooled`): the seed term gets
the board's degrees of freedom, which is what lets 3 seeds separate a constant predictor from
the best at the small levels closed testing needs.

Each row's interval is the two-sided interval of its difference from its rival (the model
that beats it most clearly) at twice the one-sided level its verdict is decided at (the
largest one-sided p at which the closed test would still call it worse, the other models as
they are): it lies below 0 (above 0 for MAE) exactly when the row says "worse". The row's MDE
is at that level: how far below its rival a model must truly be for this board to call it
worse with 80% power. `mde_pair` is the same pair's MDE at alpha, what a single planned
comparison of the two would detect; the gap between the two is the price of asking the
best-model question of every model at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msabench import metrics, multiplicity, resampling, variance

WORSE, KEPT = "worse", "not shown worse"


@dataclass(frozen=True)
class Row:
    """One model's verdict: its difference from its rival, the interval and level that decide it."""

    model: str
    rank: int
    value: float  # the metric, mean over seeds and conditions
    verdict: str  # WORSE or KEPT
    rival: str  # the model that beats it most clearly ("" for a board of one)
    diff: float  # value - rival's value
    ci: tuple[float, float]  # two-sided interval of diff at `level`
    level: float  # 1 - level is the interval's coverage
    p_adj: float  # closed-test adjusted p of "this model is among the best"
    mde: float  # smallest true gap to the rival detected with 80% power at `level`
    df: float  # degrees of freedom of the retraining term
    mde_pair: float = math.nan  # the same pair's MDE at two-sided alpha: what one comparison of the two detects


@dataclass(frozen=True)
class Board:
    """The verdicts of one protocol on one metric, best observed first."""

    protocol: str
    metric: str
    seeds: tuple[int, ...]
    alpha: float
    rows: tuple[Row, ...]
    pool: variance.Prior | None
    n_resamples: int

    @property
    def method(self) -> str:
        test = ("item bootstrap + retraining variance of the seed-by-seed differences, kappa-calibrated "
                f"({self.n_resamples} resamples)")
        pool = f"; retraining variance {self.pool.label}" if self.pool else "; each pair's own seeds"
        return f"{test}{pool}; closed testing of 'among the best' over all pairs (alpha {self.alpha})"

    @property
    def kept(self) -> list[str]:
        return [r.model for r in self.rows if r.verdict == KEPT]


def _worse(metric: str, ci: tuple[float, float]) -> bool:
    return ci[0] > 0 if metric in metrics.LOWER_IS_BETTER else ci[1] < 0


def judge(protocol: str, kind: str, metric: str, preds: dict[str, np.ndarray], labels: np.ndarray,
          seeds: np.ndarray, *, alpha: float = 0.05, n_resamples: int = 10_000, seed: int = 0,
          pool: bool = True) -> Board:
    """Verdicts for models scored on identical strata: `preds[model]` [S, n], `labels` [S, n], `seeds` [S]."""
    names = list(preds)
    groups = resampling.seed_groups(seeds, labels.shape[0])
    seed_list = tuple(int(np.asarray(seeds)[g[0]]) for g in groups)
    k = len(groups)
    point = resampling.seed_values(preds, labels, kind, metric, groups)
    counts = resampling.resample_counts(labels.shape[1], n_resamples, seed)
    boot = resampling.seed_values(preds, labels, kind, metric, groups, counts)
    value = {m: float(point[m].mean()) for m in names}
    prior = variance.prior(point, alpha=alpha) if pool else None
    lower = metric in metrics.LOWER_IS_BETTER
    order = sorted(names, key=lambda m: (not math.isfinite(value[m]), value[m] if lower else -value[m], m))
    m_ = len(order)
    var: dict[tuple[str, str], variance.Variance] = {}
    p_beats = np.full((m_, m_), np.nan)
    for a in range(m_):
        for b in range(m_):
            if a == b:
                continue
            i, j = order[a], order[b]
            v = variance.decompose([point[j], point[i]], [boot[j], boot[i]])
            if prior is not None and i not in prior.outliers and j not in prior.outliers:
                v = v.moderated(prior, k)
            elif k < 2:
                v = variance.Variance(variance.NAN, variance.NAN, variance.INF)  # no retraining term: no test
            var[(j, i)] = v
            gain = value[j] - value[i]
            p_beats[b, a] = v.p_greater(-gain if lower else gain)
    best = multiplicity.best_set(p_beats, alpha)
    rows = []
    for a, model in enumerate(order):
        if m_ == 1 or not math.isfinite(best.p_adj[a]):
            rows.append(Row(model, a + 1, value[model], KEPT, "", math.nan, (math.nan, math.nan), math.nan,
                            math.nan, math.nan, math.nan))
            continue
        rival = order[int(best.rival[a])]
        v = var[(rival, model)]  # the variance of rival - model is that of model - rival
        diff = value[model] - value[rival]
        level = min(1.0, 2.0 * float(best.level[a]))
        ci = v.interval(diff, level)
        rows.append(Row(model, a + 1, value[model], WORSE if _worse(metric, ci) else KEPT, rival, diff, ci, level,
                        float(best.p_adj[a]), v.mde(level), float(v.nu), v.mde(alpha)))
    return Board(protocol, metric, seed_list, alpha, tuple(rows), prior, n_resamples)
