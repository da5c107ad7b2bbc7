"""Checking a paper's claim ("derl > prlf on mosi-intra: Non0 Acc-2 +2.47%") against the data.

A claim names the better model, the worse one, a protocol, a metric and the claimed
difference better − worse, written as papers print it (`GRAMMAR`):

- the metric as papers spell it, case, spaces, hyphens and underscores aside: "Has0 Acc-2",
  "Non0 Acc-2", "Has0 F1", "Non0 F1", "Acc-5", "Acc-7" (MOSI/MOSEI), "Acc-2", "Acc-3", "Acc-5",
  "F1" (SIMS), "MAE", "Corr", or the msabench key ("Non0_acc_2"). A bare "Acc-2" or "F1" on
  MOSI/MOSEI is refused: papers mean Has0 or Non0 depending on the paper (LNLN and MMSA print
  both, "Has0/Non0").
- the gain of an accuracy or F1 in percentage points: "+2.47%", "+2.47 points", "+2.47 pp" ("%"
  is read as percentage points, the absolute difference papers print, never a relative gain), or
  as a fraction with the word: "+0.0247 fraction" (= 2.47 points). A bare number is percentage
  points when its size is at least 1 ("+2.47", as claims were always written); below 1 it is
  refused as ambiguous ("+0.0247" could be 0.0247 points or a fraction, 2.47 points), never
  guessed from its size. MAE and Corr are not percentages: a bare number in their own units, and
  "%", "points", "pp" or "fraction" after one is refused. "−" (unicode minus) is a minus.

`Claim.value` holds the difference in paper units (points for accuracies and F1). Against
stored results the difference is measured with the paired test of `msabench.compare`;
`reported` mode uses published means, standard deviations and seed counts only (Welch's
t-test over seeds): what a reader can check without predictions. Every claim checked in one
run, in either mode, is in one Holm correction, and each claim's CI and minimum detectable
effect are at the level that decides it under Holm (see `decision_levels`): the CI
excludes 0 exactly when the Holm-adjusted p is below alpha, also where Holm's step-down stops
early. Verdicts:

- supported: significant, and the claimed value lies inside the CI;
- significant, but smaller than claimed / larger than claimed: the CI excludes it;
- contradicted: significant in the other direction;
- refuted: not significant, and the CI excludes the claimed value (the data rule out
  a gain that large, though not a smaller one);
- not significant: the CI holds both 0 and the claimed value; with the minimum
  detectable effect (80% power) of this test set and seed count.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from scipy import optimize, special

from msabench import compare, metrics, multiplicity, protocols, stats, variance
from msabench.errors import MsabenchError

GRAMMAR = ('MODEL_A > MODEL_B on PROTOCOL: METRIC ±VALUE, e.g. "derl > prlf on mosi-intra: Non0 Acc-2 +2.47%"; '
           "METRIC as papers write it (Has0 Acc-2, Non0 Acc-2, Has0 F1, Non0 F1, Acc-5, Acc-7 on MOSI/MOSEI; "
           "Acc-2, Acc-3, Acc-5, F1 on SIMS; MAE, Corr) or the msabench key (Non0_acc_2); accuracies and F1 in "
           "percentage points (+2.47%, +2.47 points, +2.47 pp; a bare number of size 1 or more) or as a fraction "
           "(+0.0247 fraction), MAE and Corr as bare numbers in their own units; '<' claims MODEL_A is worse")
_NUMBER = r"[+\-\u2212]?(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"%|pp|p\.p\.|percentage\s+points?|points?|fraction"
_CLAIM = re.compile(r"^\s*(?P<a>[^\s<>]+)\s*(?P<op>[<>])\s*(?P<b>[^\s<>]+)\s+on\s+(?P<protocol>[^\s:]+)\s*:\s*"
                    rf"(?P<metric>\S(?:[^:]*?\S)?)\s+(?P<value>{_NUMBER})\s*(?P<unit>{_UNIT})?\s*$", re.IGNORECASE)

# Metric spellings per dataset kind, normalised by `_norm`; every msabench key is accepted as itself too.
_ALIASES: dict[str, dict[str, str]] = {
    "mosi": {"has0acc2": "Has0_acc_2", "non0acc2": "Non0_acc_2", "has0f1": "Has0_F1_score",
             "non0f1": "Non0_F1_score", "acc5": "Mult_acc_5", "acc7": "Mult_acc_7"},
    "sims": {"acc2": "Mult_acc_2", "acc3": "Mult_acc_3", "acc5": "Mult_acc_5", "f1": "F1_score"},
}
# What each kind's metrics are written as in messages, in metrics.METRICS order.
_SPELLING = {"Has0_acc_2": "Has0 Acc-2", "Non0_acc_2": "Non0 Acc-2", "Has0_F1_score": "Has0 F1",
             "Non0_F1_score": "Non0 F1", "Mult_acc_2": "Acc-2", "Mult_acc_3": "Acc-3", "Mult_acc_5": "Acc-5",
             "Mult_acc_7": "Acc-7", "F1_score": "F1", "MAE": "MAE", "Corr": "Corr"}
# Spellings that name two metrics on a kind: papers mean Has0 or Non0 depending on the paper.
_AMBIGUOUS: dict[str, dict[str, str]] = {
    "mosi": {"acc2": '"Non0 Acc-2" or "Has0 Acc-2"', "f1": '"Non0 F1" or "Has0 F1"',
             "f1score": '"Non0 F1" or "Has0 F1"'},
}
_KIND_NAME = {"mosi": "MOSI/MOSEI", "sims": "SIMS"}


def _norm(name: str) -> str:
    """A metric spelling without case, spaces, hyphens (any dash) or underscores."""
    return re.sub(r"[\s_\-\u2010-\u2013]+", "", name).lower()


def accepted(kind: str) -> str:
    """The metric spellings a claim on this dataset kind accepts, as one line."""
    names = metrics.METRICS[kind]
    return (f"{', '.join(_SPELLING.get(n, n) for n in names)} (or the keys {', '.join(names)}; "
            "case, spaces, hyphens and underscores do not matter)")


def metric_name(spelling: str, protocol: protocols.Protocol, where: str = "claim") -> str:
    """The msabench metric key a paper's spelling names on this protocol; one line when none or two do."""
    kind = protocol.metric_kind
    names = metrics.METRICS[kind]
    key = _norm(spelling)
    table = {**{_norm(n): n for n in names}, **_ALIASES.get(kind, {})}
    if key in _AMBIGUOUS.get(kind, {}):
        raise MsabenchError(f"{where}: metric {spelling!r} is ambiguous on {protocol.name} ({protocol.dataset}): "
                            f"papers mean Has0 or Non0 (LNLN and MMSA print both, \"Has0/Non0\"); write "
                            f"{_AMBIGUOUS[kind][key]}; accepted for {_KIND_NAME.get(kind, kind)}: {accepted(kind)}")
    if key not in table:
        raise MsabenchError(f"{where}: metric {spelling!r} does not exist for {protocol.name} ({protocol.dataset}); "
                            f"accepted for {_KIND_NAME.get(kind, kind)}: {accepted(kind)}")
    return table[key]


