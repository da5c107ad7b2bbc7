"""Published results: what papers reported under a protocol, kept apart from what msabench measured.

The registry is a folder of TOML files (`leaderboard/published/*.toml`, one per protocol), each
entry one (method, paper, protocol) with the reported metrics in paper units (accuracies and F1
in percent, MAE and Corr in their own units), per rate where the paper gives them, the seeds,
how the checkpoint was selected (`test` / `validation` / `unknown`), the source and notes.
Numbers are never merged: two entries for the same method that disagree under the same
selection are both kept and flagged (`conflicts`). They are shown as "as published, not re-run"
and never ranked with measured rows. A claim can be checked from them (`verify --published`)
only where the sources give standard deviations; none in this field does so far, and the
verdict then says the claim cannot be tested rather than guessing a variance.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from msabench import claims, metrics, protocols
from msabench.errors import MsabenchError

SELECTIONS = ("test", "validation", "unknown")
REGISTRY_DIR = protocols.shipped("published", checkout="leaderboard/published")
_ENTRY_KEYS = {"method", "paper", "source", "selection", "seeds", "metrics", "std", "per_rate", "notes"}


@dataclass(frozen=True)
class Entry:
    """One method's reported numbers from one source, under one protocol (paper units)."""

    method: str
    protocol: str
    paper: str
    source: str
    selection: str  # how the checkpoint was chosen: "test" (a protocol flaw), "validation" or "unknown"
    seeds: tuple[int, ...]  # () when the source does not say
    metrics: dict  # metric -> reported mean over conditions (and seeds)
    std: dict = field(default_factory=dict)  # metric -> standard deviation over seeds, where given
    per_rate: dict = field(default_factory=dict)  # metric -> {condition name: value}
    notes: str = ""
    file: str = ""
    index: int = 0  # position in its file, from 1
    sources: dict = field(default_factory=dict)  # the file's [sources]: key -> what it is

    @property
    def label(self) -> str:
        """Short: the method, its sources' keys (or paper) and the selection."""
        cited = ",".join(self.sources)
        return f"{self.method} [{cited}]" if cited else f"{self.method} ({self.paper})"

    def testable(self, metric: str) -> bool:
        """A Welch test needs a standard deviation and a seed count."""
        return metric in self.std and len(self.seeds) >= 2


