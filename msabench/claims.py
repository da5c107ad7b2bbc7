"""Checking a paper's claim ("derl > prlf on mosi-intra: Non0_acc_2 +2.47") against the data.

A claim names the better model, the worse one, a protocol, a metric and the claimed
difference better − worse, written as papers print it: accuracies and F1 in percentage
points, MAE and Corr in their own units. Against stored results the difference is
measured with the paired test of `msabench.compare`; `reported` mode uses published
means, standard deviations and seed counts only (Welch's t-test over seeds): what a
reader can check without predictions. Every claim checked in one run, in either mode,
is in one Holm correction, and each claim's CI and minimum detectable effect are at the
level Holm compares its p with (alpha / (m − rank)), so interval and verdict agree.
Verdicts:

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
from pathlib import Path

from msabench import compare, metrics, protocols, stats
from msabench.errors import MsabenchError

GRAMMAR = ('MODEL_A > MODEL_B on PROTOCOL: METRIC ±VALUE, e.g. "derl > prlf on mosi-intra: Non0_acc_2 +2.47" '
           "(accuracies and F1 in percentage points, MAE and Corr in their own units; '<' claims MODEL_A is worse)")
_CLAIM = re.compile(r"^\s*(?P<a>[^\s<>]+)\s*(?P<op>[<>])\s*(?P<b>[^\s<>]+)\s+on\s+(?P<protocol>[^\s:]+)\s*:\s*"
                    r"(?P<metric>[A-Za-z0-9_]+)\s+(?P<value>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")


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
    """A claim string -> Claim; one line with the grammar when it does not parse or does not add up."""
    m = _CLAIM.match(text)
    if not m:
        raise MsabenchError(f"claim {text!r} does not parse; grammar: {GRAMMAR}")
    a, b, value = m["a"], m["b"], float(m["value"])
    if m["op"] == "<":  # "a < b: M -x" is "b > a: M +x"
        a, b, value = b, a, -value
        if reported is not None:
            reported = Reported(reported.mean_b, reported.std_b, reported.n_b,
                                reported.mean_a, reported.std_a, reported.n_a)
    proto = protocols.load(m["protocol"])
    names = metrics.METRICS[proto.metric_kind]
    if m["metric"] not in names:
        raise MsabenchError(f"claim {text!r}: metric {m['metric']!r} does not exist for {proto.name} "
                            f"({proto.dataset}); metrics: {', '.join(names)}")
    claim = Claim(text, a, b, proto.name, m["metric"], value, reported)
    if claim.improvement <= 0:
        direction = "lower" if sign(claim.metric) < 0 else "higher"
        raise MsabenchError(f"claim {text!r}: says {a} is better than {b} but {claim.metric} {m['value']} is not an "
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
    ci: tuple[float, float]  # at the claim's Holm level (see `level`)
    p: float  # Holm-adjusted over every claim checked together
    mde: float  # minimum detectable |difference| at 80% power, at the Holm level, paper units
    source: str  # "results" or "reported"
    note: str = ""
    level: float = compare.ALPHA  # the CI is a 1 - level interval


@dataclass(frozen=True)
class Measured:
    """One claim's measured difference (metric units) with its standard error and t df."""

    diff: float
    variance: stats.Variance  # gives the interval and the detectable effect at any level
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
        diff, _, p, df = stats.welch_from_stats(r.mean_a, r.std_a, r.n_a, r.mean_b, r.std_b, r.n_b)
        se = math.sqrt(r.std_a ** 2 / r.n_a + r.std_b ** 2 / r.n_b)
        notes = []
        if abs(diff - claim.value) > 0.011 * max(1.0, abs(claim.value)):
            notes.append(f"the reported means differ by {diff:+.3g}, not the claimed {claim.value:+.3g}")
        notes.append("seed-level only: test-set sampling is not in these numbers")
        k = scale(claim.metric)  # published numbers are in paper units already
        var = stats.Variance((se / k) ** 2, 0.0, df, gamma=0.0)  # Welch's t: all of it from the seeds
        return Measured(diff / k, var, p, "reported", "; ".join(notes))
    if results_dir is None:
        raise MsabenchError(f"claim {claim.text!r} has no reported numbers and no results folder to check it against")
    paired = compare.pair(results_dir, claim.protocol, claim.better, claim.worse, data=data)
    c = compare.compare(paired, n_resamples=n_resamples, seed=seed, metric_names=[claim.metric]).row(claim.metric).result
    return Measured(c.diff, c.variance, c.p, "results")


def verify(claims: list[Claim], results_dir: str | Path | None = None, *, n_resamples: int = 10_000, seed: int = 0,
           alpha: float = compare.ALPHA, data: tuple[str, ...] = ()) -> list[Verdict]:
    """Every claim measured (results or reported numbers), Holm over all of them, each judged at its Holm level."""
    measured = [measure(c, results_dir, n_resamples=n_resamples, seed=seed, data=data) for c in claims]
    adjusted = stats.holm([m.p for m in measured])
    levels = stats.holm_levels([m.p for m in measured], alpha)
    out = []
    for c, m, p, level in zip(claims, measured, adjusted, levels):
        k = scale(c.metric)
        lo, hi = m.variance.interval(m.diff, float(level))
        ci, mde = (lo * k, hi * k), m.variance.mde(float(level)) * k
        v = judge(c, m.diff * k, ci, float(p), mde, alpha, m.source, float(level))
        note = "; ".join(x for x in (v.note, m.note) if x)
        out.append(Verdict(v.claim, v.verdict, v.measured, v.ci, v.p, v.mde, v.source, note, v.level))
    return out


def verify_reported(claim: Claim, alpha: float = compare.ALPHA) -> Verdict:
    """Welch's t over seeds from the published numbers alone (one claim: no correction)."""
    if claim.reported is None:
        raise MsabenchError(f"claim {claim.text!r} has no reported numbers to check")
    return verify([claim], None, alpha=alpha)[0]


def table(verdicts: list[Verdict], fmt: str = "github") -> str:
    from tabulate import tabulate

    rows = []
    for v in verdicts:
        unit = "pp" if scale(v.claim.metric) == 100.0 else ""
        tested = not all(math.isnan(x) for x in (*v.ci, v.p))  # published means without SDs: no test made
        rows.append([v.claim.text, v.source, f"{v.claim.value:+.3g}{unit}", f"{v.measured:+.3g}{unit}",
                     f"[{v.ci[0]:+.3g}, {v.ci[1]:+.3g}] ({100 * (1 - v.level):.4g}%)" if tested else "-",
                     compare._p(v.p) if tested else "-", v.verdict, v.note])
    return tabulate(rows, headers=["claim", "from", "claimed", "measured", "CI (Holm level)", "p Holm", "verdict",
                                   "note"], tablefmt=fmt, disable_numparse=True)
