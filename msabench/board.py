"""The board's data: stored results grouped per protocol and model, filtered, ranked and judged.

Everything here is computed from result files (`results.read_unit` recomputes every metric from
predictions and labels); `leaderboard` renders it as markdown, figures, CSV and JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from msabench import compare, metrics, protocols, results, submission, verdicts
from msabench.errors import MsabenchError
from msabench.report import seed_stats


@dataclass(frozen=True)
class Settings:
    """How much resampling the significance marks use."""

    n_resamples: int = 10_000
    curve_resamples: int = 2_000
    seed: int = 0
    alpha: float = 0.05
    figures: bool = True
    allow_test_selection: bool = False  # show results whose checkpoints were chosen on the test split


DEFAULT_SETTINGS = Settings()


@dataclass(frozen=True)
class Entry:
    """One (protocol, model) with all its seeds."""

    protocol: str
    model: str
    units: tuple[results.UnitResult, ...]

    @property
    def seeds(self) -> list[int]:
        return [u.seed for u in self.units]

    def on_seeds(self, seeds: list[int]) -> "Entry":
        """The same entry restricted to `seeds` (ranking and tests must see the same runs)."""
        return Entry(self.protocol, self.model, tuple(u for u in self.units if u.seed in seeds))

    @property
    def selects_on_test(self) -> bool:
        return any(u.manifest.get("selects_on_test") for u in self.units)

    def aggregate(self, metric: str, agg: str = "mean") -> tuple[float, float]:
        return seed_stats([u.metrics["aggregate"][agg][metric] for u in self.units])

    def condition(self, metric: str, cond: str) -> tuple[float, float]:
        return seed_stats([u.metrics["conditions"][cond][metric] for u in self.units])


def collect(results_dir: str | Path, data: tuple[str, ...] = ()) -> dict[str, list[Entry]]:
    """Entries per protocol from a results folder (`data`: where labels not stored with it are read)."""
    folders = results.find_units(results_dir)
    if not folders:
        raise MsabenchError(f"no finished results under {results.where(results_dir)}; run `msabench run` first")
    grouped: dict[tuple[str, str], list[results.UnitResult]] = {}
    units = [results.read_unit(f, data) for f in folders]  # metrics recomputed from predictions and labels
    results.check_labels(units, data)
    for u in units:
        grouped.setdefault((u.protocol, u.model), []).append(u)
    out: dict[str, list[Entry]] = {}
    for (proto, model), units in sorted(grouped.items()):
        out.setdefault(proto, []).append(Entry(proto, model, tuple(sorted(units, key=lambda u: u.seed))))
    return out


def current_only(grouped: dict[str, list[Entry]], loaded: dict[str, protocols.Protocol]):
    """Keep the units made under the protocol as shipped now; count the others per protocol."""
    kept, stale = {}, {}
    for name, entries in grouped.items():
        fp = loaded[name].fingerprint
        for e in entries:
            units = tuple(u for u in e.units if u.manifest.get("protocol_fingerprint") == fp)
            if len(units) < len(e.units):
                stale[name] = stale.get(name, 0) + len(e.units) - len(units)
            if units:
                kept.setdefault(name, []).append(replace(e, units=units))
    return kept, stale


def refuse_test_selected(grouped: dict[str, list[Entry]], results_dir) -> None:
    for name, entries in grouped.items():
        for e in entries:
            if e.selects_on_test:
                raise MsabenchError(
                    f"{results.where(results_dir)}: {e.model} on {name} chose its checkpoints on the test split (selection="
                    "test-per-metric, a protocol flaw reproduced to measure it); the leaderboard refuses it: "
                    "move it out of the results folder or pass --allow-test-selection")


def ranked(entries: list[Entry], primary: str) -> list[Entry]:
    """Best first on the primary metric's mean over conditions; undefined values last."""
    def key(e: Entry):
        mean = e.aggregate(primary)[0]
        if not math.isfinite(mean):
            return (1, 0.0, e.model)
        return (0, mean if primary in metrics.LOWER_IS_BETTER else -mean, e.model)

    return sorted(entries, key=key)


def complete(protocol: protocols.Protocol, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Split entries into those with every seed the protocol names and the rest (runs not finished).

    One entry short of seeds would otherwise shrink the seeds every model shares, and with them
    every test of the section, to its own. When no entry has all the protocol's seeds (a user ran
    fewer seeds for every model), nothing is left out and the shared seeds decide, as before.
    """
    want = set(protocol.seeds)
    done = [e for e in entries if want <= set(e.seeds)]
    if not done:
        return list(entries), []
    return done, [e for e in entries if not want <= set(e.seeds)]


def shared_seeds(entries: list[Entry]) -> list[int]:
    """The seeds every entry has: the runs a ranking and its tests can both use."""
    common = set(entries[0].seeds) if entries else set()
    for e in entries[1:]:
        common &= set(e.seeds)
    return sorted(common)


def judge(protocol: protocols.Protocol, full: list[Entry], settings: Settings) -> verdicts.Board | None:
    """The board's verdicts on the primary metric: every model against every other, on the shared seeds."""
    if len(full) < 2:
        return None
    ids = None
    preds = {}
    for e in full:
        ids_e, pred, labels, seeds, _ = compare.stack(list(e.units), ids)
        if ids is None:
            ids, first_labels, first_seeds = ids_e, labels, seeds
        preds[e.model] = pred
    return verdicts.judge(protocol.name, protocol.metric_kind, protocol.primary_metric, preds, first_labels,
                          first_seeds, alpha=settings.alpha, n_resamples=settings.n_resamples, seed=settings.seed)


def is_ablation(model: str) -> bool:
    """`prlf[amre=False]`: a component switched off (`--ablate`), shown against its full model; a model
    with other options (`prlf[text_encoder=minilm]`) is a model of its own, ranked with the rest."""
    if not model.endswith("]") or "[" not in model:
        return False
    options = model[model.index("[") + 1:-1].split(",")
    return all(o.partition("=")[2] == "False" for o in options)


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


RESULTS_VERSION = 2  # results.json: {"version", "results": per-seed rows, "verdicts": per-model rows}


def verdict_records(boards: dict[str, verdicts.Board]) -> list[dict]:
    """One row per (protocol, model): the significance results behind each board's verdicts."""
    out = []
    for name, judged in boards.items():
        for r in judged.rows:
            out.append({"protocol": name, "metric": judged.metric, "rank": r.rank, "model": r.model,
                        "display": submission.display_name(r.model), "value": r.value,
                        "seeds": " ".join(map(str, judged.seeds)), "verdict": r.verdict, "rival": r.rival,
                        "diff": r.diff, "ci_low": r.ci[0], "ci_high": r.ci[1], "coverage": 1.0 - r.level,
                        "p_closed_test": r.p_adj, "mde": r.mde, "mde_pair": r.mde_pair, "df": r.df, "alpha": judged.alpha,
                        "method": judged.method})
    return out