def _is_rate(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _fail(where: str, msg: str):
    raise MsabenchError(f"{where}: {msg}")


def _numbers(value, where: str, key: str, names: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"key '{key}' must be a table of metric = number, got {value!r}")
    for name, x in value.items():
        if name not in names:
            _fail(where, f"key '{key}': {name!r} is not a metric of this protocol; metrics: {', '.join(names)}")
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            _fail(where, f"key '{key}': {name} must be a finite number, got {x!r}")
    return {k: float(v) for k, v in value.items()}


def parse_file(path: str | Path) -> list[Entry]:
    """One registry file -> its entries; one line naming the file, the entry and the key when wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MsabenchError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:  # tables or arrays nested thousands deep
        raise MsabenchError(f"{path}: tables or arrays nested too deeply to read") from None
    if set(data) - {"protocol", "sources", "entry"} or not isinstance(data.get("protocol"), str):
        _fail(str(path), "a registry file holds protocol = \"NAME\", a [sources] table and [[entry]] tables, "
                         "nothing else")
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) and v.strip() for v in sources.values()):
        _fail(str(path), "[sources] maps a short key to a description of the source (both strings)")
    try:
        proto = protocols.load(data["protocol"])
    except MsabenchError as e:
        raise MsabenchError(f"{path}: key 'protocol': {e}") from None
    names = metrics.METRICS[proto.metric_kind]
    rates = {c.name.removeprefix("r=") for c in proto.conditions}
    out = []
    for i, raw in enumerate(data.get("entry", []), 1):
        where = f"{path}, entry {i}"
        unknown = set(raw) - _ENTRY_KEYS
        if unknown:
            _fail(where, f"unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        for key in ("method", "paper", "source", "selection", "metrics"):
            if key not in raw:
                _fail(where, f"key '{key}' is required")
        for key in ("method", "paper", "source", "notes"):
            if not isinstance(raw.get(key, ""), str) or (key != "notes" and not raw[key].strip()):
                _fail(where, f"key '{key}' must be a non-empty string")
        cited = re.findall(r"\[([^\]]+)\]", raw["source"])
        if [c for c in cited if c not in sources]:
            _fail(where, f"key 'source' cites [{[c for c in cited if c not in sources][0]}], which [sources] does not "
                         f"name (it names: {', '.join(sources) or 'nothing'})")
        if raw["selection"] not in SELECTIONS:
            _fail(where, f"key 'selection' must be one of {', '.join(SELECTIONS)}, got {raw['selection']!r}")
        seeds = raw.get("seeds", [])
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            _fail(where, f"key 'seeds' must be a list of integers (empty when the source does not say), got {seeds!r}")
        values = _numbers(raw["metrics"], where, "metrics", names)
        if not values:
            _fail(where, "key 'metrics' is empty")
        std = _numbers(raw.get("std", {}), where, "std", names)
        if any(s < 0 for s in std.values()) or set(std) - set(values):
            _fail(where, "key 'std': standard deviations must be >= 0 and belong to reported metrics")
        per_rate = {}
        if not isinstance(raw.get("per_rate", {}), dict):
            _fail(where, "key 'per_rate' must be a table of metric = {rate = value}")
        for name, by_rate in raw.get("per_rate", {}).items():
            if not isinstance(by_rate, dict):
                _fail(where, f"key 'per_rate.{name}' must be a table of rate = value")
            bad = [r for r in by_rate if not _is_rate(r) or f"{float(r):g}" not in rates]
            if bad:
                _fail(where, f"key 'per_rate.{name}': rate {bad[0]!r} is not a condition of {proto.name}")
            if name not in names:
                _fail(where, f"key 'per_rate': {name!r} is not a metric of this protocol")
            per_rate[name] = {f"r={float(r):g}": v
                              for r, v in _numbers(by_rate, where, f"per_rate.{name}", tuple(by_rate)).items()}
        out.append(Entry(method=raw["method"], protocol=proto.name, paper=raw["paper"], source=raw["source"],
                         selection=raw["selection"], seeds=tuple(seeds), metrics=values, std=std,
                         per_rate=per_rate, notes=raw.get("notes", ""), file=str(path), index=i,
                         sources={k: sources[k] for k in cited}))
    return out


def load(folder: str | Path | None = None, protocol: str | None = None) -> list[Entry]:
    """Every entry of the registry (the shipped one by default), optionally for one protocol."""
    folder = Path(folder) if folder is not None else REGISTRY_DIR
    if not folder.is_dir():
        raise MsabenchError(f"published-results registry {folder} is not a folder")
    entries = [e for f in sorted(folder.glob("*.toml")) for e in parse_file(f)]
    if protocol is not None:
        protocols.load(protocol)  # an unknown name: one line
        entries = [e for e in entries if e.protocol == protocols.load(protocol).name]
    return entries


def conflicts(entries: list[Entry]) -> dict[tuple[str, int], list[str]]:
    """(file, index) -> lines saying which metric another entry for the same method, protocol and
    selection reports differently. Nothing is merged: both entries stay, both are flagged."""
    out: dict[tuple[str, int], list[str]] = {}
    for a in entries:
        for b in entries:
            if a is b or (a.method, a.protocol, a.selection) != (b.method, b.protocol, b.selection):
                continue
            differ = [m for m in a.metrics if m in b.metrics and a.metrics[m] != b.metrics[m]]
            if differ:
                out.setdefault((a.file, a.index), []).append(
                    f"contradicts entry {b.index} ({b.source}) on {', '.join(differ)}")
    return out


def table(entries: list[Entry], names: tuple[str, ...], fmt: str = "github") -> str:
    """The entries side by side, in paper units, with selection, seeds, source and flags."""
    from tabulate import tabulate

    flags = conflicts(entries)
    rows = []
    for e in entries:
        cells = [_number(e.metrics[m], m) + (f" ± {_number(e.std[m], m)}" if m in e.std else "") if m in e.metrics
                 else "" for m in names]
        seeds = ",".join(map(str, e.seeds)) or "not given"
        flag = "; ".join(flags.get((e.file, e.index), []))
        rows.append([e.method, e.paper, e.selection + (" (protocol flaw)" if e.selection == "test" else ""), seeds,
                     *cells, e.source, "; ".join(x for x in (flag and f"FLAG: {flag}", e.notes) if x)])
    legend = {k: v for e in entries for k, v in e.sources.items()}
    text = tabulate(rows, headers=["method", "paper", "selection", "seeds", *names, "source", "notes"], tablefmt=fmt,
                    disable_numparse=True)
    return text + ("\n\nSources: " + "; ".join(f"[{k}] {v}" for k, v in legend.items()) if legend else "")


def _number(x: float, metric: str) -> str:
    """As papers print them: percentages with two decimals, MAE and Corr with three (four when given)."""
    if claims.scale(metric) == 100.0:
        return f"{x:.2f}"
    return f"{x:.4f}" if round(x, 3) != x else f"{x:.3f}"


def find(entries: list[Entry], method: str, protocol: str, metric: str) -> list[Entry]:
    return [e for e in entries if e.method == method and e.protocol == protocol and metric in e.metrics]


def verify(claim_texts: list[str], entries: list[Entry] | None = None, alpha: float = 0.05) -> list[claims.Verdict]:
    """Check claims against the registry: one verdict per pair of entries for the two methods.

    Welch's t over seeds where both entries give a standard deviation and seeds (all of those in one
    Holm correction, as `msabench verify`); otherwise the difference is shown and the verdict says
    the claim cannot be tested from published numbers.
    """
    entries = load() if entries is None else entries
    testable, untestable = [], []
    for text in claim_texts:
        claim = claims.parse(text)
        found_a = find(entries, claim.better, claim.protocol, claim.metric)
        found_b = find(entries, claim.worse, claim.protocol, claim.metric)
        for method, found in ((claim.better, found_a), (claim.worse, found_b)):
            if not found:
                known = sorted({e.method for e in entries if e.protocol == claim.protocol and claim.metric in e.metrics})
                raise MsabenchError(f"claim {text!r}: the registry has no {claim.metric} for {method} on "
                                    f"{claim.protocol}; it has: {', '.join(known) or 'nothing'}")
        for a in found_a:
            for b in found_b:
                source = f"published: {a.label} vs {b.label}"
                if a.testable(claim.metric) and b.testable(claim.metric):
                    reported = claims.Reported(a.metrics[claim.metric], a.std[claim.metric], len(a.seeds),
                                               b.metrics[claim.metric], b.std[claim.metric], len(b.seeds))
                    testable.append((claims.Claim(claim.text, claim.better, claim.worse, claim.protocol, claim.metric,
                                                  claim.value, reported), source, a, b))
                else:
                    untestable.append((claim, source, a, b))
    verdicts = claims.verify([c for c, *_ in testable], None, alpha=alpha) if testable else []
    out = [claims.Verdict(v.claim, v.verdict, v.measured, v.ci, v.p, v.mde, src, _note(v.note, a, b), v.level)
           for v, (_, src, a, b) in zip(verdicts, testable)]
    for claim, source, a, b in untestable:
        diff = a.metrics[claim.metric] - b.metrics[claim.metric]
        missing = [e.method for e in (a, b) if not e.testable(claim.metric)]
        out.append(claims.Verdict(
            claim, "cannot be tested from published numbers", diff, (math.nan, math.nan), math.nan, math.nan, source,
            _note(f"no seed SD (or seed count) published for {', '.join(dict.fromkeys(missing))}: a difference of "
                  "means alone cannot be told from seed noise", a, b), alpha))
    return out


def _note(note: str, a: Entry, b: Entry) -> str:
    sel = {a.selection, b.selection}
    extra = []
    if "test" in sel:
        extra.append("checkpoint chosen on test: " + ", ".join(e.method for e in (a, b) if e.selection == "test"))
    if len(sel) > 1:
        extra.append(f"selected differently ({a.selection} vs {b.selection})")
    return "; ".join(x for x in (note, *extra) if x)

