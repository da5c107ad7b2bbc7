"""Tables shown to users: each metric's mean +- std over seeds, per condition and aggregated."""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from msabench import metrics
from msabench.protocols import Protocol
from msabench.results import UnitResult


def seed_stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN with a single seed)."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if len(arr) > 1 else float("nan")
    return float(np.mean(arr)), std


def _cell(values: list[float], digits: int) -> str:
    mean, std = seed_stats(values)
    if not np.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f}" if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_rows(units: list[UnitResult], protocol: Protocol) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per condition, then one per aggregate."""
    names = list(metrics.METRICS[protocol.metric_kind])
    header = ["condition"] + names
    rows = []
    for c in protocol.conditions:
        rows.append([c.name] + [_cell([u.metrics["conditions"][c.name][m] for u in units], 4) for m in names])
    for agg in protocol.aggregation:
        rows.append([agg] + [_cell([u.metrics["aggregate"][agg][m] for u in units], 4) for m in names])
    return header, rows


def summary_table(units: list[UnitResult], protocol: Protocol, fmt: str = "github") -> str:
    header, rows = summary_rows(units, protocol)
    seeds = ", ".join(str(u.seed) for u in units)
    title = f"{units[0].model} on {protocol.name} (seeds {seeds}; mean ± std over seeds)"
    return title + "\n" + tabulate(rows, headers=header, tablefmt=fmt, disable_numparse=True)