def _points(where: str, metric: str, number: str, unit: str | None) -> float:
    """The written difference in paper units: points for accuracies and F1, own units for MAE and Corr."""
    text = number.replace("\u2212", "-")
    value = float(text)
    unit = re.sub(r"\s+", " ", unit).lower() if unit else None
    written = f"{number}{'' if unit in (None, '%') else ' '}{unit or ''}"
    if scale(metric) == 1.0:
        if unit is not None:
            raise MsabenchError(f"{where}: {metric} {written}: {metric} is not a percentage; write its difference as "
                                f"a bare number in its own units, e.g. \"{metric} {number}\" (no %, points, pp or "
                                "fraction)")
        return value
    if unit == "fraction":
        if abs(value) > 1:
            raise MsabenchError(f"{where}: {metric} {written}: a fraction lies between -1 and 1; write "
                                f"\"{number} points\" (or \"{number}%\") for percentage points")
        return float(Decimal(text) * 100)  # exact in decimal: 0.0247 -> 2.47, not 2.4699999999999998
    if unit is None and 0 < abs(value) < 1:
        as_fraction = f"{float(Decimal(text) * 100):+g}"
        raise MsabenchError(f"{where}: {metric} {number} is ambiguous: as percentage points it is {value:+g} points, "
                            f"as a fraction {as_fraction} points; write \"{number}%\", \"{number} points\" or "
                            f"\"{number} pp\" for points, or \"{number} fraction\" (= \"{as_fraction} points\") for a "
                            "fraction")
    return value


