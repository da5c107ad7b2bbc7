"""Paired comparison of two models from stored results, with tests that have real power.

Both models were scored on the same test items under the same masks, so every
difference can be judged item by item. `pair` lines the stored predictions up as
[strata, items] arrays (a stratum is one (seed, condition)), refusing results whose
protocol, dataset or mask fingerprints differ; `compare` runs the paired bootstrap
for every metric (msabench.stats), the exact McNemar test for accuracies and the
sign-flip test for MAE, corrects the p-values with Holm and says which model wins.
The verdict uses the bootstrap p, which also carries the between-seed variance
(retraining noise); McNemar and sign-flip treat the trained models as fixed and are
shown for reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tabulate import tabulate

from msabench import metrics, multiplicity, protocols, resampling, results, stats, variance
from msabench.errors import MsabenchError

PAIRED_KEYS = ("protocol_fingerprint", "dataset_fingerprint")
ALPHA = 0.05


@dataclass(frozen=True, eq=False)
class Paired:
    """Two models' predictions on identical strata: arrays [S, n], same items in every row."""

    protocol: str
    kind: str  # metric family: "mosi" or "sims"
    model_a: str
    model_b: str
    ids: np.ndarray  # [n]
    a: np.ndarray  # [S, n]
    b: np.ndarray  # [S, n]
    labels: np.ndarray  # [S, n]
    seeds: np.ndarray  # [S] seed of each stratum
    conditions: np.ndarray  # [S] condition of each stratum
    fingerprints: dict  # protocol/dataset fingerprints and masks per seed, shared by both models
    selected_on_test: tuple[str, ...] = ()  # of the two models, those whose checkpoints were chosen on test

    def note(self) -> str:
        """One line for output that must not hide LNLN's flaw when a side reproduces it."""
        if not self.selected_on_test:
            return ""
        return (f"note: {' and '.join(self.selected_on_test)} chose its checkpoints on the TEST split "
                "(selection=test-per-metric): a protocol flaw reproduced to measure it, not a result to claim")

    @property
    def seed_list(self) -> list[int]:
        return sorted(set(self.seeds.tolist()))

    def only(self, conditions: list[str]) -> "Paired":
        """The same pairing restricted to some conditions."""
        unknown = [c for c in conditions if c not in set(self.conditions.tolist())]
        if unknown:
            raise MsabenchError(f"protocol {self.protocol} has no condition {unknown[0]!r}; "
                                f"it has {list(dict.fromkeys(self.conditions.tolist()))}")
        keep = np.isin(self.conditions, conditions)
        return Paired(self.protocol, self.kind, self.model_a, self.model_b, self.ids, self.a[keep], self.b[keep],
                      self.labels[keep], self.seeds[keep], self.conditions[keep], self.fingerprints,
                      self.selected_on_test)


def units_of(results_dir, protocol: str, model: str, data: tuple[str, ...] = ()) -> list[results.UnitResult]:
    """Every stored seed of (protocol, model) in one results folder or several; one clear line when there
    are none. `data`: where to read labels that are not stored with the results (results.read_unit)."""
    for folder in results.folders(results_dir):
        if not folder.is_dir():
            raise MsabenchError(f"results folder {folder} does not exist; run `msabench run --out {folder}` first")
    root = results_dir if isinstance(results_dir, (str, Path)) else tuple(results_dir)
    folders = results.find_units(root, protocol, model)
    if not folders:
        here = sorted({f.parent.name for f in results.find_units(root, protocol)})
        if not here:
            found = sorted({f.parent.parent.name for f in results.find_units(root)})
            raise MsabenchError(f"no results for protocol {protocol} under {results.where(root)}; protocols there: "
                                f"{', '.join(found) or 'none'}")
        raise MsabenchError(f"no results for model {model} on {protocol} under {results.where(root)}; models there: "
                            f"{', '.join(here)}")
    return [results.read_unit(f, data) for f in folders]


def _order(unit: results.UnitResult, conditions: list[str], ids: np.ndarray) -> np.ndarray:
    """[C, n] positions in the unit's arrays of each (condition, item), items in the order of `ids`."""
    out = np.empty((len(conditions), len(ids)), dtype=np.int64)
    for i, c in enumerate(conditions):
        where = np.flatnonzero(unit.conditions == c)
        pos = dict(zip(unit.ids[where].tolist(), where.tolist()))
        if len(pos) != len(ids) or any(x not in pos for x in ids.tolist()):
            raise MsabenchError(f"{unit.model} seed {unit.seed} on {unit.protocol}: condition {c} does not hold "
                                "exactly the test items of the other results; re-run it")
        out[i] = [pos[x] for x in ids.tolist()]
    return out


