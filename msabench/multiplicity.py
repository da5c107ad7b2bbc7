"""Many tests at once: Holm over a family, and which models are not shown worse than the best.

Every verdict here comes with the level that decides it, so the interval printed beside a
verdict is at that level and agrees with it: a p-value p adjusted to p_adj is decided at
alpha * p / p_adj (the interval at that level excludes 0 exactly when p_adj <= alpha).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1; nan stays nan).

    m counts only the finite p-values, since a nan is a test that was not run.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, NAN)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def decision_level(p: float, p_adj: float, alpha: float, m: int = 1) -> float:
    """The level at which the raw p is compared once adjusted: alpha * p / p_adj.

    An interval at this level excludes 0 exactly when p_adj <= alpha. When both are 0
    (a difference with no variance) the Bonferroni level alpha / m stands in.
    """
    if not (math.isfinite(p) and math.isfinite(p_adj)):
        return alpha
    if p_adj <= 0.0:
        return alpha / max(1, m)
    return alpha * p / p_adj


@dataclass(frozen=True)
class BestSet:
    """Which models are not shown worse than the best, one row per model in input order.

    `p_adj[i]`: the closed test's adjusted p for "model i is among the best"; `worse[i]`:
    p_adj[i] <= alpha; `rival[i]`: the model that beats i most clearly (the decisive
    comparison); `level[i]`: the one-sided level at which i's comparison with its rival is
    decided (its interval is the two-sided one at 2 * level[i]).
    """

    p_adj: np.ndarray
    worse: np.ndarray
    rival: np.ndarray
    level: np.ndarray
    alpha: float

    @property
    def kept(self) -> list[int]:
        return [i for i, w in enumerate(self.worse) if not w]


def best_set(p_beats: np.ndarray, alpha: float = 0.05) -> BestSet:
    """Closed testing of "model i is among the best", valid when the best is picked from the same data.

    `p_beats[j, i]`: one-sided p-value for "model j is better than model i" (diagonal ignored).
    The hypothesis that every model of a set S is tied for best is tested by Bonferroni over
    the |S| (m - 1) one-sided comparisons it implies (min p <= alpha / (|S| (m - 1))); model i
    is declared worse than the best when every such set containing it is rejected (Marcus,
    Peritz & Gabriel's closed testing). The family-wise error of the "worse" verdicts is at
    most alpha whatever the true means, the complete null (all models equal) included: a
    "vs #1" test with Holm, which takes #1 from the same data, does not have that property.
    """
    p = np.asarray(p_beats, dtype=np.float64)
    m = p.shape[0]
    if p.shape != (m, m):
        raise ValueError(f"p_beats must be square, got shape {p.shape}")
    if m < 2:
        return BestSet(np.full(m, NAN), np.zeros(m, bool), np.full(m, -1), np.full(m, alpha), alpha)
    off = p.copy()
    np.fill_diagonal(off, np.inf)
    off = np.where(np.isnan(off), np.inf, off)
    q = off.min(axis=0)  # q[i]: how strongly i is beaten by anyone
    rival = off.argmin(axis=0)
    p_adj = np.empty(m)
    for i in range(m):
        others = np.sort(np.delete(q, i))[::-1]  # the sets hardest to reject add the least beaten models
        best = q[i]
        for s in range(2, m + 1):
            best = max(best, s * min(q[i], others[s - 2]))
        p_adj[i] = min(1.0, (m - 1) * best) if math.isfinite(q[i]) else NAN
    level = np.array([decision_level(q[i] / 1.0, p_adj[i], alpha, m * (m - 1)) for i in range(m)])
    worse = np.where(np.isnan(p_adj), False, p_adj <= alpha)
    return BestSet(p_adj, worse, rival, level, alpha)
