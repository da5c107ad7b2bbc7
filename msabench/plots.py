"""Leaderboard figures: robustness curves as PNG (for the page), SVG and PDF (for print).

Drawn with matplotlib's Agg backend (no display needed); writes are atomic like every
other output, and the files carry no date, so the same numbers give the same bytes. The
numbers come in computed; nothing here does statistics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from msabench import paths

# Okabe & Ito's colour-blind safe palette; with more models than colours the marker and the dash
# pattern change as well, so no two models share all three.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", ":", "-.")
FORMATS = (".png", ".svg", ".pdf")


def available() -> bool:
    """matplotlib is an extra (`msabench[run]`): without it a board is written without figures."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def style(k: int) -> dict:
    """The k-th model's colour, marker and line style."""
    return {"color": COLOURS[k % len(COLOURS)], "marker": MARKERS[(k // len(COLOURS) + k) % len(MARKERS)],
            "linestyle": DASHES[(k // len(COLOURS)) % len(DASHES)]}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "msabench"  # element ids that do not change from run to run
    return plt


def _save(fig, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    meta = {".png": {"Software": None}, ".svg": {"Date": None}, ".pdf": {"CreationDate": None, "Producer": None}}
    try:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=meta[path.suffix])
        paths.publish(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def robustness_curve(path: str | Path, title: str, metric: str, x: list[float] | None, labels: list[str],
                     series: dict[str, tuple[list[float], list[float], list[float]]]) -> list[Path]:
    """Metric per condition per model with its 95% interval; the PNG at `path`, then its SVG and PDF.

    `x` gives the missing rates (intra protocols): one line per model with its band. None means
    availability sets, categories with no order: each model is a point with its interval,
    the models side by side within each set, never joined by lines. `series`: model -> (values, lo, hi).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    n = len(series)
    for k, (model, (y, lo, hi)) in enumerate(series.items()):
        st = style(k)
        if x is None:
            offset = (k - (n - 1) / 2) * min(0.8 / max(n, 1), 0.12)
            pos = [i + offset for i in range(len(labels))]
            err = [[v - a for v, a in zip(y, lo)], [b - v for v, b in zip(y, hi)]]
            ax.errorbar(pos, y, yerr=err, fmt=st["marker"], color=st["color"], markersize=4, elinewidth=1,
                        capsize=0, label=model)
        else:
            ax.plot(x, y, marker=st["marker"], markersize=4, color=st["color"], linestyle=st["linestyle"],
                    linewidth=1.4, label=model)
            ax.fill_between(x, lo, hi, color=st["color"], alpha=0.10, linewidth=0)
    if x is None:
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("available modalities")
        for i in range(len(labels) - 1):
            ax.axvline(i + 0.5, color="#dddddd", linewidth=0.8)
    else:
        ax.set_xlabel("missing rate r")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y" if x is None else "both")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              ncol=1 if n <= 18 else 2)  # outside the axes: it never covers the data
    path = Path(path)
    out = [_save(fig, path.with_suffix(suffix)) for suffix in FORMATS]
    plt.close(fig)
    return out
