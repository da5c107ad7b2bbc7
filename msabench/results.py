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

A (protocol, model) folder can be packed (`pack`, `msabench runs --pack`): every seed in one zstd
Parquet, so a committed board grows by one file per model, not four per seed:

    OUT/PROTOCOL/MODEL/runs.parquet   seed, condition, id, prediction, label (the label only for data
                                      msabench generates); each seed's manifest in the file's metadata

A packed unit reads exactly as its folder did (it is still named OUT/PROTOCOL/MODEL/seed-SEED); a
seed folder written beside a pack (a later run) is read instead of the pack's copy until the next
pack folds it in. metrics.json is not packed: it was never read back.

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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from msabench import paths
from msabench.errors import MsabenchError

RESULT_SCHEMA = "msabench-result-1"
PACK = "runs.parquet"
PACK_SCHEMA = "msabench-pack-1"
_PACK_KEY = b"msabench"
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
    """A unit's manifest, from its folder or from its model's pack; None when there is none readable."""
    folder = Path(folder)
    if not (folder / "manifest.json").exists() and _in_pack(folder):
        return _pack(folder.parent / PACK)[1][_seed_of(folder)]
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


def checked_manifest(folder: Path) -> dict:
    """A unit's manifest, read and checked (`check_manifest`); one line naming the unit when there is none."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise MsabenchError(f"{folder}: no readable manifest.json; not a finished msabench result")
    check_manifest(folder, manifest)
    return manifest


def is_current(folder: Path, identity: dict) -> bool:
    """True when `folder` holds a finished unit with exactly these fingerprints."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("schema") != RESULT_SCHEMA:
        return False
    if not (folder / "predictions.parquet").exists() and not _in_pack(folder):
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
    manifest = checked_manifest(folder)
    try:
        table, stored = _stored(folder)
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


def _stored(folder: Path) -> tuple[pa.Table, pa.Table | None]:
    """(predictions, labels or None) of a unit, from its folder or its model's pack."""
    if (folder / "manifest.json").exists() or not _in_pack(folder):
        table = pq.read_table(folder / "predictions.parquet")
        stored = pq.read_table(folder / "labels.parquet") if (folder / "labels.parquet").exists() else None
        return table, stored
    rows = _pack(folder.parent / PACK)[0]
    rows = rows.filter(pc.equal(rows.column("seed"), _seed_of(folder)))
    if "label" in rows.column_names and rows.column("label").null_count == 0:
        first = pc.equal(rows.column("condition"), rows.column("condition")[0])
        labels = rows.filter(first).select(["id", "label"])
        return rows.drop_columns(["label"]), labels
    return rows.drop_columns([c for c in ("label",) if c in rows.column_names]), None


def has_labels(folder: Path) -> bool:
    """Whether a unit's labels are stored with it (else they are read from the data, --data)."""
    table, stored = _stored(Path(folder))
    return stored is not None or "label" in table.column_names


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
    if isinstance(out, (str, Path)):
        return _units_in(Path(out), protocol, model)
    seen: dict[tuple[str, ...], Path] = {}
    for folder in out:
        for unit in _units_in(Path(folder), protocol, model):
            key = unit.parts[-3:]
            if key not in seen:
                seen[key] = unit
            elif _digest(unit) != _digest(seen[key]):
                raise MsabenchError(f"{'/'.join(key)} is in both {folder} and {seen[key].parents[2]} with different "
                                    "runs; pass one of the folders, or move one run away")
    return sorted(seen.values(), key=lambda u: u.parts[-3:])


def _units_in(root: Path, protocol: str | None, model: str | None) -> list[Path]:
    """Unit folders under one results folder: finished seed folders and the seeds of packs."""
    # names are escaped: `firf[noise_part=False]` is a model name, not a glob character class
    models = f"{glob.escape(protocol) if protocol else '*'}/{glob.escape(model) if model else '*'}"
    found = {p.parent for p in root.glob(f"{models}/seed-*/manifest.json")}
    for pack_file in root.glob(f"{models}/{PACK}"):
        found.update(pack_file.parent / f"seed-{seed}" for seed in _pack(pack_file)[1])
    return sorted(found)


def _digest(unit: Path) -> str:
    """What makes two copies of a unit the same run: its identity and its predictions (folder or pack)."""
    try:
        table, _ = _stored(unit)
    except (OSError, pa.ArrowException):
        table = None
    return _run_digest(read_manifest(unit) or {}, table)


def _run_digest(manifest: dict, table: pa.Table | None) -> str:
    h = hashlib.sha256(json.dumps({k: manifest.get(k) for k in IDENTITY}, sort_keys=True).encode())
    if table is not None:
        for name in ("id", "condition"):
            h.update("\x1f".join(map(str, table.column(name).to_pylist())).encode() + b"\x1e")
        h.update(np.asarray(table.column("prediction").to_numpy(), dtype=np.float64).tobytes())
    return h.hexdigest()


# ---- packs: every seed of one (protocol, model) in one Parquet file ----

def _seed_of(folder: Path) -> int:
    name = Path(folder).name
    return int(name[5:]) if name.startswith("seed-") and name[5:].lstrip("-").isdigit() else -1


def _in_pack(folder: Path) -> bool:
    pack_file = Path(folder).parent / PACK
    return pack_file.is_file() and _seed_of(folder) in _pack(pack_file)[1]


