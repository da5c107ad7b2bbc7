"""Leaderboards from stored results: no re-running, every number recomputed from result files.

Per protocol: models ranked by the primary metric's mean over conditions, each metric as
mean ± std over seeds; a per-condition table of the primary metric; and, for bundled
models run with components switched off (`prlf:amre=off`), an ablation table against
the full model. results.csv / results.json carry every fingerprint behind each row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tabulate import tabulate

from msabench import metrics, protocols, results
from msabench.errors import MsabenchError
from msabench.report import seed_stats


@dataclass(frozen=True)
class Entry:
    """One (protocol, model) with all its seeds."""

    protocol: str
    model: str
    units: tuple[results.UnitResult, ...]

    @property
    def seeds(self) -> list[int]:
        return [u.seed for u in self.units]

    def aggregate(self, metric: str, agg: str = "mean") -> tuple[float, float]:
        return seed_stats([u.metrics["aggregate"][agg][metric] for u in self.units])

    def condition(self, metric: str, cond: str) -> tuple[float, float]:
        return seed_stats([u.metrics["conditions"][cond][metric] for u in self.units])


def collect(results_dir: str | Path) -> dict[str, list[Entry]]:
    """Entries per protocol from a results folder."""
    folders = results.find_units(results_dir)
    if not folders:
        raise MsabenchError(f"no finished results under {results_dir}; run `msabench run` first")
    grouped: dict[tuple[str, str], list[results.UnitResult]] = {}
    for f in folders:
        u = results.read_unit(f)
        grouped.setdefault((u.protocol, u.model), []).append(u)
    out: dict[str, list[Entry]] = {}
    for (proto, model), units in sorted(grouped.items()):
        out.setdefault(proto, []).append(Entry(proto, model, tuple(sorted(units, key=lambda u: u.seed))))
    return out


def _fmt(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def md_escape(name: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>" else ch for ch in name)


def ranked(entries: list[Entry], primary: str) -> list[Entry]:
    """Best first on the primary metric's mean over conditions; undefined values last."""
    def key(e: Entry):
        mean = e.aggregate(primary)[0]
        if not math.isfinite(mean):
            return (1, 0.0, e.model)
        return (0, mean if primary in metrics.LOWER_IS_BETTER else -mean, e.model)

    return sorted(entries, key=key)


def protocol_section(protocol: protocols.Protocol, entries: list[Entry]) -> str:
    names = metrics.METRICS[protocol.metric_kind]
    primary = protocol.primary_metric
    full = [e for e in entries if "[" not in e.model]
    lines = [f"## {protocol.name}", "", f"{protocol.description}", "",
             f"Primary metric: {primary} (mean over conditions); each cell is mean ± std over seeds. "
             f"Protocol fingerprint `{protocol.fingerprint[:12]}`.", ""]
    rows = []
    for rank, e in enumerate(ranked(full, primary), 1):
        rows.append([rank, md_escape(e.model), len(e.seeds)] + [_fmt(*e.aggregate(m)) for m in names])
    lines.append(tabulate(rows, headers=["#", "model", "seeds", *names], tablefmt="github", disable_numparse=True))
    if "area" in protocol.aggregation:
        rows = [[md_escape(e.model)] + [_fmt(*e.aggregate(m, "area")) for m in names] for e in ranked(full, primary)]
        lines += ["", "Area over rates (trapezoid, unnormalised):", "",
                  tabulate(rows, headers=["model", *names], tablefmt="github", disable_numparse=True)]
    rows = [[md_escape(e.model)] + [_fmt(*e.condition(primary, c.name), digits=3) for c in protocol.conditions]
            for e in ranked(full, primary)]
    lines += ["", f"{primary} per condition:", "",
              tabulate(rows, headers=["model", *[c.name for c in protocol.conditions]], tablefmt="github",
                       disable_numparse=True)]
    ablation = ablation_table(protocol, entries)
    if ablation:
        lines += ["", f"Ablations ({primary}, mean over conditions; Δ against the full model with the same seeds):",
                  "", ablation]
    return "\n".join(lines) + "\n"


def ablation_table(protocol: protocols.Protocol, entries: list[Entry]) -> str:
    primary = protocol.primary_metric
    by_name = {e.model: e for e in entries}
    rows = []
    for e in entries:
        if "[" not in e.model:
            continue
        base = by_name.get(e.model.split("[")[0])
        if base is None:
            continue
        shared = sorted(set(base.seeds) & set(e.seeds))
        if not shared:
            continue
        full = [u.metrics["aggregate"]["mean"][primary] for u in base.units if u.seed in shared]
        cut = [u.metrics["aggregate"]["mean"][primary] for u in e.units if u.seed in shared]
        delta = seed_stats(list(np.subtract(cut, full)))
        rows.append([md_escape(e.model), ",".join(map(str, shared)), _fmt(*seed_stats(full)), _fmt(*seed_stats(cut)),
                     _fmt(*delta)])
    if not rows:
        return ""
    return tabulate(rows, headers=["variant", "seeds", "full model", "variant", "Δ"], tablefmt="github",
                    disable_numparse=True)


def records(grouped: dict[str, list[Entry]]) -> list[dict]:
    out = []
    for proto, entries in grouped.items():
        for e in entries:
            for u in e.units:
                m = u.manifest
                for agg, values in u.metrics["aggregate"].items():
                    out.append({"protocol": proto, "model": e.model, "seed": u.seed, "condition": f"<{agg}>",
                                **values, **{k: m[k] for k in results.IDENTITY if k != "seed"}})
                for cond, values in u.metrics["conditions"].items():
                    out.append({"protocol": proto, "model": e.model, "seed": u.seed, "condition": cond,
                                **values, **{k: m[k] for k in results.IDENTITY if k != "seed"}})
    return out


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write(results_dir: str | Path, out_dir: str | Path, command: str = "") -> Path:
    """Write README.md, results.csv and results.json for every protocol found."""
    grouped = collect(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# msabench leaderboard", "",
             "Generated from stored per-sample results by `msabench leaderboard`; do not edit by hand.",
             *([f"Produced by: `{command}`", ""] if command else [""])]
    for proto_name, entries in grouped.items():
        parts.append(protocol_section(protocols.load(proto_name), entries))
    rows = records(grouped)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    _write(out / "results.csv", buf.getvalue())
    _write(out / "results.json", json.dumps([results.jsonable(r) for r in rows], indent=1, allow_nan=False))
    _write(out / "README.md", "\n".join(parts))
    return out / "README.md"
