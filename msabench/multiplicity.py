"""Many tests at once: Holm over a family, and which models are not shown worse than the best.

Every verdict here comes with the level that decides it: the largest raw p-value at which
that hypothesis would still be rejected, the other p-values as they are. An interval at that
level (the test inverted) excludes 0 exactly when the adjusted p is at most alpha, and the MDE
at that level is the gap the procedure, not a lone test, detects. The level does not depend on
the hypothesis' own p-value (alpha * p / p_adj would, wherever p_adj is capped at 1).
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


def holm_levels(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """Each hypothesis' deciding level under Holm: the largest raw p it could have and still be rejected.

    With the others' p-values o_1 <= ... <= o_(m-1) fixed, a raw p at rank r is rejected when
    o_j <= alpha / (m - j + 1) for every j < r and p <= alpha / (m - r + 1); the level is the
    largest such p over the ranks the step-down reaches, between alpha / m and alpha: p is
    rejected exactly when p <= level, also where the step-down stops early (raw 0.03, 0.04: both
    levels 0.025, both intervals hold 0).
    nan where the p-value is nan (a test that was not run); m counts the finite p-values.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, NAN)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    for i in ok:
        others = np.sort(p[ok[ok != i]])
        level = 0.0
        for r in range(1, m + 1):  # p at rank r: the r - 1 smallest others come first
            level = max(level, min(alpha / (m - r + 1), others[r - 1] if r - 1 < others.size else math.inf))
            if r - 1 < others.size and others[r - 1] > alpha / (m - r + 1):
                break  # the step-down stops at the others' rank r: no later rank is reached
        out[i] = level
    return out


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
    p_adj, level = np.empty(m), np.empty(m)
    for i in range(m):
        others = np.sort(np.delete(q, i))[::-1]  # the sets hardest to reject add the least beaten models
        best = q[i]
        for s in range(2, m + 1):
            best = max(best, s * min(q[i], others[s - 2]))
        p_adj[i] = min(1.0, (m - 1) * best) if math.isfinite(q[i]) else NAN
        level[i] = _best_level(others, alpha)
    worse = q <= level  # q is never nan (untested pairs count as inf: never worse)
    return BestSet(p_adj, worse, rival, level, alpha)


def _best_level(others: np.ndarray, alpha: float) -> float:
    """The largest q_i at which model i is still declared worse, the other models' q fixed.

    `others`: the other models' q, sorted from least beaten (as `best_set` sorts them). With
    c = alpha / (m - 1), the set of i and the s - 1 least beaten others is rejected when
    s * min(q_i, o_(s-1)) <= c: for every s, q_i <= c / s or o_(s-1) <= c / s. So the level is c
    capped by c / s at every s whose set the others alone would not let fall.
    """
    m = others.size + 1
    c = alpha / (m - 1)
    level = c
    for s in range(2, m + 1):
        if others[s - 2] > c / s:
            level = min(level, c / s)
    return level
