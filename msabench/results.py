"""Stored results: one folder per (protocol, model, seed), written atomically, read back typed.

    OUT/PROTOCOL/MODEL/seed-SEED/
        predictions.parquet   id, prediction, label, condition, seed  (one row per sample and condition)
        metrics.json          per-condition metrics and the aggregates over conditions
        manifest.json         every fingerprint and version needed to trust or re-use the numbers

A folder is complete or absent: it is assembled under a temporary name and renamed
into place, so an interrupted run never leaves half a result behind.
"""

from __future__ import annotations

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
        "label": pa.array(unit.labels, pa.float64()),
        "condition": pa.array(unit.conditions.astype(str), pa.string()),
        "seed": pa.array(np.full(len(unit.ids), unit.seed, dtype=np.int64), pa.int64()),
    })
    pq.write_table(table, tmp / "predictions.parquet", compression="zstd")  # a fifth smaller: runs are committed
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


def read_unit(folder: str | Path) -> UnitResult:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise MsabenchError(f"{folder}: no readable manifest.json; not a finished msabench result")
    try:
        table = pq.read_table(folder / "predictions.parquet")
        metrics = _nan_back(json.loads((folder / "metrics.json").read_text()))
    except (OSError, ValueError, pa.ArrowException) as e:
        raise MsabenchError(f"{folder}: unreadable result files: {e}") from None
    return UnitResult(
        protocol=manifest["protocol"], model=manifest["model"], seed=int(manifest["seed"]),
        ids=table.column("id").to_numpy(zero_copy_only=False).astype(str),
        predictions=table.column("prediction").to_numpy(),
        labels=table.column("label").to_numpy(),
        conditions=table.column("condition").to_numpy(zero_copy_only=False).astype(str),
        metrics=metrics, manifest=manifest,
    )


def find_units(out: str | Path, protocol: str | None = None, model: str | None = None) -> list[Path]:
    """Finished unit folders under `out` (temporary folders are never matched)."""
    # names are escaped: `firf[noise_part=False]` is a model name, not a glob character class
    pattern = f"{glob.escape(protocol) if protocol else '*'}/{glob.escape(model) if model else '*'}/seed-*/manifest.json"
    return sorted(p.parent for p in Path(out).glob(pattern))