def scale(metric: str) -> float:
    """Paper units per metric unit: accuracies and F1 are printed in percent."""
    return 1.0 if metric in ("MAE", "Corr") else 100.0


def sign(metric: str) -> float:
    """+1 where higher is better, -1 where lower is (MAE)."""
    return -1.0 if metric in metrics.LOWER_IS_BETTER else 1.0


@dataclass(frozen=True)
class Reported:
    """Published seed-level numbers of the two models, in paper units."""

    mean_a: float
    std_a: float
    n_a: int
    mean_b: float
    std_b: float
    n_b: int


@dataclass(frozen=True)
class Claim:
    text: str
    better: str  # the model claimed better
    worse: str
    protocol: str
    metric: str
    value: float  # claimed better − worse, in paper units (sign as in the text, for the better/worse order)
    reported: Reported | None = None

    @property
    def improvement(self) -> float:
        """The claimed gain in paper units, positive when the claim is coherent."""
        return sign(self.metric) * self.value


def parse(text: str, reported: Reported | None = None) -> Claim:
    """A claim string -> Claim; one line with the grammar when it does not parse or does not add up.

    `reported` is in paper units (points for accuracies and F1), whatever unit the claim's value is
    written in."""
    m = _CLAIM.match(text)
    if not m:
        raise MsabenchError(f"claim {text!r} does not parse; grammar: {GRAMMAR}")
    a, b = m["a"], m["b"]
    proto = protocols.load(m["protocol"])
    where = f"claim {text!r}"
    metric = metric_name(m["metric"], proto, where)
    value = _points(where, metric, m["value"], m["unit"])
    if m["op"] == "<":  # "a < b: M -x" is "b > a: M +x"
        a, b, value = b, a, -value
        if reported is not None:
            reported = Reported(reported.mean_b, reported.std_b, reported.n_b,
                                reported.mean_a, reported.std_a, reported.n_a)
    claim = Claim(text, a, b, proto.name, metric, value, reported)
    if claim.improvement <= 0:
        direction = "lower" if sign(claim.metric) < 0 else "higher"
        written = m["value"] + (f" {m['unit']}" if m["unit"] else "")
        raise MsabenchError(f"{where}: says {a} is better than {b} but {claim.metric} {written} is not an "
                            f"improvement ({direction} {claim.metric} is better); write the signed difference "
                            f"{a} − {b}")
    return claim


