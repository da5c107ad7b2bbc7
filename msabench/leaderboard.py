"""The leaderboard page: markdown, figures, CSV and JSON from the board's data (`board`).

Per protocol: models ranked by the primary metric's mean over conditions, each metric as
mean ± std over seeds, the best value of each column in bold, and the verdicts of
`verdicts.judge` (every model against every other, closed testing): "worse" only when some
model is shown better, "not shown worse" otherwise (which is not "as good": the minimum
detectable difference says how large a gap could hide). Ranking and tests use the same seeds,
those every model of the section shares; a model with only some of the protocol's seeds (its
runs not finished) is named under the section, not ranked. Then a per-condition table, a
robustness curve (metric per condition with 95% bands), the mean rank over conditions
(descriptive only: conditions share one test set and one set of trained models, so they are
not the independent blocks a Friedman/Nemenyi test needs), and, for bundled models run with
components switched off (`prlf:amre=off`), an ablation table. results.csv / results.json
carry every fingerprint behind each row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from tabulate import tabulate

from msabench import board, claims, compare, metrics, paths, plots, protocols, results, stats, submission, verdicts
from msabench import webpage
from msabench.report import seed_stats

DATA_TITLES = {
    "synth-mosi": "Synthetic data (synth-mosi, generated; checks the plumbing, not real-world skill)",
    "synth-sims": "Synthetic data labelled as CH-SIMS (synth-sims, generated; with unimodal T/A/V labels)",
    "mosi-utt": "Real data: CMU-MOSI utterance-level features, bc-LSTM split (split_bclstm)",
    "mosi": "CMU-MOSI (MMSA files)",
    "mosei": "CMU-MOSEI (MMSA files)",
    "sims": "CH-SIMS (MMSA files)",
}


def _fmt(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def pct(metric: str) -> bool:
    """Accuracies and F1 are shown in percent, as papers print them (`claims.scale`); MAE and Corr as they are."""
    return claims.scale(metric) == 100.0


def value(metric: str, mean: float, std: float = math.nan, short: bool = False) -> str:
    """A metric's mean (± std) in its paper unit: percent with 2 decimals (1 when short), else 4 (3)."""
    if pct(metric):
        return _fmt(100.0 * mean, 100.0 * std, 1 if short else 2)
    return _fmt(mean, std, 3 if short else 4)


def signed(metric: str, x: float) -> str:
    return f"{100.0 * x:+.2f}" if pct(metric) else f"{x:+.4f}"


def header(metric: str) -> str:
    return f"{metric} (%)" if pct(metric) else metric


def shown(e: board.Entry) -> str:
    """The model's name as a table cell; test-selected results carry the flaw in their name."""
    return md_escape(submission.display_name(e.model)) + (" (checkpoints selected on TEST)" if e.selects_on_test else "")


def md_escape(name: str) -> str:
    """A name inside a table cell: only what markdown would read as markup or a cell border is escaped."""
    return "".join("\\" + ch if ch in "\\`*_[]|<>" else ch for ch in name)


def _seed_list(seeds) -> str:
    return ", ".join(map(str, seeds))


def summary(judged: verdicts.Board, shown: dict[str, str]) -> str:
    """One sentence computed from the verdicts: the set not shown worse than the best, and the rest."""
    kept = [shown[m] for m in judged.kept]
    worse = [shown[r.model] for r in judged.rows if r.verdict == verdicts.WORSE]
    mdes = [r.mde for r in judged.rows if math.isfinite(r.mde)]
    pairs = [r.mde_pair for r in judged.rows if math.isfinite(r.mde_pair)]
    text = (f"{len(kept)} of {len(judged.rows)} models {'is' if len(kept) == 1 else 'are'} not shown worse than the "
            f"best on {judged.metric}: {', '.join(kept)}")
    text += f"; worse: {', '.join(worse)}" if worse else "; no model is shown worse"
    def fmt(x: float) -> str:
        return f"{100.0 * x:.2f} points" if pct(judged.metric) else f"{x:.4f}"

    if mdes:
        text += (". Median smallest gap to a rival this board detects with 80% power (MDE): "
                 f"{fmt(float(np.median(mdes)))} for a 'worse' verdict, every model tested against every other; "
                 f"{fmt(float(np.median(pairs)))} for one planned comparison of the same pair at {judged.alpha:g}")
    return text + "."


