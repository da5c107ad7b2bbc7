"""Stored results: one folder per (protocol, model, seed), written atomically, read back typed.

    OUT/PROTOCOL/MODEL/seed-SEED/
        predictions.parquet   id, prediction, condition, seed  (one row per sample and condition)
        labels.parquet        id, label  (one row per sample): the data's own labels, in a file of
                              their own so that results on user-supplied data can be shared without them
        metrics.json          per-condition metrics and the aggregates over conditions: a copy for
                              humans, never read back (every reader recomputes the metrics from
                              predictions and labels, so an edited metrics.json changes nothing)
        manifest.json         every fingerprint and version needed to trust or re-use the numbers

Results without labels.parquet read their labels from the data file they were made on (`data=`),
checked by the dataset fingerprint. Results written before labels.parquet existed carry a `label`
column in predictions.parquet and read as before.

Labels are checked where results are read (`check_labels`): every unit of one dataset split
must hold the same labels, and those of the data itself where msabench can read it (`--data`,
or the embedded synthetic sets, which it regenerates); an edited labels file is refused.

A folder is complete or absent: it is assembled under a temporary name and renamed
into place, so an interrupted run never leaves half a result behind; two runs writing
into one folder never remove each other's live temporary folders.
"""

from __future__ import annotations

import fcntl
import functools
import glob
import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msabench.errors import MsabenchError

RESULT_SCHEMA = "msabench-result-1"
IDENTITY = ("protocol_fingerprint", "dataset_fingerprint", "submission_sha256", "masks_fingerprint", "seed")


@dataclass(frozen=True, eq=False)
class UnitResult:
    """Everything one (protocol, model, seed) produced."""

    protocol: str
    model: str
    seed: int
    ids: np.ndarray  # [C*N] str, conditions stacked in protocol order
    predictions: np.ndarray  # [C*N] float64
    labels: np.ndarray  # [C*N] float64
    conditions: np.ndarray  # [C*N] str
    metrics: dict  # {"conditions": {cond: {metric: v}}, "aggregate": {"mean": {...}, "area": {...}}}
    manifest: dict
    folder: Path | None = None  # where it was read from (None: computed in this process)


def unit_dir(out: str | Path, protocol: str, model: str, seed: int) -> Path:
    return Path(out) / protocol / model / f"seed-{seed}"


def jsonable(obj):
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None  # JSON has no NaN; None reads back as NaN
    return obj


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_unit(out: str | Path, unit: UnitResult) -> Path:
    """Write one unit atomically (replacing a stale one) and return its folder."""
    if len(unit.ids) == 0:
        raise MsabenchError(f"{unit.model} seed {unit.seed} on {unit.protocol}: no predictions to write (an empty "
                            "evaluation split)")
    final = unit_dir(out, unit.protocol, unit.model, unit.seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*-*"):  # left by an interrupted write, never a live one
        pid = stale.name.rsplit("-", 2)[-2] if stale.name.count("-") >= 2 else ""
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_files(tmp, unit)
        lock = os.open(final.parent, os.O_RDONLY)  # one swap at a time in a model's folder (flock on the folder)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if final.exists():
                old = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            os.close(lock)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write_files(tmp: Path, unit: UnitResult) -> None:
    table = pa.table({
        "id": pa.array(unit.ids.astype(str), pa.string()),
        "prediction": pa.array(unit.predictions, pa.float64()),
        "condition": pa.array(unit.conditions.astype(str), pa.string()),
        "seed": pa.array(np.full(len(unit.ids), unit.seed, dtype=np.int64), pa.int64()),
    })
    pq.write_table(table, tmp / "predictions.parquet", compression="zstd")  # a fifth smaller: runs are committed
    first = unit.conditions == unit.conditions[0]  # every condition scores the same samples with the same labels
    labels = pa.table({"id": pa.array(unit.ids[first].astype(str), pa.string()),
                       "label": pa.array(unit.labels[first], pa.float64())})
    pq.write_table(labels, tmp / "labels.parquet", compression="zstd")
    (tmp / "metrics.json").write_text(json.dumps(jsonable(unit.metrics), indent=1, allow_nan=False))
    (tmp / "manifest.json").write_text(json.dumps(jsonable(unit.manifest), indent=1, allow_nan=False))
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())