def load_file(path: str | Path) -> list[Claim]:
    """A TOML file of claims: [[claim]] text = "...", optional reported = {a = [mean, std, n], b = [...]}."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MsabenchError(f"claims file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MsabenchError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:  # tables or arrays nested thousands deep
        raise MsabenchError(f"{path}: tables or arrays nested too deeply to read") from None
    entries = data.get("claim")
    if not isinstance(entries, list) or not entries or set(data) != {"claim"}:
        raise MsabenchError(f"{path}: expected one or more [[claim]] tables (and nothing else), each with "
                            "text = \"...\" and optional reported = {a = [mean, std, n], b = [mean, std, n]}")
    out = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}, claim {i}"
        extra = set(entry) - {"text", "reported"}
        if extra or not isinstance(entry.get("text"), str):
            raise MsabenchError(f"{where}: needs text = \"...\" (and optionally reported); unknown keys "
                                f"{sorted(extra) or 'none'}")
        rep = entry.get("reported")
        out.append(parse(entry["text"], _reported(rep, where) if rep is not None else None))
    return out


def _reported(rep, where: str) -> Reported:
    try:
        (ma, sa, na), (mb, sb, nb) = rep["a"], rep["b"]
        values = Reported(float(ma), float(sa), int(na), float(mb), float(sb), int(nb))
    except (KeyError, TypeError, ValueError):
        raise MsabenchError(f"{where}: reported must be {{a = [mean, std, n], b = [mean, std, n]}}, got {rep!r}") from None
    return check_reported(values, where)


def check_reported(r: Reported, where: str = "reported") -> Reported:
    if r.n_a < 2 or r.n_b < 2:
        raise MsabenchError(f"{where}: a seed-level test needs at least 2 seeds per model, got n = {r.n_a} and {r.n_b}")
    if r.std_a < 0 or r.std_b < 0 or not all(map(math.isfinite, (r.mean_a, r.std_a, r.mean_b, r.std_b))):
        raise MsabenchError(f"{where}: means and standard deviations must be finite, stds >= 0")
    return r


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    measured: float  # better − worse, paper units
    ci: tuple[float, float]  # at the level that decides the claim (see `level`, `decision_levels`)
    p: float  # Holm-adjusted over every claim checked together
    mde: float  # minimum detectable |difference| at 80% power, at `level`, paper units
    source: str  # "results" or "reported"
    note: str = ""
    level: float = compare.ALPHA  # the CI is a 1 - level interval; the level Holm decides it at


@dataclass(frozen=True)
class Welch:
    """Welch's t over seeds from published numbers (metric units): its p, interval and detectable effect.

    Student's t with Welch-Satterthwaite df, exactly as `scipy.stats.ttest_ind_from_stats`, at any
    level: the interval at level L excludes 0 exactly when p < L.
    """

    se: float
    df: float

    @classmethod
    def from_stats(cls, mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float,
                   n_b: int) -> tuple[float, "Welch"]:
        """(mean_a - mean_b, the test) from published mean, std (ddof=1) and seed count of each model."""
        if int(n_a) < 2 or int(n_b) < 2:
            raise MsabenchError(f"Welch's test needs at least 2 seeds per model, got {n_a} and {n_b}")
        vals = [float(v) for v in (mean_a, std_a, mean_b, std_b)]
        if not all(math.isfinite(v) for v in vals) or vals[1] < 0 or vals[3] < 0:
            raise MsabenchError("Welch's test: means must be finite and stds finite and non-negative")
        va, vb = vals[1] ** 2 / n_a, vals[3] ** 2 / n_b
        se = math.sqrt(va + vb)
        df = math.inf if se == 0 else (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
        return vals[0] - vals[2], cls(se, df)

    def critical(self, level: float) -> float:
        q = 1.0 - level / 2.0
        return float(special.ndtri(q) if math.isinf(self.df) else special.stdtrit(self.df, q))

    def p_value(self, diff: float) -> float:
        if not (math.isfinite(diff) and math.isfinite(self.se)):
            return math.nan
        if self.se == 0:
            return 1.0 if diff == 0 else 0.0
        t = -abs(diff) / self.se
        return float(min(1.0, 2.0 * (special.ndtr(t) if math.isinf(self.df) else special.stdtr(self.df, t))))

    def interval(self, point: float, level: float) -> tuple[float, float]:
        if not (math.isfinite(point) and math.isfinite(self.se)):
            return (math.nan, math.nan)
        half = self.critical(level) * self.se if self.se > 0 else 0.0
        return (point - half, point + half)

    def mde(self, level: float, power: float = 0.8) -> float:
        """Smallest true |difference| the level-`level` test finds with probability `power` (noncentral t)."""
        if not math.isfinite(self.se):
            return math.nan
        if self.se == 0:
            return 0.0
        c = self.critical(level)
        # the noncentral t's two tails, P(|Z + nc| > c sqrt(W)), W ~ chi2_df / df, by Gauss-Legendre in W's
        # probability scale (scipy's nct returns nan for some df and nc)
        if math.isinf(self.df):
            spread, weights = np.ones(1), np.ones(1)
        else:
            w, weights = variance.chi2_nodes(float(self.df))
            spread = np.sqrt(w)

        def reject(nc: float) -> float:
            return float(((special.ndtr(nc - c * spread) + special.ndtr(-nc - c * spread)) * weights).sum())

        hi = c + 4.0
        while reject(hi) < power:
            hi *= 2.0
        return float(optimize.brentq(lambda nc: reject(nc) - power, 0.0, hi, xtol=1e-10)) * self.se


@dataclass(frozen=True)
class Measured:
    """One claim's measured difference (metric units) with the test that gives its interval at any level."""

    diff: float
    variance: stats.Variance | Welch  # .interval(diff, level) and .mde(level), same units as diff
    p: float  # unadjusted
    source: str
    note: str = ""