def _best_values(entries: list[board.Entry], names: tuple[str, ...], agg: str = "mean") -> dict[str, float]:
    best = {}
    for m in names:
        vals = [e.aggregate(m, agg)[0] for e in entries if math.isfinite(e.aggregate(m, agg)[0])]
        if vals:
            best[m] = min(vals) if m in metrics.LOWER_IS_BETTER else max(vals)
    return best


def _cell(e: board.Entry, m: str, best: dict[str, float], agg: str = "mean") -> str:
    text = value(m, *e.aggregate(m, agg))
    return f"**{text}**" if m in best and e.aggregate(m, agg)[0] == best[m] else text


def protocol_section(protocol: protocols.Protocol, entries: list[board.Entry], out_dir: Path | None = None,
                     settings: board.Settings = board.DEFAULT_SETTINGS, boards: dict | None = None,
                     pages: list | None = None) -> str:
    """The protocol's markdown; its verdicts are also put in `boards` (by protocol name) and what the
    HTML page shows of it in `pages`, when given."""
    names = metrics.METRICS[protocol.metric_kind]
    primary = protocol.primary_metric
    everything, unfinished = board.complete(protocol, [e for e in entries if not board.is_ablation(e.model)])
    seeds = board.shared_seeds(everything)
    full = board.ranked([e.on_seeds(seeds) for e in everything] if seeds else everything, primary)
    judged = board.judge(protocol, full, settings) if seeds else None
    vs = {r.model: r for r in judged.rows} if judged else {}
    if boards is not None and judged is not None:
        boards[protocol.name] = judged
    dropped = sorted({f"{shown(e)} seed {s}" for e in everything for s in e.seeds if s not in seeds})
    scope = (f"on the {len(seeds)} seeds every model shares ({_seed_list(seeds)})" if seeds
             else "on each model's own seeds (no seed is shared by all, so no test is made)")
    lines = [f"### {protocol.name}", "", f"{protocol.description}", "",
             f"Primary metric: {primary} (mean over conditions); ranked and tested {scope}"
             + (f"; left out: {', '.join(dropped)}" if dropped else "")
             + (f"; not ranked, having only some of the protocol's seeds ({_seed_list(protocol.seeds)}): "
                + ", ".join(f"{shown(e)} (seed{'s' * (len(e.seeds) > 1)} {_seed_list(e.seeds)})"
                            for e in unfinished) if unfinished else "")
             + ". Each cell is mean ± std over seeds, the best of each column in bold; accuracies and F1 in percent "
             "(as papers print them; differences and MDE in points), MAE and Corr as they are. The verdict asks whether a "
             f"model is worse than the best on {primary}, every model tested against every other ({judged.method if judged else 'no test'}): "
             "\"worse\" when shown worse than some model; \"not shown worse\" is not \"as good\": MDE is the smallest "
             "gap to its rival the test detects with 80% power. The interval is the difference from the rival (the model "
             "that beats it most clearly) at the level that decides the verdict: below 0 (above 0 for MAE) exactly when "
             f"the verdict is \"worse\". Protocol fingerprint `{protocol.fingerprint[:12]}`.", ""]
    sentence = summary(judged, {e.model: shown(e) for e in full}) if judged else ""
    if judged:
        lines += [sentence, ""]
    best = _best_values(full, names)
    rows = []
    for rank, e in enumerate(full, 1):
        v = vs.get(e.model)
        if v is None or not v.rival:
            diff, level, p, mde, mark = "", "", "", "", "not tested" if len(full) > 1 else ""
        else:
            diff = (f"{signed(primary, v.diff)} [{signed(primary, v.ci[0])}, {signed(primary, v.ci[1])}] vs "
                    f"{md_escape(submission.display_name(v.rival))}")
            level, p, mark = f"{100 * (1 - v.level):.4g}%", compare.format_p(v.p_adj), v.verdict
            mde = value(primary, v.mde)
        rows.append([rank, shown(e), len(e.seeds), _cell(e, primary, best), diff, level, p, mde, mark])
    lines.append(tabulate(rows, headers=["#", "model", "seeds", header(primary), "Δ vs rival [interval]", "coverage",
                                         "p (closed test)", "MDE", "verdict"], tablefmt="github", disable_numparse=True))
    rows = [[shown(e)] + [_cell(e, m, best) for m in names] for e in full]
    lines += ["", "Every metric (mean over conditions):", "",
              tabulate(rows, headers=["model", *map(header, names)], tablefmt="github", disable_numparse=True)]
    if any(e.selects_on_test for e in full):
        lines += ["", "Rows marked \"checkpoints selected on TEST\" reproduce LNLN's protocol flaw on purpose "
                  "(selection=test-per-metric: the weights of the epoch with the best value of one metric on the test "
                  "split); they are shown because the leaderboard was asked to (--allow-test-selection)."]
    if "area" in protocol.aggregation:
        best_area = _best_values(full, names, "area")
        rows = [[shown(e)] + [_cell(e, m, best_area, "area") for m in names] for e in full]
        lines += ["", "Area over rates (trapezoid, unnormalised):", "",
                  tabulate(rows, headers=["model", *map(header, names)], tablefmt="github", disable_numparse=True)]
    rows = [[shown(e)] + [value(primary, *e.condition(primary, c.name), short=True) for c in protocol.conditions]
            for e in full]
    lines += ["", f"{header(primary)} per condition:", "",
              tabulate(rows, headers=["model", *[c.name for c in protocol.conditions]], tablefmt="github",
                       disable_numparse=True)]
    figures = out_dir is not None and settings.figures and bool(full) and plots.available()
    series = curve_series(protocol, full, settings) if figures or pages is not None else {}
    if figures:
        files = robustness_figure(protocol, series, out_dir)
        lines += ["", f"![{primary} per condition with 95% bands]({files[0].name})", "",
                  "For print: " + ", ".join(f"[{f.suffix[1:].upper()}]({f.name})" for f in files[1:]) + "."]
    if pages is not None:
        plain = summary(judged, {e.model: submission.display_name(e.model) for e in full}) if judged else ""
        pages.append(page_section(protocol, judged, full, series, plain))
    ranking = rank_section(protocol, full)
    if ranking:
        lines += ["", ranking]
    ablation = ablation_table(protocol, entries)
    if ablation:
        lines += ["", f"Ablations ({header(primary)}, mean over conditions; Δ against the full model with the same seeds):",
                  "", ablation]
    return "\n".join(lines) + "\n"


