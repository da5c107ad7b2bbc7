"""Leaderboards from stored results: no re-running, every number recomputed from result files.

Per protocol: models ranked by the primary metric's mean over conditions, each metric as
mean ± std over seeds, the best value of each column in bold, and every model compared
with the best one by the paired bootstrap (Holm over the comparisons), so a reader sees
which gaps are real: a model whose difference from the best is not significant is marked
tied. Then a per-condition table, a robustness curve (metric per condition with 95%
bands), a Friedman test with Nemenyi critical difference over conditions (3+ models),
and, for bundled models run with components switched off (`prlf:amre=off`), an ablation
table. results.csv / results.json carry every fingerprint behind each row.
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

from msabench import compare, metrics, plots, protocols, results, stats
from msabench.errors import MsabenchError
from msabench.report import seed_stats

DATA_TITLES = {
    "synth-mosi": "Synthetic data (synth-mosi, generated; checks the plumbing, not real-world skill)",
    "mosi-utt": "Real data: CMU-MOSI utterance-level features, bc-LSTM split (split_bclstm)",
    "mosi": "CMU-MOSI (MMSA files)",
    "mosei": "CMU-MOSEI (MMSA files)",
    "sims": "CH-SIMS (MMSA files)",
}


@dataclass(frozen=True)
class Settings:
    """How much resampling the significance marks use."""

    n_resamples: int = 10_000
    curve_resamples: int = 2_000
    seed: int = 0
    alpha: float = 0.05
    figures: bool = True


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


@dataclass(frozen=True)
class VsBest:
    """A model's primary-metric difference from the best model, paired."""

    diff: float
    ci: tuple[float, float]
    p_holm: float
    tied: bool | None  # None: not tested (see note)
    note: str = ""


def versus_best(entries: list[Entry], primary: str, settings: Settings) -> dict[str, VsBest]:
    """Each model against the best one on the primary metric; Holm over the comparisons."""
    order = ranked(entries, primary)
    best = order[0]
    tested: dict[str, stats.Comparison] = {}
    out: dict[str, VsBest] = {}
    for e in order[1:]:
        try:
            paired = compare.pair_units(list(e.units), list(best.units))
            if len(paired.seed_list) < 2:
                raise MsabenchError(f"shares {len(paired.seed_list)} seed with {best.model}; needs 2")
            tested[e.model] = stats.paired_bootstrap(paired.a, paired.b, paired.labels, paired.seeds, paired.kind,
                                                     n_resamples=settings.n_resamples, seed=settings.seed,
                                                     alpha=settings.alpha)[primary]
        except MsabenchError as err:
            out[e.model] = VsBest(float("nan"), (float("nan"), float("nan")), float("nan"), None, str(err))
    adjusted = stats.holm([c.p for c in tested.values()])
    for (model, c), p in zip(tested.items(), adjusted):
        tied = None if not math.isfinite(p) else bool(p >= settings.alpha)
        out[model] = VsBest(c.diff, c.ci_diff, float(p), tied)
    return out


def _best_values(entries: list[Entry], names: tuple[str, ...], agg: str = "mean") -> dict[str, float]:
    best = {}
    for m in names:
        vals = [e.aggregate(m, agg)[0] for e in entries if math.isfinite(e.aggregate(m, agg)[0])]
        if vals:
            best[m] = min(vals) if m in metrics.LOWER_IS_BETTER else max(vals)
    return best


def _cell(e: Entry, m: str, best: dict[str, float], agg: str = "mean") -> str:
    text = _fmt(*e.aggregate(m, agg))
    return f"**{text}**" if m in best and e.aggregate(m, agg)[0] == best[m] else text


