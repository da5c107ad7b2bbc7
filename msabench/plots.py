"""Leaderboard figures: robustness curves and critical-difference diagrams, as PNG files.

Drawn with matplotlib's Agg backend (no display needed); writes are atomic like every
other output. The numbers come in computed; nothing here does statistics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def robustness_curve(path: str | Path, title: str, metric: str, x: list[float] | None, labels: list[str],
                     series: dict[str, tuple[list[float], list[float], list[float]]]) -> Path:
    """Metric per condition, one line per model with its 95% CI band.

    `x` gives the missing rates (intra protocols); None puts conditions at equal spacing
    with `labels` as ticks (availability sets). `series`: model -> (values, lo, hi).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    pos = list(x) if x is not None else list(range(len(labels)))
    for model, (y, lo, hi) in series.items():
        (line,) = ax.plot(pos, y, marker="o", markersize=3, label=model)
        ax.fill_between(pos, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    if x is None:
        ax.set_xticks(pos, labels)
        ax.set_xlabel("available modalities")
    else:
        ax.set_xlabel("missing rate r")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    path = Path(path)
    out = _save(fig, path)
    plt.close(fig)
    return out


def cd_diagram(path: str | Path, title: str, mean_ranks: dict[str, float], cd: float) -> Path:
    """Demšar-style critical-difference diagram: models on a rank axis, a bar of length CD,
    and thick lines joining groups of models whose ranks differ by less than CD."""
    plt = _pyplot()
    k = len(mean_ranks)
    order = sorted(mean_ranks, key=mean_ranks.get)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * k))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-k - 1, 2)
    ax.invert_xaxis()  # rank 1 on the right, as in Demšar (2006)
    ax.axhline(0, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="black", linewidth=1)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize=8)
    for i, model in enumerate(order):
        rank = mean_ranks[model]
        y = -(i + 1) * 0.8
        ax.plot([rank, rank], [0, y], color="grey", linewidth=0.8)
        ax.text(rank, y - 0.1, f"{model} ({rank:.2f})", ha="center", va="top", fontsize=8)
    ax.plot([1, 1 + cd], [1.3, 1.3], color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.45, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    groups = []
    for i in range(k):
        j = max(j for j in range(i, k) if mean_ranks[order[j]] - mean_ranks[order[i]] < cd)
        if j > i and not any(g[0] <= i and j <= g[1] for g in groups):
            groups.append((i, j))
    for n, (i, j) in enumerate(groups):
        y = -0.25 - 0.18 * n
        ax.plot([mean_ranks[order[i]], mean_ranks[order[j]]], [y, y], color="black", linewidth=3)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    path = Path(path)
    out = _save(fig, path)
    plt.close(fig)
    return out
