"""Stored runs against today's code: which are current, which were made by code that has changed since,
and which are stale.

A bundled model's results are keyed by its name, declared VERSION and options
(`submission.identity`), so editing its code stales nothing; the code that made a unit is
recorded beside the key (manifest `code_sha256`). `check` compares both with today's:
- current: same key, same code;
- code changed: same key, other code (a refactor, or a change that should have bumped VERSION):
  `check(rerun=True)` re-runs one seed with today's code and says whether the predictions moved;
- stale: the key differs (VERSION bumped, or a file submission edited): `msabench run` re-runs it.
`upgrade` brings manifests written before identities existed to today's key, recording their old
digest as the code that made them.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from msabench import devices, results, submission

CURRENT, CHANGED, STALE, UNKNOWN, OLD = "current", "code changed", "stale", "unknown", "old manifest"


@dataclass(frozen=True)
class Status:
    """One (protocol, model) of a results folder against today's code."""

    protocol: str
    model: str
    seeds: tuple[int, ...]
    state: str
    detail: str = ""
    rerun: str = ""  # with check(rerun=True), for 'code changed': what re-running one seed showed

    def line(self) -> str:
        seeds = ",".join(map(str, self.seeds))
        extra = "".join(f"; {x}" for x in (self.detail, self.rerun) if x)
        return f"{self.protocol:24s} {self.model:40s} seeds {seeds:16s} {self.state}{extra}"


def _today(model: str, manifest: dict) -> tuple[str, str, str] | None:
    """(identity, code, how it was found) of what would make `model` today; None if nothing would."""
    try:
        sub = submission.find_bundled(model)
    except submission.NotInstalled as e:
        return "", "", f"not installed: {e}"
    if sub is not None:
        return sub.sha256, sub.code, f"bundled {sub.spec} v{sub.version}"
    path = Path(manifest.get("submission_path", ""))
    if path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return digest, digest, f"file {path}"
    return None


def _state(manifest: dict, today: tuple[str, str, str] | None) -> tuple[str, str]:
    if "code_sha256" not in manifest:
        return OLD, "made before model identities: msabench runs --upgrade"
    if today is None:
        return UNKNOWN, f"no bundled model makes this name and {manifest.get('submission_path')} is not there"
    identity, code, how = today
    if how.startswith("not installed"):
        return UNKNOWN, f"which code would make it today is not known here ({how})"
    if manifest["submission_sha256"] != identity:
        why = "VERSION or options differ" if how.startswith("bundled") else "the file was edited"
        return STALE, f"{how}: {why}; msabench run re-runs it"
    if manifest["code_sha256"] != code:
        return CHANGED, f"{how}: its code differs from the code that made it"
    return CURRENT, how


def check(results_dir: str | Path, *, rerun: bool = False, data: str | None = None) -> list[Status]:
    """Every (protocol, model) under `results_dir` against today's code (see the module docstring)."""
    groups: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for folder in results.find_units(results_dir):
        manifest = results.checked_manifest(folder)
        groups.setdefault((manifest["protocol"], manifest["model"]), []).append((folder, manifest))
    out = []
    for (protocol, model), units in sorted(groups.items()):
        st = status(protocol, model, [m for _, m in units])
        if rerun and st.state == CHANGED:
            folder, manifest = min(units, key=lambda u: u[1]["seed"])
            st = replace(st, rerun=_rerun(folder, manifest, submission.spec_of(model) or manifest["submission_path"],
                                          data))
        out.append(st)
    return out


def status(protocol: str, model: str, manifests: list[dict]) -> Status:
    """One (protocol, model) against today's code, from its units' manifests: the worst of their states."""
    today = _today(model, manifests[0])
    states = [_state(m, today) for m in manifests]
    worst = max(states, key=lambda s: [CURRENT, CHANGED, OLD, STALE, UNKNOWN].index(s[0]))
    return Status(protocol, model, tuple(sorted(m["seed"] for m in manifests)), *worst)


def _rerun(folder: Path, manifest: dict, spec: str, data: str | None) -> str:
    """Re-run the unit's seed with today's code in a scratch folder; compare the predictions."""
    from msabench import executors

    stored = results.read_unit(folder, (data,) if data else ())
    with tempfile.TemporaryDirectory(prefix="msabench-rerun-") as tmp:
        threads = (manifest.get("compute") or {}).get("threads")  # float sums depend on the thread count
        executor = executors.SerialExecutor(cpus_per_job=min(int(threads), devices.available_cpus())
                                            if isinstance(threads, int) and threads >= 1 else None)
        executors.run(manifest["protocol"], spec, seeds=[manifest["seed"]], out=tmp, data=data, executor=executor)
        fresh = results.read_unit(results.unit_dir(tmp, manifest["protocol"], manifest["model"], manifest["seed"]),
                                  (data,) if data else ())
    a = stored.predictions[np.lexsort((stored.ids, stored.conditions))]
    b = fresh.predictions[np.lexsort((fresh.ids, fresh.conditions))]
    made = (manifest.get("compute") or {}).get("name") or (manifest.get("compute") or {}).get("cpu", "?")
    here = devices.cpu_name()
    where = f"made on {made}, re-run on {here}, {executor.threads} thread(s)"
    if a.shape == b.shape and np.array_equal(a, b):
        return f"seed {manifest['seed']} re-run: predictions bit-identical ({where})"
    if a.shape != b.shape:
        return f"seed {manifest['seed']} re-run: {b.size} predictions where {a.size} were stored ({where})"
    moved = np.abs(a - b)
    return (f"seed {manifest['seed']} re-run: {int((moved > 0).sum())} of {a.size} predictions differ, max |Δ| "
            f"{moved.max():.3g} ({where})")


def upgrade(results_dir: str | Path) -> list[str]:
    """Rewrite manifests made before identities: today's key, the old digest kept as the code that made
    them. Units no bundled model (or no file on disk) makes today are left as they are, and named."""
    changed, left = [], []
    for folder in results.find_units(results_dir):
        manifest = results.read_manifest(folder)
        if manifest is None or "code_sha256" in manifest:
            continue
        results.check_manifest(folder, manifest)
        sub = submission.find_bundled(manifest["model"])
        if sub is not None:
            new = {**manifest, "submission_sha256": sub.sha256, "code_sha256": manifest["submission_sha256"],
                   "model_version": sub.version}
        elif not Path(manifest.get("submission_path", "")).suffix == ".py":
            left.append(str(folder))
            continue
        else:  # a file submission: its key was and stays its bytes
            new = {**manifest, "code_sha256": manifest["submission_sha256"], "model_version": None}
        results.replace_manifest(folder, new)
        changed.append(str(folder))
    return changed + [f"left as it was (no model makes {Path(f).parent.name} today): {f}" for f in left]


def pack(results_dir: str | Path) -> list[tuple[Path, list[int]]]:
    """Pack every (protocol, model) under `results_dir` (`results.pack`): [(its pack file, seeds)]."""
    model_dirs = sorted({folder.parent for folder in results.find_units(results_dir)})
    return [(d / results.PACK, results.pack(d)) for d in model_dirs]
