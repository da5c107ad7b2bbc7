"""Leaderboard figures: robustness curves, as PNG files.

Drawn with matplotlib's Agg backend (no display needed); writes are atomic like every
other output. The numbers come in computed; nothing here does statistics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from msabench import paths


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
        paths.publish(tmp, path)
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
