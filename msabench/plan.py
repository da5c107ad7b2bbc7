"""How many training seeds a comparison needs: the seed budget for a target difference.

A comparison's variance has a retraining part that shrinks with more seeds and a test-set
part that does not (`variance.decompose`). From stored runs, `plan` estimates both for a
pair (or the board's median pair), then asks, for k = 2, 3, ... seeds, the smallest true
difference the paired test detects with 80% power (`variance.Variance.mde`), and reports
the first k whose detectable difference is at or below each target. Two settings:
- two models, each pair's own seeds (`compare --no-pool`, `verify`);
- on this board (`compare` on a folder of at least `variance.MIN_MODELS` models, and the
  leaderboard): the retraining variance pooled over the board, its prior's degrees of freedom
  as estimated now (the cap grows with seeds, so this is conservative).
The level is the pairwise one (alpha, two-sided); a leaderboard verdict is decided at a
smaller level (closed testing over every pair), so its budget is larger.

An estimate from 2-3 seeds is itself noisy: the budget is a planning figure, not a promise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msabench import compare, metrics, protocols, resampling, results, variance
from msabench.errors import MsabenchError

MAX_SEEDS = 100


@dataclass(frozen=True)
class Budget:
    """Seeds needed for one target difference (None: more than MAX_SEEDS)."""

    target: float
    two_models: int | None
    board: int | None


@dataclass(frozen=True)
class Plan:
    protocol: str
    metric: str
    pair: str  # "A vs B", or "median pair of N models"
    seeds_used: tuple[int, ...]
    retraining: float  # variance of one seed's paired difference
    items: float  # the test-set variance of the difference (does not shrink with seeds)
    alpha: float
    power: float
    pool: variance.Prior | None
    budgets: tuple[Budget, ...]

    @property
    def floor(self) -> float:
        """The detectable difference with infinitely many seeds: the test set's own resolution."""
        return variance.Variance(0.0, self.items, variance.INF).mde(self.alpha, self.power)

    def table(self) -> str:
        pool = (f"board: retraining variance {self.pool.label}" if self.pool else
                f"board: no pool (fewer than {variance.MIN_MODELS} models whose seeds vary)")
        head = (f"Seed budget on {self.protocol}, {self.metric}, {self.pair} (estimated on seeds "
                f"{list(self.seeds_used)}): retraining variance of one seed's difference {self.retraining:.3g} "
                f"(SD {math.sqrt(self.retraining):.4f}), test-set SD of the difference {math.sqrt(self.items):.4f}; "
                f"paired test at alpha {self.alpha} (two-sided), power {self.power:.0%}; {pool}.")
        rows = [f"| {b.target:+.4f} ({100 * b.target:+.1f} points) | {self._seeds(b.target, b.two_models)} | "
                f"{self._seeds(b.target, b.board)} |" for b in self.budgets]
        return "\n".join([head, "", "| true difference | seeds, two models | seeds, on this board |",
                          "|---|---|---|", *rows])

    def _seeds(self, target: float, k: int | None) -> str:
        if k is not None:
            return str(k)
        if target < self.floor:
            return f"never (the test set alone: {self.floor:.4f})"  # the smallest gap any seed count detects
        return f"> {MAX_SEEDS}"


def mde_at(k: int, retraining: float, items: float, alpha: float, power: float,
           pool: variance.Prior | None = None) -> float:
    """The detectable difference with k seeds, the variances as estimated (pooled: the board's prior)."""
    v = (variance.Variance(retraining / k, items, float(k - 1)) if pool is None
         else pool.variance(retraining / k, items, float(k - 1)))
    return v.mde(alpha, power)


def seeds_for(target: float, retraining: float, items: float, alpha: float, power: float,
              pool: variance.Prior | None = None) -> int | None:
    """The fewest seeds (>= 2) whose detectable difference is <= target; the MDE falls with k."""
    if mde_at(MAX_SEEDS, retraining, items, alpha, power, pool) > target:
        return None
    lo, hi = 1, MAX_SEEDS  # mde(hi) <= target; lo below the search range
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid >= 2 and mde_at(mid, retraining, items, alpha, power, pool) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def plan(results_dir: str | Path, protocol: str, *, metric: str | None = None, targets=(0.01, 0.025),
         models: tuple[str, str] | None = None, alpha: float = 0.05, power: float = 0.8,
         n_resamples: int = 2000, seed: int = 0, data: tuple[str, ...] = ()) -> Plan:
    """The seed budget of `models` (or the board's median pair) on `protocol` for each target difference."""
    board = compare.stacked(results_dir, protocol, data, min_models=2)
    if board is None:
        raise MsabenchError(f"plan needs at least 2 models with at least 2 shared seeds on {protocol} under "
                            f"{results.where(results_dir)}")
    metric = metric or protocols.load(protocol).primary_metric
    if metric not in metrics.METRICS[board.kind]:
        raise MsabenchError(f"metric {metric!r} does not exist for {protocol} ({board.kind} metrics: "
                            f"{', '.join(metrics.METRICS[board.kind])})")
    if models:
        for m in models:
            if m not in board.preds:
                raise MsabenchError(f"no results for model {m} on {protocol} with seeds {board.seed_list} under "
                                    f"{results.where(results_dir)}; models there: {', '.join(board.preds)}")
    groups = resampling.seed_groups(board.seeds, board.labels.shape[0])
    counts = resampling.resample_counts(board.labels.shape[1], n_resamples, seed)
    point = resampling.seed_values(board.preds, board.labels, board.kind, metric, groups)
    boot = resampling.seed_values(board.preds, board.labels, board.kind, metric, groups, counts)
    pairs = [models] if models else [(a, b) for i, a in enumerate(board.preds) for b in list(board.preds)[i + 1:]]
    k = len(groups)
    retraining, items = [], []
    for a, b in pairs:
        v = variance.decompose([point[a], point[b]], [boot[a], boot[b]])
        if math.isfinite(v.seeds) and math.isfinite(v.items):
            retraining.append(v.seeds * k)
            items.append(v.items)
    if not retraining:
        raise MsabenchError(f"plan: {metric} is undefined for the stored runs on {protocol}")
    r, it = float(np.median(retraining)), float(np.median(items))
    prior = variance.prior(point)
    budgets = tuple(Budget(float(t), seeds_for(float(t), r, it, alpha, power),
                           seeds_for(float(t), r, it, alpha, power, prior) if prior else None)
                    for t in targets)
    label = f"{models[0]} vs {models[1]}" if models else f"median pair of {len(board.preds)} models"
    return Plan(protocol, metric, label, tuple(board.seed_list), r, it, alpha, power, prior, budgets)