def curve_series(protocol: protocols.Protocol, full: list[board.Entry], settings: board.Settings
                 ) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Per model (display name): the primary metric per condition with its 95% band, one bootstrap."""
    primary = protocol.primary_metric
    series = {}
    for e in full:
        ids, pred, labels, seeds, conds = compare.stack(list(e.units))
        per = stats.condition_intervals(pred, labels, conds, seeds, protocol.metric_kind, primary,
                                        n_resamples=settings.curve_resamples, seed=settings.seed,
                                        alpha=settings.alpha)
        cs = [c.name for c in protocol.conditions]
        series[submission.display_name(e.model)] = ([per[c][0] for c in cs], [per[c][1] for c in cs], [per[c][2] for c in cs])
    return series


def robustness_figure(protocol: protocols.Protocol, series: dict, out_dir: Path) -> list[Path]:
    """The primary metric per condition, one line (or, for modality sets, one group of points) per model."""
    primary = protocol.primary_metric
    x = None if protocol.kind == "inter" else [c.level for c in protocol.conditions]
    k = 100.0 if pct(primary) else 1.0  # the tables' unit
    shown = {m: tuple([k * v for v in part] for part in parts) for m, parts in series.items()}
    return plots.robustness_curve(Path(out_dir) / f"{protocol.name}-curve.png",
                                  f"{protocol.name}: {primary} (mean over seeds, 95% band)", header(primary), x,
                                  [c.name for c in protocol.conditions], shown)


def page_section(protocol: protocols.Protocol, judged: verdicts.Board | None, full: list[board.Entry],
                 series: dict, summary_text: str) -> dict:
    """What the HTML page (`webpage`) shows of one protocol: rows, verdicts, intervals and curves."""
    primary = protocol.primary_metric
    vs = {r.model: r for r in judged.rows} if judged else {}
    rows = []
    for rank, e in enumerate(full, 1):
        mean, sd = e.aggregate(primary)
        v = vs.get(e.model)
        tested = v is not None and bool(v.rival)
        rows.append({"rank": rank, "model": e.model, "display": submission.display_name(e.model), "seeds": len(e.seeds),
                     "value": mean, "sd": sd, "verdict": v.verdict if tested else "",
                     "rival": submission.display_name(v.rival) if tested else "",
                     "diff": v.diff if tested else None, "lo": v.ci[0] if tested else None,
                     "hi": v.ci[1] if tested else None, "coverage": 1.0 - v.level if tested else None,
                     "p": v.p_adj if tested else None, "mde": v.mde if tested else None})
    return {"name": protocol.name, "dataset": protocol.dataset,
            "dataset_title": DATA_TITLES.get(protocol.dataset, protocol.dataset),
            "description": protocol.description, "metric": primary, "percent": pct(primary),
            "summary": summary_text, "method": judged.method if judged else "", "rows": rows,
            "conditions": [c.name for c in protocol.conditions],
            "x": None if protocol.kind == "inter" else [c.level for c in protocol.conditions],
            "curves": {m: {"y": y, "lo": lo, "hi": hi} for m, (y, lo, hi) in series.items()},
            "published": [], "published_columns": []}


def rank_section(protocol: protocols.Protocol, full: list[board.Entry]) -> str:
    """Mean rank over conditions by the primary metric: a description, never a test.

    Conditions share one test set and one set of trained models, so they are not the
    independent blocks of a Friedman/Nemenyi analysis (Demšar 2006); with equal expected
    performance such a test rejects far more often than alpha. Ranks are shown without a
    p-value or critical difference.
    """
    primary = protocol.primary_metric
    if len(full) < 3 or len(protocol.conditions) < 2:
        return ""
    scores = np.array([[e.condition(primary, c.name)[0] for e in full] for c in protocol.conditions])
    if not np.all(np.isfinite(scores)):
        return f"Mean ranks skipped: {primary} is undefined in some condition."
    ranks = stats.rank_rows(scores, lower_is_better=primary in metrics.LOWER_IS_BETTER).mean(axis=0)
    order = sorted(zip(full, ranks), key=lambda er: er[1])
    return (f"Mean rank over the {len(protocol.conditions)} conditions by {primary} (descriptive only: the conditions "
            "share one test set and the same trained models, so they are not independent blocks and no test is "
            "made): " + ", ".join(f"{shown(e)} {r:.2f}" for e, r in order) + ".")


def ablation_table(protocol: protocols.Protocol, entries: list[board.Entry]) -> str:
    primary = protocol.primary_metric
    by_name = {e.model: e for e in entries}
    rows = []
    for e in entries:
        if not board.is_ablation(e.model):
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
        rows.append([shown(e), ",".join(map(str, shared)), value(primary, *seed_stats(full)),
                     value(primary, *seed_stats(cut)), value(primary, *delta)])
    if not rows:
        return ""
    return tabulate(rows, headers=["variant", "seeds", "full model", "variant", "Δ"], tablefmt="github",
                    disable_numparse=True)


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    paths.publish(tmp, path)


def published_section(protocol: protocols.Protocol, entries: list) -> str:
    """Reported numbers of the registry: a table of their own, never ranked with measured rows."""
    from msabench import published

    return "\n".join([
        f"As published, not re-run ({protocol.name}; paper units: accuracies and F1 in %; from "
        "`leaderboard/published`, see `msabench published`). Never ranked or tested with measured rows: "
        "other code, other data copies, and, where marked, checkpoints chosen on the test split:", "",
        published.table(entries, metrics.METRICS[protocol.metric_kind]), ""])


def published_page(protocol: protocols.Protocol, entries: list) -> dict:
    """The registry's rows for the HTML page, in paper units as `published_section` shows them."""
    names = [m for m in metrics.METRICS[protocol.metric_kind] if any(m in e.metrics for e in entries)]
    rows = [{"method": e.method, "paper": e.paper, "selection": e.selection, "seeds": ",".join(map(str, e.seeds)),
             **{m: e.metrics.get(m) for m in names}, "source": e.source} for e in entries]
    return {"published": rows, "published_columns": ["method", "paper", "selection", "seeds", *names, "source"]}


