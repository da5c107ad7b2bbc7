"""Stored results: one folder per (protocol, model, seed), written atomically, read back typed.

    OUT/PROTOCOL/MODEL/seed-SEED/
        predictions.parquet   id, prediction, condition, seed  (one row per sample and condition)
        labels.parquet        id, label  (one row per sample): the data's own labels, in a file of
                              their own so that results on user-supplied data can be shared without them
        metrics.json          per-condition metrics and the aggregates over conditions
        manifest.json         every fingerprint and version needed to trust or re-use the numbers

Results without labels.parquet read their labels from the data file they were made on (`data=`),
checked by the dataset fingerprint. Results written before labels.parquet existed carry a `label`
column in predictions.parquet and read as before.

A folder is complete or absent: it is assembled under a temporary name and renamed
into place, so an interrupted run never leaves half a result behind.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import shutil
from dataclasses import dataclass
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


def unit_dir(out: str | Path, protocol: str, model: str, seed: int) -> Path:
    return Path(out) / protocol / model / f"seed-{seed}"


def jsonable(obj):
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None  # JSON has no NaN; None reads back as NaN
    return obj


def _nan_back(obj):
    if isinstance(obj, dict):
        return {k: _nan_back(v) for k, v in obj.items()}
    return float("nan") if obj is None else obj


def write_unit(out: str | Path, unit: UnitResult) -> Path:
    """Write one unit atomically (replacing a stale one) and return its folder."""
    final = unit_dir(out, unit.protocol, unit.model, unit.seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*-*"):  # left by an interrupted write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
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
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def is_current(folder: Path, identity: dict) -> bool:
    """True when `folder` holds a finished unit with exactly these fingerprints."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("schema") != RESULT_SCHEMA:
        return False
    if not all((folder / f).exists() for f in ("predictions.parquet", "metrics.json")):
        return False
    return all(manifest.get(k) == identity[k] for k in IDENTITY)


def read_unit(folder: str | Path, data: tuple[str, ...] = (), labels_by_id: dict | None = None) -> UnitResult:
    """One stored unit; `data`: data files to read its labels from when they are not stored with it;
    `labels_by_id`: those labels from data already loaded, whose fingerprint the caller has checked."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise MsabenchError(f"{folder}: no readable manifest.json; not a finished msabench result")
    try:
        table = pq.read_table(folder / "predictions.parquet")
        metrics = _nan_back(json.loads((folder / "metrics.json").read_text()))
        stored = pq.read_table(folder / "labels.parquet") if (folder / "labels.parquet").exists() else None
    except (OSError, ValueError, pa.ArrowException) as e:
        raise MsabenchError(f"{folder}: unreadable result files: {e}") from None
    ids = table.column("id").to_numpy(zero_copy_only=False).astype(str)
    if "label" in table.column_names:  # written before labels.parquet
        labels = table.column("label").to_numpy()
    else:
        if stored is not None:
            by_id = dict(zip(stored.column("id").to_pylist(), stored.column("label").to_numpy().tolist()))
        elif labels_by_id is not None:
            by_id = labels_by_id
        else:
            by_id = labels_from_data(folder, manifest, data)
        missing = next((i for i in ids if i not in by_id), None)
        if missing is not None:
            raise MsabenchError(f"{folder}: sample {missing} has a prediction but no label")
        labels = np.array([by_id[i] for i in ids], dtype=np.float64)
    return UnitResult(
        protocol=manifest["protocol"], model=manifest["model"], seed=int(manifest["seed"]),
        ids=ids, predictions=table.column("prediction").to_numpy(), labels=labels,
        conditions=table.column("condition").to_numpy(zero_copy_only=False).astype(str),
        metrics=metrics, manifest=manifest,
    )


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


def find_units(out: str | Path, protocol: str | None = None, model: str | None = None) -> list[Path]:
    """Finished unit folders under `out` (temporary folders are never matched)."""
    # names are escaped: `firf[noise_part=False]` is a model name, not a glob character class
    pattern = f"{glob.escape(protocol) if protocol else '*'}/{glob.escape(model) if model else '*'}/seed-*/manifest.json"
    return sorted(p.parent for p in Path(out).glob(pattern))