def judge(claim: Claim, measured: float, ci: tuple[float, float], p: float, mde: float, alpha: float,
          source: str, level: float | None = None) -> Verdict:
    """The verdict, reasoning in 'improvement' units so MAE and accuracies read the same way."""
    s = sign(claim.metric)
    gain, lo, hi = s * measured, *sorted((s * ci[0], s * ci[1]))
    claimed = claim.improvement
    if not math.isfinite(p) or not math.isfinite(gain):
        word = "undefined (the metric is not defined on these predictions)"
    elif p >= alpha:
        word = "refuted (claimed value outside the CI)" if not lo <= claimed <= hi else "not significant"
    elif gain < 0:
        word = "contradicted"
    elif claimed > hi:
        word = "significant, but smaller than claimed"
    elif claimed < lo:
        word = "significant, and larger than claimed"
    else:
        word = "supported"
    note = ""
    if word == "not significant":
        note = f"smallest difference this test detects (80% power): {mde:.3g}"
    return Verdict(claim, word, measured, ci, p, mde, source, note, alpha if level is None else level)


def measure(claim: Claim, results_dir: str | Path | None, *, n_resamples: int = 10_000, seed: int = 0,
            data: tuple[str, ...] = ()) -> Measured:
    """The claim's difference from stored results, or from its published numbers."""
    r = claim.reported
    if r is not None:
        diff, welch = Welch.from_stats(r.mean_a, r.std_a, r.n_a, r.mean_b, r.std_b, r.n_b)
        p = welch.p_value(diff)
        notes = []
        if abs(diff - claim.value) > 0.011 * max(1.0, abs(claim.value)):
            notes.append(f"the reported means differ by {diff:+.3g}, not the claimed {claim.value:+.3g}")
        notes.append("seed-level only: test-set sampling is not in these numbers")
        k = scale(claim.metric)  # published numbers are in paper units already
        return Measured(diff / k, Welch(welch.se / k, welch.df), p, "reported", "; ".join(notes))
    if results_dir is None:
        raise MsabenchError(f"claim {claim.text!r} has no reported numbers and no results folder to check it against")
    paired = compare.pair(results_dir, claim.protocol, claim.better, claim.worse, data=data)
    c = compare.compare(paired, n_resamples=n_resamples, seed=seed, metric_names=[claim.metric]).row(claim.metric).result
    return Measured(c.diff, c.variance, c.p, "results")