def against_code(grouped: dict[str, list[board.Entry]]) -> tuple[dict[str, list[board.Entry]], list[str]]:
    """Entries checked against today's models (`runs.status`): stale ones (a bundled model's VERSION or a
    file's bytes differ) are left out, like results of another protocol version; the rest are ranked, and
    how many were made by code that has changed since is said, with the command that checks them."""
    from msabench import runs

    kept, stale, changed, old, unknown = {}, [], 0, 0, 0
    for name, entries in grouped.items():
        for e in entries:
            state = runs.status(name, e.model, [u.manifest for u in e.units]).state
            if state == runs.STALE:
                stale.append(f"{shown(e)} on {name}")
                continue
            changed += len(e.units) if state == runs.CHANGED else 0
            old += len(e.units) if state == runs.OLD else 0
            unknown += len(e.units) if state == runs.UNKNOWN else 0
            kept.setdefault(name, []).append(e)
    lines = []
    if unknown:
        lines += [f"{unknown} results could not be checked against today's models here (a model's packages are not "
                  "installed, or no bundled model makes its name and its file is gone): ranked as stored.", ""]
    if stale:
        lines += ["Left out (stale: the model's declared VERSION, its options or its file differ from today's, so "
                  "`msabench run` would re-run them): " + "; ".join(stale), ""]
    total = sum(len(e.units) for entries in kept.values() for e in entries)
    if changed or old:
        lines += [f"{changed + old} of {total} results were made by code that differs from today's (a refactor "
                  "keeps a model's identity; `msabench runs --results RESULTS --rerun` re-runs one seed of each and "
                  "says whether its predictions moved)" + (f"; {old} predate model identities (`msabench runs "
                                                          "--upgrade`)" if old else "") + ".", ""]
    return kept, lines