def labels_hash(ids: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of a split's labels by id (order-free): equal for every unit scored on that split."""
    order = np.argsort(np.asarray(ids).astype(str), kind="stable")
    h = hashlib.sha256()
    for i in order:
        h.update(f"{ids[i]}\x1f{float(labels[i])!r}\x1e".encode())
    return h.hexdigest()


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return manifest if isinstance(manifest, dict) else None


_MANIFEST_TYPES = {"protocol": str, "model": str, "seed": int, "dataset": str, "dataset_variant": str,
                   "dataset_fingerprint": str, "split": str, "conditions": list, "protocol_fingerprint": str,
                   "masks_fingerprint": str, "submission_sha256": str}


def check_manifest(folder: Path, manifest: dict) -> None:
    """The keys readers rely on, with their types, and the folder it sits in: one line naming the file."""
    where = folder / "manifest.json"
    for key, kind in _MANIFEST_TYPES.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "missing" if key not in manifest else f"{type(value).__name__} {str(value)[:40]!r}"
            raise MsabenchError(f"{where}: key {key!r} must be a {kind.__name__}, got {got}; the file was edited "
                                "or is not an msabench result")
    if not manifest["conditions"] or not all(isinstance(c, str) for c in manifest["conditions"]):
        raise MsabenchError(f"{where}: key 'conditions' must be a non-empty list of condition names")
    if not isinstance(manifest.get("selects_on_test", False), bool):
        raise MsabenchError(f"{where}: key 'selects_on_test' must be true or false")
    place = (folder.parent.parent.name, folder.parent.name, folder.name)
    if place != (manifest["protocol"], manifest["model"], f"seed-{manifest['seed']}"):
        raise MsabenchError(f"{where}: it says protocol {manifest['protocol']}, model {manifest['model']}, seed "
                            f"{manifest['seed']}, but it sits in {'/'.join(place)}")


def is_current(folder: Path, identity: dict) -> bool:
    """True when `folder` holds a finished unit with exactly these fingerprints."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("schema") != RESULT_SCHEMA:
        return False
    if not (folder / "predictions.parquet").exists():
        return False
    return all(manifest.get(k) == identity[k] for k in IDENTITY)


def read_unit(folder: str | Path, data: tuple[str, ...] = (), labels_by_id: dict | None = None,
              protocol=None) -> UnitResult:
    """One stored unit, its metrics recomputed from its predictions and labels (metrics.json is not read).

    `data`: data files to read its labels from when they are not stored with it; `labels_by_id`:
    those labels from data already loaded, whose fingerprint the caller has checked; `protocol`:
    the protocol it ran under (default: the shipped one of its name), for condition levels.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise MsabenchError(f"{folder}: no readable manifest.json; not a finished msabench result")
    check_manifest(folder, manifest)
    try:
        table = pq.read_table(folder / "predictions.parquet")
        stored = pq.read_table(folder / "labels.parquet") if (folder / "labels.parquet").exists() else None
        ids = table.column("id").to_numpy(zero_copy_only=False).astype(str)
        predictions = np.asarray(table.column("prediction").to_numpy(), dtype=np.float64)
        conditions = table.column("condition").to_numpy(zero_copy_only=False).astype(str)
        if "label" in table.column_names:  # written before labels.parquet
            labels = np.asarray(table.column("label").to_numpy(), dtype=np.float64)
        else:
            if stored is not None:
                by_id = dict(zip(stored.column("id").to_pylist(),
                                 np.asarray(stored.column("label").to_numpy(), dtype=np.float64).tolist()))
            elif labels_by_id is not None:
                by_id = labels_by_id
            else:
                by_id = labels_from_data(folder, manifest, data)
            missing = next((i for i in ids if i not in by_id), None)
            if missing is not None:
                raise MsabenchError(f"{folder}: sample {missing} has a prediction but no label")
            labels = np.array([by_id[i] for i in ids], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
        raise MsabenchError(f"{folder}: unreadable result files: {type(e).__name__}: {e}") from None
    unit = UnitResult(protocol=manifest["protocol"], model=manifest["model"], seed=manifest["seed"], ids=ids,
                      predictions=predictions, labels=labels, conditions=conditions, metrics={}, manifest=manifest,
                      folder=folder)
    return replace(unit, metrics=rescore(unit, protocol))


def rescore(unit: UnitResult, protocol=None) -> dict:
    """msabench's metrics of a unit, from its predictions and labels under its protocol's conditions."""
    from msabench import metrics, protocols

    where = unit.folder or f"{unit.model} seed {unit.seed} on {unit.protocol}"
    names = unit.manifest["conditions"]
    if protocol is None:
        try:
            protocol = protocols.load(unit.protocol)
        except MsabenchError:
            protocol = None  # a protocol file not shipped: levels unknown, the mean still holds
    found = set(unit.conditions.tolist())
    if found != set(names) or len(names) != len(set(names)):
        raise MsabenchError(f"{where}: its predictions hold conditions {sorted(found)}, its manifest lists {names}")
    counts = {c: int((unit.conditions == c).sum()) for c in names}
    if len(set(counts.values())) != 1:
        raise MsabenchError(f"{where}: conditions hold different numbers of predictions {counts}")
    current = protocol is not None and [c.name for c in protocol.conditions] == list(names)
    levels = [(c.name, c.level) for c in protocol.conditions] if current else [(c, 0.0) for c in names]
    aggregation = protocol.aggregation if current else ("mean",)
    kind = protocol.metric_kind if protocol is not None else protocols.dataset_kind(unit.manifest["dataset"])
    try:
        return metrics.by_condition(unit.predictions, unit.labels, unit.conditions, levels, kind, aggregation)
    except MsabenchError as e:
        raise MsabenchError(f"{where}: {e}") from None


def check_labels(units: list[UnitResult], data: tuple[str, ...] = ()) -> None:
    """Every unit of one dataset split must hold the same labels, and those of the data itself where
    msabench can read it (`data`, or the regenerated synthetic sets); else the unit is refused."""
    groups: dict[tuple[str, str], list[UnitResult]] = {}
    for u in units:
        groups.setdefault((u.manifest["dataset_fingerprint"], u.manifest["split"]), []).append(u)
    for (fp, split), members in groups.items():
        hashes = {id(u): labels_hash(*_first_condition(u)) for u in members}
        truth = _true_labels_hash(members[0].manifest, data)
        if truth is None:  # the labels most units hold
            counts: dict[str, int] = {}
            for h in hashes.values():
                counts[h] = counts.get(h, 0) + 1
            truth = max(counts, key=lambda h: (counts[h], h))
            source = f"the {counts[truth]} other unit(s) of this data"
        else:
            source = "the data's own labels"
        for u in members:
            if hashes[id(u)] != truth:
                raise MsabenchError(f"{u.folder or u.model}: its labels of {u.manifest['dataset']} "
                                    f"{u.manifest['dataset_variant']} {split} (dataset {fp[:12]}) differ from "
                                    f"{source}; the unit is refused (an edited labels file?)")


def _first_condition(u: UnitResult) -> tuple[np.ndarray, np.ndarray]:
    first = u.conditions == u.conditions[0]
    return u.ids[first], u.labels[first]


def _true_labels_hash(manifest: dict, data: tuple[str, ...]) -> str | None:
    """The labels hash of the data a unit was made on, when msabench can read that data."""
    for path in data:
        try:
            fingerprint, by_id = _split_labels(str(path), manifest["dataset"], manifest["dataset_variant"],
                                               manifest["split"])
        except MsabenchError:
            continue
        if fingerprint == manifest["dataset_fingerprint"] and by_id:
            return _hash_by_id(by_id)
    if str(manifest.get("dataset_source", "")).startswith("generated:"):
        return _generated_hash(manifest["dataset"], manifest["dataset_variant"], manifest["split"],
                               manifest["dataset_fingerprint"])
    return None


def _hash_by_id(by_id: dict) -> str:
    ids = np.array(list(by_id), dtype=str)
    return labels_hash(ids, np.array([by_id[i] for i in ids.tolist()], dtype=np.float64))


@functools.cache
def _generated_hash(name: str, variant: str, split: str, fingerprint: str) -> str | None:
    from msabench import data

    try:
        ds = data.load(name, variant)
    except MsabenchError:
        return None
    if ds.fingerprint != fingerprint or split not in ds.splits:
        return None
    return labels_hash(ds.splits[split].ids, ds.splits[split].labels.astype(np.float64))


@functools.cache
def _split_labels(path: str, dataset: str, variant: str, split: str) -> tuple[str, dict]:
    from msabench import data

    ds = data.load(dataset, variant, data=path)
    if split not in ds.splits:
        return ds.fingerprint, {}
    return ds.fingerprint, labels_by_id(ds.splits[split])


def labels_by_id(split) -> dict:
    """A split's labels by sample id: what a unit shared without its labels reads them back from."""
    return dict(zip(split.ids.astype(str).tolist(), split.labels.astype(np.float64).tolist()))


def labels_from_data(folder: Path, manifest: dict, data: tuple[str, ...]) -> dict:
    """{id: label} of the split a unit scored, from the first of `data` that is the data it was made on."""
    name, variant, want = manifest["dataset"], manifest["dataset_variant"], manifest["dataset_fingerprint"]
    if not data:
        raise MsabenchError(f"{folder}: its labels are not stored with it (results on user-supplied data are "
                            f"shared without them); pass --data with the {name} {variant} file it was made on")
    tried = []
    for path in data:
        try:
            fingerprint, by_id = _split_labels(str(path), name, variant, manifest["split"])
        except MsabenchError as e:
            tried.append(f"{path}: {e}")
            continue
        if fingerprint == want:
            return by_id
        tried.append(f"{path}: another dataset (fingerprint {fingerprint[:12]})")
    raise MsabenchError(f"{folder}: none of the data given is the {name} {variant} it was made on (dataset "
                        f"fingerprint {want[:12]}): {'; '.join(tried)}")


def folders(out) -> list[Path]:
    """One results folder or several, as a list."""
    return [Path(out)] if isinstance(out, (str, Path)) else [Path(f) for f in out]


def where(out) -> str:
    """Results folders as a message names them."""
    return " + ".join(map(str, folders(out)))


def find_units(out, protocol: str | None = None, model: str | None = None) -> list[Path]:
    """Finished unit folders under `out`, a results folder or several (temporary folders are never matched).

    Several folders (a user's runs next to the committed board's, `leaderboard/runs`) read as one: a
    unit (protocol, model, seed) found in more than one of them must be the same run, byte for byte
    (its manifest and predictions), and is read once; two different runs of one unit are refused.
    """
    # names are escaped: `firf[noise_part=False]` is a model name, not a glob character class
    pattern = f"{glob.escape(protocol) if protocol else '*'}/{glob.escape(model) if model else '*'}/seed-*/manifest.json"
    if isinstance(out, (str, Path)):
        return sorted(p.parent for p in Path(out).glob(pattern))
    seen: dict[tuple[str, ...], Path] = {}
    for folder in out:
        for unit in sorted(p.parent for p in Path(folder).glob(pattern)):
            key = unit.parts[-3:]
            if key not in seen:
                seen[key] = unit
            elif _digest(unit) != _digest(seen[key]):
                raise MsabenchError(f"{'/'.join(key)} is in both {folder} and {seen[key].parents[2]} with different "
                                    "runs; pass one of the folders, or move one run away")
    return sorted(seen.values(), key=lambda u: u.parts[-3:])


def _digest(unit: Path) -> str:
    """What makes two copies of a unit the same run: its identity and its predictions' bytes."""
    manifest = json.loads((unit / "manifest.json").read_text())
    h = hashlib.sha256(json.dumps({k: manifest.get(k) for k in IDENTITY}, sort_keys=True).encode())
    pred = unit / "predictions.parquet"
    h.update(pred.read_bytes() if pred.is_file() else b"")
    return h.hexdigest()