def pair(results_dir: str | Path, protocol: str, model_a: str, model_b: str,
         seeds: list[int] | None = None, data: tuple[str, ...] = ()) -> Paired:
    """Load and align two models' stored results on `protocol`, checking they are truly paired."""
    if model_a == model_b:
        raise MsabenchError(f"compare needs two different models, got {model_a} twice")
    units_a, units_b = units_of(results_dir, protocol, model_a, data), units_of(results_dir, protocol, model_b, data)
    results.check_labels(units_a + units_b, data)
    return pair_units(units_a, units_b, seeds)


def pair_units(units_a: list[results.UnitResult], units_b: list[results.UnitResult],
               seeds: list[int] | None = None) -> Paired:
    """Align two models' units on their shared seeds; refuse anything that is not paired."""
    ua, ub = {u.seed: u for u in units_a}, {u.seed: u for u in units_b}
    first_a, first_b = units_a[0], units_b[0]
    protocol, model_a, model_b = first_a.protocol, first_a.model, first_b.model
    if first_b.protocol != protocol:
        raise MsabenchError(f"{model_a} results are on {protocol}, {model_b} results on {first_b.protocol}")
    shared = sorted(set(ua) & set(ub))
    if seeds:
        missing = [s for s in seeds if s not in shared]
        if missing:
            raise MsabenchError(f"seed {missing[0]} is not stored for both {model_a} (seeds {sorted(ua)}) and "
                                f"{model_b} (seeds {sorted(ub)}) on {protocol}")
        shared = sorted(seeds)
    if not shared:
        raise MsabenchError(f"{model_a} (seeds {sorted(ua)}) and {model_b} (seeds {sorted(ub)}) share no seed "
                            f"on {protocol}: nothing is paired")
    first = ua[shared[0]]
    conditions = list(first.manifest["conditions"])
    fps: dict = {k: first.manifest[k] for k in PAIRED_KEYS}
    for seed in shared:
        for u in (ua[seed], ub[seed]):
            for k in PAIRED_KEYS:
                if u.manifest[k] != fps[k]:
                    raise MsabenchError(
                        f"{u.model} seed {seed} on {protocol} has {k.replace('_', ' ')} {u.manifest[k][:12]}, "
                        f"{first.model} seed {shared[0]} has {fps[k][:12]}: the results are not comparable")
            if list(u.manifest["conditions"]) != conditions:
                raise MsabenchError(f"{u.model} seed {seed} on {protocol} has conditions "
                                    f"{u.manifest['conditions']}, expected {conditions}")
        if ua[seed].manifest["masks_fingerprint"] != ub[seed].manifest["masks_fingerprint"]:
            raise MsabenchError(
                f"{model_a} and {model_b} seed {seed} on {protocol} were scored under different masks "
                f"({ua[seed].manifest['masks_fingerprint'][:12]} vs {ub[seed].manifest['masks_fingerprint'][:12]}): "
                "not a paired comparison")
        fps[f"masks_fingerprint/{seed}"] = ua[seed].manifest["masks_fingerprint"]
    ids, a, labels, strata_seeds, strata_conditions = stack([ua[s] for s in shared])
    b = stack([ub[s] for s in shared], ids)[1]
    return Paired(
        protocol=protocol, kind=protocols.dataset_kind(first.manifest["dataset"]),
        model_a=model_a, model_b=model_b, ids=ids, a=a, b=b, labels=labels,
        seeds=strata_seeds, conditions=strata_conditions, fingerprints=fps,
        selected_on_test=tuple(m for m, us in ((model_a, ua), (model_b, ub))
                               if any(us[seed].manifest.get("selects_on_test") for seed in shared)),
    )