def write(results_dir: str | Path, out_dir: str | Path, command: str = "", settings: board.Settings = board.DEFAULT_SETTINGS,
          published_entries: list | None = None, data: tuple[str, ...] = (), html: bool = False) -> Path:
    """Write README.md (+ figures), results.csv and results.json for every protocol found, with the
    registry's published numbers (`published_entries`, default: the shipped registry) under each protocol;
    with `html`, also index.html, the same board as one static page (`webpage`)."""
    from msabench import published

    grouped = board.collect(results_dir, data)
    if not settings.allow_test_selection:
        board.refuse_test_selected(grouped, results_dir)
    reported: dict[str, list] = {}
    for e in published.load() if published_entries is None else published_entries:
        reported.setdefault(e.protocol, []).append(e)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# msabench leaderboard", "",
             "Generated from stored per-sample results by `msabench leaderboard`; do not edit by hand.",
             *([f"Produced by: `{command}`", ""] if command else [""])]
    if settings.figures and not plots.available():
        parts += ["No figures: matplotlib is not installed here (pip install 'msabench[run]').", ""]
    loaded = {name: protocols.load(name) for name in [*grouped, *reported]}
    boards: dict[str, verdicts.Board] = {}
    pages: list[dict] | None = [] if html else None
    grouped, stale = board.current_only(grouped, loaded)
    if stale:  # results of another version of a protocol file are never ranked with this version's
        parts += ["Left out (made under another version of the protocol file than the shipped one; their "
                  "protocol fingerprint differs): " + "; ".join(f"{name}: {n} result(s)" for name, n in stale.items()),
                  ""]
    grouped, drift = against_code(grouped)
    parts += drift
    for dataset in dict.fromkeys(p.dataset for name, p in loaded.items() if name in grouped or name in reported):
        parts += [f"## {DATA_TITLES.get(dataset, dataset)}", ""]
        for proto_name in [*grouped, *[n for n in reported if n not in grouped]]:
            if loaded[proto_name].dataset != dataset:
                continue
            if proto_name in grouped:
                parts.append(protocol_section(loaded[proto_name], grouped[proto_name], out, settings, boards, pages))
            else:
                parts += [f"### {proto_name}", "", loaded[proto_name].description, "",
                          "No measured results in this leaderboard (the data files are not in the repository).", ""]
                if pages is not None:
                    pages.append(page_section(loaded[proto_name], None, [], {}, ""))
            if proto_name in reported:
                parts.append(published_section(loaded[proto_name], reported[proto_name]))
                if pages is not None:
                    pages[-1].update(published_page(loaded[proto_name], reported[proto_name]))
    rows = board.records(grouped)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    _write(out / "results.csv", buf.getvalue())
    judged = board.verdict_records(boards)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(judged[0]) if judged else ["protocol"])
    writer.writeheader()
    writer.writerows(judged)
    _write(out / "verdicts.csv", buf.getvalue())
    body = {"version": board.RESULTS_VERSION, "results": [results.jsonable(r) for r in rows],
            "verdicts": [results.jsonable(r) for r in judged]}
    _write(out / "results.json", json.dumps(body, indent=1, allow_nan=False))
    _write(out / "README.md", "\n".join(parts))
    if pages is not None:
        _write(out / "index.html", webpage.render("msabench leaderboard", command, pages))
    return out / "README.md"