def decision_levels(raw: list[float], alpha: float) -> list[float]:
    """The level each claim's CI and MDE are at: the one that decides it under Holm
    (`multiplicity.holm_levels`: the largest raw p at which the claim would still be significant).

    An interval at that level excludes 0 exactly when Holm rejects, also where the step-down
    stops early (raw p 0.03, 0.04: both Holm 0.06, both levels 0.025, both intervals hold 0). A
    claim without a p (nan) gets alpha.
    """
    return [float(x) if math.isfinite(x) else alpha for x in multiplicity.holm_levels(raw, alpha)]


def verify(claims: list[Claim], results_dir: str | Path | None = None, *, n_resamples: int = 10_000, seed: int = 0,
           alpha: float = compare.ALPHA, data: tuple[str, ...] = ()) -> list[Verdict]:
    """Every claim measured (results or reported numbers), Holm over all of them, each CI at its deciding level."""
    measured = [measure(c, results_dir, n_resamples=n_resamples, seed=seed, data=data) for c in claims]
    raw = [m.p for m in measured]
    adjusted = stats.holm(raw)
    levels = decision_levels(raw, alpha)
    out = []
    for c, m, p, level in zip(claims, measured, adjusted, levels):
        k = scale(c.metric)
        lo, hi = m.variance.interval(m.diff, level)
        ci, mde = (lo * k, hi * k), m.variance.mde(level) * k
        v = judge(c, m.diff * k, ci, float(p), mde, alpha, m.source, level)
        note = "; ".join(x for x in (v.note, m.note) if x)
        out.append(Verdict(v.claim, v.verdict, v.measured, v.ci, v.p, v.mde, v.source, note, v.level))
    return out


def verify_reported(claim: Claim, alpha: float = compare.ALPHA) -> Verdict:
    """Welch's t over seeds from the published numbers alone (one claim: no correction)."""
    if claim.reported is None:
        raise MsabenchError(f"claim {claim.text!r} has no reported numbers to check")
    return verify([claim], None, alpha=alpha)[0]


def table(verdicts: list[Verdict], fmt: str = "github", wide: bool = False) -> str:
    """The verdicts as printed. By default a table that fits 100 columns (the measured difference
    with its CI and level, p Holm and the verdict; rows numbered #1, #2, ...), then one line per row
    with the claim as written, the claimed value in paper units, where it was checked from, the note,
    and the full verdict where the table shortened it ("refuted (claimed value outside the CI)" is
    "refuted" in the table). `wide`: one table with every column (claim, from, claimed and note
    included), wider than a terminal."""
    from tabulate import tabulate

    full, short, notes = [], [], []
    for i, v in enumerate(verdicts, 1):
        unit = "pp" if scale(v.claim.metric) == 100.0 else ""
        tested = not all(math.isnan(x) for x in (*v.ci, v.p))  # published means without SDs: no test made
        ci = f"[{v.ci[0]:+.3g}, {v.ci[1]:+.3g}] ({100 * (1 - v.level):.4g}%)" if tested else "-"
        p = compare.format_p(v.p) if tested else "-"
        claimed, measured = f"{v.claim.value:+.3g}{unit}", f"{v.measured:+.3g}{unit}"
        full.append([v.claim.text, v.source, claimed, measured, ci, p, v.verdict, v.note])
        word = v.verdict.split(" (")[0]  # the parenthesis goes to the row's line
        short.append([str(i), measured if not tested else f"{measured} {ci}", p, word])
        source = "reported numbers" if v.source == "reported" else v.source
        notes.append(f"#{i} {v.claim.text} (claimed {claimed}; from {source})"
                     + "".join(f"; {x}" for x in (v.verdict if word != v.verdict else "", v.note) if x))
    if wide:
        return tabulate(full, headers=["claim", "from", "claimed", "measured", "CI (Holm level)", "p Holm", "verdict",
                                       "note"], tablefmt=fmt, disable_numparse=True)
    text = tabulate(short, headers=["#", "measured [CI] (Holm level)", "p Holm", "verdict"], tablefmt=fmt,
                    disable_numparse=True)
    return "\n".join([text, *notes, "(--wide: the claims, sources and notes as columns of one table)"])