def stack(units: list[results.UnitResult], ids: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One model's units as (ids [n], predictions [S, n], labels [S, n], seeds [S], conditions [S]).

    Items follow `ids` (default: the first unit's ids, sorted), so another model's units can be
    stacked in the same item order; a unit without exactly those items is refused.
    """
    units = sorted(units, key=lambda u: u.seed)
    conditions = list(units[0].manifest["conditions"])
    if ids is None:
        ids = np.array(sorted(set(units[0].ids.tolist())), dtype=str)
    order = [_order(u, conditions, ids) for u in units]
    pred = np.concatenate([u.predictions[o] for u, o in zip(units, order)])
    labels = np.concatenate([u.labels[o] for u, o in zip(units, order)])
    return (ids, pred, labels, np.repeat(np.array([u.seed for u in units]), len(conditions)),
            np.array(conditions * len(units), dtype=str))


@dataclass(frozen=True)
class Stacked:
    """Every model of a results folder on one protocol, on the seeds they all share, items aligned."""

    protocol: str
    kind: str
    preds: dict  # model -> [S, n]
    labels: np.ndarray  # [S, n]
    seeds: np.ndarray  # [S]: the seed of each stratum

    @property
    def seed_list(self) -> list[int]:
        return list(dict.fromkeys(self.seeds.tolist()))


def stacked(results_dir: str | Path, protocol: str, data: tuple[str, ...] = (),
            min_models: int = variance.MIN_MODELS) -> Stacked | None:
    """The models stored for `protocol` under `results_dir`, on the seeds at least `min_models` of
    them share, keeping those that have all of them; None when fewer than `min_models` remain or
    they share fewer than 2 seeds."""
    by_model: dict[str, list[results.UnitResult]] = {}
    for f in results.find_units(results_dir, protocol):
        u = results.read_unit(f, data)
        by_model.setdefault(u.model, []).append(u)
    count: dict[int, int] = {}
    for units in by_model.values():
        for seed in {u.seed for u in units}:
            count[seed] = count.get(seed, 0) + 1
    seeds = sorted(s for s, c in count.items() if c >= min_models)
    members = {m: [u for u in us if u.seed in seeds] for m, us in sorted(by_model.items())
               if seeds and set(seeds) <= {u.seed for u in us}}
    if len(seeds) < 2 or len(members) < min_models:
        return None
    results.check_labels([u for us in members.values() for u in us], data)
    kind = protocols.dataset_kind(next(iter(members.values()))[0].manifest["dataset"])
    ids, preds = None, {}
    for model, units in members.items():
        ids_m, pred, labels, strata_seeds, _ = stack(units, ids)
        ids = ids_m if ids is None else ids
        preds[model] = pred
    return Stacked(protocol, kind, preds, labels, strata_seeds)


def board_prior(results_dir: str | Path, protocol: str, data: tuple[str, ...] = (),
                metric_names: list[str] | None = None, alpha: float = ALPHA) -> dict[str, variance.Prior]:
    """The pooled retraining variance per metric of the models stored for `protocol` under
    `results_dir` (`variance.prior`, whether to pool judged at `alpha`) on the seeds `stacked` finds;
    {} when there are too few."""
    board = stacked(results_dir, protocol, data)
    if board is None:
        return {}
    groups = resampling.seed_groups(board.seeds, board.labels.shape[0])
    values = {model: {m: resampling.seed_means(v, groups) for m, v in resampling.stratum_metrics(pred, board.labels,
                                                                                      board.kind).items()}
              for model, pred in board.preds.items()}
    out = {}
    for m in [m for m in metric_names or metrics.METRICS[board.kind] if m in metrics.METRICS[board.kind]]:
        pr = variance.prior({model: v[m] for model, v in values.items()}, alpha=alpha)
        if pr is not None:
            out[m] = pr
    return out


def _accuracy_correct(kind: str, metric: str, pred: np.ndarray, labels: np.ndarray):
    """Per-item correctness [S, n] and the items the metric counts, for every accuracy metric."""
    everything = np.ones(labels.shape[1], dtype=bool)
    if kind == "mosi":
        if metric == "Has0_acc_2":
            return (pred >= 0) == (labels >= 0), everything
        if metric == "Non0_acc_2":
            return (pred > 0) == (labels > 0), labels[0] != 0
        if metric in ("Mult_acc_5", "Mult_acc_7"):
            c = 2.0 if metric == "Mult_acc_5" else 3.0
            return np.round(np.clip(pred, -c, c)) == np.round(np.clip(labels, -c, c)), everything
        return None
    edges = {"Mult_acc_2": metrics.SIMS_EDGES_2, "Mult_acc_3": metrics.SIMS_EDGES_3,
             "Mult_acc_5": metrics.SIMS_EDGES_5}.get(metric)
    if edges is None:
        return None
    bins = [metrics.sims_bins(np.clip(x, -1.0, 1.0), edges) for x in (pred, labels)]
    return bins[0] == bins[1], everything


@dataclass(frozen=True)
class Row:
    """One metric of a comparison."""

    metric: str
    result: stats.Comparison
    test: str  # "McNemar", "sign-flip" or ""
    test_p: float
    p_holm: float
    verdict: str
    ci: tuple[float, float] = (float("nan"), float("nan"))  # of the difference, at `level`: the verdict's interval
    level: float = ALPHA  # 1 - level is the interval's coverage: the level at which Holm decides this metric


@dataclass(frozen=True)
class Report:
    protocol: str
    model_a: str
    model_b: str
    seeds: tuple[int, ...]
    conditions: tuple[str, ...]
    n_items: int
    n_resamples: int
    alpha: float
    rows: tuple[Row, ...]
    fingerprints: dict
    pool: str = ""  # where the retraining variance came from when pooled over a results folder

    def row(self, metric: str) -> Row:
        for r in self.rows:
            if r.metric == metric:
                return r
        raise MsabenchError(f"no metric {metric!r} in this comparison; metrics: {', '.join(r.metric for r in self.rows)}")

    def table(self, scale: Callable[[str], float], fmt: str = "github", wide: bool = False) -> str:
        """Every metric's row in paper units: `scale(metric)` is paper units per metric unit (pass
        `claims.scale`: accuracies and F1 in percent, their Δ and interval in points, MAE and Corr as
        they are; compare cannot import claims, which imports compare). `wide` adds the coverage and
        the item-level McNemar / sign-flip p (the narrow table fits 100 columns for short model names).
        Only the printed table is scaled: the Report's numbers stay fractions."""
        a, b = self.model_a, self.model_b
        k = len(self.seeds)
        retraining = (f"the retraining variance {self.pool}" if self.pool else
                      f"the retraining variance of the seed-by-seed differences ({k - 1} df)")
        head = (f"{a} vs {b} on {self.protocol}: {self.n_items} items x {len(self.conditions)} condition(s) x "
                f"{k} seed(s) {list(self.seeds)}; {_units([r.metric for r in self.rows], scale)}; paired test: item "
                f"bootstrap ({self.n_resamples} resamples) plus {retraining}, kappa-calibrated; Holm over "
                f"{len(self.rows)} metrics; alpha {self.alpha}; each interval at the level Holm decides its metric at "
                "(it excludes 0 exactly when p Holm <= alpha); McNemar / sign-flip see test items only (the models "
                "as trained)")
        rows = []
        for r in self.rows:
            c, u = r.result, scale(r.metric)
            d = 2 if u != 1.0 else 4 if wide else 3  # percent: 2 decimals, as papers print; own units: 3 fit 100 columns
            row = [r.metric, _ms(u * c.seed_a[0], u * c.seed_a[1], d), _ms(u * c.seed_b[0], u * c.seed_b[1], d),
                   f"{_num(u * c.diff, d)} [{_num(u * r.ci[0], d)}, {_num(u * r.ci[1], d)}]",
                   _coverage(r.level), format_p(c.p), format_p(r.p_holm),
                   f"{format_p(r.test_p)} ({r.test})" if r.test else "", r.verdict]
            rows.append(row if wide else [*row[:4], row[6], "n.s." if row[8] == "not significant" else row[8]])
        headers = ["metric", a, b, f"Δ {a}−{b} [interval]", "coverage", "p", "p Holm", "McNemar / sign-flip p", "verdict"]
        if not wide:
            headers = [headers[0], a, b, "Δ [interval]", headers[6], headers[8]]
            levels = sorted({_coverage(r.level) for r in self.rows})
            more = "MAE and Corr to 4 decimals, " if any(scale(r.metric) == 1.0 for r in self.rows) else ""
            head += (f"; Δ = {a} − {b}, interval coverage {', '.join(levels)}; n.s.: not significant (--wide: "
                     f"{more}coverage, raw p and McNemar / sign-flip p per row)")
        return head + "\n" + tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def _units(names: list[str], scale: Callable[[str], float]) -> str:
    """The table's units in words, for the metrics it shows."""
    pct = [m for m in names if scale(m) != 1.0]
    own = [m for m in names if scale(m) == 1.0]
    words = []
    if pct:
        words.append("accuracies and F1 in percent, their Δ and intervals in points")
    if own:
        words.append(f"{' and '.join(own)} in {'its' if len(own) == 1 else 'their'} own units")
    return "; ".join(words)


def _coverage(level: float) -> str:
    return "" if not math.isfinite(level) else f"{100 * (1 - level):.4g}%"


def _num(x: float, digits: int = 4) -> str:
    return "nan" if not math.isfinite(x) else f"{x:+.{digits}f}"


def _ms(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "nan"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def verdict(c: stats.Comparison, p_adj: float, alpha: float, a: str, b: str) -> str:
    if not math.isfinite(p_adj) or not c.better:
        return "undefined" if not math.isfinite(c.diff) else "no difference"
    if p_adj > alpha:
        return "not significant"
    return f"{a if c.better == 'a' else b} better"


def compare(paired: Paired, *, n_resamples: int = 10_000, seed: int = 0, alpha: float = ALPHA,
            metric_names: list[str] | None = None, priors: dict[str, variance.Prior] | None = None) -> Report:
    """Every metric's paired difference with p, Holm-adjusted p, a verdict and the interval that decides it.

    `priors` (`board_prior`): a results folder's pooled retraining variance per metric, which
    also lets a pair with one seed be compared (its retraining term then comes from the pool).
    """
    names = list(metrics.METRICS[paired.kind])
    priors = {m: p for m, p in (priors or {}).items()  # a pool does not describe its outliers
              if paired.model_a not in p.outliers and paired.model_b not in p.outliers}
    if len(paired.seed_list) < 2 and not (priors and all(m in priors for m in (metric_names or names))):
        raise MsabenchError(
            f"compare needs at least 2 seeds shared by {paired.model_a} and {paired.model_b} on {paired.protocol} "
            f"(found {paired.seed_list}): the retraining-variance term needs two, or a results folder with at least "
            f"{variance.MIN_MODELS} models on all the protocol's seeds to pool it from")
    if metric_names:
        for m in metric_names:
            if m not in names:
                raise MsabenchError(f"metric {m!r} does not exist for {paired.protocol} ({paired.kind} metrics: "
                                    f"{', '.join(names)})")
        names = [m for m in names if m in metric_names]
    boot = stats.paired_bootstrap(paired.a, paired.b, paired.labels, paired.seeds, paired.kind,
                                  n_resamples=n_resamples, seed=seed, alpha=alpha, priors=priors)
    raw = [boot[m].p for m in names]
    adjusted, levels = multiplicity.holm(raw), multiplicity.holm_levels(raw, alpha)
    rows = []
    for m, p_adj, level in zip(names, adjusted, levels):
        test, test_p = "", float("nan")
        acc = _accuracy_correct(paired.kind, m, paired.a, paired.labels)
        if acc is not None:
            ok_b = _accuracy_correct(paired.kind, m, paired.b, paired.labels)[0]
            ok_a, keep = acc
            test, test_p = "McNemar", stats.mcnemar(ok_a[:, keep], ok_b[:, keep])[2]
        elif m == "MAE":
            test = "sign-flip"
            test_p = stats.signflip(np.abs(paired.a - paired.labels), np.abs(paired.b - paired.labels),
                                    n_resamples=n_resamples, seed=seed)
        level = float(level) if math.isfinite(level) else alpha
        ci = boot[m].variance.interval(boot[m].diff, level) if boot[m].variance is not None else (math.nan,) * 2
        rows.append(Row(m, boot[m], test, float(test_p), float(p_adj),
                        verdict(boot[m], float(p_adj), alpha, paired.model_a, paired.model_b), ci, level))
    return Report(
        protocol=paired.protocol, model_a=paired.model_a, model_b=paired.model_b, seeds=tuple(paired.seed_list),
        conditions=tuple(dict.fromkeys(paired.conditions.tolist())), n_items=len(paired.ids),
        n_resamples=n_resamples, alpha=alpha, rows=tuple(rows), fingerprints=paired.fingerprints,
        pool=next((p.label for p in (priors or {}).values()), ""),
    )