def _pack(path: Path) -> tuple[pa.Table, dict[int, dict]]:
    """A pack's rows and its manifests by seed (cached while the file is unchanged)."""
    st = path.stat()
    return _read_pack(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _read_pack(path: str, mtime_ns: int, size: int) -> tuple[pa.Table, dict[int, dict]]:
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(_PACK_KEY, b"null"))
        if not isinstance(meta, dict) or meta.get("schema") != PACK_SCHEMA or not isinstance(meta.get("manifests"), dict):
            raise ValueError(f"no {PACK_SCHEMA} manifests in its metadata")
        manifests = {int(seed): m for seed, m in meta["manifests"].items()}
        missing = {"seed", "condition", "id", "prediction"} - set(table.column_names)
        if missing:
            raise ValueError(f"columns {sorted(missing)} missing")
        seeds = set(pc.unique(table.column("seed")).to_pylist())
        if seeds != set(manifests) or not all(isinstance(m, dict) for m in manifests.values()):
            raise ValueError(f"it holds rows of seeds {sorted(seeds)} and manifests of seeds {sorted(manifests)}")
    except (OSError, ValueError, TypeError, RecursionError, pa.ArrowException) as e:
        raise MsabenchError(f"{path}: not a readable msabench pack ({type(e).__name__}: {e}); the file was edited "
                            "or cut short") from None
    return table, manifests


def _pack_labels(manifest: dict) -> bool:
    """Labels go in a pack only for data msabench generates: user-supplied data's labels are the data's
    (results are shared without them and read back with --data)."""
    return str(manifest.get("dataset_source", "")).startswith("generated")


def pack(model_dir: str | Path) -> list[int]:
    """Fold every finished unit of one OUT/PROTOCOL/MODEL folder (seed folders and an earlier pack) into
    its runs.parquet, then remove the seed folders. Returns the seeds packed.

    The pack is written beside, read back and compared with every unit before it replaces anything;
    the model folder's lock (the one `write_unit` swaps under) is held throughout, so a run writing a
    seed meanwhile waits and its folder is kept. An interruption leaves the folders, the pack, or both
    holding the same runs."""
    model_dir = Path(model_dir)
    lock = os.open(model_dir, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        units = _units_in(model_dir.parent.parent, model_dir.parent.name, model_dir.name)
        if not units:
            return []
        parts, manifests, want = [], {}, {}
        for unit in units:
            manifest = checked_manifest(unit)
            try:
                table, labels = _stored(unit)
            except (OSError, pa.ArrowException) as e:
                raise MsabenchError(f"{unit}: unreadable result files ({e}); nothing packed") from None
            n = table.num_rows
            label = pa.nulls(n, pa.float64())
            if _pack_labels(manifest):
                if "label" in table.column_names:
                    label = table.column("label").combine_chunks().cast(pa.float64())
                elif labels is not None:
                    by_id = dict(zip(labels.column("id").to_pylist(), labels.column("label").to_pylist()))
                    label = pa.array([by_id.get(i) for i in table.column("id").to_pylist()], pa.float64())
            parts.append(pa.table({
                "seed": pa.array(np.full(n, manifest["seed"], dtype=np.int64), pa.int64()),
                "condition": table.column("condition").cast(pa.string()),
                "id": table.column("id").cast(pa.string()),
                "prediction": table.column("prediction").cast(pa.float64()),
                "label": label,
            }))
            manifests[str(manifest["seed"])] = jsonable(manifest)
            want[manifest["seed"]] = (_digest(unit), label.null_count == 0)
        rows = pa.concat_tables(parts)
        if rows.column("label").null_count == rows.num_rows:
            rows = rows.drop_columns(["label"])
        meta = json.dumps({"schema": PACK_SCHEMA, "manifests": manifests}, allow_nan=False).encode()
        rows = rows.replace_schema_metadata({_PACK_KEY: meta})
        final = model_dir / PACK
        tmp = model_dir / f".{PACK}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _write_pack(rows, tmp)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            _check_pack(tmp, want)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        for unit in units:
            if (unit / "manifest.json").exists():
                shutil.rmtree(unit)
        return sorted(want)
    finally:
        os.close(lock)


def _write_pack(rows: pa.Table, path: Path) -> None:
    # floats split by byte before zstd: a third smaller than plain zstd on predictions (lossless)
    floats = [c for c in ("prediction", "label") if c in rows.column_names]
    pq.write_table(rows, path, compression="zstd", compression_level=19, use_byte_stream_split=floats,
                   use_dictionary=["seed", "condition", "id"])


def _check_pack(path: Path, want: dict[int, tuple[str, bool]]) -> None:
    """Read a freshly written pack back: every unit the same run as the one packed, its labels kept."""
    rows, manifests = _read_pack(str(path), path.stat().st_mtime_ns, path.stat().st_size)
    for seed, (digest, labelled) in want.items():
        picked = rows.filter(pc.equal(rows.column("seed"), seed))
        kept = "label" in picked.column_names and picked.column("label").null_count == 0
        if _run_digest(manifests[seed], picked) != digest or kept != labelled:
            raise MsabenchError(f"{path.parent}: seed {seed} did not read back from the new pack as it was "
                                "written; nothing replaced")


def replace_manifest(folder: Path, manifest: dict) -> None:
    """Rewrite one unit's manifest (runs --upgrade), in its folder or in its model's pack, atomically."""
    folder = Path(folder)
    if (folder / "manifest.json").exists() or not _in_pack(folder):
        with paths.atomic_file(folder / "manifest.json") as tmp:
            tmp.write_text(json.dumps(jsonable(manifest), indent=1, allow_nan=False))
        return
    pack_file = folder.parent / PACK
    rows, manifests = _pack(pack_file)
    manifests = {str(s): jsonable(manifest if s == _seed_of(folder) else m) for s, m in manifests.items()}
    meta = json.dumps({"schema": PACK_SCHEMA, "manifests": manifests}, allow_nan=False).encode()
    with paths.atomic_file(pack_file) as tmp:
        _write_pack(rows.replace_schema_metadata({_PACK_KEY: meta}), tmp)