def protocol_section(protocol: protocols.Protocol, entries: list[Entry], out_dir: Path | None = None,
                     settings: Settings = Settings()) -> str:
    names = metrics.METRICS[protocol.metric_kind]
    primary = protocol.primary_metric
    full = ranked([e for e in entries if "[" not in e.model], primary)
    vs = versus_best(full, primary, settings) if len(full) > 1 else {}
    lines = [f"### {protocol.name}", "", f"{protocol.description}", "",
             f"Primary metric: {primary} (mean over conditions); each cell is mean ± std over seeds, the best of "
             f"each column in bold. \"vs best\" is the paired bootstrap difference from the best model on {primary} "
             f"({settings.n_resamples} item resamples, seed variance included) with Holm-adjusted p; **tied** = not "
             f"significantly different from the best at α = {settings.alpha}. "
             f"Protocol fingerprint `{protocol.fingerprint[:12]}`.", ""]
    best = _best_values(full, names)
    rows = []
    for rank, e in enumerate(full, 1):
        v = vs.get(e.model)
        if rank == 1:
            mark, diff, p = "best", "", ""
        elif v is None or v.tied is None:
            mark, diff, p = "not tested" + (f" ({v.note})" if v and v.note else ""), "", ""
        else:
            mark = "**tied**" if v.tied else "worse"
            diff = f"{v.diff:+.4f} [{v.ci[0]:+.4f}, {v.ci[1]:+.4f}]"
            p = compare._p(v.p_holm)
        rows.append([rank, md_escape(e.model), len(e.seeds), *[_cell(e, m, best) for m in names], diff, p, mark])
    lines.append(tabulate(rows, headers=["#", "model", "seeds", *names, f"vs best: Δ {primary} [95% CI]", "p Holm",
                                         "vs best"], tablefmt="github", disable_numparse=True))
    if "area" in protocol.aggregation:
        best_area = _best_values(full, names, "area")
        rows = [[md_escape(e.model)] + [_cell(e, m, best_area, "area") for m in names] for e in full]
        lines += ["", "Area over rates (trapezoid, unnormalised):", "",
                  tabulate(rows, headers=["model", *names], tablefmt="github", disable_numparse=True)]
    rows = [[md_escape(e.model)] + [_fmt(*e.condition(primary, c.name), digits=3) for c in protocol.conditions]
            for e in full]
    lines += ["", f"{primary} per condition:", "",
              tabulate(rows, headers=["model", *[c.name for c in protocol.conditions]], tablefmt="github",
                       disable_numparse=True)]
    if out_dir is not None and settings.figures and full:
        png = robustness_figure(protocol, full, out_dir, settings)
        lines += ["", f"![{primary} per condition with 95% bands]({png.name})"]
    ranking = friedman_section(protocol, full, out_dir if settings.figures else None)
    if ranking:
        lines += ["", ranking]
    ablation = ablation_table(protocol, entries)
    if ablation:
        lines += ["", f"Ablations ({primary}, mean over conditions; Δ against the full model with the same seeds):",
                  "", ablation]
    return "\n".join(lines) + "\n"


def robustness_figure(protocol: protocols.Protocol, full: list[Entry], out_dir: Path, settings: Settings) -> Path:
    """The primary metric per condition, one line per model, 95% bands from the same bootstrap."""
    primary = protocol.primary_metric
    series = {}
    for e in full:
        ids, pred, labels, seeds, conds = compare.stack(list(e.units))
        per = stats.condition_intervals(pred, labels, conds, seeds, protocol.metric_kind, primary,
                                        n_resamples=settings.curve_resamples, seed=settings.seed,
                                        alpha=settings.alpha)
        cs = [c.name for c in protocol.conditions]
        series[e.model] = ([per[c][0] for c in cs], [per[c][1] for c in cs], [per[c][2] for c in cs])
    x = None if protocol.kind == "inter" else [c.level for c in protocol.conditions]
    return plots.robustness_curve(Path(out_dir) / f"{protocol.name}-curve.png",
                                  f"{protocol.name}: {primary} (mean over seeds, 95% band)", primary, x,
                                  [c.name for c in protocol.conditions], series)


def friedman_section(protocol: protocols.Protocol, full: list[Entry], out_dir: Path | None) -> str:
    """Friedman test over conditions and Nemenyi critical difference (Demšar 2006), for 3+ models."""
    primary = protocol.primary_metric
    if len(full) < 3 or len(protocol.conditions) < 2:
        return ""
    scores = np.array([[e.condition(primary, c.name)[0] for e in full] for c in protocol.conditions])
    if not np.all(np.isfinite(scores)):
        return f"Friedman test skipped: {primary} is undefined in some condition."
    fr = stats.friedman_nemenyi(scores, lower_is_better=primary in metrics.LOWER_IS_BETTER)
    ranks = {e.model: float(r) for e, r in zip(full, fr.mean_ranks)}
    text = (f"Ranking over the {fr.n_blocks} conditions (blocks) by {primary}: Friedman χ² = {fr.statistic:.2f}, "
            f"p = {compare._p(fr.p)}; Nemenyi critical difference {fr.cd:.2f} (α = 0.05). Mean ranks: "
            + ", ".join(f"{md_escape(m)} {r:.2f}" for m, r in sorted(ranks.items(), key=lambda kv: kv[1])) + ".")
    if out_dir is not None:
        png = plots.cd_diagram(Path(out_dir) / f"{protocol.name}-cd.png",
                               f"{protocol.name}: mean rank over conditions ({primary})", ranks, fr.cd)
        text += f"\n\n![critical-difference diagram]({png.name})"
    return text


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


def write(results_dir: str | Path, out_dir: str | Path, command: str = "", settings: Settings = Settings()) -> Path:
    """Write README.md (+ figures), results.csv and results.json for every protocol found."""
    grouped = collect(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# msabench leaderboard", "",
             "Generated from stored per-sample results by `msabench leaderboard`; do not edit by hand.",
             *([f"Produced by: `{command}`", ""] if command else [""])]
    loaded = {name: protocols.load(name) for name in grouped}
    for dataset in dict.fromkeys(p.dataset for p in loaded.values()):
        parts += [f"## {DATA_TITLES.get(dataset, dataset)}", ""]
        for proto_name, entries in grouped.items():
            if loaded[proto_name].dataset == dataset:
                parts.append(protocol_section(loaded[proto_name], entries, out, settings))
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
