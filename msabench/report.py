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


WIDTH = 100  # a terminal's columns: the tables printed fit; files (metrics.json, results.csv) hold everything


def summary_rows(units: list[UnitResult], protocol: Protocol,
                 names: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per condition, then one per aggregate."""
    names = list(metrics.METRICS[protocol.metric_kind]) if names is None else names
    header = ["condition"] + names
    rows = []
    for c in protocol.conditions:
        rows.append([c.name] + [_cell([u.metrics["conditions"][c.name][m] for u in units], 4) for m in names])
    for agg in protocol.aggregation:
        rows.append([agg] + [_cell([u.metrics["aggregate"][agg][m] for u in units], 4) for m in names])
    return header, rows


def by_importance(protocol: Protocol) -> list[str]:
    """The protocol's metrics, the primary first, then MAE and Corr, then the rest in MMSA's order."""
    names = list(metrics.METRICS[protocol.metric_kind])
    first = [m for m in (protocol.primary_metric, "MAE", "Corr") if m in names]
    return list(dict.fromkeys(first + names))


def summary_table(units: list[UnitResult], protocol: Protocol, fmt: str = "github", width: int | None = WIDTH) -> str:
    """Each metric per condition; with `width`, the most important metrics that fit in it (in MMSA's
    order), and a line naming the others and where they are."""
    seeds = ", ".join(str(u.seed) for u in units)
    title = f"{units[0].model} on {protocol.name} (seeds {seeds}; mean ± std over seeds)"
    order = list(metrics.METRICS[protocol.metric_kind])
    keep = order
    if width is not None:
        keep = []
        for m in by_importance(protocol):
            trial = [n for n in order if n in keep or n == m]
            header, rows = summary_rows(units, protocol, trial)
            text = tabulate(rows, headers=header, tablefmt=fmt, disable_numparse=True)
            if keep and max(map(len, text.splitlines())) > width:
                break
            keep = trial
    header, rows = summary_rows(units, protocol, keep)
    out = title + "\n" + tabulate(rows, headers=header, tablefmt=fmt, disable_numparse=True)
    left = [m for m in order if m not in keep]
    if left:
        out += f"\n(also in the results: {', '.join(left)}; --wide shows every metric)"
    return out
